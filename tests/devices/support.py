"""Finding the shared device fixtures and feeding them through the adapters.

The fixtures live outside the repository (``../shared/fixtures/devices`` next to the checkout, or
``$CITYWEAVE_FIXTURES``) and are never copied in. When they are missing the tests skip, except
under ``CI=true`` where that is a failure, like ``need_service`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cityweave.devices.adapters import create
from cityweave.devices.adapters.base import VendorAdapter
from cityweave.devices.binding import DeviceBinding, InMemoryDirectory
from cityweave.devices.reading import DecodeResult
from cityweave.devices.reasons import Reason

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
NOW = datetime(2026, 3, 1, 8, 15, tzinfo=UTC)


def fixtures_root() -> Path | None:
    configured = os.environ.get("CITYWEAVE_FIXTURES")
    candidate = Path(configured) if configured else REPO.parent / "shared" / "fixtures" / "devices"
    return candidate if candidate.is_dir() else None


def require_fixtures() -> Path:
    root = fixtures_root()
    if root is None:
        reason = "device fixtures not found (set CITYWEAVE_FIXTURES or check out ../shared)"
        if IN_CI:
            pytest.fail(f"{reason}; they are required under CI=true")
        pytest.skip(reason)
    return root


def fixture_files(*patterns: str) -> list[Any]:
    """Parameters for every fixture file matching the glob patterns (relative to the root).

    Collected at import time; when the fixtures are missing a single placeholder parameter lets
    the test run and skip (or fail under CI) instead of silently collecting nothing.
    """
    root = fixtures_root()
    if root is None:
        return [pytest.param(None, id="fixtures-missing")]
    paths = sorted({p for pattern in patterns for p in root.glob(pattern) if p.is_file()})
    return [pytest.param(p, id=str(p.relative_to(root))) for p in paths]


def path_of(param: Path | None) -> Path:
    if param is None:
        require_fixtures()
        raise AssertionError("unreachable")
    return param


def fixture_path(relative: str) -> Path:
    return require_fixtures() / relative


def load_json(relative: str) -> Any:
    return json.loads(fixture_path(relative).read_text("utf-8"))


def adapter(name: str, bindings: Iterable[DeviceBinding] = (), **kwargs: Any) -> tuple[VendorAdapter, InMemoryDirectory]:
    directory = InMemoryDirectory(bindings)
    return create(name, directory=directory, **kwargs), directory


def decode(adapter: VendorAdapter, topic: str, payload: bytes | str | Any) -> DecodeResult:
    if isinstance(payload, str):
        body = payload.encode()
    elif isinstance(payload, bytes):
        body = payload
    else:
        body = json.dumps(payload).encode()
    return adapter.decode(topic, body, NOW)


def values(result: DecodeResult) -> dict[str, Any]:
    """``{"capability" or "capability@endpoint": value}`` for compact assertions."""
    return {f"{r.capability}@{r.endpoint}" if r.endpoint else r.capability: r.value for r in result.readings}


def reasons(result: DecodeResult) -> list[str]:
    return [str(r.reason) for r in result.rejections]


def assert_clean(result: DecodeResult) -> None:
    """Decoded with nothing refused and nothing crashed."""
    assert not result.rejections, [(r.reason, r.field, r.detail) for r in result.rejections]


def assert_no_crash(result: DecodeResult) -> None:
    assert Reason.ADAPTER_ERROR not in result.reasons(), result.rejections
