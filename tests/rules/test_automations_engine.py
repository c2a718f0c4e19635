"""A resident's automation, saved through the API, runs in the rule engine: ``automations.attach``
loads every household's enabled automations and reloads one household when its automations change."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from cityweave.accounts.models import Role
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from cityweave.rules import automations
from tests.conftest import auth
from tests.rules.homes import HOME, furnish
from tests.rules.support import engine_for, observe, reading
from tests.world import World

BASE = f"/api/v1/households/{HOME}/automations"


def test_a_saved_automation_runs_and_a_disabled_one_stops(client: TestClient, world: World, ctx: AppContext,
                                                         clock: ManualClock) -> None:
    devices = furnish(client, world)
    resident = auth(world.token(Role.RESIDENT))
    engine, publisher = engine_for(ctx)
    unsubscribe = automations.attach(engine, ctx)
    try:
        rule = {"key": "hall-light-on-motion", "name": {"zh-CN": "有人开玄关灯", "en": "Hall light on motion"},
                "trigger": {"type": "state", "capability": "motion", "to": True, "device_id": devices["motion"]["id"]},
                "actions": [{"type": "command", "target": devices["hall"]["id"], "capability": "brightness",
                             "value": 10}]}
        created = client.post(BASE, json=rule, headers=resident)
        assert created.status_code == 201, created.text
        motion = devices["motion"]["id"]
        observe(ctx, engine, reading(motion, "motion", False, clock.now()))
        clock.advance(seconds=5)
        observe(ctx, engine, reading(motion, "motion", True, clock.now()))
        sent = [json.loads(payload) for topic, payload in publisher.messages
                if topic.endswith(f"{devices['hall']['aliases'][0]}/set")]
        assert sent == [{"brightness": 25}]

        rule["enabled"] = False
        assert client.put(f"{BASE}/{created.json()['id']}", json=rule, headers=resident).status_code == 200
        before = len(publisher.messages)
        for value in (False, True):
            clock.advance(seconds=300)
            observe(ctx, engine, reading(motion, "motion", value, clock.now()))
        assert len(publisher.messages) == before
    finally:
        unsubscribe()


def test_an_automation_runs_a_scene_inside_the_engine(client: TestClient, world: World, ctx: AppContext,
                                                      clock: ManualClock) -> None:
    from cityweave.rules import modes

    devices = furnish(client, world)
    engine, publisher = engine_for(ctx)
    unsubscribe = automations.attach(engine, ctx)
    try:
        rule = {"key": "motion-sleep", "name": {"zh-CN": "夜里有人就睡眠", "en": "Sleep scene on motion"},
                "trigger": {"type": "state", "capability": "motion", "to": True},
                "actions": [{"type": "scene", "scene_id": "sleep"}]}
        r = client.post(BASE, json=rule, headers=auth(world.token(Role.RESIDENT)))
        assert r.status_code == 201, r.text
        motion = devices["motion"]["id"]
        observe(ctx, engine, reading(motion, "motion", False, clock.now()))
        clock.advance(seconds=5)
        observe(ctx, engine, reading(motion, "motion", True, clock.now()))
        lights = {devices["hall"]["aliases"][0], devices["bedroom"]["aliases"][0]}
        switched = {topic.split("/")[1] for topic, payload in publisher.messages
                    if json.loads(payload) == {"state": "OFF"}}
        assert switched == lights
        with ctx.db.session() as session:
            assert modes.current(session, HOME) is modes.Mode.SLEEP
    finally:
        unsubscribe()


def test_arming_through_the_api_reaches_the_engine_at_once(client: TestClient, world: World, ctx: AppContext,
                                                           clock: ManualClock) -> None:
    devices = furnish(client, world)
    resident = auth(world.token(Role.RESIDENT))
    engine, publisher = engine_for(ctx)
    unsubscribe = automations.attach(engine, ctx)
    try:
        rule = {"key": "armed-motion-light", "name": {"zh-CN": "布防时有人开灯", "en": "Light on motion when armed"},
                "trigger": {"type": "state", "capability": "motion", "to": True},
                "conditions": [{"type": "mode", "in": ["armed"]}],
                "actions": [{"type": "command", "target": devices["hall"]["id"], "capability": "on_off",
                             "value": True}]}
        assert client.post(BASE, json=rule, headers=resident).status_code == 201
        motion = devices["motion"]["id"]

        def wave() -> None:
            for value in (False, True):
                clock.advance(seconds=2)
                observe(ctx, engine, reading(motion, "motion", value, clock.now()))

        wave()
        assert publisher.messages == []  # at home: the condition is false
        assert client.put(f"/api/v1/households/{HOME}/mode", json={"mode": "armed"}, headers=resident).status_code == 200
        wave()
        assert [json.loads(p) for _, p in publisher.messages] == [{"state": "ON"}]
    finally:
        unsubscribe()
