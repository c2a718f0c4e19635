"""Devices: the registry (discovered, claimed, active, decommissioned), credentials and commands."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from cityweave.api.deps import CallDep, PageDep, PageOut
from cityweave.api.problems import Problem
from cityweave.devices.registry import commands, service
from cityweave.devices.registry.models import DeviceCredential, DeviceStatus
from cityweave.devices.registry.schemas import (
    CommandIn,
    CommandOut,
    DeviceClaim,
    DeviceCredentialOut,
    DeviceDetailOut,
    DeviceOut,
    DeviceRegister,
    DeviceRegistered,
    DeviceUpdate,
)

router = APIRouter(
    prefix="/api/v1/devices",
    tags=["devices"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)
DeviceIdPath = Annotated[str, Path(max_length=40)]


def _page(result, model):
    return PageOut[model](items=[model.model_validate(x) for x in result.items],
                          total=result.total, limit=result.limit, offset=result.offset)


def _credential(credential: DeviceCredential, token: str) -> DeviceCredentialOut:
    return DeviceCredentialOut(device_id=credential.device_id, token=token,
                               mqtt_username=credential.device_id, prefix=credential.prefix,
                               created_at=credential.created_at)


@router.get("", response_model=PageOut[DeviceOut])
def list_devices(
    call: CallDep,
    page: PageDep,
    status_: Annotated[DeviceStatus | None, Query(alias="status")] = None,
    place_id: Annotated[str | None, Query(max_length=64, description="only devices at or inside this place")] = None,
    device_type: Annotated[str | None, Query(max_length=64)] = None,
    adapter: Annotated[str | None, Query(max_length=32)] = None,
    q: Annotated[str | None, Query(max_length=100, description="name, id, address or model contains")] = None,
) -> PageOut[DeviceOut]:
    result = service.list_devices(call, page, status=status_, place_id=place_id, device_type=device_type,
                                  adapter=adapter, q=q)
    return _page(result, DeviceOut)


@router.get("/discovered", response_model=PageOut[DeviceOut])
def list_discovered(
    call: CallDep, page: PageDep, adapter: Annotated[str | None, Query(max_length=32)] = None,
) -> PageOut[DeviceOut]:
    """Devices that announced themselves and wait to be claimed (property staff, community and
    platform admins; residents claim by the id their installer or app shows them)."""
    return _page(service.list_discovered(call, page, adapter=adapter), DeviceOut)


@router.post("", response_model=DeviceRegistered, status_code=status.HTTP_201_CREATED,
             responses={409: {"model": Problem}})
def register_device(call: CallDep, body: DeviceRegister) -> DeviceRegistered:
    """Add a device by hand. The answer holds its token: shown once, stored only as a hash."""
    device, credential, token = service.register(call, body)
    return DeviceRegistered(device=DeviceDetailOut.model_validate(device), credential=_credential(credential, token))


@router.get("/{device_id}", response_model=DeviceDetailOut)
def get_device(call: CallDep, device_id: DeviceIdPath) -> DeviceDetailOut:
    return DeviceDetailOut.model_validate(service.get_device(call, device_id))


@router.patch("/{device_id}", response_model=DeviceDetailOut, responses={409: {"model": Problem}})
def update_device(call: CallDep, device_id: DeviceIdPath, body: DeviceUpdate) -> DeviceDetailOut:
    """Rename a device or say which room it is in (`{"room": null}` clears the room); audited.

    Who may: whoever may change the device, with the scope rules of claiming: residents their own
    household's devices, property staff and community admins the facility devices of their
    community (not those inside homes). 404 for a device the caller cannot see, 403 for one they
    may only read, 409 for a device not in service (discovered or decommissioned), 422 for blank
    or over-long names and rooms or an empty body."""
    return DeviceDetailOut.model_validate(service.update_device(call, device_id, body))


@router.post("/{device_id}/claim", response_model=DeviceDetailOut, responses={409: {"model": Problem}})
def claim_device(call: CallDep, device_id: DeviceIdPath, body: DeviceClaim) -> DeviceDetailOut:
    return DeviceDetailOut.model_validate(service.claim(call, device_id, body))


@router.post("/{device_id}/decommission", response_model=DeviceDetailOut, responses={409: {"model": Problem}})
def decommission_device(call: CallDep, device_id: DeviceIdPath) -> DeviceDetailOut:
    return DeviceDetailOut.model_validate(service.decommission(call, device_id))


@router.post("/{device_id}/credentials", response_model=DeviceCredentialOut,
             status_code=status.HTTP_201_CREATED, responses={409: {"model": Problem}})
def rotate_credentials(call: CallDep, device_id: DeviceIdPath) -> DeviceCredentialOut:
    """A new device token; every earlier token of the device stops working."""
    credential, token = service.rotate_credentials(call, device_id)
    return _credential(credential, token)


@router.post("/{device_id}/commands", response_model=CommandOut, status_code=status.HTTP_202_ACCEPTED,
             responses={409: {"model": Problem}, 503: {"model": Problem}})
def send_command(call: CallDep, request: Request, device_id: DeviceIdPath, body: CommandIn) -> CommandOut:
    """Encode and publish a command. 202: the log entry, ``sent`` (confirmed later by the
    device's state echo, or ``timed_out``) or ``failed`` if the transport refused it. 503 when no
    device transport runs in this installation.

    The transport registers itself on ``app.state``: ``device_publisher`` (a Publisher), and
    optionally ``command_tracker``, ``device_directory`` and ``device_adapters`` ({name: adapter})."""
    state = request.app.state
    row = commands.send_command(
        call, device_id, body.capability, body.value, body.endpoint,
        publisher=getattr(state, "device_publisher", None),
        tracker=getattr(state, "command_tracker", None),
        directory=getattr(state, "device_directory", None),
        adapters_by_name=getattr(state, "device_adapters", None),
    )
    return CommandOut.model_validate(row)


@router.get("/{device_id}/commands", response_model=PageOut[CommandOut])
def list_commands(call: CallDep, device_id: DeviceIdPath, page: PageDep) -> PageOut[CommandOut]:
    return _page(commands.list_commands(call, device_id, page), CommandOut)
