"""The device lifecycle: discovered → claimed → active → decommissioned, and device credentials.

Announcements (Zigbee2MQTT's device list, Home Assistant discovery, ...) create *discovered*
devices that belong to no place and bind nothing. A resident claims one into their household, or
staff into a facility: it becomes *claimed* and binds, so its messages turn into readings; the
first reading makes it *active*. Decommissioning retires it for good: credentials are revoked, the
vendor address is free for a new row, and the row stays for history. Every step is audited with
the device's place path, so scoped roles read their own area's device history.
"""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, or_, select, update
from sqlalchemy.orm import Session

from cityweave.audit import trail
from cityweave.authz.policy import (
    Action,
    Resource,
    Unauthorized,
    allows_device_at,
    scope_clause,
    sees_unplaced_devices,
)
from cityweave.context import Call
from cityweave.db.base import new_id
from cityweave.devices import capabilities as capability_registry
from cityweave.devices.adapters import adapter_classes
from cityweave.devices.binding import DeviceBinding
from cityweave.devices.discovery import DiscoveredDevice, merge, part_document, part_from_document
from cityweave.devices.registry.models import (
    BOUND_STATUSES,
    Device,
    DeviceCredential,
    DeviceRegistryState,
    DeviceStatus,
    Protocol,
)
from cityweave.devices.registry.schemas import DeviceClaim, DeviceRegister, DeviceUpdate
from cityweave.devices.types import DEVICE_TYPES
from cityweave.errors import AuthenticationFailed, Conflict, Invalid, NotFound
from cityweave.listing import Page, PageRequest, paginate
from cityweave.places.models import Place, PlaceKind
from cityweave.places.service import get_place
from cityweave.security.tokens import new_prefixed_secret, row_for_prefixed_secret

TOKEN_PREFIX = "cwd_"
MAX_ADDRESS = 200  # the column's length
DEVICE_PLACE_KINDS = (PlaceKind.HOUSEHOLD, PlaceKind.FACILITY)
# The radio a vendor ecosystem speaks when the announcement does not say.
PROTOCOL_BY_ADAPTER: dict[str, Protocol] = {
    "zigbee2mqtt": Protocol.ZIGBEE, "tasmota": Protocol.WIFI, "shelly": Protocol.WIFI,
    "tuya": Protocol.WIFI, "miot": Protocol.WIFI,
}
# Writing last_used_at on every HTTP ingest request would turn reads into writes; once a minute
# is enough to answer "when did this device last use its token".
_LAST_USED_RESOLUTION = timedelta(minutes=1)
_DISCOVERY_ACTOR = "device-discovery"
_INGEST_ACTOR = "device-ingest"

SORTABLE = {
    "id": Device.id, "name": Device.name, "status": Device.status, "device_type": Device.device_type,
    "created_at": Device.created_at, "last_seen_at": Device.last_seen_at,
}


# -- reading ------------------------------------------------------------------------------------
def _visible(call: Call) -> ColumnElement[bool]:
    """What the caller may see: devices in scope, and unplaced ones for those who install them."""
    clause = scope_clause(call.principal, Resource.DEVICE, Action.READ)
    if sees_unplaced_devices(call.principal):
        clause = or_(clause, Device.place_path.is_(None))
    return clause


def get_device(call: Call, device_id: str, action: Action = Action.READ,
               resource: Resource = Resource.DEVICE) -> Device:
    """The device if the caller may see it (404 otherwise) and may ``action`` it (403 otherwise)."""
    device = call.session.execute(
        select(Device).where(Device.id == device_id, _visible(call))
    ).scalar_one_or_none()
    if device is None:
        raise NotFound(f"no device {device_id!r}")
    if action is not Action.READ or resource is not Resource.DEVICE:
        require(call, device, resource, action)
    return device


def require(call: Call, device: Device, resource: Resource, action: Action) -> None:
    """403 unless the policy's clause admits this device for ``action`` (one indexed query)."""
    if device.place_path is None:
        # An unclaimed device: those who see them may act on them as their role allows anywhere.
        if sees_unplaced_devices(call.principal) and call.principal.may(resource, action):
            return
        raise Unauthorized(f"not allowed to {action} this {resource}")
    allowed = call.session.execute(
        select(Device.id).where(Device.id == device.id, scope_clause(call.principal, resource, action))
    ).first()
    if allowed is None:
        raise Unauthorized(f"not allowed to {action} this {resource}")


