"""Notifications: the live event hub (SSE), the outbox with channel plugins (webhook, SMS, voice),
recipients by audience, per-user channel preferences. The contract is docs/rules-alarms.md."""
