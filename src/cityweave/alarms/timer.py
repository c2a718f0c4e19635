"""One escalation pass for a timer thread: its own writer transaction, changes handed on after commit.

The runtime's 1-second timer calls :func:`run_escalations`; the changes go to the same listeners as
the HTTP steps (``app.state.alarm_listeners``), only once the moves are committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial

from cityweave.alarms.events import AlarmChange
from cityweave.alarms.service import escalate_due
from cityweave.db.engine import Database, on_commit


def run_escalations(db: Database, now: datetime,
                    listeners: Iterable[Callable[[AlarmChange], None]] = ()) -> list[AlarmChange]:
    """Escalate every alarm whose acknowledgement deadline passed by ``now``; return the changes."""
    listeners = list(listeners)
    with db.session() as session:
        db.write_first(session)
        changes = escalate_due(session, now)
        for change in changes:
            for listener in listeners:
                on_commit(session, partial(listener, change))
    return changes
