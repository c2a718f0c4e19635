"""The FastAPI application: routers, problem details, limits. Built from an AppContext."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from cityweave import __version__
from cityweave.api import open311, problems
from cityweave.api.middleware import BodyLimit, RejectNulInUrl, RequestId
from cityweave.api.routers import (
    alarms,
    audit,
    auth,
    automation,
    devices,
    events,
    health,
    ingest,
    notification_preferences,
    persons,
    places,
    rule_settings,
    telemetry,
    transfer,
    users,
    workorders,
)
from cityweave.context import AppContext
from cityweave.notifications.service import Notifications
from cityweave.web import app as web
from cityweave.workorders.from_alarms import SiteVisitOpener

UPLOAD_PREFIXES = ("/api/v1/import", "/api/v1/work-orders/", "/home/reports")


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
        # The default docs pages load Swagger UI from a CDN; ours serve it from the package.
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    # Alarms dispatched with people on site become routed work orders.
    app.state.work_order_opener = SiteVisitOpener(ctx)
    problems.install(app)
    for module in (health, auth, places, persons, users, audit, transfer, devices, telemetry, ingest, events):
        app.include_router(module.router)
    # The live event hub (app.state.notification_hub), the outbox dispatcher (started by whoever
    # serves) and the alarm adapter in app.state.alarm_listeners; a runtime may install its own.
    Notifications(ctx).install(app)
    app.include_router(ingest.metrics_router)
    app.include_router(alarms.router)
    app.include_router(workorders.router)
    app.include_router(automation.router)
    app.include_router(rule_settings.router)
    app.include_router(notification_preferences.router)  # the caller's own channels and webhook
    app.include_router(workorders.categories_router)
    app.include_router(open311.router)  # Open311 GeoReport v2 over the work orders

    @app.get("/problems/{slug}", include_in_schema=False)
    def problem_type(slug: str) -> JSONResponse:
        description = problems.PROBLEM_TYPES.get(slug)
        if description is None:
            return problems.problem_response(None, 404, "not-found", "No such problem type.")
        return JSONResponse({"type": f"/problems/{slug}", "description": description})

    app.add_middleware(RejectNulInUrl)
    _install_docs(app)
    web.install(app)  # the staff console and the resident home: "/" is their front door
    app.add_middleware(RequestId)
    app.add_middleware(
        BodyLimit,
        max_bytes=ctx.settings.max_body_bytes,
        max_upload_bytes=ctx.settings.max_upload_bytes,
        upload_prefixes=UPLOAD_PREFIXES,
    )
    return app


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from files shipped in a PyPI package: nothing from the internet."""
    import fastapi_offline

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/static/swagger", StaticFiles(directory=assets), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="CityWeave API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

