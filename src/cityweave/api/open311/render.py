"""Open311 documents in XML and JSON, and the shapes of services, requests and updates.

XML is built with the standard library (``xml.etree.ElementTree``, which escapes ``& < >``);
characters XML 1.0 cannot carry at all (control characters) become U+FFFD so the document always
parses. JSON follows the spec's Spark convention: the root element is dropped, repeated elements
become arrays. Every shape is an explicit allow-list of fields: nothing about who reported (user
ids, names, phone numbers, e-mail addresses) or who handles a request can slip into a document.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.responses import Response

from cityweave.workorders.models import Category, Department, Status, WorkOrder, WorkOrderEvent

CONTENT_TYPES = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
# The element name of one item inside each list element.
ITEM = {"services": "service", "attributes": "attribute", "values": "value", "endpoints": "endpoint",
        "formats": "format", "service_requests": "request", "service_request_updates": "request_update",
        "errors": "error"}

# Our statuses → the spec's two. "closed: it has been resolved": a resolution waiting for the
# reporter's confirmation is closed for the public; a reopened request is open again.
OPEN311_STATUS = {
    Status.SUBMITTED: "open", Status.ACCEPTED: "open", Status.ASSIGNED: "open", Status.IN_PROGRESS: "open",
    Status.RESOLVED: "closed", Status.CONFIRMED: "closed", Status.CLOSED: "closed",
    Status.REJECTED: "closed", Status.MERGED: "closed",
}
NATIVE_STATUSES = {
    "open": [s for s, v in OPEN311_STATUS.items() if v == "open"],
    "closed": [s for s, v in OPEN311_STATUS.items() if v == "closed"],
}

# What a public step means, when the handler wrote no note (updates need a description).
STEP_TEXT = {
    "accept": ("已受理", "Accepted"),
    "assign": ("已派单", "Assigned"),
    "start": ("正在处理", "Work has started"),
    "resolve": ("已办结，等待确认", "Resolved"),
    "confirm": ("报告人已确认", "Confirmed by the reporter"),
    "close": ("已关闭", "Closed"),
    "reject": ("不予受理", "Not accepted"),
    "reopen": ("已重新打开", "Reopened"),
    "transfer": ("已转办", "Transferred to another department"),
    "merge": ("与其他工单合并", "Merged into another request"),
    "replied": ("部门回复", "Reply from the department"),
    "routed": ("已派单", "Assigned"),
    "auto_confirm": ("报告人未答复，自动确认", "Confirmed automatically"),
    "auto_close": ("自动关闭", "Closed automatically"),
}

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def w3(moment: datetime | None, zone: ZoneInfo) -> str | None:
    """``2026-11-22T10:23:00+08:00``: W3C date-time with the offset of the installation's zone."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).isoformat(timespec="seconds")


def _in(lang: str, zh: str | None, en: str | None) -> str | None:
    return (en or zh) if lang == "en" else (zh or en)


# -- shapes -----------------------------------------------------------------------------------------
def service(category: Category, lang: str) -> dict[str, Any]:
    return {
        "service_code": category.id,
        "service_name": _in(lang, category.name, category.name_en),
        "description": _in(lang, category.description, category.description_en) or "",
        "metadata": False,  # no category defines extra attributes
        "type": "realtime",  # the id is returned at once
        "keywords": ", ".join(str(k) for k in (category.keywords or [])),
        "group": category.group,
    }


def service_definition(category: Category) -> dict[str, Any]:
    return {"service_code": category.id, "attributes": []}


def request(order: WorkOrder, *, lang: str, zone: ZoneInfo, category: Category | None,
            department: Department | None, status_notes: str | None, address_id: str | None,
            description: str, media_url: str | None) -> dict[str, Any]:
    status = OPEN311_STATUS[order.status]
    return {
        "service_request_id": order.id,
        "status": status,
        "status_notes": status_notes,
        "service_name": _in(lang, category.name, category.name_en) if category else None,
        "service_code": order.category_id,
        "description": description,
        "agency_responsible": _in(lang, department.name, department.name_en) if department else None,
        "service_notice": None,
        "requested_datetime": w3(order.created_at, zone),
        "updated_datetime": w3(order.updated_at, zone),
        "expected_datetime": w3(order.resolve_due_at, zone) if status == "open" else None,
        "address": order.address,
        "address_id": address_id,
        "zipcode": None,
        "lat": order.lat,
        "long": order.lon,
        "media_url": media_url,
    }


def update(event: WorkOrderEvent, *, lang: str, zone: ZoneInfo) -> dict[str, Any]:
    native = event.to_status or event.from_status or ""
    named = _in(lang, *STEP_TEXT.get(event.action, (event.action, event.action))) or ""
    # People's notes are shown as written; the platform's own (timers) in the request's language.
    text = named if event.actor == "system" or not event.note else event.note
    return {
        "update_id": str(event.id),
        "service_request_id": event.work_order_id,
        "status": OPEN311_STATUS.get(Status(native), "open") if native else "open",
        "updated_datetime": w3(event.at, zone),
        "description": text,
        "media_url": "",
        "external_status_code": native,
    }


# -- documents --------------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))


def _append(parent: ET.Element, name: str, value: Any) -> None:
    element = ET.SubElement(parent, name)
    if isinstance(value, list):
        for item in value:
            _append(element, ITEM[name], item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _append(element, key, item)
    else:
        element.text = _text(value)


def xml_document(root: str, payload: list[Any] | dict[str, Any]) -> str:
    element = ET.Element(root)
    if isinstance(payload, list):
        for item in payload:
            _append(element, ITEM[root], item)
    else:
        for key, item in payload.items():
            _append(element, key, item)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(element, encoding="unicode")


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return _NOT_XML.sub("\ufffd", value)
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean_json(v) for k, v in value.items()}
    return value


def document(fmt: str, root: str, payload: list[Any] | dict[str, Any], status: int = 200) -> Response:
    if fmt == "json":
        body = json.dumps(_clean_json(payload), ensure_ascii=False)
    else:
        body = xml_document(root, payload)
    return Response(body.encode("utf-8"), status_code=status, media_type=CONTENT_TYPES[fmt],
                    headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def errors(fmt: str, status: int, descriptions: list[str]) -> Response:
    """The spec's error document: ``[{"code": 400, "description": "..."}]`` / ``<errors><error>``."""
    return document(fmt, "errors", [{"code": status, "description": d} for d in descriptions], status)
