"""The demo's live devices: a simulated fleet in the demo accounts' buildings, bound once.

The whole demo district would have about 12,000 simulated devices; claiming each one through
the registry (a place check, an audit record) on first start would make the user wait, so the
demo binds the devices of the buildings where the demo residents live (every household of those
buildings), which is what the demo accounts can see anyway. The devices are recorded as
discovered from what their adapters make of their own announcements (``discover_fleet``) and
claimed into their households by the platform, exactly as an installer would, in one transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityweave.authz.policy import Principal
from cityweave.context import AppContext, Call
from cityweave.demo.accounts import DEMO_ACCOUNTS
from cityweave.devices.registry import service
from cityweave.devices.registry.models import Device
from cityweave.devices.registry.schemas import DeviceClaim
from cityweave.places.models import Place, PlaceKind
from cityweave.simulator.fleet import Fleet, build_fleet, demo_households
from cityweave.simulator.registry import discover_fleet

# What the residents call the rooms and the devices (the demo's households speak Chinese); a
# resident may rename either later (PATCH /devices/{id}). The fleet's "climate" devices are
# temperature-humidity sensors (Aqara WSDCGQ11LM, Shelly Plus H&T, ...), not air conditioners.
ROOM_NAMES = {"living_room": "客厅", "bedroom": "主卧", "second_bedroom": "次卧", "kitchen": "厨房",
              "bathroom": "卫生间", "entrance": "玄关", "hallway": "过道", "distribution_box": "配电箱"}
KIND_NAMES = {"light": "灯", "plug": "插座", "door": "门磁", "motion": "人体感应", "smoke": "烟雾报警器",
              "gas": "燃气报警器", "leak": "水浸传感器", "climate": "温湿度计", "air": "空气质量监测仪", "meter": "智能电表",
              "sos": "紧急呼叫按钮", "fall_radar": "跌倒监测雷达", "presence": "人体存在传感器", "valve": "阀门",
              "siren": "声光报警器"}


def demo_name(room: str, kind: str, taken: set[str]) -> str:
    """"厨房灯", and "厨房灯 2" for the second one in the same household."""
    base = ROOM_NAMES.get(room, "") + KIND_NAMES.get(kind, kind)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base} {n}"
    taken.add(name)
    return name


@dataclass(frozen=True)
class BindReport:
    devices: int
    households: int
    seconds: float


def demo_buildings(session: Session) -> list[Place]:
    """The buildings the demo accounts' households are in."""
    homes = [a.place_id for a in DEMO_ACCOUNTS if a.place_id]
    paths = session.execute(select(Place.path).where(Place.id.in_(homes), Place.kind == PlaceKind.HOUSEHOLD)).scalars()
    segments = {segment for path in paths for segment in path.strip("/").split("/")}
    return list(session.execute(select(Place).where(Place.id.in_(segments), Place.kind == PlaceKind.BUILDING)
                                .order_by(Place.id)).scalars())


def demo_fleet(ctx: AppContext, seed: int) -> Fleet:
    """The simulated devices of the occupied households in the demo buildings."""
    with ctx.db.session() as session:
        inside: set[str] = set()
        for building in demo_buildings(session):
            inside.update(session.execute(select(Place.id).where(
                Place.kind == PlaceKind.HOUSEHOLD, Place.path.startswith(building.path, autoescape=True))).scalars())
    homes = [h for h in demo_households(seed) if h.id in inside]
    return build_fleet(homes, seed)


def bind(ctx: AppContext, fleet: Fleet) -> BindReport | None:
    """Record the fleet's devices as discovered and claim them into their households, once:
    nothing happens when any of these households already has a device."""
    started = time.perf_counter()
    homes = {h.id for h in fleet.households}
    with ctx.db.session() as session:
        # The runtime (ingest batches, rule timer) commits all the time: a transaction that reads
        # before it writes would fail with "database is locked" on SQLite (Database.write_first).
        ctx.db.write_first(session)
        if not homes or session.execute(select(func.count()).select_from(Device).where(
                Device.place_id.in_(homes))).scalar_one():
            return None
        now = ctx.clock.now()
        call = Call(ctx, session, Principal.system("demo"))
        names: dict[str, set[str]] = {}
        for virtual_id, discovered in discover_fleet(fleet, when=now).items():
            device = service.record_discovered(session, discovered, now)
            if device is None or device.place_id is not None:
                continue
            virtual = fleet.device(virtual_id)
            name = demo_name(virtual.room, virtual.kind, names.setdefault(virtual.household.id, set()))
            claimed = service.claim(call, device.id, DeviceClaim(place_id=virtual.household.id, name=name))
            claimed.room = ROOM_NAMES.get(virtual.room)
    return BindReport(len(fleet.devices), len(homes), time.perf_counter() - started)
