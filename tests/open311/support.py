"""A real server for Open311 tests, accounts with API keys, and a strict checker of the spec's shapes.

The checker is written from the GeoReport v2 specification (and mySociety's service request
updates extension), not from our code: element names, root elements, which fields must be
there, the allowed values, W3C dates with a zone. The independent client (``georeport``) reads
what we answer; the checker says whether what it read is what the spec describes.
"""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from cityweave.accounts import service as accounts
from cityweave.accounts.models import Role
from cityweave.accounts.schemas import ApiKeyCreate, GrantIn, UserCreate
from cityweave.api.app import create_app
from cityweave.context import AppContext
from cityweave.net import bind_tcp
from tests.workorders.support import as_system

W3C = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")

SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
REQUEST_FIELDS = {"service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"}
REQUIRED_REQUEST_FIELDS = {"service_request_id", "status", "service_code", "requested_datetime"}
UPDATE_FIELDS = {"update_id", "service_request_id", "status", "updated_datetime", "description", "media_url"}
# Anything that would say who reported, in any shape: must never be in a public answer.
REPORTER_FIELDS = {"first_name", "last_name", "email", "phone", "account_id", "device_id", "reporter",
                   "reporter_user_id", "contact", "assignee_user_id", "entered_by", "name"}


@dataclass
class Server:
    url: str  # the Open311 endpoint: http://127.0.0.1:port/open311/v2
    ctx: AppContext


@contextmanager
def running(ctx: AppContext) -> Iterator[Server]:
    """The app under uvicorn on a free port, as `cityweave serve` runs it."""
    app = create_app(ctx)
    sockets = bind_tcp("127.0.0.1", 0)
    port = sockets[0].getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, server_header=False, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield Server(f"http://127.0.0.1:{port}/open311/v2", ctx)
    finally:
        server.should_exit = True
        thread.join(10)
        for sock in sockets:
            sock.close()


def api_key_for(ctx: AppContext, username: str, *, service_account: bool, role: Role = Role.PLATFORM_ADMIN,
                place_id: str | None = None) -> tuple[str, str]:
    """(user id, API key text) of a new account."""
    with as_system(ctx) as call:
        user = accounts.create_user(call, UserCreate(
            username=username, display_name=username, is_service_account=service_account,
            grants=[GrantIn(role=role, place_id=place_id)]))
        _, key = accounts.create_api_key(call, user.id, ApiKeyCreate(name="open311"))
        return user.id, key


# -- the spec's shapes ------------------------------------------------------------------------------
def xml_root(text: str, root: str) -> ET.Element:
    assert text.startswith("<?xml"), text[:80]
    assert 'encoding="utf-8"' in text.split("?>", 1)[0].lower()
    element = ET.fromstring(text.encode("utf-8"))
    assert element.tag == root, element.tag
    return element


def xml_items(text: str, root: str, item: str) -> list[dict[str, str | None]]:
    """The children of a list document as {element name: text}, checking every child's name."""
    element = xml_root(text, root)
    items = []
    for child in element:
        assert child.tag == item, f"<{root}> holds <{child.tag}>, not <{item}>"
        fields = [c.tag for c in child]
        assert len(fields) == len(set(fields)), f"repeated elements in <{item}>: {fields}"
        items.append({c.tag: c.text for c in child})
    return items


def check_service(service: dict) -> None:
    assert set(service) <= SERVICE_FIELDS and {"service_code", "service_name", "metadata", "type"} <= set(service)
    assert str(service["metadata"]).lower() in ("true", "false")
    assert service["type"] in ("realtime", "batch", "blackbox")


def check_request(request: dict) -> None:
    assert set(request) <= REQUEST_FIELDS, set(request) - REQUEST_FIELDS
    assert REQUIRED_REQUEST_FIELDS <= set(request)
    assert not set(request) & REPORTER_FIELDS
    assert request["status"] in ("open", "closed")
    for name in ("requested_datetime", "updated_datetime", "expected_datetime"):
        if request.get(name) is not None:
            assert W3C.match(request[name]), (name, request[name])
    for name in ("lat", "long"):
        if request.get(name) not in (None, ""):
            float(request[name])


def check_update(update: dict) -> None:
    assert UPDATE_FIELDS <= set(update), UPDATE_FIELDS - set(update)
    assert not set(update) & REPORTER_FIELDS
    assert W3C.match(update["updated_datetime"])
    assert update["status"] in ("open", "closed")


def check_errors_json(body: object, code: int) -> list[str]:
    assert isinstance(body, list) and body, body
    for error in body:
        assert set(error) == {"code", "description"} and error["code"] == code and error["description"]
    return [e["description"] for e in body]


def check_errors_xml(text: str, code: int) -> list[str]:
    errors = xml_items(text, "errors", "error")
    assert errors
    for error in errors:
        assert set(error) == {"code", "description"} and error["code"] == str(code) and error["description"]
    return [e["description"] or "" for e in errors]
