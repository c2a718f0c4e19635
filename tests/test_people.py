"""Personal data: encrypted at rest, masked in lists, revealed only to roles that need it (audited)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from cityweave.accounts.models import Role
from cityweave.config import Settings
from cityweave.context import AppContext
from cityweave.security.crypto import DecryptionError, FieldCipher, MasterKeyError, load_master_key
from tests.conftest import auth
from tests.world import RESIDENTS, World

PHONE = "13800001101"
ID_NUMBER = "110101194501011230"


def _all_stored_text(ctx: AppContext) -> str:
    """Everything the database holds, table by table, as text."""
    chunks = []
    with ctx.db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                chunks.extend(_as_text(value) for value in row)
    return "\n".join(chunks)


def _as_text(value: object) -> str:
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def test_no_plain_personal_data_in_the_database(ctx: AppContext, client: TestClient, world: World) -> None:
    # A reveal writes to the audit trail: that must not copy the data either.
    client.get(f"/api/v1/persons/{world.person_of_household['ca-b1-u1-101']}/personal-data",
               headers=auth(world.token(Role.COMMUNITY_ADMIN)))
    stored = _all_stored_text(ctx)
    for name, phone, id_number, _ in RESIDENTS.values():
        assert phone not in stored
        assert name not in stored
        if id_number:
            assert id_number not in stored
    assert "王小明" not in stored


def test_raw_sqlite_file_has_no_plain_phone(ctx: AppContext, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("file-level check is for the embedded database; PostgreSQL is covered above")
    ctx.db.dispose()
    data = b"".join(p.read_bytes() for p in Path(ctx.settings.data_dir).glob("cityweave.sqlite3*"))
    assert len(data) > 10_000
    for name, phone, _, _ in RESIDENTS.values():
        assert phone.encode() not in data
        assert name.encode() not in data
    # The place names, which are not personal data, are stored in the clear: the scan works.
    assert "地点 ca".encode() in data


def test_lists_show_masked_values(client: TestClient, world: World) -> None:
    r = client.get("/api/v1/persons", params={"household_id": "ca-b1-u1-101"},
                   headers=auth(world.token(Role.COMMUNITY_ADMIN)))
    people = {p["id"]: p for p in r.json()["items"]}
    elder = people[world.person_of_household["ca-b1-u1-101"]]
    assert elder["name"] == "王**"
    assert elder["phone"] == "138****1101"
    assert elder["id_number"] == "1101**********1230"
    assert elder["birth_year"] == 1945 and elder["gender"] == "male"
    assert elder["care_tags"] == ["elderly_alone"]


def test_reveal_is_audited_and_id_number_needs_its_own_right(client: TestClient, world: World) -> None:
    person = world.person_of_household["ca-b1-u1-101"]
    staff = client.get(f"/api/v1/persons/{person}/personal-data", headers=auth(world.token(Role.PROPERTY_STAFF)))
    assert staff.status_code == 200
    assert staff.json() == {"id": person, "name": "王秀英", "phone": PHONE, "id_number": None}
    admin = client.get(f"/api/v1/persons/{person}/personal-data", headers=auth(world.token(Role.COMMUNITY_ADMIN)))
    assert admin.json()["id_number"] == ID_NUMBER
    log = client.get("/api/v1/audit", params={"action": "person.reveal", "object_id": person},
                     headers=auth(world.token(Role.COMMUNITY_ADMIN))).json()
    assert log["total"] == 2
    assert log["items"][0]["details"]["fields"] == ["name", "phone", "id_number"]
    assert log["items"][1]["details"]["fields"] == ["name", "phone"]
    assert log["items"][1]["actor_id"] == world.user_ids[Role.PROPERTY_STAFF]


def test_search_by_phone_uses_the_keyed_hash(client: TestClient, world: World) -> None:
    headers = auth(world.token(Role.COMMUNITY_ADMIN))
    for spelling in (PHONE, "+86 138-0000-1101", "0086 138 0000 1101"):
        r = client.get("/api/v1/persons", params={"phone": spelling}, headers=headers)
        assert [p["id"] for p in r.json()["items"]] == [world.person_of_household["ca-b1-u1-101"]], spelling
    # Someone outside the admin's community is not found, even by exact phone.
    r = client.get("/api/v1/persons", params={"phone": RESIDENTS["cb-b1-u1-101"][1]}, headers=headers)
    assert r.json()["total"] == 0
    r = client.get("/api/v1/persons", params={"id_number": ID_NUMBER.lower()}, headers=headers)
    assert r.json()["total"] == 1


def test_residents_edit_their_own_profile_only(client: TestClient, world: World) -> None:
    headers = auth(world.token(Role.RESIDENT))
    own = world.person_of_household["ca-b1-u1-101"]
    r = client.patch(f"/api/v1/persons/{own}", json={"phone": "13912345678"}, headers=headers)
    assert r.status_code == 200 and r.json()["phone"] == "139****5678"
    assert client.get(f"/api/v1/persons/{own}/personal-data", headers=headers).json()["id_number"] == ID_NUMBER
    assert client.delete(f"/api/v1/persons/{own}", headers=headers).status_code == 403
    assert client.patch(f"/api/v1/persons/{world.family_member}", json={"gender": "male"},
                        headers=headers).status_code == 403


def test_invalid_identifiers_are_rejected_with_pointers(client: TestClient, world: World) -> None:
    r = client.post("/api/v1/persons", json={
        "name": "赵六", "phone": "12345", "id_number": "110101194501011231",
        "households": [{"household_id": "ca-b1-u1-102"}],
    }, headers=auth(world.token(Role.GRID_WORKER)))
    assert r.status_code == 422
    assert {e["pointer"] for e in r.json()["errors"]} == {"/phone", "/id_number"}


def test_care_tags_hidden_from_roles_without_need(client: TestClient, world: World) -> None:
    person = world.person_of_household["ca-b1-u1-101"]
    staff = client.get(f"/api/v1/persons/{person}", headers=auth(world.token(Role.PROPERTY_STAFF))).json()
    assert staff["care_tags"] is None
    r = client.get("/api/v1/persons", params={"care_tag": "elderly_alone"}, headers=auth(world.token(Role.PROPERTY_STAFF)))
    assert r.status_code == 422
    grid = client.get("/api/v1/persons", params={"care_tag": "elderly_alone"}, headers=auth(world.token(Role.GRID_WORKER)))
    assert [p["id"] for p in grid.json()["items"]] == [person]


# -- the cipher itself -------------------------------------------------------------------------------
KEY = base64.b64decode("q2Xn3VUmqkGq6jyHcC0C1Y0Jq4kV1w2mT9o3cYkqH0E=")


@pytest.mark.parametrize("cipher_name", ["AES-256-GCM", "SM4-GCM"])
def test_cipher_round_trip_and_binding(cipher_name: str) -> None:
    cipher = FieldCipher(KEY, cipher_name)
    blob = cipher.encrypt("张三 13800001234", "persons.name")
    assert cipher.decrypt(blob, "persons.name") == "张三 13800001234"
    assert blob != cipher.encrypt("张三 13800001234", "persons.name")  # fresh nonce each time
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob, "persons.phone")  # moved to another column
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(DecryptionError):
        cipher.decrypt(tampered, "persons.name")
    with pytest.raises(DecryptionError):
        FieldCipher(bytes(32), cipher_name).decrypt(blob, "persons.name")


def test_values_written_with_either_cipher_stay_readable() -> None:
    aes, sm4 = FieldCipher(KEY, "AES-256-GCM"), FieldCipher(KEY, "SM4-GCM")
    assert sm4.decrypt(aes.encrypt("a", "c"), "c") == "a"
    assert aes.decrypt(sm4.encrypt("b", "c"), "c") == "b"
    assert aes.blind_index("13800001234", "p") == sm4.blind_index("13800001234", "p")


def test_production_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="production mode needs a master key"):
        AppContext.build(Settings(mode="production", data_dir=tmp_path))
    assert not (tmp_path / "secret.key").exists()
    key = load_master_key(env_value=None, key_file=None, data_dir=tmp_path, production=False)
    assert len(key) == 32 and (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(MasterKeyError):
        load_master_key(env_value="not base64!", key_file=None, data_dir=tmp_path, production=True)
