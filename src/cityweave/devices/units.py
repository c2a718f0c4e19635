"""Unit spellings and the few conversions devices force on us.

Vendors write the same unit many ways (``℃``, ``C``, ``celsius``; ``kW·h``, ``kwh``; ``ug/m3``,
``ugm3``). Readings carry one canonical spelling per unit so that rules and charts never compare
``°C`` with ``℃``. Conversions are the exact ones only (scale factors and °F); anything that would
need an assumption, such as ppb to µg/m³ for a VOC mixture, is deliberately absent.
"""

from __future__ import annotations

from collections.abc import Callable

# Lower-cased vendor spelling -> canonical spelling.
_SPELLINGS: dict[str, str] = {
    "°c": "°C", "℃": "°C", "c": "°C", "celsius": "°C", "degc": "°C", "deg c": "°C",
    "°f": "°F", "℉": "°F", "f": "°F", "fahrenheit": "°F",
    "k": "K", "kelvin": "K",
    "mired": "mired", "mireds": "mired",
    "%": "%", "percent": "%", "percentage": "%", "pct": "%", "%rh": "%",
    "ppm": "ppm", "ppb": "ppb", "%lel": "%LEL", "lel": "%LEL",
    "µg/m³": "µg/m³", "μg/m³": "µg/m³", "ug/m³": "µg/m³", "µg/m3": "µg/m³", "μg/m3": "µg/m³",
    "ug/m3": "µg/m³", "ugm3": "µg/m³", "µgm3": "µg/m³",
    "mg/m³": "mg/m³", "mg/m3": "mg/m³", "mgm3": "mg/m³",
    "lx": "lx", "lux": "lx",
    "w": "W", "watt": "W", "watts": "W", "kw": "kW", "kilowatt": "kW",
    "va": "VA", "var": "var", "kvar": "kvar",
    "wh": "Wh", "kwh": "kWh", "kw·h": "kWh", "kw.h": "kWh", "kw*h": "kWh", "kw h": "kWh",
    "kilowatt-hour": "kWh", "mwh": "MWh",
    "v": "V", "volt": "V", "mv": "mV", "a": "A", "amp": "A", "ampere": "A", "ma": "mA",
    "hz": "Hz",
    "m³": "m³", "m3": "m³", "l": "L", "liter": "L", "litre": "L", "ft³": "ft³", "ft3": "ft³",
    "hpa": "hPa", "mbar": "hPa", "kpa": "kPa", "pa": "Pa", "bar": "bar",
    "dbm": "dBm", "db": "dB",
    "s": "s", "sec": "s", "second": "s", "seconds": "s", "秒": "s", "min": "min", "minutes": "min",
    "h": "h", "bpm": "bpm", "mmhg": "mmHg", "/min": "/min", "cm": "cm", "m": "m",
}

_FACTORS: dict[tuple[str, str], float] = {
    ("kW", "W"): 1000.0,
    ("Wh", "kWh"): 0.001,
    ("MWh", "kWh"): 1000.0,
    ("mV", "V"): 0.001,
    ("mA", "A"): 0.001,
    ("L", "m³"): 0.001,
    ("ft³", "m³"): 0.028316846592,
    ("µg/m³", "mg/m³"): 0.001,
    ("mg/m³", "µg/m³"): 1000.0,
    ("kPa", "hPa"): 10.0,
    ("Pa", "hPa"): 0.01,
    ("bar", "hPa"): 1000.0,
    ("kvar", "var"): 1000.0,
    ("min", "s"): 60.0,
    ("h", "s"): 3600.0,
}

_FUNCTIONS: dict[tuple[str, str], Callable[[float], float]] = {
    ("°F", "°C"): lambda v: (v - 32.0) * 5.0 / 9.0,
    ("K", "°C"): lambda v: v - 273.15,
    ("mired", "K"): lambda v: 1_000_000.0 / v,
    ("K", "mired"): lambda v: 1_000_000.0 / v,
}


class UnitError(ValueError):
    """No exact conversion exists between the two units."""


def normalize_unit(unit: str | None) -> str | None:
    """The canonical spelling of ``unit``; unknown spellings pass through trimmed, empty is None."""
    if unit is None:
        return None
    text = unit.strip()
    if not text:
        return None
    return _SPELLINGS.get(text.lower(), text)


def convert(value: float, from_unit: str | None, to_unit: str | None) -> float:
    """``value`` expressed in ``to_unit``; raises :class:`UnitError` when that needs a guess."""
    source, target = normalize_unit(from_unit), normalize_unit(to_unit)
    if source == target or source is None or target is None:
        return value
    if (source, target) in _FACTORS:
        return value * _FACTORS[(source, target)]
    if (target, source) in _FACTORS:
        return value / _FACTORS[(target, source)]
    if (source, target) in _FUNCTIONS:
        if source in ("mired", "K") and value == 0:
            raise UnitError(f"cannot convert 0 {source} to {target}")
        return _FUNCTIONS[(source, target)](value)
    raise UnitError(f"no exact conversion from {source!r} to {target!r}")
