"""Vendor adapters, found by looking at this package: adding a vendor means adding one module.

Every public module here (no leading underscore, not ``base``) defines one
:class:`~cityweave.devices.adapters.base.VendorAdapter` subclass with a unique ``name``. Nothing
else has to be registered anywhere.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache
from typing import Any

from cityweave.devices.adapters.base import (
    AdapterSettings,
    DiscoveryError,
    Message,
    VendorAdapter,
    topic_matches,
)

__all__ = [
    "AdapterSettings", "DiscoveryError", "Message", "VendorAdapter", "adapter_classes",
    "adapter_for_topic", "create", "create_all", "topic_matches",
]


@cache
def adapter_classes() -> dict[str, type[VendorAdapter]]:
    """``{name: class}`` for every adapter module in this package."""
    found: dict[str, type[VendorAdapter]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (issubclass(cls, VendorAdapter) and cls.__module__ == module.__name__
                    and not inspect.isabstract(cls)):
                if cls.name in found:
                    raise RuntimeError(f"two adapters are called {cls.name!r}")
                found[cls.name] = cls
    return dict(sorted(found.items()))


def create(name: str, **kwargs: Any) -> VendorAdapter:
    return adapter_classes()[name](**kwargs)


def create_all(**kwargs: Any) -> list[VendorAdapter]:
    """One instance of every adapter, sharing ``directory``, ``settings`` and ``metrics``."""
    return [cls(**kwargs) for cls in adapter_classes().values()]


def adapter_for_topic(adapters: list[VendorAdapter], topic: str) -> VendorAdapter | None:
    """The first adapter subscribed to ``topic``."""
    return next((adapter for adapter in adapters if adapter.handles(topic)), None)
