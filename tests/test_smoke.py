from cityweave.accounts.models import Role
from tests.conftest import auth


def test_health_and_me(client, world):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").status_code == 200
    r = client.get("/api/v1/auth/me", headers=auth(world.token(Role.RESIDENT)))
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "resident_a"
