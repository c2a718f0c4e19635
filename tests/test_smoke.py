from cityweave.accounts.models import Role
from tests.conftest import auth


def test_health_and_me(client, world):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").status_code == 200
    r = client.get("/api/v1/auth/me", headers=auth(world.token(Role.RESIDENT)))
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "resident_a"


def test_docs_are_served_without_the_internet(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    assert "/static/swagger/swagger-ui-bundle.js" in page.text
    js = client.get("/static/swagger/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/", follow_redirects=False).headers["location"] == "/signin"
