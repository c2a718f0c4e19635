"""Every capability of the registry has a name, and every value of its ENUM capabilities a wording,
in the viewer's language: a capability added to devices/capabilities.py without its words in
templates/_capabilities.html (and the catalogues) fails here."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from cityweave.devices.capabilities import CAPABILITIES, ValueType
from cityweave.web.render import Renderer

# Names written the same way in Chinese as in English.
INTERNATIONAL = {"PM1", "PM2.5", "PM10", "CO₂", "TVOC", "TVOC (ppb)"}
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def macros():
    renderer = Renderer()
    return {locale: renderer.environments[locale].get_template("_capabilities.html").module
            for locale in ("zh-CN", "en")}


def test_every_capability_has_a_label_in_chinese(macros):
    missing = []
    for name in CAPABILITIES:
        zh = str(macros["zh-CN"].label(name)).strip()
        en = str(macros["en"].label(name)).strip()
        if zh in (name, name.replace("_", " ")) or en in (name, name.replace("_", " ")):
            missing.append(f"{name}: no label")
        elif zh not in INTERNATIONAL and not CJK.search(zh):
            missing.append(f"{name}: {zh!r} is not translated")
    assert missing == []


def test_every_enum_value_is_worded_in_chinese(macros):
    missing = []
    enums = [c for c in CAPABILITIES.values() if c.value_type is ValueType.ENUM]
    assert {"fall_state", "lock", "hvac_mode", "air_quality", "camera_event"} <= {c.name for c in enums}
    for capability in enums:
        for raw in capability.enum:
            reading = SimpleNamespace(value=raw, value_type="text", unit=None)
            zh = str(macros["zh-CN"].value(capability.name, reading)).strip()
            en = str(macros["en"].value(capability.name, reading)).strip()
            if zh == raw or en == raw or not CJK.search(zh):
                missing.append(f"{capability.name}={raw}: {zh!r}")
    assert missing == []


def test_examples_and_unknown_values(macros):
    zh = macros["zh-CN"]

    def value(name, raw, value_type="text", unit=None):
        return str(zh.value(name, SimpleNamespace(value=raw, value_type=value_type, unit=unit))).strip()

    assert value("fall_state", "none") == "未发现跌倒"
    assert value("hvac_mode", "cool") == "制冷"
    assert value("hvac_mode", "some_vendor_mode") == "some_vendor_mode"  # unknown: as it is
    assert value("plate_number", "粤B12345") == "粤B12345"  # free text stays text
    assert value("pressure", 1008.6, "number", "hPa") == "1,008.6 hPa"
    assert value("blood_pressure", {"systolic": 120, "diastolic": 80}, "object", "mmHg") == "120/80 mmHg"
    assert str(zh.label("pressure")).strip() == "气压"
    assert str(zh.label("vendor_thing")).strip() == "vendor thing"  # unknown: its own name
