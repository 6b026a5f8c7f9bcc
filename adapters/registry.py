"""Adapter discovery through the `lienthong.adapters` entry-point group, lookup by name, and sniffing."""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib.metadata import entry_points

from adapters.base import Adapter
from fhir_server.logsafe import log_failure

GROUP = "lienthong.adapters"
log = logging.getLogger(__name__)

# Built-in fallback so an uninstalled source checkout still finds the bundled adapters.
_BUILTIN = {"qd130": "adapters.qd130.plugin:Qd130Adapter", "hl7v2": "adapters.hl7v2.plugin:Hl7v2Adapter"}


def _load_target(target: str):
    """Import "module:Class" and return the class."""
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@lru_cache(maxsize=1)
def _discover() -> tuple[dict[str, Adapter], dict[str, str]]:
    """Instantiate every registered adapter once; failures are kept as reasons, with a warning."""
    found: dict[str, Adapter] = {}
    broken: dict[str, str] = {}
    targets = {ep.name: ep for ep in entry_points(group=GROUP)}
    for name, target in _BUILTIN.items():
        targets.setdefault(name, target)
    for name in sorted(targets):
        ep = targets[name]
        try:
            cls = ep.load() if hasattr(ep, "load") else _load_target(ep)
            inst = cls()
            if not isinstance(inst, Adapter):
                raise TypeError(f"{cls!r} does not implement the Adapter protocol")
            found[name] = inst
        except Exception as exc:  # one broken plug-in must not take the others down
            broken[name] = f"{type(exc).__name__}: {exc}"
            log.warning("adapter %s could not be loaded: %s", name, broken[name])
    return found, broken


def adapters() -> dict[str, Adapter]:
    """All adapters that loaded, by name."""
    return dict(_discover()[0])


def broken_adapters() -> dict[str, str]:
    """Adapters registered but not loadable, with the reason."""
    return dict(_discover()[1])


def get_adapter(name: str) -> Adapter:
    """The adapter registered under `name`; KeyError with the available names otherwise."""
    found, broken = _discover()
    if name in found:
        return found[name]
    if name in broken:
        raise KeyError(f"adapter {name!r} is registered but failed to load: {broken[name]}")
    raise KeyError(f"unknown adapter {name!r}; available: {', '.join(sorted(found)) or 'none'}")


def detect(payload: bytes, content_type: str | None = None) -> Adapter | None:
    """The first adapter (by name) whose sniff() accepts the payload, or None."""
    for name, adapter in sorted(_discover()[0].items()):
        try:
            if adapter.sniff(payload, content_type):
                return adapter
        except Exception as exc:  # a sniff bug in one plug-in must not block detection by the others
            log_failure(log, "sniff of adapter %s failed", exc, name)
    return None


def reset() -> None:
    """Forget discovered adapters (tests that install plug-ins at run time)."""
    _discover.cache_clear()