def list_devices(
    call: Call,
    page: PageRequest,
    *,
    status: DeviceStatus | None = None,
    place_id: str | None = None,
    device_type: str | None = None,
    adapter: str | None = None,
    q: str | None = None,
) -> Page[Device]:
    stmt = select(Device).where(_visible(call))
    if status is not None:
        stmt = stmt.where(Device.status == status)
    if place_id:
        place = get_place(call, place_id)
        stmt = stmt.where(Device.place_path.startswith(place.path, autoescape=True))
    if device_type:
        stmt = stmt.where(Device.device_type == device_type)
    if adapter:
        stmt = stmt.where(Device.adapter == adapter)
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(Device.name.ilike(like), Device.id.ilike(like), Device.address.ilike(like),
                              Device.model.ilike(like)))
    return paginate(call.session, stmt, page, SORTABLE, "id")


def list_discovered(call: Call, page: PageRequest, *, adapter: str | None = None) -> Page[Device]:
    """Devices waiting to be claimed; only for the roles that install devices (see the policy)."""
    if not sees_unplaced_devices(call.principal):
        raise Unauthorized("only property staff and administrators see unclaimed devices")
    stmt = select(Device).where(Device.status == DeviceStatus.DISCOVERED, Device.place_path.is_(None))
    if adapter:
        stmt = stmt.where(Device.adapter == adapter)
    return paginate(call.session, stmt, page, SORTABLE, "-created_at")


def binding_of(device: Device) -> DeviceBinding:
    return DeviceBinding(
        device_key=device.id, adapter=device.adapter, address=device.address,
        aliases=tuple(str(a) for a in device.aliases or ()), device_type=device.device_type,
        profile=dict(device.profile or {}),
    )


# -- the registry revision -------------------------------------------------------------------------
def bump_revision(session: Session) -> None:
    """Tell every directory that bindings changed (committed with the change itself)."""
    session.execute(update(DeviceRegistryState).where(DeviceRegistryState.id == 1)
                    .values(revision=DeviceRegistryState.revision + 1))


def current_revision(session: Session) -> int:
    return session.execute(select(DeviceRegistryState.revision).where(DeviceRegistryState.id == 1)).scalar_one()


# -- discovery ------------------------------------------------------------------------------------
def _refs(discovered: DiscoveredDevice) -> list[dict[str, Any]]:
    return [{"capability": r.capability, "endpoint": r.endpoint, "writable": r.writable}
            for r in discovered.capabilities]


def _live(session: Session, adapter: str, address: str) -> Device | None:
    return session.execute(select(Device).where(
        Device.adapter == adapter, Device.address == address, Device.status != DeviceStatus.DECOMMISSIONED,
    )).scalar_one_or_none()


def record_discovered(session: Session, discovered: DiscoveredDevice, now: datetime) -> Device | None:
    """Store an announcement. Idempotent: the same announcement again changes nothing.

    A new address becomes a *discovered* device. An address already known gets its description
    refreshed (a firmware update changes the exposes), which re-binds it if it is bound. A
    withdrawal (``removed``) retires a device nobody claimed yet; a claimed device stays, because a
    person decided to keep it, and is only marked offline.
    """
    if not discovered.address or len(discovered.address) > MAX_ADDRESS:
        return None  # no vendor id we could store, so nothing to bind it by later
    device = _live(session, discovered.adapter, discovered.address)
    if discovered.removed:
        if device is None:
            return None
        if device.status is DeviceStatus.DISCOVERED:
            device.status = DeviceStatus.DECOMMISSIONED
            device.decommissioned_at = device.updated_at = now
            _system_audit(session, "device.withdrawn", device, now, _DISCOVERY_ACTOR)
        elif device.online is not False:
            device.online = False
            device.updated_at = now
        return device
    if discovered.part is not None:
        discovered = _with_parts(device, discovered)
    if device is None:
        device = _revive(session, discovered) or Device(
            id=new_id("dev"), adapter=discovered.adapter, address=discovered.address, created_at=now,
            protocol=PROTOCOL_BY_ADAPTER.get(discovered.adapter, Protocol.UNKNOWN),
        )
        device.status = DeviceStatus.DISCOVERED
        device.decommissioned_at = None
        device.updated_at = now
        _describe(device, discovered)
        session.add(device)
        session.flush()
        _system_audit(session, "device.discover", device, now, _DISCOVERY_ACTOR,
                      {"adapter": device.adapter, "address": device.address, "model": device.model})
        return device
    if _describe(device, discovered):
        device.updated_at = now
        if device.status in BOUND_STATUSES:
            bump_revision(session)
    return device


