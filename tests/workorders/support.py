"""Helpers for work-order tests: calls as the world's users, extra staff, recorded bus events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cityweave.accounts import service as accounts
from cityweave.accounts.models import Role, User
from cityweave.accounts.schemas import GrantIn, UserCreate
from cityweave.authz.policy import Principal
from cityweave.context import AppContext, Call
from cityweave.workorders.events import WorkOrderChange
from cityweave.workorders.schemas import WorkOrderSubmit

HOME = "ca-b1-u1-101"  # resident_a's household, in grid ca-g1 of community ca


@contextmanager
def as_user(ctx: AppContext, user_id: str) -> Iterator[Call]:
    """A Call as a stored user (their real grants), committed at the end like a request."""
    with ctx.db.session() as session:
        ctx.db.write_first(session)
        user = session.get(User, user_id)
        assert user is not None, user_id
        yield Call(ctx, session, Principal.from_user(user, via="token"))


@contextmanager
def as_system(ctx: AppContext) -> Iterator[Call]:
    with ctx.db.session() as session:
        yield Call(ctx, session, Principal.system("test"))


def add_user(ctx: AppContext, username: str, role: Role, place_id: str | None,
             categories: list[str] | None = None) -> str:
    with as_system(ctx) as call:
        user = accounts.create_user(call, UserCreate(
            username=username, display_name=username,
            grants=[GrantIn(role=role, place_id=place_id, categories=categories)]))
        return user.id


def report(category: str = "repair-water", place_id: str | None = HOME, **extra) -> WorkOrderSubmit:
    return WorkOrderSubmit(category_id=category, description="厨房水管漏水，地面积水", place_id=place_id, **extra)


class Recorder:
    def __init__(self, ctx: AppContext) -> None:
        self.changes: list[WorkOrderChange] = []
        ctx.bus.subscribe(WorkOrderChange, self.changes.append)

    def actions(self) -> list[str]:
        return [c.action for c in self.changes]
