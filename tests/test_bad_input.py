"""Bad input gets a clear RFC 7807 answer and changes nothing."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from cityweave.accounts.models import Role
from cityweave.context import AppContext
from tests.conftest import auth
from tests.world import World

PROBLEM = "application/problem+json"


def _count_places(ctx: AppContext) -> int:
    from sqlalchemy import func, select

    from cityweave.places.models import Place

    with ctx.db.session() as session:
        return session.execute(select(func.count()).select_from(Place)).scalar_one()


def _admin(world: World) -> dict[str, str]:
    return auth(world.token(Role.COMMUNITY_ADMIN))


GOOD_PLACE = {"id": "ca-b9", "kind": "building", "parent_id": "ca-g1", "name": "9 栋",
              "geometry": {"type": "Point", "coordinates": [113.92, 22.52]}}


def test_malformed_json_is_400(client: TestClient, world: World, ctx: AppContext) -> None:
    before = _count_places(ctx)
    r = client.post("/api/v1/places", content=b'{"id": "x", ', headers={**_admin(world), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM
    assert r.json()["type"] == "/problems/malformed-json"
    assert _count_places(ctx) == before


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"kind": "castle"}, "/kind"),
        ({"id": "Bad Id!"}, "/id"),
        ({"name": ""}, "/name"),
        ({"name": 42}, "/name"),
        ({"surprise": True}, "/surprise"),
        ({"geometry": {"type": "Point", "coordinates": [200, 22]}}, "/geometry/Point/coordinates/0"),
        ({"attributes": {f"k{i}": i for i in range(60)}}, "/attributes"),
    ],
    ids=["bad-enum", "bad-id", "empty-name", "wrong-type", "unknown-field", "out-of-range", "too-many-attrs"],
)
def test_invalid_fields_get_422_with_pointers(client: TestClient, world: World, ctx: AppContext,
                                              change: dict, pointer: str) -> None:
    before = _count_places(ctx)
    r = client.post("/api/v1/places", json={**GOOD_PLACE, **change}, headers=_admin(world))
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"] == PROBLEM
    assert body["type"] == "/problems/validation-error" and body["status"] == 422
    assert pointer in [e["pointer"] for e in body["errors"]], body["errors"]
    assert _count_places(ctx) == before


def test_domain_rules_get_422_with_pointers(client: TestClient, world: World) -> None:
    cases = [
        ({**GOOD_PLACE, "parent_id": "ca"}, "/parent_id"),  # building directly under a community
        ({**GOOD_PLACE, "geometry": {"type": "Polygon", "coordinates": [[[1, 1], [2, 1], [2, 2], [1, 1]]]}}, "/geometry"),
        ({**GOOD_PLACE, "kind": "facility"}, "/facility_type"),
        ({**GOOD_PLACE, "parent_id": "nowhere"}, "/parent_id"),
    ]
    for body, pointer in cases:
        r = client.post("/api/v1/places", json=body, headers=_admin(world))
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["pointer"] == pointer


def test_duplicate_is_409(client: TestClient, world: World) -> None:
    assert client.post("/api/v1/places", json=GOOD_PLACE, headers=_admin(world)).status_code == 201
    r = client.post("/api/v1/places", json=GOOD_PLACE, headers=_admin(world))
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM


def test_in_use_place_cannot_be_deleted(client: TestClient, world: World) -> None:
    r = client.delete("/api/v1/places/ca-b1-u1-101", headers=_admin(world))
    assert r.status_code == 409
    assert client.get("/api/v1/places/ca-b1-u1-101", headers=_admin(world)).status_code == 200


def test_oversize_body_is_413(client: TestClient, world: World, ctx: AppContext) -> None:
    before = _count_places(ctx)
    huge = json.dumps({**GOOD_PLACE, "name": "x" * 2_000_000})
    r = client.post("/api/v1/places", content=huge, headers={**_admin(world), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM

    def chunks():  # no Content-Length: the limit must hold for streamed bodies too
        for _ in range(40):
            yield b"x" * 65536

    r = client.post("/api/v1/places", content=chunks(), headers={**_admin(world), "Content-Type": "application/json"})
    assert r.status_code == 413
    assert _count_places(ctx) == before


@pytest.mark.parametrize("value", [
    "' OR '1'='1", "1; DROP TABLE places; --", "%", "_", "\\", "\u0000", "𠀀𠀁", "\u202eevil", "ca%' --",
])
def test_injection_and_odd_unicode_in_queries(client: TestClient, world: World, value: str) -> None:
    headers = _admin(world)
    for path, params in (
        ("/api/v1/places", {"q": value}),
        ("/api/v1/places", {"parent_id": value}),
        ("/api/v1/persons", {"phone": value}),
        ("/api/v1/persons", {"household_id": value}),
        ("/api/v1/users", {"q": value}),
        ("/api/v1/audit", {"action": value}),
    ):
        r = client.get(path, params=params, headers=headers)
        assert r.status_code in (200, 422), (path, params, r.status_code, r.text)
        if r.status_code == 200:
            assert r.json()["total"] == 0 or value in ("%", "_"), (path, params)
    r = client.get(f"/api/v1/places/{quote(value, safe='')}", headers=headers)
    assert r.status_code in (404, 422)


def test_like_wildcards_do_not_widen_scope(client: TestClient, world: World) -> None:
    # A grid worker of ca-g1 must not reach ca-g2 through a pattern in `within`.
    r = client.get("/api/v1/persons", params={"within": "%"}, headers=auth(world.token(Role.GRID_WORKER)))
    assert r.status_code == 422


def test_bad_sort_and_paging(client: TestClient, world: World) -> None:
    headers = _admin(world)
    assert client.get("/api/v1/places", params={"sort": "password"}, headers=headers).status_code == 422
    assert client.get("/api/v1/places", params={"sort": "name;drop"}, headers=headers).status_code == 422
    assert client.get("/api/v1/places", params={"limit": 0}, headers=headers).status_code == 422
    assert client.get("/api/v1/places", params={"limit": 100000}, headers=headers).status_code == 422
    assert client.get("/api/v1/places", params={"offset": -1}, headers=headers).status_code == 422
    r = client.get("/api/v1/places", params={"sort": "-name", "limit": 3, "offset": 1, "kind": "household"}, headers=headers)
    assert r.status_code == 200
    body = r.json()
    names = [p["name"] for p in body["items"]]
    assert names == sorted(names, reverse=True) and body["limit"] == 3 and body["offset"] == 1
    assert body["total"] == 3  # ca has three households


def test_unknown_routes_and_methods_are_problems(client: TestClient, world: World) -> None:
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    r = client.put("/api/v1/places", json={}, headers=_admin(world))
    assert r.status_code == 405 and r.headers["content-type"] == PROBLEM
    described = client.get(r.json()["type"])
    assert described.status_code == 200 and "method" in described.json()["description"]


def test_token_endpoint_bad_forms(client: TestClient) -> None:
    assert client.post("/api/v1/auth/token", data={"grant_type": "client_credentials"}).status_code == 422
    assert client.post("/api/v1/auth/token", data={"grant_type": "password"}).status_code == 422
    assert client.post("/api/v1/auth/token", data={"grant_type": "refresh_token"}).status_code == 422
    assert client.post("/api/v1/auth/token", content=b"\xff\xfe", headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code in (400, 422)


def test_a_failed_commit_is_an_error_not_a_success(client: TestClient, world: World, ctx: AppContext,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """If the database refuses the commit (disk full, lost connection), the client must not get 2xx."""
    from sqlalchemy.orm import Session

    def failing_commit(self: Session) -> None:
        raise OSError("disk full")

    before = _count_places(ctx)
    monkeypatch.setattr(Session, "commit", failing_commit)
    r = client.post("/api/v1/places", json=GOOD_PLACE, headers=_admin(world))
    monkeypatch.undo()
    assert r.status_code == 500 and r.headers["content-type"] == PROBLEM
    assert _count_places(ctx) == before
