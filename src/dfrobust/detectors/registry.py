"""Detectors by name: a decorator registers a class, `build_detector` makes one
from its config block.

The class carries the paper's settings as `defaults`; the block in the
workflow config overrides any of them. Adding a detector means one module
with a registered class, one import in `dfrobust/detectors/__init__.py` and
one block in config/schema/detectors.yaml.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from dfrobust.errors import InputError

_DETECTORS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make a Detector subclass buildable under `name`."""

    def decorate(cls: type) -> type:
        if name in _DETECTORS and _DETECTORS[name] is not cls:
            raise ValueError(f"detector {name!r} is already registered by {_DETECTORS[name].__module__}")
        cls.name = name
        _DETECTORS[name] = cls
        return cls

    return decorate


def available_detectors() -> list[str]:
    return sorted(_DETECTORS)


def detector_class(name: str) -> type:
    try:
        return _DETECTORS[name]
    except KeyError:
        raise InputError(f"unknown detector {name!r} (known: {', '.join(available_detectors())})") from None


def resolve_config(name: str, cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The class defaults overridden by `cfg` (nested blocks merged key by key).

    An unknown key is an error naming it: a misspelt `epoch:` must not
    silently train with the default.
    """
    cls = detector_class(name)
    return _merge(cls.defaults, cfg or {}, f"detectors.{name}")


def build_detector(name: str, cfg: dict[str, Any] | None = None):
    """A detector built from its (partial) config block; weights as `pretrained` says."""
    return detector_class(name)(resolve_config(name, cfg))


def _merge(defaults: dict, cfg: dict, where: str) -> dict:
    if not isinstance(cfg, dict):
        raise InputError(f"config key '{where}': expected a mapping, got {type(cfg).__name__}")
    out = copy.deepcopy(defaults)
    for key, value in cfg.items():
        if key not in defaults:
            raise InputError(f"config key '{where}.{key}': unknown key (known: {', '.join(sorted(defaults))})")
        if isinstance(defaults[key], dict):
            out[key] = _merge(defaults[key], value, f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out
