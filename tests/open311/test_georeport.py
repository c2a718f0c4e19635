"""Open311 GeoReport v2 at /open311/v2, driven over real HTTP (uvicorn on a free port) by an
independent client, the ``georeport`` package from PyPI, and checked against the spec's shapes in
JSON and XML, on SQLite and PostgreSQL.

``georeport`` only reads (services, definitions, requests); POSTs, tokens, errors, paging and the
updates extension are sent with ``requests`` and checked by ``support``'s spec checker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from georeport import GeoReport

from cityweave.accounts.models import Role
from cityweave.workorders import deadlines, service
from cityweave.workorders.models import Channel, Priority, Status, WorkOrder
from cityweave.workorders.schemas import ReplyInput, WorkOrderSubmit
from tests.open311.support import (
    REPORTER_FIELDS,
    Server,
    api_key_for,
    check_errors_json,
    check_errors_xml,
    check_request,
    check_service,
    check_update,
    running,
    xml_items,
    xml_root,
)
from tests.workorders.support import HOME, as_system, as_user, report

FORMATS = ("json", "xml")
CONTACT = {"first_name": "秀英", "last_name": "王", "phone": "13800009999", "email": "wang.xiuying@example.cn"}


@pytest.fixture
def server(ctx) -> Iterator[Server]:
    with running(ctx) as srv:
        yield srv


@pytest.fixture
def gateway(ctx) -> str:
    """The API key of the service account an Open311 client uses."""
    return api_key_for(ctx, "open311-gateway", service_account=True)[1]


def post(server: Server, fmt: str, data: dict, **kwargs) -> requests.Response:
    return requests.post(f"{server.url}/requests.{fmt}", data=data, timeout=10, **kwargs)


def get(server: Server, path: str, **query) -> requests.Response:
    return requests.get(f"{server.url}/{path}", params=query, timeout=10)


def items(response: requests.Response, fmt: str, root: str, item: str) -> list[dict]:
    assert response.status_code == 200, response.text[:300]
    if fmt == "json":
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        body = response.json()
        assert isinstance(body, list)
        return body
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    return xml_items(response.text, root, item)


def errors(response: requests.Response, fmt: str, code: int) -> list[str]:
    assert response.status_code == code, (response.status_code, response.text[:300])
    if fmt == "json":
        return check_errors_json(response.json(), code)
    return check_errors_xml(response.text, code)


def submit_native(ctx, category: str = "repair-water", **extra) -> str:
    with as_user(ctx, extra.pop("user")) as call:
        return service.submit(call, report(category, **extra)).id


# -- discovery, services, definitions ---------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_discovery_names_the_endpoint_and_its_formats(server, fmt):
    response = get(server, f"discovery.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        body = response.json()
        endpoint = body["endpoints"][0]
        formats = endpoint["formats"]
    else:
        root = xml_root(response.text, "discovery")
        body = {c.tag: c.text for c in root if c.tag != "endpoints"}
        endpoints = root.find("endpoints")
        assert [e.tag for e in endpoints] == ["endpoint"]
        endpoint = {c.tag: c.text for c in endpoints[0] if c.tag != "formats"}
        formats = [f.text for f in endpoints[0].find("formats")]
        assert {f.tag for f in endpoints[0].find("formats")} == {"format"}
    assert {"changeset", "contact", "key_service"} <= set(body)
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == server.url and endpoint["type"] in ("production", "test")
    assert set(formats) == {"text/xml", "application/json"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_service_list_through_the_georeport_client(server, fmt):
    services = GeoReport(server.url, output_format=fmt).get_service_list()
    for item in services:
        check_service(item)
    codes = {s["service_code"]: s for s in services}
    water = codes["repair-water"]
    assert water["service_name"] == "水管漏水维修" and water["group"] == "repairs"  # zh-CN by default
    assert str(water["metadata"]).lower() == "false" and water["type"] == "realtime"
    assert "neighbour-dispute" in codes  # reportable, but never listed publicly (see the privacy test)
    if fmt == "xml":  # the spec's element names, every one of them
        raw = xml_items(get(server, "services.xml").text, "services", "service")
        assert all(set(s) == {"service_code", "service_name", "description", "metadata", "type", "keywords",
                              "group"} for s in raw)


def test_service_names_follow_the_locale_parameter_or_accept_language(server):
    english = {s["service_code"]: s["service_name"] for s in get(server, "services.json", locale="en").json()}
    assert english["repair-water"] == "Water pipe repair"
    header = requests.get(f"{server.url}/services.json", headers={"Accept-Language": "en-GB,en;q=0.8"}, timeout=10)
    assert {s["service_code"]: s["service_name"] for s in header.json()}["repair-lift"] == "Lift fault"
    chinese = requests.get(f"{server.url}/services.json", params={"locale": "zh-CN"},
                           headers={"Accept-Language": "en"}, timeout=10)
    assert {s["service_code"]: s["service_name"] for s in chinese.json()}["repair-lift"] == "电梯故障"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_service_definition_is_valid_and_empty_and_unknown_codes_are_404(server, fmt):
    definition = GeoReport(server.url, output_format=fmt).get_service_definition("repair-water")
    if fmt == "json":
        assert definition == {"service_code": "repair-water", "attributes": []}
    else:
        assert definition["service_code"] == "repair-water" and not definition.get("attributes")
        root = xml_root(get(server, "services/repair-water.xml").text, "service_definition")
        assert [c.tag for c in root] == ["service_code", "attributes"] and len(root.find("attributes")) == 0
    assert "was not found" in errors(get(server, f"services/no-such-thing.{fmt}"), fmt, 404)[0]


# -- POST, tokens, GET one --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_post_a_request_then_read_it_back_with_the_client(server, ctx, gateway, fmt):
    form = {"api_key": gateway, "jurisdiction_id": "tc.example", "service_code": "repair-water",
            "address_id": HOME, "address_string": "幸福里 1 栋 1 单元", "description": "楼道水管漏水 <急>",
            "media_url": "https://img.example.cn/p/1.jpg", "device_id": "phone-1", "account_id": "77",
            "attribute[WHISPAWN]": "123456", **CONTACT}
    created = items(post(server, fmt, form), fmt, "service_requests", "request")
    assert len(created) == 1 and set(created[0]) == {"service_request_id", "service_notice"}  # no token
    request_id = created[0]["service_request_id"]
    assert request_id.startswith("wo-") and "工单号 WO" in created[0]["service_notice"]

    client = GeoReport(server.url, output_format=fmt)
    shown = client.get_service_request(request_id)
    check_request(shown)
    assert shown["service_request_id"] == request_id and shown["status"] == "open"
    assert shown["service_code"] == "repair-water" and shown["service_name"] == "水管漏水维修"
    assert shown["description"] == "楼道水管漏水 <急>" and shown["media_url"] == "https://img.example.cn/p/1.jpg"
    assert shown["agency_responsible"] == "物业服务中心" and shown["address"] == "幸福里 1 栋 1 单元"
    assert shown["address_id"] == "ca-b1"  # a home is shown as its building
    raw = get(server, f"requests/{request_id}.{fmt}").text
    for secret in (*CONTACT.values(), "open311-gateway", "77", "phone-1"):
        assert secret not in raw

    tokens = items(get(server, f"tokens/{request_id}.{fmt}"), fmt, "service_requests", "request")
    assert tokens == [{"service_request_id": request_id, "token": request_id}]

    # Natively: an Open311 work order, routed like any other, the contact kept encrypted.
    with as_system(ctx) as call:
        order = call.session.get(WorkOrder, request_id)
        assert order.channel is Channel.OPEN311 and order.status.value == "assigned"
        assert order.contact_enc and b"13800009999" not in order.contact_enc
        contact = json.loads(call.cipher.decrypt(order.contact_enc, "work_orders.contact"))
        assert contact == {"name": "王秀英", "phone": "13800009999", "email": "wang.xiuying@example.cn"}


def test_post_with_a_point_or_only_an_address(server, gateway):
    point = post(server, "json", {"api_key": gateway, "service_code": "noise", "lat": "22.52", "long": "113.92",
                                  "description": "深夜施工噪音"})
    assert point.status_code == 200, point.text
    shown = get(server, f"requests/{point.json()[0]['service_request_id']}.json").json()[0]
    assert (shown["lat"], shown["long"]) == (22.52, 113.92) and shown["address_id"] in ("ca-g1", "cc-g1")
    address = post(server, "xml", {"api_key": gateway, "service_code": "sanitation",
                                   "address_string": "南山区某路 3 号", "description": "垃圾堆放"})
    assert address.status_code == 200
    assert xml_items(address.text, "service_requests", "request")[0]["service_request_id"].startswith("wo-")


@pytest.mark.parametrize("fmt", FORMATS)
def test_api_key_refusals_are_403(server, ctx, world, fmt):
    form = {"service_code": "repair-water", "address_id": HOME, "description": "漏水"}
    assert "missing" in errors(post(server, fmt, form), fmt, 403)[0]
    errors(post(server, fmt, {**form, "api_key": "cwk_0000_nope"}), fmt, 403)
    errors(post(server, fmt, {**form, "api_key": "not-a-key"}), fmt, 403)
    errors(post(server, fmt, {**form, "api_key": world.token(Role.PLATFORM_ADMIN)}), fmt, 403)  # a bearer token
    _, person_key = api_key_for(ctx, "a-person", service_account=False)
    assert "service account" in errors(post(server, fmt, {**form, "api_key": person_key}), fmt, 403)[0]
    with as_system(ctx) as call:
        assert call.session.query(WorkOrder).count() == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_parameters_are_400_and_unknown_ids_404(server, gateway, fmt):
    base = {"api_key": gateway, "service_code": "repair-water", "description": "漏水"}
    assert "lat and long" in errors(post(server, fmt, {**base, "lat": "22.5"}), fmt, 400)[0]
    assert "location" in errors(post(server, fmt, base), fmt, 400)[0]
    assert "description" in errors(post(server, fmt, {**base, "description": "", "address_id": HOME}), fmt, 400)[0]
    errors(post(server, fmt, {**base, "lat": "north", "long": "113.9"}), fmt, 400)
    errors(post(server, fmt, {**base, "lat": "95", "long": "113.9"}), fmt, 400)
    errors(post(server, fmt, {**base, "address_id": HOME, "email": "not-an-email"}), fmt, 400)
    errors(post(server, fmt, {**base, "address_id": HOME, "media_url": "javascript:alert(1)"}), fmt, 400)
    errors(post(server, fmt, {**base, "address_id": "no-such-place"}), fmt, 400)
    errors(post(server, fmt, {**base, "lat": "40.0", "long": "-74.0"}), fmt, 400)  # outside every community
    assert "service_code" in errors(post(server, fmt, {**base, "service_code": "potholes", "address_id": HOME}),
                                    fmt, 404)[0]
    json_body = requests.post(f"{server.url}/requests.{fmt}", json=base, timeout=10)
    errors(json_body, fmt, 400)
    errors(get(server, f"requests.{fmt}", start_date="yesterday"), fmt, 400)
    errors(get(server, f"requests.{fmt}", start_date="2026-01-01T00:00:00"), fmt, 400)  # no zone
    errors(get(server, f"requests.{fmt}", start_date="2025-01-01T00:00:00Z", end_date="2025-06-01T00:00:00Z"),
           fmt, 400)  # more than 90 days
    errors(get(server, f"requests.{fmt}", start_date="2025-06-01T00:00:00Z", end_date="2025-05-01T00:00:00Z"),
           fmt, 400)
    errors(get(server, f"requests.{fmt}", status="pending"), fmt, 400)
    errors(get(server, f"requests.{fmt}", page_size="1001"), fmt, 400)
    errors(get(server, f"requests.{fmt}", page="0"), fmt, 400)
    errors(get(server, f"requests/wo-0000000000000000.{fmt}"), fmt, 404)
    errors(get(server, f"tokens/nope.{fmt}"), fmt, 404)
    # An unknown format answers in XML, the spec's required format.
    check_errors_xml(get(server, "services.yaml").text, 400)


# -- GET requests: filters, window, paging ----------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_get_requests_filters_window_status_and_paging(server, ctx, world, clock, fmt):
    resident, staff = world.user_ids[Role.RESIDENT], world.user_ids[Role.PROPERTY_STAFF]
    old = submit_native(ctx, user=resident)  # 100 days before the others: outside the default window
    clock.advance(days=100)
    ids = []
    for n in range(5):
        clock.advance(minutes=10)
        ids.append(submit_native(ctx, "repair-water" if n % 2 == 0 else "sanitation", user=resident))
    with as_user(ctx, staff) as call:
        service.resolve(call, ids[0], "已更换阀门")
    client = GeoReport(server.url, output_format=fmt)
    listed = client.get_service_requests()
    listed = listed if isinstance(listed, list) else [listed]
    for item in listed:
        check_request(item)
    assert [r["service_request_id"] for r in listed] == ids[::-1]  # newest first; the old one left out
    closed = {r["service_request_id"]: r for r in listed if r["status"] == "closed"}
    assert list(closed) == [ids[0]] and closed[ids[0]]["status_notes"] == "已更换阀门"

    def request_ids(**query) -> list[str]:
        return [r["service_request_id"] for r in items(get(server, f"requests.{fmt}", **query), fmt,
                                                       "service_requests", "request")]

    assert request_ids(status="closed") == [ids[0]]
    assert request_ids(status="open,closed") == ids[::-1]
    assert request_ids(service_code="sanitation") == [ids[3], ids[1]]
    assert request_ids(service_code="sanitation,repair-water", status="open") == ids[:0:-1]
    start = (clock.now() - timedelta(days=110)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (clock.now() - timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%S+08:00")
    assert request_ids(start_date=start, end_date=end) == [old]
    # service_request_id overrides every other filter (and still shows only public requests).
    assert set(request_ids(service_request_id=f"{old},{ids[2]}", status="closed")) == {old, ids[2]}
    # The page/page_size extension: stable, newest first, no overlap.
    pages = [request_ids(page=str(p), page_size="2") for p in (1, 2, 3, 4)]
    assert pages == [ids[:2:-1], ids[2:0:-1], ids[:1], []]


# -- the service request updates extension ----------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_updates_show_the_department_reply_and_the_resolution(server, ctx, world, clock, fmt):
    resident, staff = world.user_ids[Role.RESIDENT], world.user_ids[Role.PROPERTY_STAFF]
    order_id = submit_native(ctx, user=resident)
    clock.advance(minutes=5)
    with as_user(ctx, staff) as call:
        service.reply(call, order_id, ReplyInput(note="师傅下午两点上门"))
        service.reply(call, order_id, ReplyInput(note="内部：阀门型号待确认", public=False))
    clock.advance(hours=3)
    with as_user(ctx, staff) as call:
        service.resolve(call, order_id, "已更换阀门")
    response = get(server, f"servicerequestupdates.{fmt}")
    updates = items(response, fmt, "service_request_updates", "request_update")
    for update in updates:
        check_update(update)
    mine = [u for u in updates if u["service_request_id"] == order_id]
    assert [(u["description"], u["status"]) for u in mine] == [("师傅下午两点上门", "open"), ("已更换阀门", "closed")]
    assert mine[1]["external_status_code"] == "resolved"
    assert "内部" not in response.text and staff not in response.text
    later = (clock.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = items(get(server, f"servicerequestupdates.{fmt}", start_date=later), fmt,
                   "service_request_updates", "request_update")
    assert [u["description"] for u in recent] == ["已更换阀门"]
    english = get(server, "servicerequestupdates.json", locale="en").json()
    assert english[-1]["description"] == "已更换阀门"  # the handler's own words are not translated
    # The reporter says nothing for days: the timer confirms it, an update in the reader's language.
    clock.advance(days=4)
    with ctx.db.session() as session:
        assert deadlines.check(session, ctx.bus, clock.now()) == 1
    last = get(server, "servicerequestupdates.json").json()[-1]
    assert (last["service_request_id"], last["description"], last["status"]) == (order_id, "报告人未答复，自动确认",
                                                                                "closed")
    assert get(server, "servicerequestupdates.json", locale="en").json()[-1]["description"] == "Confirmed automatically"


# -- privacy ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_non_public_requests_do_not_exist_publicly_and_nobody_is_named(server, ctx, world, gateway, fmt):
    resident, staff = world.user_ids[Role.RESIDENT], world.user_ids[Role.PROPERTY_STAFF]
    dispute = submit_native(ctx, "neighbour-dispute", user=resident)  # a non-public category
    anonymous = submit_native(ctx, user=resident, anonymous=True)
    with as_user(ctx, world.user_ids[Role.GRID_WORKER]) as call:
        service.reply(call, dispute, ReplyInput(note="已约双方周六调解"))
    shown = submit_native(ctx, user=resident)
    posted = post(server, "json", {"api_key": gateway, "service_code": "elderly-help", "address_id": HOME,
                                   "description": "独居老人两天未出门", **CONTACT})
    hidden_post = posted.json()[0]
    assert "不在公开列表" in hidden_post["service_notice"]
    for hidden in (dispute, anonymous, hidden_post["service_request_id"]):
        errors(get(server, f"requests/{hidden}.{fmt}"), fmt, 404)
        errors(get(server, f"tokens/{hidden}.{fmt}"), fmt, 404)
    listed = get(server, f"requests.{fmt}")
    assert [r["service_request_id"] for r in items(listed, fmt, "service_requests", "request")] == [shown]
    by_id = items(get(server, f"requests.{fmt}", service_request_id=f"{dispute},{anonymous},{shown}"), fmt,
                  "service_requests", "request")
    assert [r["service_request_id"] for r in by_id] == [shown]
    updates = get(server, f"servicerequestupdates.{fmt}")
    assert items(updates, fmt, "service_request_updates", "request_update") == []
    everything = listed.text + updates.text + get(server, f"requests/{shown}.{fmt}").text
    for secret in (resident, staff, "resident_a", "王秀英", "13800001101", *CONTACT.values(), "调解"):
        assert secret not in everything
    # The number people quote finds the same public request.
    with as_system(ctx) as call:
        number = call.session.get(WorkOrder, shown).number
    assert items(get(server, f"requests/{number}.{fmt}"), fmt, "service_requests", "request")[0][
        "service_request_id"] == shown
    assert not REPORTER_FIELDS & set(items(get(server, f"requests/{shown}.{fmt}"), fmt, "service_requests",
                                           "request")[0])


def test_text_that_is_not_xml_safe_is_escaped_and_still_parses(server, ctx, world):
    with as_user(ctx, world.user_ids[Role.RESIDENT]) as call:
        order_id = service.submit(call, WorkOrderSubmit(
            category_id="repair-water", place_id=HOME, description="<b>水管</b> & \"阀门\" ]]> \x07 坏了")).id
    request = xml_items(get(server, f"requests/{order_id}.xml").text, "service_requests", "request")[0]
    assert request["description"] == "<b>水管</b> & \"阀门\" ]]> \ufffd 坏了"
    assert get(server, f"requests/{order_id}.json").json()[0]["description"] == request["description"]


def test_the_openapi_schema_lists_the_open311_routes(server):
    paths = requests.get(server.url.rsplit("/open311", 1)[0] + "/openapi.json", timeout=10).json()["paths"]
    for path in ("/open311/v2/discovery.{format}", "/open311/v2/services.{format}",
                 "/open311/v2/services/{service_code}.{format}", "/open311/v2/requests.{format}",
                 "/open311/v2/requests/{service_request_id}.{format}", "/open311/v2/tokens/{token}.{format}",
                 "/open311/v2/servicerequestupdates.{format}"):
        assert path in paths
    assert "application/x-www-form-urlencoded" in paths["/open311/v2/requests.{format}"]["post"]["requestBody"][
        "content"]


def test_without_paging_at_most_1000_requests_come_back(server, ctx, clock):
    now = clock.now()
    with as_system(ctx) as call:
        call.session.add_all([WorkOrder(
            id=f"wo-{n:016x}", number=f"WO20260101-{100000 + n}", category_id="sanitation", department_id="property",
            status=Status.SUBMITTED, priority=Priority.NORMAL, channel=Channel.RESIDENT, description="垃圾未清运",
            place_path="/tc/tc-d1/tc-d1-s1/ca/", accept_due_at=now, resolve_due_at=now,
            created_at=now - timedelta(seconds=n), updated_at=now, public=True) for n in range(1001)])
        call.session.commit()
    assert len(get(server, "requests.json").json()) == 1000
    assert len(xml_items(get(server, "requests.xml").text, "service_requests", "request")) == 1000
    assert [r["service_request_id"] for r in get(server, "requests.json", page="2").json()] == [f"wo-{1000:016x}"]
    assert len(get(server, "requests.json", page="3", page_size="500").json()) == 1


def test_a_gateway_reports_only_where_its_account_may(server, ctx):
    _, key = api_key_for(ctx, "gateway-ca", service_account=True, role=Role.COMMUNITY_ADMIN, place_id="ca")
    form = {"api_key": key, "service_code": "repair-water", "description": "漏水"}
    assert post(server, "json", {**form, "address_id": HOME}).status_code == 200
    refused = post(server, "json", {**form, "address_id": "cb-b1-u1-101"})  # another community
    assert "address_id" in errors(refused, "json", 400)[0]
    errors(post(server, "json", {**form, "address_string": "某路 1 号"}), "json", 400)  # filed under the city


def test_updates_without_a_note_are_named_in_the_requests_language(server, ctx, world):
    order_id = submit_native(ctx, "noise", user=world.user_ids[Role.RESIDENT])
    with as_user(ctx, world.user_ids[Role.GRID_WORKER]) as call:
        service.start(call, order_id)
    assert [u["description"] for u in get(server, "servicerequestupdates.json").json()] == ["正在处理"]
    english = requests.get(f"{server.url}/servicerequestupdates.xml", headers={"Accept-Language": "en"}, timeout=10)
    update = xml_items(english.text, "service_request_updates", "request_update")[0]
    assert (update["description"], update["status"], update["external_status_code"]) == (
        "Work has started", "open", "in_progress")
