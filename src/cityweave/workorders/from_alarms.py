"""Alarms that need people on site become work orders (the alarms' ``WorkOrderOpener``).

The alarm side decides *whether* (its kind, or a person dispatching with ``work_order=true``);
this side files the work order through the ordinary service, so it is routed, timed, audited
and announced like any other, with channel ``alarm`` and a link back to the alarm.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cityweave.authz.policy import Principal
from cityweave.context import AppContext, Call
from cityweave.workorders import service
from cityweave.workorders.models import Channel
from cityweave.workorders.schemas import WorkOrderSubmit

SITE_VISIT_CATEGORY = "alarm-site-visit"
_OPENER = Principal.system("alarms")


class SiteVisitOpener:
    """Implements ``cityweave.alarms.workorders.WorkOrderOpener``."""

    def __init__(self, ctx: AppContext, category_id: str = SITE_VISIT_CATEGORY) -> None:
        self.ctx = ctx
        self.category_id = category_id

    def open(self, session: Session, alarm: Any, category_id: str | None = None) -> str | None:
        call = Call(self.ctx, session, _OPENER)
        title = alarm.title or {}
        details = ", ".join(f"{k}={v}" for k, v in sorted((alarm.details or {}).items()) if not isinstance(v, dict))
        description = f"{title.get('zh-CN', alarm.kind)} / {title.get('en', alarm.kind)}"
        if details:
            description += f" ({details})"
        order = service.submit(
            call,
            WorkOrderSubmit(category_id=category_id or self.category_id, description=description[:4000],
                            place_id=alarm.place_id),
            channel=Channel.ALARM, alarm_id=alarm.id,
        )
        return order.id