def _with_parts(device: Device | None, discovered: DiscoveredDevice) -> DiscoveredDevice:
    """A part of a split description (Tasmota's config and sensors) merged with the other parts
    the device announced before; the parts are kept in the profile (``parts``) for the next one."""
    stored = (device.profile or {}).get("parts") if device is not None else None
    parts = {name: part_from_document(discovered.adapter, discovered.address, name, document)
             for name, document in (stored or {}).items() if isinstance(document, dict)}
    parts[discovered.part or ""] = discovered
    merged = merge(parts.values())
    documents = {name: part_document(part) for name, part in sorted(parts.items())}
    return replace(merged, profile={**merged.profile, "parts": documents})


def _revive(session: Session, discovered: DiscoveredDevice) -> Device | None:
    """A device withdrawn before anyone claimed it, announced again: the same row, not a new one."""
    return session.execute(select(Device).where(
        Device.adapter == discovered.adapter, Device.address == discovered.address,
        Device.status == DeviceStatus.DECOMMISSIONED, Device.place_id.is_(None),
        Device.claimed_at.is_(None),
    ).order_by(Device.created_at.desc()).limit(1)).scalar_one_or_none()


def _describe(device: Device, discovered: DiscoveredDevice) -> bool:
    """Copy the announcement's description onto the row; whether anything changed.

    The name is the vendor's until someone claims the device and names it themselves."""
    values: dict[str, Any] = {
        "aliases": list(discovered.aliases), "device_type": discovered.device_type,
        "manufacturer": discovered.manufacturer, "model": discovered.model,
        "profile": dict(discovered.profile), "capabilities": _refs(discovered),
    }
    if device.claimed_at is None and discovered.name:
        values["name"] = discovered.name[:200]
    changed = False
    for key, value in values.items():
        if isinstance(value, str):
            value = value[:200]
        if getattr(device, key) != value:
            setattr(device, key, value)
            changed = True
    return changed


# -- claiming, registering, activating, retiring ---------------------------------------------------------
def _device_place(call: Call, place_id: str, pointer: str) -> Place:
    """The place a device goes to: one the caller can see (404), a household or facility (422),
    where the caller may put devices (403)."""
    place = get_place(call, place_id)
    if place.kind not in DEVICE_PLACE_KINDS:
        raise Invalid.field(pointer, "devices belong to a household or a facility")
    if not allows_device_at(call.principal, Resource.DEVICE, Action.CREATE, place.path, place.kind.value):
        raise Unauthorized("not allowed to add devices to this place")
    return place


def _place_on(device: Device, place: Place) -> None:
    device.place_id, device.place_path, device.place_kind = place.id, place.path, place.kind.value


def claim(call: Call, device_id: str, data: DeviceClaim) -> Device:
    """Accept a discovered device into a place. Residents, who do not see the list of unclaimed
    devices, claim by id: the id is an unguessable pairing code the installer or the app shows."""
    device = call.session.get(Device, device_id)
    if device is None or (device.status is not DeviceStatus.DISCOVERED
                          and not _sees(call, device)):
        raise NotFound(f"no device {device_id!r}")
    if device.status is not DeviceStatus.DISCOVERED:
        raise Conflict(f"device {device_id!r} is {device.status.value}; only discovered devices can be claimed")
    place = _device_place(call, data.place_id, "/place_id")
    now = call.now()
    _place_on(device, place)
    if data.name is not None:
        device.name = data.name
    device.status = DeviceStatus.CLAIMED
    device.claimed_at = device.updated_at = now
    bump_revision(call.session)
    _audit(call, "device.claim", device, {"adapter": device.adapter, "address": device.address})
    return device


def _sees(call: Call, device: Device) -> bool:
    return call.session.execute(select(Device.id).where(Device.id == device.id, _visible(call))).first() is not None


def register(call: Call, data: DeviceRegister) -> tuple[Device, DeviceCredential, str]:
    """Add a device by hand (HTTP-only devices, devices no bridge announces). It is bound at once
    (claimed) and gets a device token, returned here and never again."""
    _validate_registration(data)
    place = _device_place(call, data.place_id, "/place_id")
    device_id = new_id("dev")
    address = data.address or device_id
    if _live(call.session, data.adapter, address) is not None:
        raise Conflict(f"a {data.adapter} device with address {address!r} is already registered")
    now = call.now()
    device = Device(
        id=device_id, adapter=data.adapter, address=address, aliases=list(data.aliases), name=data.name,
        device_type=data.device_type, manufacturer=data.manufacturer, model=data.model,
        firmware=data.firmware, protocol=data.protocol, profile=dict(data.profile),
        capabilities=[c.model_dump() for c in data.capabilities], status=DeviceStatus.CLAIMED,
        claimed_at=now, created_at=now, updated_at=now,
    )
    _place_on(device, place)
    call.session.add(device)
    call.session.flush()
    bump_revision(call.session)
    _audit(call, "device.register", device, {"adapter": device.adapter, "address": device.address})
    credential, token = _issue_credential(call, device)
    return device, credential, token


