"""Schemathesis generates requests from /openapi.json: no input may cause a server error.

Every 4xx must be an RFC 7807 problem document. Runs as a platform admin (the widest reach)
against a fresh copy of the test world, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from cityweave.accounts.models import Role
from tests.conftest import auth
from tests.world import World


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# GET /api/v1/events is an endless Server-Sent Events stream: a generated request would never
# finish. It is excluded here on purpose and fuzzed on its own in tests/notifications/test_sse.py
# (with the hub closed, so that every stream ends right after its preamble).
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/api/v1/events")


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, world: World) -> None:
    response = case.call(headers=auth(world.token(Role.PLATFORM_ADMIN)))
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type") or [""]
        if case.path.startswith("/open311/") and not content_type[0].startswith("application/problem+json"):
            # Open311 answers in the GeoReport error format (docs/open311.md); refusals before
            # routing (NUL in the URL, wrong method, body too large) stay problem documents.
            assert content_type[0].split(";")[0] in ("text/xml", "application/json"), response.text[:300]
            return
        assert content_type[0].startswith("application/problem+json"), response.text[:300]
        body = response.json()
        assert body["status"] == response.status_code and body["type"].startswith("/problems/")
