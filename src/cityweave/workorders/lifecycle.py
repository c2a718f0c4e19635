"""Which step may follow which: the work-order state machine as one table.

```
submitted ─accept─▶ accepted ─assign─▶ assigned ─start─▶ in_progress ─resolve─▶ resolved
    │                   │                  │                                    │ confirm (reporter,
    └──── reject / transfer (back to submitted, new unit) / merge ──────┘      ▼  or after N days)
                                                                            confirmed ─close─▶ closed
resolved / confirmed / closed ─reopen─▶ assigned (same handler) or accepted (none left)
```

Routing may take the first steps itself (a handler found: ``assigned`` at once). "Responded"
(``accepted_at``) is the first human step by the handling side: accept, assign, start or resolve.
"""

from __future__ import annotations

import enum

from cityweave.errors import Conflict
from cityweave.workorders.models import Status

S = Status


class Step(enum.StrEnum):
    ACCEPT = "accept"
    ASSIGN = "assign"
    START = "start"
    RESOLVE = "resolve"
    CONFIRM = "confirm"
    CLOSE = "close"
    REJECT = "reject"
    REOPEN = "reopen"
    TRANSFER = "transfer"
    MERGE = "merge"


_OPEN = {S.SUBMITTED, S.ACCEPTED, S.ASSIGNED, S.IN_PROGRESS}

# step → (statuses it may start from, status it leads to; None = decided by the service)
TRANSITIONS: dict[Step, tuple[frozenset[Status], Status | None]] = {
    Step.ACCEPT: (frozenset({S.SUBMITTED}), S.ACCEPTED),
    Step.ASSIGN: (frozenset({S.SUBMITTED, S.ACCEPTED, S.ASSIGNED, S.IN_PROGRESS}), S.ASSIGNED),
    Step.START: (frozenset({S.ASSIGNED}), S.IN_PROGRESS),
    Step.RESOLVE: (frozenset({S.ASSIGNED, S.IN_PROGRESS}), S.RESOLVED),
    Step.CONFIRM: (frozenset({S.RESOLVED}), S.CONFIRMED),
    Step.CLOSE: (frozenset({S.CONFIRMED}), S.CLOSED),
    Step.REJECT: (frozenset({S.SUBMITTED, S.ACCEPTED, S.ASSIGNED}), S.REJECTED),
    Step.REOPEN: (frozenset({S.RESOLVED, S.CONFIRMED, S.CLOSED}), None),
    Step.TRANSFER: (frozenset(_OPEN), S.SUBMITTED),
    Step.MERGE: (frozenset(_OPEN), S.MERGED),
}

# Steps taken by the handling side count as the response ("accepted_at").
RESPONSE_STEPS = frozenset({Step.ACCEPT, Step.ASSIGN, Step.START, Step.RESOLVE})
# Steps that need a reason from whoever takes them.
NEEDS_REASON = frozenset({Step.REJECT, Step.REOPEN, Step.TRANSFER})


def target(step: Step, current: Status, *, has_assignee: bool = False) -> Status:
    """The status after ``step`` from ``current``; :class:`Conflict` (409) when not allowed."""
    sources, to = TRANSITIONS[step]
    if current not in sources:
        allowed = ", ".join(sorted(s.value for s in sources))
        raise Conflict(f"cannot {step.value} a work order that is {current.value} (only when {allowed})",
                       current_status=current.value)
    if to is None:  # reopen: back to the handler if there is one
        return S.ASSIGNED if has_assignee else S.ACCEPTED
    return to