def _validate_registration(data: DeviceRegister) -> None:
    if data.adapter not in adapter_classes():
        raise Invalid.field("/adapter", f"no adapter {data.adapter!r}; choose from {', '.join(adapter_classes())}")
    if data.device_type is not None and data.device_type not in DEVICE_TYPES:
        raise Invalid.field("/device_type", f"no device type {data.device_type!r}")
    for index, ref in enumerate(data.capabilities):
        if capability_registry.find(ref.capability) is None:
            raise Invalid.field(f"/capabilities/{index}/capability", f"no capability {ref.capability!r}")


def activate(call: Call, device_id: str) -> Device:
    """claimed → active by hand (normally the first reading does it, see :func:`mark_seen`)."""
    device = get_device(call, device_id, Action.UPDATE)
    if device.status is not DeviceStatus.CLAIMED:
        raise Conflict(f"device {device_id!r} is {device.status.value}; only claimed devices can be activated")
    device.status = DeviceStatus.ACTIVE
    device.updated_at = call.now()
    _audit(call, "device.activate", device)
    return device


def mark_seen(session: Session, seen: str | Iterable[str] | Mapping[str, datetime],
              now: datetime) -> list[str]:
    """Record that bound devices reported; claimed ones become active. Returns those activated.

    ``seen`` is one device key, several (all seen ``now``), or ``{device_key: last message time}``.
    Meant for the ingest pipeline once per batch, not per reading: one SELECT for the rare
    activations, one executemany UPDATE for the rest."""
    if isinstance(seen, str):
        times: dict[str, datetime] = {seen: now}
    elif isinstance(seen, Mapping):
        times = dict(seen)
    else:
        times = dict.fromkeys(seen, now)
    if not times:
        return []
    activated = list(session.execute(select(Device).where(
        Device.id.in_(sorted(times)), Device.status == DeviceStatus.CLAIMED)).scalars())
    for device in activated:
        device.status = DeviceStatus.ACTIVE
        device.updated_at = now
        _system_audit(session, "device.activate", device, now, _INGEST_ACTOR,
                      {"first_reading_at": times[device.id].isoformat()})
    session.flush()
    table = Device.__table__
    stmt = (
        update(table)
        # Equalities, not IN: an expanding IN list cannot be part of an executemany.
        .where(table.c.id == bindparam("b_id"), or_(*(table.c.status == s.value for s in BOUND_STATUSES)),
               or_(table.c.last_seen_at.is_(None), table.c.last_seen_at < bindparam("b_at")))
        .values(last_seen_at=bindparam("b_at"), online=True)
    )
    session.execute(stmt, [{"b_id": key, "b_at": at} for key, at in sorted(times.items())])
    return [d.id for d in activated]


def set_online(session: Session, device_key: str, online: bool, now: datetime) -> None:
    """An availability change (LWT, Zigbee2MQTT availability) for a bound device."""
    session.execute(update(Device).where(Device.id == device_key, Device.status.in_(BOUND_STATUSES))
                    .values(online=online, updated_at=now))


def update_device(call: Call, device_id: str, data: DeviceUpdate) -> Device:
    """Rename a device or set the room it is in (``room: null`` clears it). Needs UPDATE on the
    device, with the scope rules of claiming: a household's devices take a grant on that very
    household. Only devices in a place (claimed or active) are named by people; a discovered
    device's name is its vendor's until it is claimed. Audited with what changed."""
    given = data.model_fields_set
    if not given:
        raise Invalid.field("", "give the new name, the room, or both")
    device = get_device(call, device_id, Action.UPDATE)
    if device.status not in BOUND_STATUSES:
        raise Conflict(f"device {device_id!r} is {device.status.value}; only claimed or active devices "
                       "can be renamed or given a room")
    wanted: dict[str, str | None] = {}
    if "name" in given:
        if data.name is None:
            raise Invalid.field("/name", "a device keeps a name: give the new one")
        wanted["name"] = _label(data.name, "/name")
    if "room" in given:
        wanted["room"] = None if data.room is None else _label(data.room, "/room")
    changes = {field: {"from": getattr(device, field), "to": value}
               for field, value in wanted.items() if getattr(device, field) != value}
    if changes:
        for field, change in changes.items():
            setattr(device, field, change["to"])
        device.updated_at = call.now()
        _audit(call, "device.update", device, {"changes": changes})
    return device


