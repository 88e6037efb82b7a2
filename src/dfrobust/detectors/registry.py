"""Detectors by name: a decorator registers a class, `build_detector` makes one
from its config block.

The class carries the paper's settings as `defaults`; the block in the
workflow config overrides any of them, and its schema is generated from the
class (dfrobust.core.configurable). Adding a detector means one module with
a registered class in this package (modules are found and imported by
`dfrobust.detectors`); nothing else.
"""

from __future__ import annotations

from typing import Any

from dfrobust.core.configurable import Registry

DETECTORS = Registry("detector", "detectors", family="detector")
register = DETECTORS.register
detector_class = DETECTORS.get
resolve_config = DETECTORS.resolve
config_schema = DETECTORS.schema


def available_detectors() -> list[str]:
    return DETECTORS.names()


def build_detector(name: str, cfg: dict[str, Any] | None = None):
    """A detector built from its (partial) config block; weights as `pretrained` says."""
    return detector_class(name)(resolve_config(name, cfg))


def build_data(name: str, cfg: dict[str, Any] | None = None):
    """What detector `name` reads (its class's `data_class`), from its (partial) config block."""
    return detector_class(name).data_class(resolve_config(name, cfg), name)
