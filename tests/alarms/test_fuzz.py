"""Schemathesis on the alarm endpoints only: no input may cause a server error, every 4xx is a
problem document (the suite-wide fuzz test covers every route with fewer examples each)."""

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


schema = schemathesis.pytest.from_fixture("api_schema").include(path_regex="^/api/v1/alarms")


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_alarm_endpoints_never_fail(case, world: World) -> None:
    response = case.call(headers=auth(world.token(Role.PLATFORM_ADMIN)))
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type") or [""]  # schemathesis: header lists
        assert content_type[0].startswith("application/problem+json"), response.text[:300]
        body = response.json()
        assert body["status"] == response.status_code and body["type"].startswith("/problems/")
