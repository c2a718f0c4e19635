"""HTTP ingest (devices without MQTT) and the Prometheus ``/metrics`` text of the ingest.

The work is done by :class:`cityweave.ingest.http_ingest.HttpIngest`, which whoever starts the
ingest service puts on ``app.state.ingest_http`` (and its metrics on ``app.state.ingest_metrics``).
Without it the route answers 404: this installation takes no HTTP ingest.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from cityweave.api.problems import Problem, problem_response
from cityweave.ingest.http_ingest import HttpIngest, Verdict

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"])
metrics_router = APIRouter()

_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object",
        "description": "A CityWeave native v1 message (docs/devices/native-format.md), "
                       "e.g. {\"v\": 1, \"readings\": [{\"capability\": \"temperature\", \"value\": 21.5}]}",
    }}},
}


class IngestAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    device_key: str
    readings: int
    rejected: list[dict[str, str]] = []


@router.post(
    "/{kind}",
    status_code=202,
    response_model=IngestAccepted,
    openapi_extra={"requestBody": _BODY},
    responses={400: {"model": Problem}, 401: {"model": Problem}, 404: {"model": Problem},
               413: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}},
)
async def ingest(
    request: Request,
    kind: Annotated[Literal["state", "event", "availability", "announce"], Path()],
    x_device_token: Annotated[str | None, Header(max_length=512)] = None,
) -> Response:
    """A device sends one native message, authenticated by its device token (`X-Device-Token`).
    202: queued for storage; the body says how many readings and which values were refused."""
    http: HttpIngest | None = getattr(request.app.state, "ingest_http", None)
    if http is None:
        return problem_response(request, 404, "not-found", "HTTP ingest is not running on this installation.")
    body = await request.body()
    outcome = await run_in_threadpool(http.accept, x_device_token, kind, body)
    match outcome.verdict:
        case Verdict.ACCEPTED:
            return JSONResponse(IngestAccepted(device_key=outcome.device_key or "", readings=outcome.readings,
                                               rejected=outcome.rejections).model_dump(), status_code=202)
        case Verdict.UNAUTHENTICATED:
            return problem_response(request, 401, "unauthenticated", "Send a valid device token in X-Device-Token.",
                                    headers={"WWW-Authenticate": "X-Device-Token"})
        case Verdict.OVERSIZE:
            return problem_response(request, 413, "payload-too-large", outcome.rejections[0]["detail"])
        case Verdict.MALFORMED:
            return problem_response(request, 400, "malformed-json", "The body is not valid JSON.",
                                    errors=_errors(outcome.rejections))
        case Verdict.BUSY:
            return problem_response(request, 503, "ingest-busy", "The ingest queue is full; retry shortly.",
                                    headers={"Retry-After": "1"})
    return problem_response(request, 422, "validation-error", "Nothing in the message could be used.",
                            errors=_errors(outcome.rejections))


def _errors(rejections: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"pointer": "/" + r["field"].replace(".", "/") if r.get("field") else "",
             "detail": f"{r['reason']}: {r['detail']}", "reason": r["reason"]} for r in rejections]


@metrics_router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text: ingest counters and the adapters' decode counters."""
    source = getattr(request.app.state, "ingest_metrics", None)
    text = source.prometheus() if source is not None else "# ingest not running\n"
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
