"""Schemathesis on the household mode, scene and automation routes, as a resident of the household
the fuzzer aims at (the whole-API fuzz runs as platform admin): no input may cause a server error."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from cityweave.accounts.models import Role
from tests.conftest import auth
from tests.world import World


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema").include(path_regex=r"^/api/v1/households/")


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_rules_routes_never_fail(case, world: World) -> None:
    if "household_id" in (case.path_parameters or {}):
        case.path_parameters["household_id"] = "ca-b1-u1-101"
    response = case.call(headers=auth(world.token(Role.RESIDENT)))
    assert response.status_code < 500 or response.status_code == 503, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}")
    if 400 <= response.status_code:
        content_type = (response.headers.get("content-type") or [""])[0]
        assert content_type.startswith("application/problem+json"), response.text[:300]


def test_the_published_bodies_resolve(app) -> None:
    """The rule and scene bodies refer to components published through RuleSpec: none dangles."""
    document = app.openapi()
    names = set(document["components"]["schemas"])
    text = str({p: v for p, v in document["paths"].items() if p.startswith("/api/v1/households/")})
    refs = set(re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text))
    assert refs and refs <= names, refs - names
    scene = document["paths"]["/api/v1/households/{household_id}/scenes"]["post"]["requestBody"]
    assert scene["content"]["application/json"]["schema"]["properties"]["actions"]
