"""Liveness and readiness probes for process supervisors and load balancers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from cityweave import __version__
from cityweave.api.deps import CtxDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz")
def readyz(ctx: CtxDep, request: Request) -> JSONResponse:
    """The process can serve: the database answers and the schema is current. With the device
    runtime running, ``ingest`` says whether its broker is connected (informational: the API
    serves without the broker, and the subscriber reconnects by itself)."""
    checks: dict[str, str] = {}
    try:
        with ctx.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            checks["schema"] = "ok" if revision else "not migrated"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported, not raised
        checks.setdefault("database", f"error: {type(exc).__name__}")
        checks.setdefault("schema", "unknown")
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
    runtime = getattr(request.app.state, "device_runtime", None)
    if runtime is not None:
        try:
            body["ingest"] = runtime.status()
        except Exception as exc:  # noqa: BLE001 - reported, never a reason to fail the probe
            body["ingest"] = {"connected": False, "error": type(exc).__name__}
    return JSONResponse(body, status_code=200 if ready else 503)
