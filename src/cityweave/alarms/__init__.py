"""Alarms: one open alarm per cause with an occurrence count, its lifecycle, escalation and roll-ups.

The contract with rules and notifications is docs/rules-alarms.md. This package's ``__init__`` only
re-exports the values (no service imports: the policy module imports the models).
"""

from cityweave.alarms.events import AlarmChange, AlarmRaise, EscalationStep
from cityweave.alarms.models import CLOSED, OPEN, Alarm, AlarmEvent, AlarmStatus, Severity

__all__ = [
    "CLOSED", "OPEN", "Alarm", "AlarmChange", "AlarmEvent", "AlarmRaise", "AlarmStatus",
    "EscalationStep", "Severity",
]
