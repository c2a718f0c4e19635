"""What a device can sense or do, typed: the vocabulary every adapter translates into.

A capability fixes the value type, the unit (one canonical unit per capability, so a rule on
``power_w`` never has to ask whether a plug reported kW), the plausible range and whether the
platform may write it. Adapters convert vendor units before validating; a value outside the range
is refused with a reason instead of being stored, because a wrong reading (a smoke detector at
400 °C, a meter at -3 kWh) is worse than a missing one.

Names follow the architecture sketch (``power_w``, ``energy_kwh``, ``water_m3``, ``gas_ppm``,
``pm2_5``...) where it fixed them, otherwise Matter clusters and Home Assistant device classes;
the ``matter`` and ``ha`` fields say where a name comes from, and ``aliases`` lets a lookup by
the Home Assistant spelling (``pm25``, ``carbon_dioxide``, ``moisture``) find the same capability.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cityweave.devices.reasons import Reason
from cityweave.devices.units import UnitError, convert, normalize_unit

Value = bool | int | float | str | dict[str, Any] | None


class ValueType(enum.StrEnum):
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    ENUM = "enum"
    STR = "str"
    OBJECT = "object"


class Direction(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    READWRITE = "readwrite"


class Kind(enum.StrEnum):
    """How the rule engine should treat successive values."""

    MEASUREMENT = "measurement"  # a sample of a continuous quantity
    STATE = "state"  # a discrete condition; rules fire on change
    EVENT = "event"  # something happened at the timestamp; every value counts, even repeats
    SETTING = "setting"  # configuration the device reports back
    DIAGNOSTIC = "diagnostic"  # about the device itself, not the world


@dataclass(frozen=True, slots=True)
class ObjectField:
    """One member of an object-valued capability (colour, blood pressure)."""

    name: str
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    value_type: ValueType
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] = ()
    direction: Direction = Direction.READ
    kind: Kind = Kind.MEASUREMENT
    matter: str | None = None
    ha: str | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    fields: tuple[ObjectField, ...] = ()
    # Life-safety capabilities: a value of True means somebody may be in danger.
    safety: bool = False

    @property
    def readable(self) -> bool:
        return self.direction in (Direction.READ, Direction.READWRITE)

    @property
    def writable(self) -> bool:
        return self.direction in (Direction.WRITE, Direction.READWRITE)


@dataclass(frozen=True, slots=True)
class Validation:
    """The outcome of :func:`validate`: a clean value, or a reason it was refused."""

    ok: bool
    value: Value = None
    reason: Reason | None = None
    detail: str = ""

    @classmethod
    def accept(cls, value: Value) -> Validation:
        return cls(True, value)

    @classmethod
    def refuse(cls, reason: Reason, detail: str) -> Validation:
        return cls(False, None, reason, detail)


R, W, RW = Direction.READ, Direction.WRITE, Direction.READWRITE
M, S, E, SET, D = Kind.MEASUREMENT, Kind.STATE, Kind.EVENT, Kind.SETTING, Kind.DIAGNOSTIC
_TEXT_LIMIT = 256


def _b(name: str, *, direction: Direction = R, kind: Kind = S, **kw: Any) -> Capability:
    return Capability(name, ValueType.BOOL, direction=direction, kind=kind, **kw)


def _f(name: str, unit: str | None, lo: float | None, hi: float | None, **kw: Any) -> Capability:
    kw.setdefault("kind", M)
    return Capability(name, ValueType.FLOAT, unit=unit, minimum=lo, maximum=hi, **kw)


def _i(name: str, unit: str | None, lo: float | None, hi: float | None, **kw: Any) -> Capability:
    kw.setdefault("kind", M)
    return Capability(name, ValueType.INT, unit=unit, minimum=lo, maximum=hi, **kw)


def _e(name: str, values: Iterable[str], **kw: Any) -> Capability:
    kw.setdefault("kind", S)
    return Capability(name, ValueType.ENUM, enum=tuple(values), **kw)


_DEFINITIONS: tuple[Capability, ...] = (
    # --- switching and light -------------------------------------------------------------
    _b("on_off", direction=RW, matter="OnOff.OnOff", ha="switch", description="Output energised."),
    _f("brightness", "%", 0, 100, direction=RW, kind=S, matter="LevelControl.CurrentLevel",
       ha="light.brightness", description="Light level as a percentage of maximum (Zigbee 0-254 and "
       "HA 0-255 are rescaled)."),
    _i("color_temperature", "K", 1000, 12000, direction=RW, kind=S,
       matter="ColorControl.ColorTemperatureMireds", ha="light.color_temp_kelvin",
       description="White colour temperature in kelvin (mired values are converted)."),
    Capability("color", ValueType.OBJECT, direction=RW, kind=S, matter="ColorControl",
               ha="light.hs_color", description="Colour as hue/saturation, CIE xy or RGB.",
               fields=(ObjectField("h", 0, 360), ObjectField("s", 0, 100), ObjectField("x", 0, 1),
                       ObjectField("y", 0, 1), ObjectField("r", 0, 255), ObjectField("g", 0, 255),
                       ObjectField("b", 0, 255))),
    # --- openings, motion, presence ------------------------------------------------------
    _b("contact", matter="BooleanState.StateValue", ha="binary_sensor.door (inverted)",
       description="True when the contact is made, i.e. the door or window is CLOSED (Matter and "
       "Zigbee convention; HA's door/window/opening classes are on=open and are inverted).",
       aliases=("door", "window", "opening")),
    _b("motion", ha="binary_sensor.motion", description="Movement detected (PIR, radar motion)."),
    _b("occupancy", matter="OccupancySensing.Occupancy", ha="binary_sensor.occupancy",
       description="The watched area is occupied."),
    _b("presence", ha="binary_sensor.presence",
       description="A person is present, including still ones (mmWave radar)."),
    _i("occupant_count", None, 0, 1000, kind=S, description="People counted in the area."),
    _b("vibration", ha="binary_sensor.vibration"),
    _e("vibration_event", ("vibration", "tilt", "drop"), kind=E),
    _b("tamper", ha="binary_sensor.tamper", description="Casing opened or device moved."),
    # --- life safety ---------------------------------------------------------------------
    _b("smoke", matter="SmokeCoAlarm.SmokeState", ha="binary_sensor.smoke", safety=True),
    _f("smoke_density", None, 0, 100000,
       description="Smoke density on the vendor's own scale (no common unit exists)."),
    _b("gas", ha="binary_sensor.gas", safety=True, description="Combustible gas detected."),
    _f("gas_ppm", "ppm", 0, 1_000_000, description="Combustible gas concentration."),
    _f("gas_lel", "%LEL", 0, 100, description="Combustible gas as % of the lower explosive limit."),
    _f("gas_density", None, 0, 100000, description="Gas level on the vendor's own scale."),
    _b("carbon_monoxide", matter="SmokeCoAlarm.COState", ha="binary_sensor.carbon_monoxide",
       safety=True, description="CO alarm."),
    _f("co_ppm", "ppm", 0, 100000, matter="CarbonMonoxideConcentrationMeasurement",
       ha="sensor.carbon_monoxide", aliases=("co",)),
    _b("water_leak", matter="BooleanState.StateValue (water leak detector)",
       ha="binary_sensor.moisture", safety=True, aliases=("moisture", "leak")),
    _b("siren", direction=RW, ha="siren", description="Siren or alarm sounder active."),
    _b("alarm_muted", direction=RW, matter="SmokeCoAlarm.DeviceMuted",
       description="The local alarm sound is silenced."),
    _b("self_test", direction=RW, kind=S, matter="SmokeCoAlarm.TestInProgress",
       description="Self-test running (write true to start one). Safety readings in the same "
       "message are marked with quality 'test'."),
    _e("self_test_result", ("checking", "success", "failure", "unknown"), kind=D),
    _b("preheating", kind=D, ha="binary_sensor.cold", description="Sensor still warming up."),
    _b("fault", kind=D, ha="binary_sensor.problem", description="The device reports a fault."),
    _e("alarm_state", ("disarmed", "armed_home", "armed_away", "armed_night", "armed_vacation",
                       "armed_custom_bypass", "pending", "arming", "disarming", "triggered"),
       direction=RW, ha="alarm_control_panel"),
    _b("duress", safety=True, description="Unlocked under duress (hijack code/finger)."),
    _b("emergency_call", kind=E, safety=True,
       description="An emergency call was raised (SOS/panic button, alarm panel SOS)."),
    _b("fall", safety=True, description="A fall was confirmed."),
    _e("fall_state", ("none", "suspected", "fall"),
       description="Fall detector state, including the 'maybe' stage some radars report."),
    # --- access ---------------------------------------------------------------------------
    _e("lock", ("locked", "unlocked", "not_fully_locked", "jammed", "locking", "unlocking", "open"),
       direction=RW, matter="DoorLock.LockState", ha="lock", aliases=("lock_state",)),
    _b("child_lock", direction=RW, kind=SET, description="Local buttons disabled."),
    _b("doorbell", kind=E, ha="event.doorbell"),
    Capability("button_event", ValueType.STR, kind=E, ha="event.button",
               matter="Switch (generic switch events)",
               description="A button press: single, double, triple, hold, release, ... with an "
               "endpoint for multi-button devices."),
    _b("compartment_occupied", description="A parcel-locker compartment holds an item."),
    # --- climate ------------------------------------------------------------------------------
    _f("temperature", "°C", -70, 200, matter="TemperatureMeasurement.MeasuredValue",
       ha="sensor.temperature"),
    _f("device_temperature", "°C", -70, 200, kind=D, description="Internal device temperature."),
    _f("humidity", "%", 0, 100, matter="RelativeHumidityMeasurement.MeasuredValue",
       ha="sensor.humidity"),
    _f("pressure", "hPa", 300, 1100, matter="PressureMeasurement.MeasuredValue",
       ha="sensor.atmospheric_pressure", aliases=("atmospheric_pressure",)),
    _f("target_temperature", "°C", -20, 100, direction=RW, kind=S,
       matter="Thermostat.OccupiedHeatingSetpoint", ha="climate.temperature",
       aliases=("setpoint",)),
    _e("hvac_mode", ("off", "heat", "cool", "auto", "dry", "fan_only", "heat_cool"), direction=RW,
       matter="Thermostat.SystemMode", ha="climate.hvac_mode"),
    _e("hvac_action", ("off", "idle", "heating", "cooling", "drying", "fan", "preheating",
                       "defrosting"), matter="Thermostat.ThermostatRunningState",
       ha="climate.hvac_action"),
    _e("fan_mode", ("auto", "low", "medium", "high", "on", "off"), direction=RW,
       matter="FanControl.FanMode", ha="climate.fan_mode"),
    _b("window_open", description="Open-window detection (TRVs stop heating)."),
    _b("valve_open", direction=RW, matter="ValveConfigurationAndControl.CurrentState",
       ha="valve"),
    _f("valve_position", "%", 0, 100, direction=RW, kind=S,
       matter="ValveConfigurationAndControl.CurrentLevel", ha="valve.position"),
    # --- air ------------------------------------------------------------------------------
    _f("pm1", "µg/m³", 0, 10000, matter="Pm1ConcentrationMeasurement", ha="sensor.pm1"),
    _f("pm2_5", "µg/m³", 0, 10000, matter="Pm25ConcentrationMeasurement", ha="sensor.pm25",
       aliases=("pm25",)),
    _f("pm10", "µg/m³", 0, 10000, matter="Pm10ConcentrationMeasurement", ha="sensor.pm10"),
    _f("co2", "ppm", 0, 100000, matter="CarbonDioxideConcentrationMeasurement",
       ha="sensor.carbon_dioxide", aliases=("carbon_dioxide",)),
    _f("tvoc", "µg/m³", 0, 1_000_000, matter="TotalVolatileOrganicCompoundsConcentrationMeasurement",
       ha="sensor.volatile_organic_compounds", aliases=("volatile_organic_compounds",)),
    _f("tvoc_ppb", "ppb", 0, 1_000_000, ha="sensor.volatile_organic_compounds_parts",
       description="TVOC as a volume fraction; kept apart from µg/m³ because converting needs a "
       "guess at the mixture.", aliases=("volatile_organic_compounds_parts",)),
    _i("voc_index", None, 0, 500, description="Sensirion VOC index (100 = typical)."),
    _f("formaldehyde", "mg/m³", 0, 100, matter="FormaldehydeConcentrationMeasurement",
       aliases=("hcho", "ch2o")),
    _i("aqi", None, 0, 1000, ha="sensor.aqi"),
    _e("air_quality", ("unknown", "excellent", "good", "fair", "moderate", "poor", "very_poor",
                       "extremely_poor", "unhealthy"), matter="AirQuality.AirQuality"),
    _f("illuminance", "lx", 0, 200000, matter="IlluminanceMeasurement.MeasuredValue",
       ha="sensor.illuminance"),
    _e("illuminance_level", ("dark", "twilight", "bright")),
    # --- energy and utilities -----------------------------------------------------------
    _f("power_w", "W", -10_000_000, 10_000_000, matter="ElectricalPowerMeasurement.ActivePower",
       ha="sensor.power", aliases=("power",), description="Active power; negative = export."),
    _f("apparent_power", "VA", 0, 10_000_000, ha="sensor.apparent_power"),
    _f("reactive_power", "var", -10_000_000, 10_000_000, ha="sensor.reactive_power"),
    _f("power_factor", None, -1, 1, ha="sensor.power_factor",
       description="Ratio -1..1 (HA's percent form is divided by 100)."),
    _f("energy_kwh", "kWh", 0, 1e10, matter="ElectricalEnergyMeasurement.CumulativeEnergyImported",
       ha="sensor.energy", aliases=("energy",), description="Cumulative imported energy."),
    _f("energy_exported_kwh", "kWh", 0, 1e10,
       matter="ElectricalEnergyMeasurement.CumulativeEnergyExported",
       description="Cumulative exported (returned) energy."),
    _f("voltage", "V", -100_000, 100_000, matter="ElectricalPowerMeasurement.Voltage",
       ha="sensor.voltage"),
    _f("current", "A", -100_000, 100_000, matter="ElectricalPowerMeasurement.ActiveCurrent",
       ha="sensor.current"),
    _f("frequency", "Hz", 0, 1000, matter="ElectricalPowerMeasurement.Frequency",
       ha="sensor.frequency"),
    _f("water_m3", "m³", 0, 1e9, ha="sensor.water", aliases=("water",),
       description="Cumulative water volume."),
    _f("gas_m3", "m³", 0, 1e9, ha="sensor.gas", description="Cumulative gas volume (meter)."),
    _f("battery", "%", 0, 100, kind=D, matter="PowerSource.BatPercentRemaining",
       ha="sensor.battery"),
    _b("battery_low", kind=D, matter="PowerSource.BatChargeLevel", ha="binary_sensor.battery"),
    _e("battery_level", ("low", "medium", "high"), kind=D),
    _f("battery_voltage", "V", 0, 100, kind=D),
    _b("mains_power", kind=D, ha="binary_sensor.power", description="Running on mains power."),
    _e("charging_state", ("not_charging", "charging", "charged", "discharging", "not_plugged_in",
                          "plugged_in", "session_ending", "fault"),
       matter="EnergyEvse.State / PowerSource.BatChargeState", ha="binary_sensor.battery_charging",
       description="Battery or EV charger state."),
    # --- radio ----------------------------------------------------------------------------
    _f("rssi", "dBm", -150, 30, kind=D, ha="sensor.signal_strength",
       aliases=("signal_strength",)),
    _i("link_quality", None, 0, 255, kind=D, description="Zigbee LQI."),
    # --- covers and gates ------------------------------------------------------------------
    _f("cover_position", "%", 0, 100, direction=RW, kind=S,
       matter="WindowCovering.CurrentPositionLiftPercent100ths (inverted)",
       ha="cover.current_position", description="0 = closed, 100 = fully open (HA convention)."),
    _e("cover_state", ("open", "closed", "opening", "closing", "stopped"), ha="cover.state"),
    _e("cover_control", ("open", "close", "stop"), direction=W, kind=S,
       matter="WindowCovering.UpOrOpen/DownOrClose/StopMotion", ha="cover.command"),
    # --- health -----------------------------------------------------------------------------
    _i("heart_rate", "bpm", 20, 300),
    _i("respiration_rate", "/min", 0, 100),
    Capability("blood_pressure", ValueType.OBJECT, unit="mmHg", kind=M,
               fields=(ObjectField("systolic", 40, 300, required=True),
                       ObjectField("diastolic", 20, 200, required=True),
                       ObjectField("pulse", 20, 300))),
    _f("spo2", "%", 0, 100, description="Blood oxygen saturation."),
    _f("body_temperature", "°C", 25, 45),
    # --- community facilities ------------------------------------------------------------------
    _b("parking_occupied", description="A vehicle stands on the parking space."),
    _f("fill_level", "%", 0, 100, description="Waste bin or tank fill level."),
    _e("camera_event", ("motion", "person", "vehicle", "face", "line_crossing", "intrusion",
                        "loitering", "tamper", "fire", "smoke", "fall", "crowd", "plate"), kind=E),
    Capability("plate_number", ValueType.STR, kind=E, description="Licence plate read by ANPR."),
    # --- generic, for entities a vendor does not classify ----------------------------------
    _b("binary", description="An unclassified on/off input; the endpoint says which."),
    _f("measurement", None, None, None,
       description="An unclassified number; its unit travels with the reading."),
    Capability("text", ValueType.STR, kind=S, description="An unclassified text state."),
)

CAPABILITIES: Mapping[str, Capability] = {c.name: c for c in _DEFINITIONS}
_ALIASES: dict[str, str] = {alias: c.name for c in _DEFINITIONS for alias in c.aliases}


class UnknownCapability(KeyError):
    pass


def get(name: str) -> Capability:
    """The capability called ``name`` (or one of its aliases)."""
    if name in CAPABILITIES:
        return CAPABILITIES[name]
    if name in _ALIASES:
        return CAPABILITIES[_ALIASES[name]]
    raise UnknownCapability(name)


def find(name: str) -> Capability | None:
    try:
        return get(name)
    except UnknownCapability:
        return None


_TRUE = {"true", "on", "1", "yes"}
_FALSE = {"false", "off", "0", "no"}


def _number(value: Any) -> float | None:
    """A finite number from an int, float or numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _in_range(cap_name: str, number: float, lo: float | None, hi: float | None) -> Validation | None:
    if lo is not None and number < lo or hi is not None and number > hi:
        return Validation.refuse(Reason.OUT_OF_RANGE, f"{cap_name}={number:g} outside [{lo}, {hi}]")
    return None


