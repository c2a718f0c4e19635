"""The console's and the home's pages over HTTP: each page renders for who may see it, each action
goes through the domain services, needs the CSRF token, and stays inside the viewer's scope."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.alarms import service as alarm_service
from cityweave.alarms.events import AlarmRaise
from cityweave.alarms.models import Alarm, AlarmStatus, Severity
from cityweave.devices.reading import Reading
from cityweave.rules.models import HouseholdMode
from cityweave.telemetry.store import TelemetryStore
from cityweave.workorders.models import WorkOrder, WorkOrderPhoto
from tests.web.test_pages import ADMIN, RESIDENT, csrf_of, sign_in

NO_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)")


def raise_alarm(ctx, place_id: str, kind: str = "smoke", severity: Severity = Severity.CRITICAL) -> str:
    with ctx.db.session() as session:
        change = alarm_service.raise_alarm(session, AlarmRaise(
            cause_key=f"{kind}:{place_id}", kind=kind, severity=severity, place_id=place_id,
            title={"zh-CN": "烟雾报警", "en": "Smoke detected"}), ctx.clock.now())
    return change.alarm_id


def photo_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def submit_report(client, text: str = "楼道灯坏了，晚上很黑") -> str:
    token = csrf_of(client.get("/home").text)
    answer = client.post("/home/reports", data={"csrf": token, "category_id": "repair-power", "description": text},
                         files={"photo": ("crack.png", photo_bytes(), "image/png")}, follow_redirects=False)
    assert answer.status_code == 303, answer.text[:500]
    return answer.headers["location"].split("/")[3].split("?")[0]


def clean_page(html: str) -> None:
    assert not NO_INLINE_SCRIPT.search(html), "inline script would break the CSP"
    assert not re.search(r"\sstyle=", html), "inline style would break the CSP"


# -- console -------------------------------------------------------------------------------------------
def test_every_console_page_renders_for_staff_in_both_languages(client, ctx, world):
    raise_alarm(ctx, "ca-b1-u1-102")
    sign_in(client, ADMIN)
    for path, heading in [("/console/alarms", "告警"), ("/console/workorders", "工单"),
                          ("/console/statistics", "工单统计"), ("/console/residents", "居民与住户"),
                          ("/console/devices", "设备"), ("/console/community", "社区视图")]:
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert heading in page.text, path
        assert 'aria-current="page"' in page.text
        clean_page(page.text)
    client.post("/preferences", data={"lang": "en"})
    for path, heading in [("/console/alarms", "Alarms"), ("/console/statistics", "Work order statistics"),
                          ("/console/community", "Community view")]:
        page = client.get(path)
        assert page.status_code == 200 and heading in page.text and '<html lang="en">' in page.text


def test_alarms_are_acknowledged_dispatched_with_a_work_order_and_resolved(client, ctx, world):
    alarm_id = raise_alarm(ctx, "ca-b1-u1-102")
    other = raise_alarm(ctx, "cc-b1-u1-101")  # another city: not the admin's
    sign_in(client, ADMIN)
    listing = client.get("/console/alarms?status=open&severity=critical").text
    assert alarm_id in listing and other not in listing
    token = csrf_of(listing)
    assert client.post(f"/console/alarms/{alarm_id}/acknowledge", data={"note": "x"}).status_code == 403
    ack = client.post(f"/console/alarms/{alarm_id}/acknowledge", data={"csrf": token, "note": "在看"},
                      follow_redirects=False)
    assert ack.status_code == 303
    again = client.post(f"/console/alarms/{alarm_id}/acknowledge", data={"csrf": token})
    assert again.status_code == 409 and "无法执行" in again.text
    sent = client.post(f"/console/alarms/{alarm_id}/dispatch",
                       data={"csrf": token, "note": "保安5分钟到", "work_order": "true"}, follow_redirects=False)
    assert sent.status_code == 303
    detail = client.get(f"/console/alarms/{alarm_id}").text
    assert "保安5分钟到" in detail and "已派遣" in detail
    resolved = client.post(f"/console/alarms/{alarm_id}/resolve", data={"csrf": token, "note": "误报，已处理"},
                           follow_redirects=False)
    assert resolved.status_code == 303
    with ctx.db.session() as session:
        alarm = session.get(Alarm, alarm_id)
        assert alarm.status is AlarmStatus.RESOLVED and alarm.work_order_requested
    assert client.get(f"/console/alarms/{other}").status_code == 404
    fragment = client.get("/console/alarms-table?status=all")  # what htmx swaps in on a live event
    assert fragment.status_code == 200 and fragment.text.startswith('<div id="alarm-table"')
    assert alarm_id in fragment.text and other not in fragment.text and "<html" not in fragment.text
    assert client.post(f"/console/alarms/{other}/resolve", data={"csrf": token, "note": "x"}).status_code == 404


def test_a_resident_cannot_open_the_console(client, ctx, world):
    alarm_id = raise_alarm(ctx, "ca-b1-u1-102")  # the neighbours'
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    for path in ["/console/alarms", f"/console/alarms/{alarm_id}", "/console/workorders", "/console/statistics",
                 "/console/residents", "/console/devices", "/console/community"]:
        page = client.get(path)
        assert page.status_code == 403, path
        assert "烟雾报警" not in page.text and "李" not in page.text
    assert client.post(f"/console/alarms/{alarm_id}/resolve", data={"csrf": token, "note": "x"}).status_code == 403
    with ctx.db.session() as session:
        assert session.get(Alarm, alarm_id).status is AlarmStatus.RAISED


def test_work_orders_from_a_resident_report_to_resolution_and_rating(client, ctx, world):
    sign_in(client, RESIDENT)
    order_id = submit_report(client)
    followed = client.get(f"/home/reports/{order_id}?done=report").text
    assert "楼道灯坏了" in followed and "已收到" in followed and f"/photos/{order_id}/" in followed
    with ctx.db.session() as session:
        order = session.get(WorkOrder, order_id)
        assert order.place_id == "ca-b1-u1-101" and order.category_id == "repair-power"
        photo = session.execute(select(WorkOrderPhoto).where(WorkOrderPhoto.work_order_id == order_id)).scalar_one()
    image = client.get(f"/photos/{order_id}/{photo.id}")
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    client.post("/signout", data={"csrf": csrf_of(client.get("/home").text)})

    sign_in(client, ADMIN)
    queue = client.get("/console/workorders?queue=open").text
    assert order.number in queue
    for q in ("due", "overdue", "mine", "finished", "all"):
        assert client.get(f"/console/workorders?queue={q}").status_code == 200
    detail = client.get(f"/console/workorders/{order_id}")
    assert detail.status_code == 200 and "楼道灯坏了" in detail.text
    assert client.get(f"/photos/{order_id}/{photo.id}").status_code == 200
    token = csrf_of(detail.text)
    assert client.post(f"/console/workorders/{order_id}/reply", data={"note": "收到"}).status_code == 403
    candidates = re.findall(r'<option value="(u[^"]*)"', detail.text) or re.findall(
        r'name="user_id"[^>]*>\s*<option value="([^"]+)"', detail.text)
    assert world.user_ids[Role.PROPERTY_STAFF] in detail.text
    steps = [("reply", {"note": "师傅下午到", "public": "true"}),
             ("assign", {"user_id": world.user_ids[Role.PROPERTY_STAFF], "note": "交给物业"}),
             ("start", {}), ("resolve", {"note": "换了灯泡"})]
    for step, data in steps:
        answer = client.post(f"/console/workorders/{order_id}/{step}", data={"csrf": token, **data},
                             follow_redirects=False)
        assert answer.status_code == 303, (step, answer.text[:400])
    bad = client.post(f"/console/workorders/{order_id}/assign", data={"csrf": token, "user_id": "u-nobody"})
    assert bad.status_code in (409, 422)
    history = client.get(f"/console/workorders/{order_id}").text
    assert "师傅下午到" in history and "换了灯泡" in history
    assert candidates is not None
    client.post("/signout", data={"csrf": token})

    sign_in(client, RESIDENT)
    report = client.get(f"/home/reports/{order_id}").text
    assert "师傅下午到" in report and "满意" in report
    token = csrf_of(report)
    assert client.post(f"/home/reports/{order_id}/rate", data={"satisfaction": "5"}).status_code == 403
    rated = client.post(f"/home/reports/{order_id}/rate", data={"csrf": token, "satisfaction": "4",
                                                               "comment": "很快"}, follow_redirects=False)
    assert rated.status_code == 303
    with ctx.db.session() as session:
        assert session.get(WorkOrder, order_id).satisfaction == 4


def test_transfer_and_reject_need_a_reason(client, ctx, world):
    sign_in(client, RESIDENT)
    order_id = submit_report(client, "门禁坏了")
    client.post("/signout", data={"csrf": csrf_of(client.get("/home").text)})
    sign_in(client, ADMIN)
    token = csrf_of(client.get(f"/console/workorders/{order_id}").text)
    short = client.post(f"/console/workorders/{order_id}/transfer", data={"csrf": token, "category_id": "repair-door",
                                                                          "note": ""})
    assert short.status_code == 422
    moved = client.post(f"/console/workorders/{order_id}/transfer",
                        data={"csrf": token, "category_id": "repair-door", "note": "是门禁问题"}, follow_redirects=False)
    assert moved.status_code == 303
    with ctx.db.session() as session:
        assert session.get(WorkOrder, order_id).category_id == "repair-door"
    rejected = client.post(f"/console/workorders/{order_id}/reject", data={"csrf": token, "note": "重复报告"},
                           follow_redirects=False)
    assert rejected.status_code == 303
    assert client.get("/console/workorders/wo-does-not-exist").status_code == 404


def test_statistics_pass_their_figures_to_the_chart_as_data(client, ctx, world):
    sign_in(client, RESIDENT)
    submit_report(client)
    client.post("/signout", data={"csrf": csrf_of(client.get("/home").text)})
    sign_in(client, ADMIN)
    for by in ("category", "grid", "department", "week", "day"):
        page = client.get(f"/console/statistics?by={by}&days=30")
        assert page.status_code == 200, by
    page = client.get("/console/statistics?by=category").text
    assert 'data-chart="{' in page and "chart-4.6.1.umd.min.js" in page and "/assets/js/charts.js" in page
    assert "电路故障维修" in page
    clean_page(page)


def test_residents_are_masked_and_care_tags_follow_the_role(client, ctx, world):
    sign_in(client, ADMIN)
    page = client.get("/console/residents").text
    assert "王秀英" not in page and "王**" in page
    assert "13800001101" not in page and "138****1101" in page
    assert "110101194501011230" not in page
    # Community admins may read care tags in their community (the policy's CARE_TAG READ).
    within = client.get("/console/residents?within=ca-b1").text
    assert "李**" in within and "张**" not in within  # ca-b2 is outside the filter
    assert client.get("/console/residents?within=no-such-place").status_code == 422


def test_devices_list_detail_with_history_chart(client, ctx, world):
    device_id = world.device_of_household["ca-b1-u1-101"]
    now = ctx.clock.now()
    with ctx.db.session() as session:
        TelemetryStore(clock=ctx.clock).write(session, [
            Reading(device_id, "power_w", 10.0 + i, now - timedelta(minutes=30 * i)) for i in range(6)
        ] + [Reading(device_id, "on_off", True, now)], {device_id: "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"})
    sign_in(client, ADMIN)
    listing = client.get("/console/devices").text
    assert device_id in listing and world.device_of_household["cc-b1-u1-101"] not in listing
    assert client.get("/console/devices?online=no&status=claimed").status_code == 200
    detail = client.get(f"/console/devices/{device_id}")
    assert detail.status_code == 200 and "power_w" in detail.text and 'data-chart="{' in detail.text
    assert client.get(f"/console/devices/{world.device_of_household['cc-b1-u1-101']}").status_code == 404
    token = csrf_of(detail.text)
    refused = client.post(f"/console/devices/{device_id}/claim", data={"csrf": token, "place_id": "ca-b1-u1-101"})
    assert refused.status_code in (404, 409)


def test_community_view_colours_households_by_alarm_and_has_a_table(client, ctx, world):
    raise_alarm(ctx, "ca-b1-u1-102", severity=Severity.MAJOR)
    sign_in(client, ADMIN)
    page = client.get("/console/community").text
    assert "<svg" in page and 'role="img"' in page and "<title" in page
    assert 's-major' in page and "地点 ca-b1" in page and "地点 ca-b2" in page
    assert "<table" in page and "地点 ca-b1-u1-102" in page
    assert client.get("/console/community?place_id=cc").status_code == 404


# -- home ----------------------------------------------------------------------------------------------
def test_home_shows_rooms_states_scenes_mode_and_reports(client, ctx, world):
    device_id = world.device_of_household["ca-b1-u1-101"]
    with ctx.db.session() as session:
        TelemetryStore(clock=ctx.clock).write(session, [
            Reading(device_id, "power_w", 42.0, ctx.clock.now() - timedelta(minutes=5)),
            Reading(device_id, "on_off", True, ctx.clock.now() - timedelta(minutes=5))
        ], {device_id: "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"})
    sign_in(client, RESIDENT)
    page = client.get("/home")
    assert page.status_code == 200
    text = page.text
    assert "插座 ca-b1-u1-101" in text and "已开启" in text and "关闭" in text
    assert "离家" in text and "布防" in text and "报告问题" in text
    assert 'data-chart="{' in text  # the plug's power
    assert "插座 ca-b1-u1-102" not in text  # the neighbours' plug
    clean_page(text)
    tv = client.get("/home?tv=1").text
    assert 'class=" tv"' in tv or "tv\"" in tv
    assert "报告问题" not in tv and "data-chart" not in tv


def test_switching_without_a_transport_says_so_clearly(client, ctx, world):
    device_id = world.device_of_household["ca-b1-u1-101"]
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    assert client.post(f"/home/devices/{device_id}/switch", data={"value": "off"}).status_code == 403
    answer = client.post(f"/home/devices/{device_id}/switch", data={"csrf": token, "value": "off"})
    assert answer.status_code == 503 and "设备服务未运行" in answer.text
    neighbour = world.device_of_household["ca-b1-u1-102"]
    assert client.post(f"/home/devices/{neighbour}/switch", data={"csrf": token, "value": "off"}).status_code == 404


def test_switching_with_a_transport_sends_the_command(client, app, ctx, world):
    published = []

    class Publisher:
        def publish(self, topic, payload, qos=1, retain=False):
            published.append((topic, payload))

    app.state.device_publisher = Publisher()
    device_id = world.device_of_household["ca-b1-u1-101"]
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    answer = client.post(f"/home/devices/{device_id}/switch", data={"csrf": token, "value": "on"},
                         follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/home?done=sent"
    assert published and "plug-ca-b1-u1-101" in published[0][0]
    assert "已发送" in client.get("/home?done=sent").text


def test_arm_disarm_and_scenes(client, ctx, world):
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    assert client.post("/home/mode", data={"mode": "armed"}).status_code == 403
    armed = client.post("/home/mode", data={"csrf": token, "mode": "armed", "tv": "true"}, follow_redirects=False)
    assert armed.status_code == 303 and armed.headers["location"] == "/home?tv=1&done=mode"
    with ctx.db.session() as session:
        assert session.get(HouseholdMode, "ca-b1-u1-101").mode.value == "armed"
    assert "撤防" in client.get("/home").text
    assert client.post("/home/mode", data={"csrf": token, "mode": "party"}).status_code == 422
    # Leaving home switches things off: no transport here, so the page says so and nothing changes.
    scene = client.post("/home/scenes/leave-home/run", data={"csrf": token}, follow_redirects=False)
    assert scene.status_code in (303, 503)
    assert client.post("/home/scenes/nope/run", data={"csrf": token}).status_code == 404


def test_resident_says_im_fine_and_cannot_touch_other_reports(client, ctx, world):
    mine = raise_alarm(ctx, "ca-b1-u1-101", kind="fall")
    sign_in(client, RESIDENT)
    home = client.get("/home").text
    assert "我没事" in home
    token = csrf_of(home)
    ok = client.post(f"/home/alarms/{mine}/resolve", data={"csrf": token}, follow_redirects=False)
    assert ok.status_code == 303
    with ctx.db.session() as session:
        assert session.get(Alarm, mine).status is AlarmStatus.RESOLVED
    other = raise_alarm(ctx, "ca-b1-u1-102")
    assert client.post(f"/home/alarms/{other}/resolve", data={"csrf": token}).status_code == 404
    # A report is only its reporter's (and the handlers').
    order_id = submit_report(client)
    client.post("/signout", data={"csrf": token})
    client.cookies.clear()
    sign_in(client, ADMIN)
    assert client.get(f"/home/reports/{order_id}").status_code == 403  # no home: the home pages are residents'


def test_report_validation_errors_are_pages_not_json(client, world):
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    empty = client.post("/home/reports", data={"csrf": token, "category_id": "repair-power", "description": ""})
    assert empty.status_code == 422 and empty.headers["content-type"].startswith("text/html")
    broken = client.post("/home/reports", data={"csrf": token, "category_id": "repair-power", "description": "坏了"},
                         files={"photo": ("x.png", b"not an image", "image/png")})
    assert broken.status_code in (413, 415, 422)
    assert client.post("/home/reports", data={"category_id": "repair-power", "description": "坏了"}).status_code == 403


@pytest.mark.parametrize("path", ["/console/alarms/a/acknowledge", "/console/workorders/w/reply",
                                  "/console/devices/d/claim", "/home/mode", "/home/scenes/sleep/run",
                                  "/home/devices/d/switch", "/home/alarms/a/resolve", "/home/reports/w/rate"])
def test_every_post_needs_the_csrf_token(client, world, path):
    sign_in(client, ADMIN if path.startswith("/console") else RESIDENT)
    assert client.post(path, data={"note": "x", "mode": "home", "value": "on"}).status_code == 403
    assert client.post(path, data={"csrf": "f" * 64}).status_code == 403


@pytest.mark.parametrize("role", [Role.GRID_WORKER, Role.PROPERTY_STAFF, Role.DEPARTMENT_OFFICER,
                                  Role.SERVICE_PROVIDER, Role.CITY_OPERATOR, Role.PLATFORM_ADMIN])
def test_console_pages_answer_every_staff_role_without_errors(client, ctx, world, role):
    """Whatever the role may read: a page (200) or a refusal (403), never a server error."""
    from cityweave.accounts import service as accounts
    from cityweave.accounts.models import User

    raise_alarm(ctx, "ca-b1-u1-102")
    with ctx.db.session() as session:
        token = accounts.issue_session(ctx, session, session.get(User, world.user_ids[role]), source_ip=None)
    client.cookies.set("cw_session", token)
    assert client.get("/", follow_redirects=False).headers["location"] == "/console"
    for path in ["/console", "/console/alarms", "/console/workorders", "/console/statistics", "/console/residents",
                 "/console/devices", "/console/community"]:
        assert client.get(path).status_code in (200, 403), (role, path)
    masked = client.get("/console/residents")
    assert "王秀英" not in masked.text and "13800001101" not in masked.text
    if role in (Role.PROPERTY_STAFF, Role.CITY_OPERATOR):
        assert "独居老人" not in masked.text  # these roles do not read care tags
