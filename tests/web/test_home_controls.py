"""The tile's settings (brightness, air conditioner mode and temperature, curtain, valve, locking):
plain forms sent in place like the switch, through the registry's commands, which decide what may
be set and to what; the page only refuses unlocking."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.devices.registry.models import DeviceCommand
from tests.rules.homes import CLIMATE, LIGHT, register
from tests.web.test_home_devices import HTMX, Publisher, store
from tests.web.test_pages import RESIDENT, csrf_of, sign_in

LOCK = {"state": {"type": "binary", "access": 7, "value_on": "LOCK", "value_off": "UNLOCK", "parent": "lock",
                  "capability": "lock"}}
CURTAIN = {"position": {"type": "numeric", "access": 7, "parent": "cover", "capability": "cover_position"}}
VALVE = {"state": {"type": "binary", "access": 7, "value_on": "ON", "value_off": "OFF", "capability": "valve_open"}}


@pytest.fixture
def home(client, world):
    """The resident's home gets a light, an air conditioner, a door lock, a curtain and a water valve."""
    return {key: register(client, world, name, kind, properties)["id"] for key, name, kind, properties in (
        ("light", "客厅灯", "light", LIGHT), ("ac", "客厅空调", "climate", CLIMATE), ("lock", "大门锁", "lock", LOCK),
        ("curtain", "卧室窗帘", "curtain", CURTAIN), ("valve", "总水阀", "valve", VALVE))}


def commands(ctx, device_id: str) -> list[DeviceCommand]:
    with ctx.db.session() as session:
        return list(session.execute(select(DeviceCommand).where(DeviceCommand.device_id == device_id)
                                    .order_by(DeviceCommand.requested_at)).scalars())


def test_tiles_offer_the_settings_in_the_viewers_words(client, ctx, world, home):
    store(ctx, home["ac"], hvac_mode="cool", target_temperature=26.0, temperature=27.5)
    store(ctx, home["light"], on_off=True, brightness=50.0)
    store(ctx, home["lock"], lock="locked")
    sign_in(client, RESIDENT)
    page = client.get("/home").text
    assert "空调模式: 制冷" in page and "设定温度: 26 °C" in page  # the values, worded
    for words in ("亮度", "制热", "除湿", "送风", "调低到 25 °C", "调高到 27 °C", "全开", "半开", "全关", "开阀门", "关阀门"):
        assert words in page, words
    assert 'name="capability" value="brightness"' in page and 'value="75"' in page
    assert 'value="50" aria-pressed="true"' in page or 'aria-pressed="true">50%' in page
    assert "锁门" not in page  # the door is locked already ...
    assert "开锁只能在门前进行" in page  # ... and it is never unlocked from here
    assert 'value="unlocked"' not in page
    plug_tile = page[page.index(f'data-device="{world.device_of_household["ca-b1-u1-101"]}"'):]
    plug_tile = plug_tile[:plug_tile.index("</li>")]
    assert "/set" not in plug_tile  # a plug only switches


def test_settings_are_sent_and_followed_like_the_switch(client, app, ctx, world, home):
    publisher = Publisher()
    app.state.device_publisher = publisher
    store(ctx, home["ac"], target_temperature=26.0)
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)

    tile = client.post(f"/home/devices/{home['light']}/set", headers=HTMX,
                       data={"csrf": token, "capability": "brightness", "value": "75"})
    assert tile.status_code == 200 and "<html" not in tile.text
    assert "已发送，等待设备响应" in tile.text and 'hx-trigger="load delay:2s"' in tile.text
    [command] = commands(ctx, home["light"])
    assert command.capability == "brightness" and command.value == 75.0
    assert command.requested_by == world.user_ids[Role.RESIDENT] and command.requested_by_name == RESIDENT
    assert json.loads(publisher.published[-1][1]) == {"brightness": 190}  # 75 % of 254

    # Without script: the form posts and the home comes back saying it was sent.
    answer = client.post(f"/home/devices/{home['ac']}/set", follow_redirects=False,
                         data={"csrf": token, "capability": "target_temperature", "value": "25"})
    assert answer.status_code == 303 and answer.headers["location"] == "/home?done=sent"
    client.post(f"/home/devices/{home['ac']}/set", data={"csrf": token, "capability": "hvac_mode", "value": "heat"})
    assert [(c.capability, c.value) for c in commands(ctx, home["ac"])] == [
        ("target_temperature", 25.0), ("hvac_mode", "heat")]
    client.post(f"/home/devices/{home['curtain']}/set", data={"csrf": token, "capability": "cover_position", "value": "0"})
    client.post(f"/home/devices/{home['valve']}/set", data={"csrf": token, "capability": "valve_open", "value": "false"})
    assert [(c.capability, c.value) for c in commands(ctx, home["curtain"]) + commands(ctx, home["valve"])] == [
        ("cover_position", 0.0), ("valve_open", False)]

    # Locking is fine; unlocking is refused on the page, nothing is sent.
    locked = client.post(f"/home/devices/{home['lock']}/set", headers=HTMX,
                         data={"csrf": token, "capability": "lock", "value": "locked"})
    assert locked.status_code == 200 and "已发送" in locked.text
    sent = len(publisher.published)
    refused = client.post(f"/home/devices/{home['lock']}/set", headers=HTMX,
                          data={"csrf": token, "capability": "lock", "value": "unlocked"})
    assert refused.status_code == 200 and "不能在这里开门锁" in refused.text
    for capability, value in (("lock", " UNLOCKED"), ("lock_state", "unlocked"), ("lock", "open")):
        assert client.post(f"/home/devices/{home['lock']}/set",
                           data={"csrf": token, "capability": capability, "value": value}).status_code == 403
    assert [c.value for c in commands(ctx, home["lock"])] == ["locked"] and len(publisher.published) == sent


