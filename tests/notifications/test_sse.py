"""GET /api/v1/events end to end: a real uvicorn server on a free port (sockets bound the way
``cityweave serve`` binds them), httpx streaming clients, both database backends."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from cityweave.accounts.models import Role
from cityweave.api.app import create_app
from cityweave.context import AppContext
from cityweave.net import bind_tcp
from cityweave.notifications.hub import LiveEvent, NotificationHub
from tests.conftest import auth
from tests.world import World

HOME = "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"
NEIGHBOUR = "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-102/"
OTHER_GRID = "/tc/tc-d1/tc-d1-s1/ca/ca-g2/ca-b2/ca-b2-u1/ca-b2-u1-201/"


@dataclass
class Server:
    url: str
    hub: NotificationHub
    ctx: AppContext
    app: Any = None


@pytest.fixture
def server(ctx: AppContext) -> Iterator[Server]:
    ctx.settings.events_heartbeat_seconds = 0.5
    app = create_app(ctx)
    sockets = bind_tcp("127.0.0.1", 0)
    port = sockets[0].getsockname()[1]
    config = uvicorn.Config(app, log_config=None, server_header=False, timeout_graceful_shutdown=2)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert uv.started
    yield Server(f"http://127.0.0.1:{port}", app.state.notification_hub, ctx, app)
    app.state.notification_hub.close()
    uv.should_exit = True
    thread.join(10)
    for sock in sockets:
        sock.close()


def _until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return result


class Reader:
    """Reads SSE frames off a streaming response in a thread, so the test can publish meanwhile."""

    def __init__(self, response: httpx.Response) -> None:
        self.frames: list[dict[str, Any]] = []
        self.comments: list[str] = []
        self._thread = threading.Thread(target=self._run, args=(response,), daemon=True)
        self._thread.start()

    def _run(self, response: httpx.Response) -> None:
        frame: dict[str, Any] = {}
        try:
            for line in response.iter_lines():
                if line == "":
                    if frame:
                        self.frames.append(frame)
                    frame = {}
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    frame[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [f for f in self.frames if "event" in f and (kind is None or f["event"] == kind)]


@pytest.fixture
def open_stream(server: Server) -> Iterator[Callable[..., tuple[httpx.Response, Reader]]]:
    clients: list[httpx.Client] = []
    contexts: list[Any] = []

    def open_(token: str, *, params: dict[str, str] | None = None,
              headers: dict[str, str] | None = None) -> tuple[httpx.Response, Reader]:
        client = httpx.Client(base_url=server.url, timeout=httpx.Timeout(10.0, read=30.0))
        clients.append(client)
        before = server.hub.subscriber_count
        cm = client.stream("GET", "/api/v1/events", params=params, headers={**auth(token), **(headers or {})})
        response = cm.__enter__()
        contexts.append(cm)
        if response.status_code == 200:
            assert _until(lambda: server.hub.subscriber_count > before)
        return response, Reader(response) if response.status_code == 200 else None  # type: ignore[return-value]

    yield open_
    server.hub.close()
    for cm in contexts:
        try:
            cm.__exit__(None, None, None)
        except httpx.HTTPError:
            pass
    for client in clients:
        client.close()


def test_a_published_event_arrives_on_the_stream(server: Server, open_stream, world: World) -> None:
    response, reader = open_stream(world.token(Role.RESIDENT))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    # Published from another thread (as the ingest worker does), outside the resident's home first.
    server.hub.publish(LiveEvent("alarm", NEIGHBOUR, {"n": 1}))
    sent = server.hub.publish(LiveEvent("alarm", HOME, {"n": 2, "title": {"zh-CN": "烟雾报警"}}))
    assert _until(lambda: reader.events("alarm"))
    frame = reader.events("alarm")[0]
    body = json.loads(frame["data"])
    assert frame["id"] == str(sent.id) and body["id"] == sent.id
    assert body["data"] == {"n": 2, "title": {"zh-CN": "烟雾报警"}} and body["place_path"] == HOME
    # The idle stream gets heartbeat comments (every 0.5 s here, 15 s by default).
    assert _until(lambda: "ping" in reader.comments, timeout=5)
    assert len(reader.events("alarm")) == 1  # the neighbour's never came


def test_grid_worker_stream_and_types_filter(server: Server, open_stream, world: World) -> None:
    _, grid = open_stream(world.token(Role.GRID_WORKER), params={"types": "alarm"})
    server.hub.publish(LiveEvent("device_state", NEIGHBOUR, {"n": 0}))
    server.hub.publish(LiveEvent("alarm", OTHER_GRID, {"n": 1}))
    server.hub.publish(LiveEvent("alarm", NEIGHBOUR, {"n": 2}))
    assert _until(lambda: grid.events())
    time.sleep(0.3)
    assert [json.loads(f["data"])["data"]["n"] for f in grid.events()] == [2]


def test_last_event_id_resumes(server: Server, open_stream, world: World) -> None:
    first = server.hub.publish(LiveEvent("alarm", HOME, {"n": 1}))
    server.hub.publish(LiveEvent("alarm", HOME, {"n": 2}))
    server.hub.publish(LiveEvent("alarm", HOME, {"n": 3}))
    _, reader = open_stream(world.token(Role.RESIDENT), headers={"Last-Event-ID": str(first.id)})
    assert _until(lambda: len(reader.events()) >= 2)
    assert [json.loads(f["data"])["data"]["n"] for f in reader.events()] == [2, 3]
    _, stale = open_stream(world.token(Role.RESIDENT), headers={"Last-Event-ID": "12"})
    assert _until(lambda: stale.events())
    assert stale.events()[0]["event"] == "resync" and "id" not in stale.events()[0]


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer not-a-token"}, {}])
def test_without_a_valid_token_401_problem(server: Server, headers: dict[str, str]) -> None:
    response = httpx.get(f"{server.url}/api/v1/events", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/unauthenticated"
    assert server.hub.subscriber_count == 0


def test_bad_parameters_are_422_problems(server: Server, world: World) -> None:
    response = httpx.get(f"{server.url}/api/v1/events", params={"types": "Alarm;drop"},
                         headers=auth(world.token(Role.RESIDENT)), timeout=10)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_revoked_token_ends_the_stream(server: Server, open_stream, world: World) -> None:
    from sqlalchemy import update

    from cityweave.accounts.models import AuthToken
    from cityweave.security.tokens import digest

    server.ctx.settings.events_reauth_seconds = 0.3
    token = world.token(Role.GRID_WORKER)
    _, reader = open_stream(token)
    with server.ctx.db.session() as session:
        session.execute(update(AuthToken).where(AuthToken.token_hash == digest(token))
                        .values(revoked_at=server.ctx.clock.now()))
    assert _until(lambda: reader.events("end"), timeout=5)
    assert _until(lambda: server.hub.subscriber_count == 0, timeout=5)


def test_a_disconnected_client_is_unsubscribed(server: Server, world: World) -> None:
    with (httpx.Client(base_url=server.url, timeout=10) as client,
          client.stream("GET", "/api/v1/events", headers=auth(world.token(Role.RESIDENT))) as response):
        assert response.status_code == 200
        assert _until(lambda: server.hub.subscriber_count == 1)
    assert _until(lambda: server.hub.subscriber_count == 0, timeout=5)


# -- the fuzzer (tests/test_openapi_fuzz.py leaves this endless stream out) -------------------------
@pytest.fixture
def events_schema(ctx: AppContext):
    app = create_app(ctx)
    app.state.notification_hub.close()  # every stream ends right after its preamble
    return schemathesis.openapi.from_asgi("/openapi.json", app)


fuzzed = schemathesis.pytest.from_fixture("events_schema").include(path="/api/v1/events")


@fuzzed.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_events_route_fuzzed(case, world: World) -> None:
    response = case.call(headers=auth(world.token(Role.PLATFORM_ADMIN)))
    assert response.status_code < 500, response.text[:300]
    content_type = (response.headers.get("content-type") or [""])[0]
    if 400 <= response.status_code < 500:
        assert content_type.startswith("application/problem+json"), response.text[:300]
    else:
        assert content_type.startswith("text/event-stream") and response.text.startswith("retry:")


# -- an alarm from the alarms API, end to end -------------------------------------------------------
def test_an_emergency_call_reaches_the_streams_in_scope_and_the_family_by_sms(
        server: Server, open_stream, world: World) -> None:
    from cityweave.accounts import service as accounts
    from cityweave.accounts.models import User

    with server.ctx.db.session() as session:  # a resident of another household, with a token
        user = session.get(User, world.household_user["ca-b2-u1-201"])
        neighbour_token = accounts.issue_tokens(server.ctx, session, user, source_ip=None).access_token
    _, grid = open_stream(world.token(Role.GRID_WORKER), params={"types": "alarm"})
    _, family = open_stream(world.token(Role.RESIDENT))
    _, other = open_stream(neighbour_token)
    response = httpx.post(f"{server.url}/api/v1/alarms/emergency", json={"household_id": "ca-b1-u1-101"},
                          headers=auth(world.token(Role.RESIDENT)), timeout=10)
    assert response.status_code == 201, response.text
    alarm_id = response.json()["id"]
    assert _until(lambda: grid.events("alarm") and family.events("alarm"))
    for reader in (grid, family):
        body = json.loads(reader.events("alarm")[0]["data"])
        assert body["data"]["alarm_id"] == alarm_id and body["data"]["change"] == "raised"
        assert body["data"]["severity"] == "critical" and body["place_path"] == HOME
    time.sleep(0.3)
    assert other.events("alarm") == []  # another household's resident sees nothing
    # The first step of the chain (family) gets SMS and a call; the demo's provider only logs.
    notifications = server.app.state.notifications
    notifications.dispatcher.dispatch_due(server.ctx.clock.now())
    assert sorted(kind for kind, phone, _ in notifications.provider.sent if phone == "13800001101") == [
        "sms", "voice"]
