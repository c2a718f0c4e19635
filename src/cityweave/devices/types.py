"""Device types: named sets of capabilities.

A type is what the UI shows and what built-in safety rules select on ("every smoke detector in
this building"). It is defined by the capabilities a device must have (``required``: all of them;
``required_any``: at least one of them) and those it may have. Types never add behaviour of their
own, so a device that reports an extra capability is still of its type.

Where a Matter device type exists its name is given; community facilities (parking sensor, bin
sensor, locker, gate, street light, charger) have none and are ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cityweave.devices.capabilities import CAPABILITIES


@dataclass(frozen=True, slots=True)
class DeviceType:
    name: str
    title: str
    required: frozenset[str] = frozenset()
    required_any: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    matter: str | None = None
    ha: str | None = None
    # Lower-case words in a vendor description that point at this type when capabilities alone
    # cannot tell (an SOS button only exposes "action" and "battery").
    hints: tuple[str, ...] = ()

    @property
    def capabilities(self) -> frozenset[str]:
        return self.required | self.required_any | self.optional

    def satisfied_by(self, capabilities: Iterable[str]) -> bool:
        present = set(capabilities)
        if not self.required <= present:
            return False
        return not self.required_any or bool(self.required_any & present)


_DIAG = frozenset({"battery", "battery_low", "battery_level", "battery_voltage", "rssi",
                   "link_quality", "device_temperature", "tamper", "fault", "mains_power"})
_METER = frozenset({"power_w", "energy_kwh", "energy_exported_kwh", "voltage", "current",
                    "frequency", "power_factor", "apparent_power", "reactive_power"})
_AIR = frozenset({"pm1", "pm2_5", "pm10", "co2", "tvoc", "tvoc_ppb", "voc_index", "formaldehyde",
                  "aqi", "air_quality"})


def _t(name: str, title: str, *, required: Iterable[str] = (), any_of: Iterable[str] = (),
       optional: Iterable[str] = (), matter: str | None = None, ha: str | None = None,
       hints: tuple[str, ...] = ()) -> DeviceType:
    return DeviceType(name, title, frozenset(required), frozenset(any_of),
                      frozenset(optional) | _DIAG, matter, ha, hints)


_DEFINITIONS: tuple[DeviceType, ...] = (
    _t("light", "Light", required={"on_off"},
       optional={"brightness", "color_temperature", "color", "power_w", "energy_kwh"},
       matter="Dimmable Light / Color Temperature Light / Extended Color Light", ha="light",
       hints=("bulb", "lamp", "light", "led")),
    _t("plug", "Smart plug", required={"on_off"}, optional=_METER | {"child_lock"},
       matter="On/Off Plug-in Unit", ha="switch.outlet", hints=("plug", "socket", "outlet")),
    _t("switch", "Wall switch or relay", required={"on_off"},
       optional=_METER | {"button_event", "child_lock"}, matter="On/Off Light Switch",
       ha="switch", hints=("wall switch", "relay", "switch")),
    _t("lock", "Door lock", required={"lock"},
       optional={"contact", "doorbell", "duress", "child_lock", "button_event"},
       matter="Door Lock", ha="lock", hints=("lock",)),
    _t("contact_sensor", "Door/window sensor", required={"contact"}, matter="Contact Sensor",
       ha="binary_sensor.door", hints=("door", "window", "contact")),
    _t("motion_sensor", "Motion sensor", any_of={"motion", "occupancy"}, optional={"illuminance"},
       matter="Occupancy Sensor", ha="binary_sensor.motion", hints=("motion", "pir")),
    _t("presence_sensor", "Presence radar", required={"presence"},
       optional={"occupancy", "occupant_count", "motion", "illuminance"},
       matter="Occupancy Sensor", ha="binary_sensor.presence", hints=("presence", "radar")),
    _t("smoke_detector", "Smoke detector", required={"smoke"},
       optional={"smoke_density", "carbon_monoxide", "co_ppm", "alarm_muted", "self_test",
                 "self_test_result", "siren"},
       matter="Smoke CO Alarm", ha="binary_sensor.smoke", hints=("smoke",)),
    _t("co_detector", "Carbon monoxide detector", any_of={"carbon_monoxide", "co_ppm"},
       optional={"alarm_muted", "self_test", "self_test_result"}, matter="Smoke CO Alarm",
       ha="binary_sensor.carbon_monoxide", hints=("carbon monoxide", " co ")),
    _t("gas_detector", "Combustible gas detector", any_of={"gas", "gas_ppm", "gas_lel", "gas_density"},
       optional={"valve_open", "alarm_muted", "self_test", "self_test_result", "preheating",
                 "carbon_monoxide", "co_ppm", "siren"},
       ha="binary_sensor.gas", hints=("gas",)),
    _t("water_leak_sensor", "Water leak sensor", required={"water_leak"},
       matter="Water Leak Detector", ha="binary_sensor.moisture", hints=("leak", "flood", "water")),
    _t("valve", "Water/gas valve", any_of={"valve_open", "valve_position"},
       optional={"water_leak", "water_m3"}, matter="Water Valve", ha="valve", hints=("valve",)),
    _t("climate", "Thermostat / AC / radiator valve", any_of={"target_temperature", "hvac_mode"},
       optional={"temperature", "humidity", "hvac_action", "fan_mode", "window_open",
                 "valve_position", "child_lock", "on_off"},
       matter="Thermostat / Room Air Conditioner", ha="climate",
       hints=("thermostat", "radiator", "trv", "air conditioner")),
    _t("curtain", "Curtain, blind or shutter", any_of={"cover_position", "cover_state", "cover_control"},
       matter="Window Covering", ha="cover", hints=("curtain", "blind", "shutter", "cover")),
    _t("electricity_meter", "Electricity meter", required={"energy_kwh"}, optional=_METER,
       matter="Electrical Sensor", ha="sensor.energy", hints=("meter", "energy")),
    _t("water_meter", "Water meter", required={"water_m3"}, optional={"water_leak", "valve_open"},
       ha="sensor.water", hints=("water meter",)),
    _t("gas_meter", "Gas meter", required={"gas_m3"}, optional={"valve_open"}, ha="sensor.gas",
       hints=("gas meter",)),
    _t("air_quality_monitor", "Air-quality monitor", any_of=_AIR,
       optional={"temperature", "humidity", "pressure", "co_ppm"}, matter="Air Quality Sensor",
       hints=("air quality", "air", "voc", "co2", "pm2.5")),
    _t("climate_sensor", "Temperature/humidity sensor", any_of={"temperature", "humidity"},
       optional={"pressure"}, matter="Temperature Sensor / Humidity Sensor",
       ha="sensor.temperature", hints=("temperature", "humidity")),
    _t("illuminance_sensor", "Light sensor", any_of={"illuminance", "illuminance_level"},
       matter="Light Sensor", ha="sensor.illuminance", hints=("light sensor", "luminance")),
    _t("vibration_sensor", "Vibration sensor", any_of={"vibration", "vibration_event"},
       ha="binary_sensor.vibration", hints=("vibration",)),
    _t("emergency_button", "Emergency (SOS) button", required={"emergency_call"},
       optional={"button_event"}, hints=("sos", "emergency", "panic")),
    _t("fall_detector", "Fall detector", any_of={"fall", "fall_state"},
       optional={"occupancy", "presence", "motion", "illuminance"}, hints=("fall",)),
    _t("health_monitor", "Health monitor",
       any_of={"heart_rate", "blood_pressure", "spo2", "respiration_rate", "body_temperature"},
       optional={"presence", "fall"}, hints=("health", "heart", "vital")),
    _t("doorbell", "Doorbell / intercom", required={"doorbell"},
       optional={"button_event", "camera_event", "lock"}, ha="event.doorbell",
       hints=("doorbell", "intercom")),
    _t("camera", "Camera (events)", required={"camera_event"}, optional={"plate_number", "motion"},
       ha="camera", hints=("camera",)),
    _t("siren", "Siren", required={"siren"}, optional={"alarm_state"}, ha="siren",
       hints=("siren", "alarm sounder")),
    _t("alarm_panel", "Alarm panel", required={"alarm_state"},
       optional={"siren", "emergency_call", "alarm_muted"}, ha="alarm_control_panel",
       hints=("alarm panel", "alarm host", "security system")),
    _t("parking_sensor", "Parking-space sensor", required={"parking_occupied"},
       hints=("parking",)),
    _t("locker", "Parcel locker", required={"compartment_occupied"},
       optional={"lock", "contact"}, hints=("locker",)),
    _t("charger", "EV charging point", required={"charging_state"}, optional=_METER | {"on_off"},
       matter="EVSE", hints=("charger", "charging", "evse", "wallbox")),
    _t("street_light", "Street light", required={"on_off"},
       optional={"brightness", "power_w", "energy_kwh", "illuminance"}, hints=("street light",)),
    _t("bin_sensor", "Waste-bin sensor", required={"fill_level"}, optional={"temperature"},
       hints=("bin", "waste")),
    _t("gate", "Gate or barrier", any_of={"cover_state", "cover_control", "cover_position"},
       optional={"contact", "plate_number", "on_off"}, hints=("gate", "barrier")),
    _t("button", "Button / scene switch", required={"button_event"}, matter="Generic Switch",
       ha="event.button", hints=("button", "remote", "scene")),
)

DEVICE_TYPES: Mapping[str, DeviceType] = {t.name: t for t in _DEFINITIONS}

# When several types fit the capabilities alone, the earlier one here wins: life safety and
# specific sensors before the generic ones a device is also compatible with.
_PRECEDENCE: tuple[str, ...] = (
    "smoke_detector", "gas_detector", "co_detector", "water_leak_sensor", "fall_detector",
    "emergency_button", "health_monitor", "alarm_panel", "lock", "doorbell", "camera", "charger",
    "climate", "curtain", "valve", "light", "plug", "switch", "electricity_meter", "water_meter",
    "gas_meter", "presence_sensor", "motion_sensor", "contact_sensor", "vibration_sensor",
    "air_quality_monitor", "siren", "parking_sensor", "bin_sensor", "locker", "illuminance_sensor",
    "climate_sensor", "button",
)


# A plug is a relay in a case: only its description tells.
_HINT_ONLY = frozenset({"plug"})
_LIGHT_ONLY = frozenset({"brightness", "color_temperature", "color"})

# Facility types share capabilities with household ones, so their hints are tried first.
_HINT_ORDER: tuple[str, ...] = ("street_light", "gate", *_PRECEDENCE)


def _check() -> None:
    for device_type in _DEFINITIONS:
        unknown = device_type.capabilities - CAPABILITIES.keys()
        if unknown:
            raise RuntimeError(f"device type {device_type.name} names unknown capabilities {unknown}")
    if set(_HINT_ORDER) != DEVICE_TYPES.keys():
        raise RuntimeError("every device type must appear in the inference order")


_check()


def get(name: str) -> DeviceType:
    return DEVICE_TYPES[name]


def infer(capabilities: Iterable[str], description: str = "") -> str | None:
    """The most plausible type for a device with these capabilities, or None.

    A type whose hint words appear in ``description`` (a vendor's model description) wins when its
    capabilities are satisfied; otherwise the first satisfied type in precedence order.
    """
    present = set(capabilities)
    text = f" {description.lower()} "
    for name in _HINT_ORDER:
        candidate = DEVICE_TYPES[name]
        if candidate.satisfied_by(present) and any(hint in text for hint in candidate.hints):
            return name
    # Types only a description can reveal (street light vs. light, gate vs. curtain) are never
    # chosen from capabilities alone.
    for name in _PRECEDENCE:
        if name in _HINT_ONLY or not DEVICE_TYPES[name].satisfied_by(present):
            continue
        if name == "light" and not present & _LIGHT_ONLY:
            continue  # a bare relay is a switch until something says it drives a lamp
        return name
    return None