def _label(text: str, pointer: str) -> str:
    """A name or room as people will read it: trimmed, not blank, no control characters."""
    label = text.strip()
    if not label:
        raise Invalid.field(pointer, "may not be blank")
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\u200d" for ch in label):
        raise Invalid.field(pointer, "may not contain control characters")
    return label


def decommission(call: Call, device_id: str) -> Device:
    """Retire a device: it stops binding, its credentials stop working, its history stays."""
    device = get_device(call, device_id, Action.DELETE)
    if device.status is DeviceStatus.DECOMMISSIONED:
        raise Conflict(f"device {device_id!r} is already decommissioned")
    now = call.now()
    revoked = _revoke_credentials(call.session, device.id, now)
    was_bound = device.status in BOUND_STATUSES
    device.status = DeviceStatus.DECOMMISSIONED
    device.decommissioned_at = device.updated_at = now
    device.online = None
    if was_bound:
        bump_revision(call.session)
    _audit(call, "device.decommission", device, {"credentials_revoked": revoked})
    return device


# -- credentials ------------------------------------------------------------------------------------
def _issue_credential(call: Call, device: Device) -> tuple[DeviceCredential, str]:
    issued = new_prefixed_secret(TOKEN_PREFIX.rstrip("_"))
    credential = DeviceCredential(device_id=device.id, prefix=issued.prefix, secret_hash=issued.secret_hash,
                                  created_at=call.now(), created_by=call.principal.user_id)
    call.session.add(credential)
    call.session.flush()
    _audit(call, "device.credential.issue", device, {"credential": issued.prefix})
    return credential, issued.text


def _revoke_credentials(session: Session, device_id: str, now: datetime) -> int:
    result = session.execute(update(DeviceCredential).where(
        DeviceCredential.device_id == device_id, DeviceCredential.revoked_at.is_(None),
    ).values(revoked_at=now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def rotate_credentials(call: Call, device_id: str) -> tuple[DeviceCredential, str]:
    """A new device token; every earlier one stops working at once."""
    device = get_device(call, device_id, Action.UPDATE)
    if device.status not in BOUND_STATUSES:
        raise Conflict(f"device {device_id!r} is {device.status.value}; only claimed or active devices get credentials")
    revoked = _revoke_credentials(call.session, device.id, call.now())
    if revoked:
        _audit(call, "device.credential.revoke", device, {"revoked": revoked})
    return _issue_credential(call, device)


def verify_token(session: Session, token: str, now: datetime) -> Device:
    """The bound device a token belongs to (HTTP ingest); AuthenticationFailed otherwise."""
    row = row_for_prefixed_secret(session, DeviceCredential, token, TOKEN_PREFIX.rstrip("_"), "device token")
    device = session.get(Device, row.device_id)
    if device is None or device.status not in BOUND_STATUSES:
        raise AuthenticationFailed("the device is not in service")
    if row.last_used_at is None or now - row.last_used_at >= _LAST_USED_RESOLUTION:
        row.last_used_at = now
    return device


def verify_mqtt_login(session: Session, username: str, password: str, now: datetime) -> Device:
    """MQTT broker authentication for devices: username = device id, password = device token."""
    device = verify_token(session, password, now)
    if not hmac.compare_digest(device.id.encode(), username.encode()):
        raise AuthenticationFailed("the device token belongs to another device")
    return device


# -- audit ------------------------------------------------------------------------------------------
def _audit(call: Call, action: str, device: Device, details: dict[str, Any] | None = None) -> None:
    call.audit(action, "device", device.id, place_path=device.place_path, details=details)


def _system_audit(session: Session, action: str, device: Device, now: datetime, actor: str,
                  details: dict[str, Any] | None = None) -> None:
    """Steps taken by the platform on a device's own word (announcements, first readings)."""
    trail.append(session, actor=None, actor_label=actor, action=action, object_kind="device",
                 object_id=device.id, place_path=device.place_path, details=details, at=now)


__all__ = [
    "activate", "binding_of", "bump_revision", "claim", "current_revision", "decommission",
    "get_device", "list_devices", "list_discovered", "mark_seen", "record_discovered", "register",
    "require", "rotate_credentials", "set_online", "update_device", "verify_mqtt_login", "verify_token",
]
