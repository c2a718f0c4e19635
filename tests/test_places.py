"""The place tree through the API: creation rules, scoped listing, ancestors, updates, audit."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cityweave.accounts.models import Role
from tests.conftest import auth
from tests.world import World


def test_build_a_branch_and_list_it(client: TestClient, world: World) -> None:
    admin = auth(world.token(Role.COMMUNITY_ADMIN))
    steps = [
        {"id": "ca-b7", "kind": "building", "parent_id": "ca-g2", "name": "7 栋", "name_en": "Building 7",
         "geometry": {"type": "Point", "coordinates": [113.93, 22.53]}, "attributes": {"floors": 18}},
        {"id": "ca-b7-u1", "kind": "unit", "parent_id": "ca-b7", "name": "1 单元"},
        {"id": "ca-b7-u1-1801", "kind": "household", "parent_id": "ca-b7-u1", "name": "1801",
         "attributes": {"floor": 18, "area_m2": 89.5}},
        {"id": "ca-lockers-1", "kind": "facility", "facility_type": "parcel_locker", "parent_id": "ca",
         "name": "丰巢快递柜", "geometry": {"type": "Point", "coordinates": [113.92, 22.51]}},
    ]
    for body in steps:
        r = client.post("/api/v1/places", json=body, headers=admin)
        assert r.status_code == 201, r.text
    household = client.get("/api/v1/places/ca-b7-u1-1801", headers=admin).json()
    assert household["path"] == "/tc/tc-d1/tc-d1-s1/ca/ca-g2/ca-b7/ca-b7-u1/ca-b7-u1-1801/"
    inside = client.get("/api/v1/places", params={"within": "ca-b7"}, headers=admin).json()
    assert {p["id"] for p in inside["items"]} == {"ca-b7-u1", "ca-b7-u1-1801"}
    chain = client.get("/api/v1/places/ca-b7-u1-1801/ancestors", headers=admin).json()
    assert [p["id"] for p in chain] == ["tc", "tc-d1", "tc-d1-s1", "ca", "ca-g2", "ca-b7", "ca-b7-u1"]
    lockers = client.get("/api/v1/places", params={"kind": "facility", "q": "快递"}, headers=admin).json()
    assert [p["id"] for p in lockers["items"]] == ["ca-lockers-1"]
    log = client.get("/api/v1/audit", params={"action": "place.create", "object_id": "ca-b7"}, headers=admin).json()
    assert log["total"] == 1 and log["items"][0]["actor_id"] == world.user_ids[Role.COMMUNITY_ADMIN]


def test_residents_see_their_home_and_the_names_around_it(client: TestClient, world: World) -> None:
    resident = auth(world.token(Role.RESIDENT))
    homes = client.get("/api/v1/places", params={"kind": "household"}, headers=resident).json()
    assert [p["id"] for p in homes["items"]] == ["ca-b1-u1-101"]
    visible = {p["id"] for p in client.get("/api/v1/places", params={"limit": 100}, headers=resident).json()["items"]}
    assert visible == {"tc", "tc-d1", "tc-d1-s1", "ca", "ca-g1", "ca-b1", "ca-b1-u1", "ca-b1-u1-101"}
    # Enclosing places are readable but not writable.
    assert client.patch("/api/v1/places/ca", json={"name": "x"}, headers=resident).status_code == 403


def test_update_and_delete(client: TestClient, world: World) -> None:
    admin = auth(world.token(Role.COMMUNITY_ADMIN))
    r = client.patch("/api/v1/places/ca-b2", json={"name": "二号楼", "attributes": {"floors": 6}}, headers=admin)
    assert r.status_code == 200 and r.json()["name"] == "二号楼" and r.json()["attributes"] == {"floors": 6}
    assert client.patch("/api/v1/places/ca-b2", json={"name": None}, headers=admin).status_code == 422
    assert client.patch("/api/v1/places/ca-b2", json={"geometry": {"type": "Polygon", "coordinates": [[[1, 1], [2, 1], [2, 2], [1, 1]]]}},
                        headers=admin).status_code == 422
    assert client.delete("/api/v1/places/ca-gate1", headers=admin).status_code == 204
    assert client.get("/api/v1/places/ca-gate1", headers=admin).status_code == 404
    # Outside the community: invisible, so 404 rather than 403.
    assert client.delete("/api/v1/places/cb-b1", headers=admin).status_code == 404
