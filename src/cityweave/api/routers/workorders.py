"""Work orders: resident reports → online notification → department response (native API).

The Open311 GeoReport v2 interface over the same service lives in ``api/open311/`` (docs/open311.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, File, Path, Query, UploadFile, status
from fastapi.responses import Response

from cityweave.api.deps import CallDep, PageDep, PageOut
from cityweave.api.problems import Problem
from cityweave.context import Call
from cityweave.workorders import photos, service, stats
from cityweave.workorders.models import Category, Priority, Status, WorkOrder
from cityweave.workorders.schemas import (
    AssignInput,
    CategoryOut,
    CategoryPatch,
    MergeInput,
    RateInput,
    ReplyInput,
    StepNote,
    StepReason,
    TransferInput,
    WorkOrderEventOut,
    WorkOrderOut,
    WorkOrderSubmit,
)

router = APIRouter(
    prefix="/api/v1/work-orders",
    tags=["work orders"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)
categories_router = APIRouter(
    prefix="/api/v1/work-order-categories", tags=["work orders"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)
IdPath = Annotated[str, Path(max_length=40)]
_CONFLICT = {409: {"model": Problem}}


def out(call: Call, order: WorkOrder) -> WorkOrderOut:
    data = WorkOrderOut.model_validate(order, from_attributes=True)
    return data.model_copy(update={"reporter": service.reporter_label(call, order),
                                   "photos": service.photo_ids(call.session, order.id)})


@router.post("", response_model=WorkOrderOut, status_code=status.HTTP_201_CREATED)
def submit(call: CallDep, body: WorkOrderSubmit) -> WorkOrderOut:
    """Report a matter. Routed at once by category and place to the unit and person who answer it."""
    return out(call, service.submit(call, body))


@router.get("", response_model=PageOut[WorkOrderOut])
def list_work_orders(
    call: CallDep, page: PageDep,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    category_id: Annotated[str | None, Query(max_length=40)] = None,
    place_id: Annotated[str | None, Query(max_length=64, description="at or inside this place")] = None,
    assignee: Annotated[str | None, Query(max_length=40)] = None,
    mine: Annotated[bool, Query(description="only the caller's own reports")] = False,
    overdue: bool | None = None,
) -> PageOut[WorkOrderOut]:
    result = service.list_work_orders(call, page, status=status_, category_id=category_id, place_id=place_id,
                                      assignee=assignee, mine=mine, overdue=overdue)
    return PageOut[WorkOrderOut](items=[out(call, o) for o in result.items], total=result.total,
                                 limit=result.limit, offset=result.offset)


@router.get("/statistics", response_model=stats.Statistics)
def statistics(
    call: CallDep,
    by: Annotated[stats.GroupBy, Query(description="group rows by")] = stats.GroupBy.CATEGORY,
    days: Annotated[int, Query(ge=1, le=3660)] = 30,
    place_id: Annotated[str | None, Query(max_length=64)] = None,
) -> stats.Statistics:
    """Response and resolution times, on-time rate and satisfaction over the last ``days``."""
    return stats.summarise(call, by=by, days=days, place_id=place_id)


@router.get("/hotspots", response_model=list[stats.Hotspot])
def hotspots(call: CallDep, days: Annotated[int, Query(ge=1, le=366)] = 30) -> list[stats.Hotspot]:
    """Where reports cluster (per grid, with its centre point), for maps."""
    return stats.hotspots(call, days=days)


@router.get("/trends", response_model=list[stats.Trend])
def trends(call: CallDep) -> list[stats.Trend]:
    """Categories rising week over week."""
    return stats.rising(call)


@router.get("/{work_order_id}", response_model=WorkOrderOut)
def get_work_order(call: CallDep, work_order_id: IdPath) -> WorkOrderOut:
    return out(call, service.get(call, work_order_id))


@router.get("/{work_order_id}/history", response_model=list[WorkOrderEventOut])
def history(call: CallDep, work_order_id: IdPath) -> list[WorkOrderEventOut]:
    return [WorkOrderEventOut.model_validate(e, from_attributes=True) for e in service.history(call, work_order_id)]


@router.get("/{work_order_id}/duplicates", response_model=list[WorkOrderOut])
def duplicates(call: CallDep, work_order_id: IdPath) -> list[WorkOrderOut]:
    """Open work orders of the same category at the same place reported within two hours."""
    order = service.get(call, work_order_id)
    return [out(call, o) for o in service.duplicates_of(call, order)]


def _step_route(path: str, doc: str, fn: Callable[[Call, str, str | None], WorkOrder]) -> None:
    @router.post(f"/{{work_order_id}}/{path}", response_model=WorkOrderOut, responses=_CONFLICT,
                 name=f"work_order_{path}", description=doc)
    def step(call: CallDep, work_order_id: IdPath, body: StepNote | None = None) -> WorkOrderOut:
        return out(call, fn(call, work_order_id, body.note if body else None))

    del step  # registered on the router by the decorator


_step_route("accept", "The handling unit takes the work order on.", service.accept)
_step_route("start", "The handler is on it.", service.start)
_step_route("resolve", "The handler says it is done; the reporter is asked to confirm.", service.resolve)
_step_route("confirm", "The reporter agrees it is done.", service.confirm)


@router.post("/{work_order_id}/assign", response_model=WorkOrderOut, responses=_CONFLICT)
def assign(call: CallDep, work_order_id: IdPath, body: AssignInput) -> WorkOrderOut:
    return out(call, service.assign(call, work_order_id, body))


@router.post("/{work_order_id}/reject", response_model=WorkOrderOut, responses=_CONFLICT)
def reject(call: CallDep, work_order_id: IdPath, body: StepReason) -> WorkOrderOut:
    """Not for us, or not a real case: always with a reason the reporter sees."""
    return out(call, service.reject(call, work_order_id, body.reason))


@router.post("/{work_order_id}/reopen", response_model=WorkOrderOut, responses=_CONFLICT)
def reopen(call: CallDep, work_order_id: IdPath, body: StepReason) -> WorkOrderOut:
    return out(call, service.reopen(call, work_order_id, body.reason))


@router.post("/{work_order_id}/transfer", response_model=WorkOrderOut, responses=_CONFLICT)
def transfer(call: CallDep, work_order_id: IdPath, body: TransferInput) -> WorkOrderOut:
    """To another category and its department, with a reason; routed again."""
    return out(call, service.transfer(call, work_order_id, body))


@router.post("/{work_order_id}/merge", response_model=WorkOrderOut, responses=_CONFLICT)
def merge(call: CallDep, work_order_id: IdPath, body: MergeInput) -> WorkOrderOut:
    """Fold this duplicate into another open work order of the same category."""
    return out(call, service.merge(call, work_order_id, body))


@router.post("/{work_order_id}/replies", response_model=WorkOrderEventOut, status_code=status.HTTP_201_CREATED)
def reply(call: CallDep, work_order_id: IdPath, body: ReplyInput) -> WorkOrderEventOut:
    return WorkOrderEventOut.model_validate(service.reply(call, work_order_id, body), from_attributes=True)


@router.post("/{work_order_id}/rating", response_model=WorkOrderOut, responses=_CONFLICT)
def rate(call: CallDep, work_order_id: IdPath, body: RateInput) -> WorkOrderOut:
    """Satisfaction 1–5; rating a resolved work order confirms and closes it."""
    return out(call, service.rate(call, work_order_id, body))


@router.put("/{work_order_id}/priority", response_model=WorkOrderOut)
def set_priority(call: CallDep, work_order_id: IdPath, priority: Annotated[Priority, Query()]) -> WorkOrderOut:
    return out(call, service.set_priority(call, work_order_id, priority))


@router.post("/{work_order_id}/photos", status_code=status.HTTP_201_CREATED, responses=_CONFLICT)
async def add_photo(
    call: CallDep, work_order_id: IdPath,
    photo: Annotated[UploadFile, File(description="JPEG, PNG or WebP, at most 10 MB; metadata is removed")],
) -> dict[str, str]:
    data = await photo.read(photos.MAX_UPLOAD_BYTES + 1)
    row = service.add_photo(call, work_order_id, photos.clean(data, photo.content_type))
    return {"id": row.id, "content_type": row.content_type}


@router.get("/{work_order_id}/photos/{photo_id}", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}})
def get_photo(call: CallDep, work_order_id: IdPath, photo_id: IdPath) -> Response:
    photo = service.get_photo(call, work_order_id, photo_id)
    return Response(photo.data, media_type=photo.content_type,
                    headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})


@categories_router.get("", response_model=list[CategoryOut])
def list_categories(call: CallDep, include_inactive: bool = False) -> list[CategoryOut]:
    return [CategoryOut.model_validate(c, from_attributes=True)
            for c in service.list_categories(call.session, include_inactive=include_inactive)]


@categories_router.patch("/{category_id}", response_model=CategoryOut)
def update_category(call: CallDep, category_id: IdPath, body: CategoryPatch) -> CategoryOut:
    """Platform administrators adjust names, departments, priorities and deadlines."""
    category: Category = service.update_category(call, category_id, body)
    return CategoryOut.model_validate(category, from_attributes=True)
