"""Signing in: password grant, lockout, refresh rotation, revocation, expiry, API keys."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cityweave.accounts.models import Role
from cityweave.clock import ManualClock
from tests.conftest import auth
from tests.world import PASSWORD, World


def login(client: TestClient, username: str = "resident_a", password: str = PASSWORD):
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_password_grant_returns_working_tokens(client: TestClient) -> None:
    r = login(client)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 15 * 60
    me = client.get("/api/v1/auth/me", headers=auth(body["access_token"]))
    assert me.status_code == 200 and me.json()["username"] == "resident_a"
    # A refresh token is not an access token.
    assert client.get("/api/v1/auth/me", headers=auth(body["refresh_token"])).status_code == 401


def test_wrong_password_is_oauth2_invalid_grant(client: TestClient) -> None:
    answers = []
    for username, password in (("resident_a", "wrong-pass-1"), ("nobody", PASSWORD)):
        r = login(client, username, password)
        assert r.status_code == 400
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["error"] == "invalid_grant"
        # OAuth2's error_description is ASCII by RFC 6749 (5.2); people read the detail, in
        # their language (Chinese by default).
        assert r.json()["error_description"] == "wrong username or password"
        assert r.json()["detail"] == "登录信息不正确：wrong username or password"
        answers.append(r.json())
    # Same answer for unknown users and wrong passwords: no username probing.
    assert answers[0] == answers[1]


def test_lockout_after_repeated_failures_and_expiry(client: TestClient, clock: ManualClock) -> None:
    for _ in range(5):
        assert login(client, password="wrong-pass-1").status_code == 400
    # Even the right password is refused while locked.
    r = login(client)
    assert r.status_code == 400 and "locked" in r.json()["detail"]
    clock.advance(minutes=16)
    assert login(client).status_code == 200


def test_failures_outside_the_window_do_not_lock(client: TestClient, clock: ManualClock) -> None:
    for _ in range(4):
        assert login(client, password="wrong-pass-1").status_code == 400
    clock.advance(minutes=20)
    for _ in range(4):
        assert login(client, password="wrong-pass-1").status_code == 400
    assert login(client).status_code == 200


def test_admin_can_unlock(client: TestClient, world: World) -> None:
    for _ in range(5):
        login(client, password="wrong-pass-1")
    user_id = world.user_ids[Role.RESIDENT]
    r = client.get(f"/api/v1/users/{user_id}", headers=auth(world.token(Role.COMMUNITY_ADMIN)))
    assert r.json()["locked"] is True
    r = client.post(f"/api/v1/users/{user_id}/unlock", headers=auth(world.token(Role.COMMUNITY_ADMIN)))
    assert r.status_code == 200 and r.json()["locked"] is False
    assert login(client).status_code == 200


def test_login_attempts_are_audited(client: TestClient, world: World) -> None:
    login(client, password="wrong-pass-1")
    login(client)
    r = client.get("/api/v1/audit", params={"action": "auth.login"}, headers=auth(world.token(Role.PLATFORM_ADMIN)))
    outcomes = [item["outcome"] for item in r.json()["items"] if item["actor_label"] == "resident_a"]
    assert outcomes[:2] == ["ok", "failure"]


def test_refresh_rotates_and_reuse_revokes_the_family(client: TestClient) -> None:
    first = login(client).json()
    r = client.post("/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["access_token"] != first["access_token"]
    # The old access token died with the rotation; the new one works.
    assert client.get("/api/v1/auth/me", headers=auth(first["access_token"])).status_code == 401
    assert client.get("/api/v1/auth/me", headers=auth(second["access_token"])).status_code == 200
    # Replaying the first refresh token (stolen copy) ends the whole sign-in.
    replay = client.post("/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert replay.status_code == 400
    assert client.get("/api/v1/auth/me", headers=auth(second["access_token"])).status_code == 401
    again = client.post("/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert again.status_code == 400


def test_access_token_expires(client: TestClient, clock: ManualClock) -> None:
    token = login(client).json()["access_token"]
    clock.advance(minutes=14)
    assert client.get("/api/v1/auth/me", headers=auth(token)).status_code == 200
    clock.advance(minutes=2)
    r = client.get("/api/v1/auth/me", headers=auth(token))
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"


def test_revocation_and_logout_everywhere(client: TestClient) -> None:
    a = login(client).json()
    b = login(client).json()
    assert client.post("/api/v1/auth/revoke", data={"token": a["access_token"]}).status_code == 200
    assert client.get("/api/v1/auth/me", headers=auth(a["access_token"])).status_code == 401
    assert client.get("/api/v1/auth/me", headers=auth(b["access_token"])).status_code == 200
    # Revoking an unknown token still answers 200 (RFC 7009 §2.2).
    assert client.post("/api/v1/auth/revoke", data={"token": "cwa_nonsense"}).status_code == 200
    c = login(client).json()
    r = client.post("/api/v1/auth/logout-all", headers=auth(c["access_token"]))
    assert r.status_code == 200 and r.json()["revoked"] >= 3
    for tokens in (b, c):
        assert client.get("/api/v1/auth/me", headers=auth(tokens["access_token"])).status_code == 401


def test_forged_and_malformed_tokens(client: TestClient, world: World) -> None:
    real = world.token(Role.RESIDENT)
    forged = real[:-1] + ("A" if real[-1] != "A" else "B")
    attempts = [
        {"Authorization": "Bearer cwa_" + "A" * 43},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": "Bearer " + "x" * 5000},
        {"Authorization": "Bearer ' OR 1=1 --"},
        {"X-API-Key": "cwk_bad"},
        {"X-API-Key": "cwk_abc_def"},
        {"X-API-Key": "cwk_\u00e9_x".encode("latin-1")},
    ]
    for headers in attempts:
        r = client.get("/api/v1/auth/me", headers=headers)
        assert r.status_code == 401, (headers, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
    assert client.get("/api/v1/auth/me").status_code == 401


def test_password_change_signs_out_everywhere(client: TestClient) -> None:
    tokens = login(client).json()
    headers = auth(tokens["access_token"])
    weak = client.post("/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": "12345678"}, headers=headers)
    assert weak.status_code == 422 and weak.json()["errors"][0]["pointer"] == "/new_password"
    wrong = client.post("/api/v1/auth/password", json={"current_password": "nope-nope-1", "new_password": "New-pass-2027"}, headers=headers)
    assert wrong.status_code == 422
    ok = client.post("/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": "New-pass-2027"}, headers=headers)
    assert ok.status_code == 204
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    assert login(client).status_code == 400
    assert login(client, password="New-pass-2027").status_code == 200


def test_api_key_lifecycle(client: TestClient, world: World) -> None:
    admin = auth(world.token(Role.PLATFORM_ADMIN))
    r = client.post("/api/v1/users", json={
        "username": "vendor-bridge", "display_name": "Vendor bridge", "is_service_account": True,
        "grants": [{"role": "property_staff", "place_id": "ca"}],
    }, headers=admin)
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    created = client.post(f"/api/v1/users/{user_id}/api-keys", json={"name": "bridge"}, headers=admin)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("cwk_")
    # The key acts with its account's scope: community ca, not cb.
    assert client.get("/api/v1/places/ca", headers={"X-API-Key": key}).status_code == 200
    assert client.get("/api/v1/places/cb", headers={"X-API-Key": key}).status_code == 404
    assert client.get("/api/v1/places/ca", headers=auth(key)).status_code == 200
    listed = client.get(f"/api/v1/users/{user_id}/api-keys", headers=admin).json()
    assert listed[0]["last_used_at"] is not None and "key" not in listed[0]
    # Service accounts cannot sign in with a password.
    assert login(client, "vendor-bridge", "anything-1").status_code == 400
    assert client.delete(f"/api/v1/users/{user_id}/api-keys/{listed[0]['id']}", headers=admin).status_code == 204
    assert client.get("/api/v1/places/ca", headers={"X-API-Key": key}).status_code == 401


def test_deactivated_account_loses_access(client: TestClient, world: World) -> None:
    tokens = login(client).json()
    user_id = world.user_ids[Role.RESIDENT]
    r = client.patch(f"/api/v1/users/{user_id}", json={"is_active": False}, headers=auth(world.token(Role.COMMUNITY_ADMIN)))
    assert r.status_code == 200
    assert client.get("/api/v1/auth/me", headers=auth(tokens["access_token"])).status_code == 401
    assert login(client).status_code == 400


def test_grants_respect_the_grantors_scope(client: TestClient, world: World) -> None:
    admin_a = auth(world.token(Role.COMMUNITY_ADMIN))
    target = world.household_user["ca-b1-u1-102"]
    ok = client.post(f"/api/v1/users/{target}/grants", json={"role": "grid_worker", "place_id": "ca-g2"}, headers=admin_a)
    assert ok.status_code == 201, ok.text
    # Not in another community, and not a role above its own.
    assert client.post(f"/api/v1/users/{target}/grants", json={"role": "grid_worker", "place_id": "cb-g1"},
                       headers=admin_a).status_code == 403
    assert client.post(f"/api/v1/users/{target}/grants", json={"role": "city_operator", "place_id": "tc"},
                       headers=admin_a).status_code == 403
    assert client.post(f"/api/v1/users/{target}/grants", json={"role": "platform_admin"},
                       headers=admin_a).status_code == 403
    # A grid worker's scope must be a grid.
    bad = client.post(f"/api/v1/users/{target}/grants", json={"role": "grid_worker", "place_id": "ca"}, headers=admin_a)
    assert bad.status_code == 422 and bad.json()["errors"][0]["pointer"] == "/place_id"
    log = client.get("/api/v1/audit", params={"action": "grant.create", "object_id": target}, headers=admin_a)
    newest = log.json()["items"][0]  # the world's resident grant came first
    assert log.json()["total"] == 2 and newest["details"]["role"] == "grid_worker"
    assert newest["actor_id"] == world.user_ids[Role.COMMUNITY_ADMIN]
