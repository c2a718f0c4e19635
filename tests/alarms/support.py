"""Helpers shared by the alarm tests."""

from __future__ import annotations

from cityweave.alarms.escalation import ELDERLY_CHAIN
from cityweave.alarms.events import AlarmRaise, EscalationStep
from cityweave.alarms.models import Severity

OWN = "ca-b1-u1-101"
NEIGHBOUR = "ca-b1-u1-102"


def smoke(place_id: str = OWN, device_id: str = "dev-smoke0001", *, severity: Severity = Severity.CRITICAL,
          escalation: tuple[EscalationStep, ...] = (), value: object = True) -> AlarmRaise:
    return AlarmRaise(
        cause_key=f"fire.smoke:{device_id}", kind="fire", severity=severity, place_id=place_id,
        rule_key="fire.smoke", device_id=device_id,
        title={"zh-CN": "烟雾报警", "en": "Smoke detected"}, details={"smoke": value},
        escalation=escalation,
    )


def fall(place_id: str = OWN) -> AlarmRaise:
    return AlarmRaise(
        cause_key=f"elderly.fall:{place_id}", kind="fall", severity=Severity.CRITICAL, place_id=place_id,
        rule_key="elderly.fall", title={"zh-CN": "跌倒", "en": "Fall detected"}, escalation=ELDERLY_CHAIN,
    )
