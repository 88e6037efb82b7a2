"""Detectors by name: a decorator registers a class, `build_detector` makes one
from its config block.

The class carries the paper's settings as `defaults`; the block in the
workflow config overrides any of them, and its schema is generated from the
class (dfrobust.core.configurable). Adding a detector means one module with
a registered class in this package (modules are found and imported by
`dfrobust.detectors`); nothing else.

A detector may also live outside the project (a plugin): a module that
registers a class, named by its block's `module` key (`detectors: {mynet:
{module: mypackage.mynet}}`) or by an entry point of the group
`dfrobust.detectors` of an installed package. It is imported before the
config is validated (dfrobust.config) and wherever a block naming it is
built (a training or scoring job), so it trains and scores as the built-in ones.
"""

from __future__ import annotations

import importlib
from typing import Any

from dfrobust.core.configurable import Registry
from dfrobust.core.errors import InputError

DETECTORS = Registry("detector", "detectors", family="detector")
register = DETECTORS.register
ENTRY_POINTS = "dfrobust.detectors"  # entry-point group of installed detector plugins
MODULE = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
          "description": "The module (outside the project) that registers this detector: imported before the config is "
                         "validated and in every job that builds the detector (on PYTHONPATH, or installed)."}


def available_detectors() -> list[str]:
    return DETECTORS.names()


def detector_class(name: str) -> type:
    """The class registered as `name` (the installed plugins' entry points are loaded when it is not)."""
    if name not in DETECTORS.names():
        load_entry_points()
    return DETECTORS.get(name)


def load_plugin(module: str, key: str) -> list[str]:
    """Import a plugin module (config key `key` names it); the detectors it registered."""
    before = set(DETECTORS.names())
    try:
        importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - whatever breaks in a user's module, the config key says which
        raise InputError(f"config key '{key}': cannot import detector module {module!r} ({type(err).__name__}: {err})"
                         f"{' - is its folder on PYTHONPATH, or its package installed?' if isinstance(err, ImportError) else ''}"
                         ) from None
    return sorted(set(DETECTORS.names()) - before)


def load_plugins(modules: dict[str, str]) -> None:
    """Import the plugin modules a config names ({config key: module}); each must register the
    detector whose block names it (`detectors.<name>.module`)."""
    for key, module in modules.items():
        load_plugin(module, key)
        name = key.split(".")[1] if key.startswith("detectors.") else None
        if name and name not in DETECTORS.names():
            raise InputError(f"config key '{key}': module {module!r} registers no detector {name!r} "
                             f"(registered: {', '.join(DETECTORS.names())})")


def entry_points() -> list[Any]:
    from importlib.metadata import entry_points as found

    return sorted(found(group=ENTRY_POINTS), key=lambda ep: ep.name)


def load_entry_points() -> None:
    for ep in entry_points():
        try:
            ep.load()
        except Exception as err:  # noqa: BLE001
            raise InputError(f"entry point {ep.name} = {ep.value} (group {ENTRY_POINTS}): cannot import it "
                             f"({type(err).__name__}: {err})") from None


def resolve_config(name: str, cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The class defaults overridden by `cfg` (nested blocks merged key by key), validated; a
    block naming its `module` imports it first, and keeps the key (jobs import it from there)."""
    cfg = dict(cfg or {})
    module = cfg.pop("module", None)
    if module is not None:
        load_plugins({f"detectors.{name}.module": module})
    detector_class(name)
    resolved = DETECTORS.resolve(name, cfg)
    return {**resolved, "module": module} if module is not None else resolved


def config_schema() -> dict:
    """Schema of the `detectors` block: one block per registered class, each also taking `module`."""
    schema = DETECTORS.schema()
    for block in schema["properties"].values():
        block["properties"]["module"] = dict(MODULE)
    return schema


def build_detector(name: str, cfg: dict[str, Any] | None = None):
    """A detector built from its (partial) config block; weights as `pretrained` says."""
    resolved = resolve_config(name, cfg)
    return detector_class(name)(resolved)


def build_data(name: str, cfg: dict[str, Any] | None = None):
    """What detector `name` reads (its class's `data_class`), from its (partial) config block."""
    resolved = resolve_config(name, cfg)
    return detector_class(name).data_class(resolved, name)
