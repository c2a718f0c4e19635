"""The resident's device tiles: switched in place (htmx), redrawn from the server when the device's
state changes or while a command is on its way, inside the resident's own household only."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cityweave.devices.reading import Reading
from cityweave.devices.registry.commands import Outcome, apply_outcomes
from cityweave.devices.registry.models import CommandStatus, DeviceCommand
from cityweave.telemetry.store import TelemetryStore
from tests.web.test_pages import ADMIN, RESIDENT, csrf_of, sign_in

HOME = "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"
HTMX = {"HX-Request": "true"}


class Publisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.published.append((topic, payload))


def store(ctx, device_id: str, minutes_ago: int = 0, **values) -> None:
    at = ctx.clock.now() - timedelta(minutes=minutes_ago)
    with ctx.db.session() as session:
        TelemetryStore(clock=ctx.clock).write(session, [
            Reading(device_id, capability, value, at) for capability, value in values.items()
        ], {device_id: HOME})


def test_switching_in_place_answers_the_tile_which_follows_the_command(client, app, ctx, world):
    publisher = Publisher()
    app.state.device_publisher = publisher
    device_id = world.device_of_household["ca-b1-u1-101"]
    store(ctx, device_id, on_off=False, power_w=0.0)
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)

    tile = client.post(f"/home/devices/{device_id}/switch", data={"csrf": token, "value": "on"}, headers=HTMX)
    assert tile.status_code == 200
    assert "<html" not in tile.text  # a fragment
    assert f'data-device="{device_id}"' in tile.text and 'data-live="device_state"' in tile.text
    assert "已发送，等待设备响应" in tile.text  # the command is on its way ...
    assert 'hx-trigger="load delay:2s"' in tile.text  # ... so the tile looks again shortly
    assert "已关闭" in tile.text  # the state stays what the device last said
    assert publisher.published and "plug-ca-b1-u1-101" in publisher.published[0][0]

    # The device's echo: the state is stored and the tracker confirms the command.
    ctx.clock.advance(seconds=1)
    store(ctx, device_id, on_off=True)
    with ctx.db.session() as session:
        command_id = session.execute(select(DeviceCommand.id).where(DeviceCommand.device_id == device_id)).scalar_one()
        apply_outcomes(session, [Outcome(command_id, CommandStatus.CONFIRMED, ctx.clock.now())])
    tile = client.get(f"/home/devices/{device_id}/tile")
    assert tile.status_code == 200
    assert "已开启" in tile.text and "已发送" not in tile.text and "hx-trigger" not in tile.text
    assert 'value="off"' in tile.text  # the button now offers the other way


def test_a_command_the_device_never_answered_is_said_on_the_tile(client, app, ctx, world):
    app.state.device_publisher = Publisher()
    device_id = world.device_of_household["ca-b1-u1-101"]
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    client.post(f"/home/devices/{device_id}/switch", data={"csrf": token, "value": "on"}, headers=HTMX)
    with ctx.db.session() as session:
        command_id = session.execute(select(DeviceCommand.id).where(DeviceCommand.device_id == device_id)).scalar_one()
        apply_outcomes(session, [Outcome(command_id, CommandStatus.TIMED_OUT, ctx.clock.now(), "no echo")])
    assert "设备没有执行" in client.get(f"/home/devices/{device_id}/tile").text
    assert "设备没有执行" in client.get("/home").text
    ctx.clock.advance(minutes=3)  # an old failure is no longer news
    assert "设备没有执行" not in client.get(f"/home/devices/{device_id}/tile").text


def test_switching_in_place_without_the_device_service_says_so_on_the_tile(client, world):
    device_id = world.device_of_household["ca-b1-u1-101"]
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    tile = client.post(f"/home/devices/{device_id}/switch", data={"csrf": token, "value": "on"}, headers=HTMX)
    assert tile.status_code == 200 and "设备服务未运行" in tile.text and "<html" not in tile.text


def test_tiles_stay_inside_the_household(client, world):
    sign_in(client, RESIDENT)
    neighbour = world.device_of_household["ca-b1-u1-102"]
    assert client.get(f"/home/devices/{neighbour}/tile").status_code == 404
    assert client.get("/home/devices/no-such-device/tile").status_code == 404
    client.cookies.clear()
    assert client.get(f"/home/devices/{neighbour}/tile", follow_redirects=False).status_code in (303, 401)
    sign_in(client, ADMIN)  # staff have the console, not a home
    assert client.get(f"/home/devices/{world.device_of_household['ca-b1-u1-101']}/tile").status_code == 403


def test_old_commands_are_not_mentioned(client, app, ctx, world):
    app.state.device_publisher = Publisher()
    device_id = world.device_of_household["ca-b1-u1-101"]
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    client.post(f"/home/devices/{device_id}/switch", data={"csrf": token, "value": "on"}, headers=HTMX)
    ctx.clock.advance(minutes=11)
    assert "已发送" not in client.get(f"/home/devices/{device_id}/tile").text


def test_my_alarms_card_redraws_with_the_households_alarms_only(client, ctx, world):
    from tests.web.test_console_home import raise_alarm

    sign_in(client, RESIDENT)
    card = client.get("/home/alarms")
    assert card.status_code == 200 and "<html" not in card.text and 'data-live="alarm"' in card.text
    assert "烟雾报警" not in card.text
    raise_alarm(ctx, "ca-b1-u1-102")  # the neighbours'
    assert "烟雾报警" not in client.get("/home/alarms").text
    raise_alarm(ctx, "ca-b1-u1-101")
    card = client.get("/home/alarms?tv=1").text
    assert "烟雾报警" in card and 'name="tv" value="true"' in card


def test_charts_name_what_they_show_in_the_viewers_words(client, ctx, world):
    device_id = world.device_of_household["ca-b1-u1-101"]
    store(ctx, device_id, minutes_ago=5, power_w=35.0, pm2_5=18.0, temperature=24.5)
    sign_in(client, RESIDENT)
    page = client.get("/home").text
    assert "插座 ca-b1-u1-101 · 功率" in page and "插座 ca-b1-u1-101 · 温度" in page
    assert "插座 ca-b1-u1-101 · PM2.5" in page  # the environment chart includes fine dust
    assert "· power_w" not in page and "· pm2_5" not in page
