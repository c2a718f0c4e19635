"""Installs the pages on the FastAPI application: routes, static files, headers, error pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cityweave.web import console, home, pages
from cityweave.web.render import Renderer
from cityweave.web.security import PageSecurityHeaders

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    app.state.page_renderer = Renderer()
    app.mount("/assets", StaticFiles(directory=STATIC), name="assets")
    app.include_router(pages.router)
    app.include_router(console.router)
    app.include_router(home.router)
    app.add_exception_handler(pages.SignInRequired, pages.sign_in_redirect)  # type: ignore[arg-type]
    app.add_exception_handler(pages.PageRefused, pages.page_refused)  # type: ignore[arg-type]
    app.add_exception_handler(pages.CsrfFailed, pages.csrf_refused)  # type: ignore[arg-type]
    app.add_middleware(PageSecurityHeaders)