def validate(capability: Capability | str, value: Any, unit: str | None = None) -> Validation:
    """Coerce ``value`` (given in ``unit``, default the capability's own) or say why not.

    Never raises: a bad value is a :class:`Validation` with a reason, because one odd field in a
    device message must not stop the rest of the message from being used.
    """
    try:
        cap = capability if isinstance(capability, Capability) else get(capability)
    except UnknownCapability:
        return Validation.refuse(Reason.UNKNOWN_CAPABILITY, f"no capability {capability!r}")
    if value is None:
        return Validation.refuse(Reason.WRONG_TYPE, f"{cap.name}: null value")
    kind = cap.value_type
    if kind is ValueType.BOOL:
        if isinstance(value, bool):
            return Validation.accept(value)
        if isinstance(value, int) and value in (0, 1):
            return Validation.accept(bool(value))
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return Validation.accept(value.strip().lower() in _TRUE)
        return Validation.refuse(Reason.WRONG_TYPE, f"{cap.name}: expected a boolean, got {value!r:.40}")
    if kind in (ValueType.INT, ValueType.FLOAT):
        number = _number(value)
        if number is None:
            return Validation.refuse(Reason.WRONG_TYPE, f"{cap.name}: expected a number, got {value!r:.40}")
        if unit is not None and cap.unit is not None and normalize_unit(unit) != cap.unit:
            try:
                # Rounded: 3050 mV must become 3.05 V, not 3.0500000000000003.
                number = round(convert(number, unit, cap.unit), 9)
            except UnitError as exc:
                return Validation.refuse(Reason.UNIT_MISMATCH, f"{cap.name}: {exc}")
        if problem := _in_range(cap.name, number, cap.minimum, cap.maximum):
            return problem
        if kind is ValueType.INT:
            return Validation.accept(int(round(number)))
        return Validation.accept(number)
    if kind is ValueType.ENUM:
        if not isinstance(value, str):
            return Validation.refuse(Reason.WRONG_TYPE, f"{cap.name}: expected text, got {value!r:.40}")
        text = value.strip().lower()
        if text not in cap.enum:
            return Validation.refuse(Reason.INVALID_VALUE, f"{cap.name}: {value!r:.40} not one of {list(cap.enum)}")
        return Validation.accept(text)
    if kind is ValueType.STR:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return Validation.refuse(Reason.WRONG_TYPE, f"{cap.name}: expected text, got {value!r:.40}")
        text = str(value)
        if len(text) > _TEXT_LIMIT:
            return Validation.refuse(Reason.OUT_OF_RANGE, f"{cap.name}: text longer than {_TEXT_LIMIT}")
        return Validation.accept(text)
    return _validate_object(cap, value)


def _validate_object(cap: Capability, value: Any) -> Validation:
    if not isinstance(value, Mapping):
        return Validation.refuse(Reason.WRONG_TYPE, f"{cap.name}: expected an object, got {value!r:.40}")
    known = {f.name: f for f in cap.fields}
    clean: dict[str, Any] = {}
    for key, member in value.items():
        spec = known.get(key)
        if spec is None:
            return Validation.refuse(Reason.INVALID_VALUE, f"{cap.name}: unexpected member {key!r:.40}")
        number = _number(member)
        if number is None:
            return Validation.refuse(Reason.WRONG_TYPE, f"{cap.name}.{key}: expected a number, got {member!r:.40}")
        if problem := _in_range(f"{cap.name}.{key}", number, spec.minimum, spec.maximum):
            return problem
        clean[key] = int(number) if number.is_integer() else number
    missing = [f.name for f in cap.fields if f.required and f.name not in clean]
    if missing or not clean:
        return Validation.refuse(Reason.INVALID_VALUE, f"{cap.name}: missing {missing or 'members'}")
    return Validation.accept(clean)
