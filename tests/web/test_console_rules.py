"""The console's household rule settings (the same ``rules.builtin`` functions as
``/api/v1/households/{id}/rules``) and the overview's welfare figures for key populations."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from cityweave.accounts import service as accounts
from cityweave.accounts.models import Role, User
from cityweave.audit.models import AuditRecord
from tests.conftest import auth
from tests.web.test_console_home import clean_page, raise_alarm
from tests.web.test_pages import ADMIN, RESIDENT, csrf_of, sign_in

HOUSEHOLD = "ca-b1-u1-101"
PAGE = f"/console/households/{HOUSEHOLD}/rules"


def as_role(client, ctx, world, role: Role) -> None:
    with ctx.db.session() as session:
        token = accounts.issue_session(ctx, session, session.get(User, world.user_ids[role]), source_ip=None)
    client.cookies.set("cw_session", token)


def form_of(html: str) -> dict[str, str]:
    """What the browser would send: every input of the form with its value, checked boxes as "on"."""
    form = html[html.index('<form method="post" action="/console/households/'):]
    form = form[:form.index("</form>")]
    data: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if not name:
            continue
        if 'type="checkbox"' in tag:
            if re.search(r"\schecked[\s>]", tag):
                data[name.group(1)] = "on"
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[name.group(1)] = value.group(1) if value else ""
    return data


def api_rules(client, world, household: str = HOUSEHOLD) -> dict[str, dict]:
    answer = client.get(f"/api/v1/households/{household}/rules", headers=auth(world.token(Role.PLATFORM_ADMIN)))
    assert answer.status_code == 200
    return {item["key"]: {"enabled": item["enabled"], **{p["name"]: p["value"] for p in item["params"]}}
            for item in answer.json()["items"]}


def test_staff_change_a_households_rule_settings_through_the_page(client, ctx, world):
    sign_in(client, ADMIN)
    residents = client.get("/console/residents").text
    assert PAGE in residents  # linked from the residents and households page
    page = client.get(PAGE)
    assert page.status_code == 200, page.text[:300]
    clean_page(page.text)
    # Human words from the catalogue, not keys: rules, parameters, units.
    for words in ("燃气与一氧化碳", "一氧化碳报警值", "独居老人关怀", "设备健康", "规则设置", "始终开启"):
        assert words in page.text, words
    assert ">co_ppm_max<" not in page.text and "inactive_hours</" not in page.text
    data = form_of(page.text)
    assert data["gas.co_ppm_max"] == "100" and data["water.enabled"] == "on" and "fire.enabled" not in data
    assert "gas.close_valve" not in data  # fixed: shown, not editable
    data.update({"gas.co_ppm_max": "80", "elderly.inactive_hours": "3"})
    del data["water.enabled"]  # the box unticked: water leak rule off
    data["electricity.cut_off"] = "on"
    saved = client.post(PAGE, data=data, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == f"{PAGE}?saved=1"
    after = client.get(saved.headers["location"]).text
    assert "规则设置已保存" in after and 'value="80"' in after
    rules = api_rules(client, world)
    assert rules["gas"]["co_ppm_max"] == 80 and rules["elderly"]["inactive_hours"] == 3
    assert rules["water"]["enabled"] is False and rules["electricity"]["cut_off"] is True
    assert rules["gas"]["gas_ppm_max"] == 5000 and rules["fire"]["enabled"] is True  # untouched
    with ctx.db.session() as session:
        audited = session.execute(select(AuditRecord.details).where(
            AuditRecord.action == "household.rule_settings")).scalars().all()
    assert {d["rule"] for d in audited} == {"gas", "elderly", "water", "electricity"}
    # Back to the default: the override goes away.
    data = form_of(after)
    data["gas.co_ppm_max"] = "100"
    assert client.post(PAGE, data=data, follow_redirects=False).status_code == 303
    assert api_rules(client, world)["gas"]["co_ppm_max"] == 100
    # In English too.
    client.post("/preferences", data={"lang": "en"})
    english = client.get(PAGE).text
    assert "Gas and carbon monoxide" in english and "Carbon monoxide alarm at" in english


@pytest.mark.parametrize(("field", "value"), [("gas.co_ppm_max", "5000"), ("gas.co_ppm_max", "abc"),
                                              ("elderly.inactive_hours", "nan"), ("gas.co_ppm_max", "")])
def test_a_bad_value_gives_the_page_with_a_clear_error_and_changes_nothing(client, ctx, world, field, value):
    sign_in(client, ADMIN)
    data = form_of(client.get(PAGE).text)
    data["environment.pm2_5_max"] = "40"  # a good change next to the bad one: not saved either
    del data["water.enabled"]
    data[field] = value
    answer = client.post(PAGE, data=data)
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html")
    assert "未保存任何更改" in answer.text and 'role="alert"' in answer.text
    low, high = ("30", "300") if field == "gas.co_ppm_max" else ("1", "12")
    assert f"请输入 {low} 到 {high} 之间的数字" in answer.text
    assert f'value="{value}"' in answer.text  # what was typed stays, to be corrected
    assert 'aria-invalid="true"' in answer.text
    assert "expected a number" not in answer.text and "must be between" not in answer.text
    rules = api_rules(client, world)
    assert rules["gas"]["co_ppm_max"] == 100 and rules["environment"]["pm2_5_max"] == 50
    assert rules["water"]["enabled"] is True and rules["elderly"]["inactive_hours"] == 4
    client.post("/preferences", data={"lang": "en"})
    english = client.post(PAGE, data=data)
    assert english.status_code == 422 and f"Enter a number from {low} to {high}." in english.text


def test_life_saving_rules_cannot_be_switched_off_through_the_form(client, world):
    sign_in(client, ADMIN)
    data = form_of(client.get(PAGE).text)
    data["gas.enabled"] = ""  # a forged form: gas has no switch on the page, and stays on
    data["fire.enabled"] = ""
    assert client.post(PAGE, data=data, follow_redirects=False).status_code == 303
    rules = api_rules(client, world)
    assert rules["gas"]["enabled"] is True and rules["fire"]["enabled"] is True


def test_a_role_that_may_only_read_sees_the_settings_read_only_and_cannot_post(client, ctx, world):
    as_role(client, ctx, world, Role.GRID_WORKER)  # RULE_SETTING: read
    page = client.get(PAGE)
    assert page.status_code == 200 and "燃气与一氧化碳" in page.text and "只能查看" in page.text
    assert '<form method="post" action="/console/households/' not in page.text
    assert 'name="gas.co_ppm_max"' not in page.text and "100" in page.text
    token = csrf_of(page.text)
    refused = client.post(PAGE, data={"csrf": token, "gas.shown": "1", "gas.co_ppm_max": "80"})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert api_rules(client, world)["gas"]["co_ppm_max"] == 100
    # Outside the grid worker's grid: as if it did not exist.
    assert client.get("/console/households/ca-b2-u1-201/rules").status_code == 404


def test_property_staff_may_change_rules_and_others_may_not_see_them(client, ctx, world):
    as_role(client, ctx, world, Role.PROPERTY_STAFF)  # RULE_SETTING: read and update in the community
    page = client.get("/console/households/ca-b2-u1-201/rules")
    assert page.status_code == 200 and 'name="gas.co_ppm_max"' in page.text
    for role in (Role.CITY_OPERATOR, Role.DEPARTMENT_OFFICER, Role.SERVICE_PROVIDER):
        as_role(client, ctx, world, role)
        answer = client.get(PAGE)
        assert answer.status_code in (403, 404), role
        assert 'name="gas.co_ppm_max"' not in answer.text
    as_role(client, ctx, world, Role.COMMUNITY_ADMIN)
    assert client.get("/console/households/cc-b1-u1-101/rules").status_code == 404  # another city
    assert client.get("/console/households/ca-b1-u1/rules").status_code == 404  # a unit, not a household


def test_a_resident_cannot_open_the_rules_page(client, world):
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    page = client.get(PAGE)  # their own household: the console is still not theirs
    assert page.status_code == 403 and "燃气与一氧化碳" not in page.text
    refused = client.post(PAGE, data={"csrf": token, "gas.shown": "1", "gas.co_ppm_max": "80"})
    assert refused.status_code == 403
    assert api_rules(client, world)["gas"]["co_ppm_max"] == 100


def test_the_rules_form_needs_the_csrf_token(client, world):
    sign_in(client, ADMIN)
    data = form_of(client.get(PAGE).text)
    data["gas.co_ppm_max"] = "80"
    del data["csrf"]
    assert client.post(PAGE, data=data).status_code == 403
    assert api_rules(client, world)["gas"]["co_ppm_max"] == 100


# -- welfare of key populations on the overview ----------------------------------------------------
def welfare_section(html: str) -> str | None:
    start = html.find('id="welfare"')
    return html[start:html.index("</section>", start)] if start >= 0 else None


def figure(section: str, name: str) -> str:
    return re.search(rf'data-figure="{name}"[^>]*>([^<]*)<', section).group(1)


def test_welfare_counts_care_tagged_people_and_their_households_with_open_care_alarms(client, ctx, world):
    inactivity = raise_alarm(ctx, HOUSEHOLD, kind="inactivity")  # 王秀英, elderly living alone
    raise_alarm(ctx, HOUSEHOLD, kind="smoke")  # not a care alarm
    raise_alarm(ctx, "ca-b1-u1-102", kind="fall")  # nobody there has a care tag
    raise_alarm(ctx, "cc-b1-u1-101", kind="emergency_call")  # another city
    sign_in(client, ADMIN)
    section = welfare_section(client.get("/console").text)
    assert section is not None
    # In community ca: 王秀英 (elderly alone) and 王小明 (minor) at 101, 张伟 (disabled) at 201.
    assert figure(section, "care-persons") == "3"
    assert figure(section, "care-households") == "2"
    assert figure(section, "care-alarmed") == "1"
    assert f"/console/alarms/{inactivity}" in section and "无活动（关怀探访）" in section
    assert "地点 ca-b1-u1-101" in section and "地点 ca-b1-u1-102" not in section
    assert "独居老人: 1" in section and "残障: 1" in section
    assert PAGE in client.get(f"/console/alarms/{inactivity}").text  # the household's rules, from its alarm
    # The figures fragment (swapped in on live events) carries it too.
    fragment = client.get("/console/overview").text
    assert figure(welfare_section(fragment), "care-alarmed") == "1"
    # The grid worker of ca-g1 sees only the people of that grid.
    as_role(client, ctx, world, Role.GRID_WORKER)
    grid = welfare_section(client.get("/console").text)
    assert figure(grid, "care-persons") == "2" and figure(grid, "care-households") == "1"
    assert figure(grid, "care-alarmed") == "1"
    # A second care alarm at the same household: still one household.
    raise_alarm(ctx, HOUSEHOLD, kind="emergency_call")
    raise_alarm(ctx, "ca-b2-u1-201", kind="vital_signs")
    client.cookies.clear()
    sign_in(client, ADMIN)
    both = welfare_section(client.get("/console").text)
    assert figure(both, "care-alarmed") == "2" and both.count("data-welfare-alarm=") == 3


@pytest.mark.parametrize("role", [Role.PROPERTY_STAFF, Role.CITY_OPERATOR, Role.DEPARTMENT_OFFICER,
                                  Role.SERVICE_PROVIDER])
def test_no_welfare_section_for_roles_that_do_not_read_care_tags(client, ctx, world, role):
    raise_alarm(ctx, HOUSEHOLD, kind="inactivity")
    as_role(client, ctx, world, role)
    page = client.get("/console")
    assert page.status_code == 200
    assert welfare_section(page.text) is None and "重点人群" not in page.text
    assert welfare_section(client.get("/console/overview").text) is None


def test_overview_labels_severity_and_status_in_words(client, ctx, world):
    raise_alarm(ctx, HOUSEHOLD, kind="inactivity")
    sign_in(client, RESIDENT)
    from tests.web.test_console_home import submit_report

    submit_report(client)
    client.cookies.clear()
    sign_in(client, ADMIN)
    page = client.get("/console").text
    assert not re.search(r"<td>(critical|major|minor|warning|info)</td>", page)
    assert not re.search(r"<td>(submitted|accepted|assigned|in_progress)</td>", page)
    assert "<td>紧急</td>" in page and re.search(r"<td>(已提交|已受理|已派单)</td>", page)
    assert "未成年人: 1" in welfare_section(page)  # the care tag, not the alarm severity "minor"


# -- in a browser ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_rules_page_and_welfare_pass_axe_and_an_error_is_fixed_in_place(live_server, page, axe_source, backend):
    from tests.web.conftest import screenshot
    from tests.web.test_browser import axe_violations
    from tests.web.test_browser import sign_in as browser_sign_in

    if backend != "sqlite":
        pytest.skip("one browser run is enough; the page's logic runs on both backends above")
    raise_alarm(live_server.ctx, HOUSEHOLD, kind="inactivity")
    base = live_server.url
    browser_sign_in(page, base, ADMIN)
    page.wait_for_url(f"{base}/console")
    assert page.get_by_role("heading", name="重点人群关怀").is_visible()
    assert axe_violations(page, axe_source) == []
    page.get_by_role("link", name="无活动（关怀探访）").click()
    page.get_by_role("link", name="本户规则设置").click()
    page.wait_for_url(f"{base}{PAGE}")
    assert axe_violations(page, axe_source) == []
    screenshot(page, "console-rules-zh")
    field = page.get_by_label("一氧化碳报警值")
    field.fill("5000")
    page.get_by_role("button", name="保存规则设置").click()
    alert = page.get_by_role("alert")
    assert "未保存任何更改" in alert.inner_text()
    assert axe_violations(page, axe_source) == []
    screenshot(page, "console-rules-error-zh")
    alert.get_by_role("link").first.click()  # the summary leads to the field
    page.get_by_label("一氧化碳报警值").fill("80")
    page.get_by_role("button", name="保存规则设置").click()
    assert "规则设置已保存" in page.get_by_role("status").first.inner_text()
    assert page.get_by_label("一氧化碳报警值").input_value() == "80"


def test_the_rules_module_refuses_a_number_that_is_not_finite(client, world):
    """JSON parsers accept NaN and Infinity; NaN would slip through every bound (all comparisons
    are false), so the rules module refuses them for the API as for the page."""
    for text in ("NaN", "Infinity"):
        body = '{"gas": {"params": {"co_ppm_max": ' + text + '}}}'
        answer = client.put(f"/api/v1/households/{HOUSEHOLD}/rules", content=body,
                            headers={**auth(world.token(Role.COMMUNITY_ADMIN)), "Content-Type": "application/json"})
        assert answer.status_code == 422, (text, answer.text)
    assert api_rules(client, world)["gas"]["co_ppm_max"] == 100
