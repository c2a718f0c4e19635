"""Reading the audit trail (scoped) and verifying its chain (platform admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from cityweave.api.deps import CallDep, PageDep, PageOut
from cityweave.api.problems import Problem
from cityweave.audit import trail
from cityweave.audit.models import AuditRecord
from cityweave.authz.policy import Action, Resource, Unauthorized, scope_clause
from cityweave.listing import paginate

router = APIRouter(prefix="/api/v1/audit", tags=["audit"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}})


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    seq: int
    at: datetime
    actor_id: str | None
    actor_label: str
    action: str
    object_kind: str
    object_id: str | None
    source_ip: str | None
    outcome: str
    details: dict[str, Any]
    hash: str


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    problems: list[str]


SORTABLE = {"seq": AuditRecord.seq, "at": AuditRecord.at}


@router.get("", response_model=PageOut[AuditOut])
def list_audit(
    call: CallDep,
    page: PageDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=64)] = None,
    actor_id: Annotated[str | None, Query(max_length=40)] = None,
) -> PageOut[AuditOut]:
    if not call.principal.may(Resource.AUDIT, Action.READ):
        raise Unauthorized("your role may not read the audit trail")
    stmt = select(AuditRecord).where(scope_clause(call.principal, Resource.AUDIT, Action.READ))
    if action:
        stmt = stmt.where(AuditRecord.action == action)
    if object_id:
        stmt = stmt.where(AuditRecord.object_id == object_id)
    if actor_id:
        stmt = stmt.where(AuditRecord.actor_id == actor_id)
    result = paginate(call.session, stmt, page, SORTABLE, "-seq")
    return PageOut[AuditOut](items=[AuditOut.model_validate(r) for r in result.items],
                             total=result.total, limit=result.limit, offset=result.offset)


@router.post("/verify", response_model=VerifyOut)
def verify_chain(call: CallDep) -> VerifyOut:
    if call.principal.scope_paths(Resource.AUDIT, Action.READ) is not None:
        raise Unauthorized("only platform admins verify the whole chain")
    report = trail.verify(call.session)
    return VerifyOut(ok=report.ok, checked=report.checked, head_seq=report.head_seq,
                     head_hash=report.head_hash, problems=report.problems)