@pytest.mark.parametrize(("device", "capability", "value", "words"), [
    ("ac", "temperature", "20", "这个设备不能这样设置"),  # read-only
    ("light", "target_temperature", "20", "这个设备不能这样设置"),  # not something a light has
    ("plug", "power_w", "0", "这个设备不能这样设置"),
    ("ac", "target_temperature", "150", "超出了设备的范围"),  # out of the capability's range
    ("light", "brightness", "120", "超出了设备的范围"),
    ("ac", "hvac_mode", "turbo", "不接受这个数值"),
    ("light", "brightness", "bright", "不接受这个数值"),
    ("light", "no_such_thing", "1", "这个设备不能这样设置"),
])
def test_what_the_command_service_refuses_is_said_on_the_tile(client, app, ctx, world, home, device, capability,
                                                              value, words):
    app.state.device_publisher = publisher = Publisher()
    device_id = world.device_of_household["ca-b1-u1-101"] if device == "plug" else home[device]
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    tile = client.post(f"/home/devices/{device_id}/set", headers=HTMX,
                       data={"csrf": token, "capability": capability, "value": value})
    assert tile.status_code == 200 and words in tile.text and "<html" not in tile.text
    assert f'data-device="{device_id}"' in tile.text and "已发送" not in tile.text
    page = client.post(f"/home/devices/{device_id}/set", data={"csrf": token, "capability": capability, "value": value})
    assert page.status_code == 422 and words in page.text and "我的家" in page.text
    assert commands(ctx, device_id) == [] and publisher.published == []


def test_settings_stay_inside_the_household_and_need_the_csrf_token(client, app, ctx, world, home):
    app.state.device_publisher = publisher = Publisher()
    neighbour = world.device_of_household["ca-b1-u1-102"]
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    for data in ({"capability": "on_off", "value": "true"}, {"capability": "lock", "value": "unlocked"}):
        assert client.post(f"/home/devices/{neighbour}/set", data={"csrf": token, **data}).status_code == 404
        assert client.post(f"/home/devices/{neighbour}/set", headers=HTMX,
                           data={"csrf": token, **data}).status_code == 404
    assert client.post("/home/devices/no-such-device/set",
                       data={"csrf": token, "capability": "brightness", "value": "50"}).status_code == 404
    data = {"capability": "brightness", "value": "50"}
    assert client.post(f"/home/devices/{home['light']}/set", data=data).status_code == 403
    assert client.post(f"/home/devices/{home['light']}/set", data={"csrf": "f" * 64, **data}).status_code == 403
    assert commands(ctx, neighbour) == [] and commands(ctx, home["light"]) == [] and publisher.published == []


def test_without_the_device_service_a_setting_says_so(client, ctx, world, home):
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    tile = client.post(f"/home/devices/{home['ac']}/set", headers=HTMX,
                       data={"csrf": token, "capability": "hvac_mode", "value": "cool"})
    assert tile.status_code == 200 and "设备服务未运行" in tile.text
    page = client.post(f"/home/devices/{home['ac']}/set", data={"csrf": token, "capability": "hvac_mode", "value": "cool"})
    assert page.status_code == 503 and "设备服务未运行" in page.text
    assert commands(ctx, home["ac"]) == []
