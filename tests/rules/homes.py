"""Devices for the resident-side rule tests: a hall light, a bedroom light and an air conditioner,
registered through the registry API in the resident's household (``ca-b1-u1-101``)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from cityweave.accounts.models import Role
from tests.conftest import auth
from tests.world import World

HOME = "ca-b1-u1-101"


def _z2m(name: str, device_type: str, properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    friendly = f"cw-rules-{uuid.uuid4().hex[:10]}"
    caps = [{"capability": spec["capability"], "writable": bool(int(spec["access"]) & 2)}
            for spec in properties.values()]
    return {
        "place_id": HOME, "name": name, "adapter": "zigbee2mqtt", "address": f"0x{uuid.uuid4().hex[:16]}",
        "aliases": [friendly], "device_type": device_type, "manufacturer": "IKEA", "model": "LED1623G12",
        "protocol": "zigbee", "capabilities": caps,
        "profile": {"friendly_name": friendly, "properties": properties},
    }


LIGHT = {"state": {"type": "binary", "access": 7, "value_on": "ON", "value_off": "OFF", "capability": "on_off"},
         "brightness": {"type": "numeric", "access": 7, "value_max": 254, "capability": "brightness"}}
CLIMATE = {"system_mode": {"type": "enum", "access": 7, "capability": "hvac_mode"},
           "occupied_heating_setpoint": {"type": "numeric", "access": 7, "capability": "target_temperature"},
           "local_temperature": {"type": "numeric", "access": 5, "capability": "temperature"}}
MOTION = {"occupancy": {"type": "binary", "access": 1, "value_on": True, "value_off": False,
                        "capability": "motion"}}


def register(client: TestClient, world: World, name: str, device_type: str,
             properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    r = client.post("/api/v1/devices", json=_z2m(name, device_type, properties),
                    headers=auth(world.token(Role.RESIDENT)))
    assert r.status_code == 201, r.text
    return r.json()["device"]


def furnish(client: TestClient, world: World) -> dict[str, dict[str, Any]]:
    """The resident's home gets a hall light, a bedroom light, an air conditioner and a motion sensor."""
    return {
        "hall": register(client, world, "玄关灯", "light", LIGHT),
        "bedroom": register(client, world, "卧室灯 bedroom", "light", LIGHT),
        "ac": register(client, world, "客厅空调", "climate", CLIMATE),
        "motion": register(client, world, "走廊人体", "motion_sensor", MOTION),
    }
