"""Pagination and sorting shared by every list: one implementation, used by every service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from cityweave.errors import Invalid

T = TypeVar("T")

MAX_LIMIT = 1000


@dataclass
class PageRequest:
    limit: int = 50
    offset: int = 0
    sort: str | None = None


@dataclass
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    limit: int
    offset: int


def paginate(
    session: Session,
    stmt: Select[Any],
    page: PageRequest,
    sortable: Mapping[str, ColumnElement[Any]],
    default_sort: str,
) -> Page[Any]:
    """Count, sort (``name,-created_at``; only listed keys) and slice a query."""
    total = session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
    order = []
    for key in (page.sort or default_sort).split(","):
        key = key.strip()
        descending = key.startswith("-")
        column = sortable.get(key.lstrip("-"))
        if column is None:
            raise Invalid.field(
                "sort", f"cannot sort by {key!r}; choose from {', '.join(sorted(sortable))}"
            )
        order.append(column.desc() if descending else column.asc())
    # A unique tie-breaker keeps pages stable when sort keys repeat.
    tiebreak = sortable.get("id")
    if tiebreak is not None:
        order.append(tiebreak.asc())
    rows = session.execute(stmt.order_by(*order).limit(page.limit).offset(page.offset)).scalars().all()
    return Page(items=rows, total=total, limit=page.limit, offset=page.offset)
