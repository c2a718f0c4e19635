"""The FastAPI application: routers, problem details, limits. Built from an AppContext."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from cityweave import __version__
from cityweave.api import problems
from cityweave.api.middleware import BodyLimit, RejectNulInUrl, RequestId
from cityweave.api.routers import audit, auth, health, persons, places, transfer, users
from cityweave.context import AppContext

UPLOAD_PREFIXES = ("/api/v1/import",)


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="CityWeave",
        version=__version__,
        summary="Homes, communities and the city in one system.",
        description=(
            "Native REST API. Errors are RFC 7807 problem details (`application/problem+json`). "
            "Sign in at `/api/v1/auth/token` (OAuth2 password grant) and send "
            "`Authorization: Bearer <access_token>`, or send an API key in `X-API-Key`."
        ),
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    problems.install(app)
    for module in (health, auth, places, persons, users, audit, transfer):
        app.include_router(module.router)

    @app.get("/problems/{slug}", include_in_schema=False)
    def problem_type(slug: str) -> JSONResponse:
        description = problems.PROBLEM_TYPES.get(slug)
        if description is None:
            return problems.problem_response(None, 404, "not-found", "No such problem type.")
        return JSONResponse({"type": f"/problems/{slug}", "description": description})

    app.add_middleware(RejectNulInUrl)
    app.add_middleware(RequestId)
    app.add_middleware(
        BodyLimit,
        max_bytes=ctx.settings.max_body_bytes,
        max_upload_bytes=ctx.settings.max_upload_bytes,
        upload_prefixes=UPLOAD_PREFIXES,
    )
    return app
