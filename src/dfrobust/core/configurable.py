"""Classes configured by a config block, and registries of them by name: one
source per setting.

A configurable class states its defaults (`defaults`, merged over its
parents') and, for settings its family does not share, their schema
(`settings`: key -> JSON schema, or just a description). Settings a whole
family shares (e.g. every detector's optimiser) are described once in the
shared schema definitions (core/schema/defs.yaml, `$defs/<family>`). A
setting with neither gets its type from its default value. The config
block's schema, defaults included, is generated from these, so a new class
needs no schema edit.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, ClassVar

from dfrobust.core.config import check, deep_update, definitions
from dfrobust.core.errors import InputError

_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"), (dict, "object"))


class Configurable:
    """Mixin: `defaults` and `settings` of a subclass extend its parent's."""

    defaults: ClassVar[dict[str, Any]] = {}
    settings: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        parent = next(base for base in cls.__mro__[1:] if issubclass(base, Configurable))
        cls.defaults = deep_update(parent.defaults, cls.__dict__.get("defaults", {}))
        cls.settings = {**parent.settings, **cls.__dict__.get("settings", {})}


def _inferred(value) -> dict:
    """Schema of a setting known only by its default value (bool before int: True is an int)."""
    return next(({"type": name} for kind, name in _TYPES if isinstance(value, kind)), {})


def _with_defaults(schema: dict, default, defs: dict) -> dict:
    """`schema` (its $ref resolved) with `default` written into it (and into
    its properties, for a nested block)."""
    while "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        schema = {**copy.deepcopy(target), **{k: v for k, v in schema.items() if k != "$ref"}}
    schema = copy.deepcopy(schema)
    if isinstance(default, dict) and "properties" in schema:
        unknown = set(default) - set(schema["properties"])
        if unknown:
            raise ValueError(f"defaults {sorted(unknown)} have no schema in {schema.get('description', 'a block')}")
        schema["properties"] = {key: _with_defaults(sub, default[key], defs) if key in default else sub
                                for key, sub in schema["properties"].items()}
    schema["default"] = copy.deepcopy(default)
    return schema


def block_schema(cls: type, family: str | None) -> dict:
    """JSON schema of one class's config block, defaults included; `family` names
    the `$defs` entry describing the settings its family shares."""
    defs = definitions()
    shared = defs[family]["properties"] if family else {}
    properties = {}
    for key, default in cls.defaults.items():
        own = cls.settings.get(key)
        if isinstance(own, str):
            own = {**(shared.get(key) or _inferred(default)), "description": own}
        schema = own or shared.get(key) or {**_inferred(default), "description": f"{key} (see {cls.__module__})"}
        properties[key] = _with_defaults(schema, default, defs)
    doc = (cls.__doc__ or cls.__module__).strip().split("\n\n")[0]
    return {"type": "object", "additionalProperties": False, "default": {}, "description": " ".join(doc.split()),
            "properties": properties}


class Registry:
    """Configurable classes by name (the detectors, the training procedures).

    `block` is the config block holding one sub-block per registered name,
    `family` the `$defs` entry of the settings they share (or None).
    """

    def __init__(self, kind: str, block: str, family: str | None = None):
        self.kind, self.block, self.family = kind, block, family
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: make a class buildable under `name`."""

        def decorate(cls: type) -> type:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered by {self._classes[name].__module__}")
            cls.name = name
            self._classes[name] = cls
            return cls

        return decorate

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type:
        try:
            return self._classes[name]
        except KeyError:
            raise InputError(f"unknown {self.kind} {name!r} (known: {', '.join(self.names())})") from None

    def resolve(self, name: str, cfg: dict[str, Any] | None) -> dict[str, Any]:
        """The class defaults overridden by `cfg` (nested blocks merged key by key), validated.

        An unknown key is an error naming it: a misspelt `epoch:` must not
        silently train with the default.
        """
        cls = self.get(name)
        schema = block_schema(cls, self.family)
        resolved = _merge(cls.defaults, cfg or {}, f"{self.block}.{name}", schema)
        check(resolved, schema, f"{self.block}.{name}")
        return resolved

    def schema(self) -> dict:
        """Schema of the whole config block: one property per registered class."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.block,
            "description": f"One block per {self.kind} (its registered name); each key overrides one of its "
                           f"settings, whose defaults are the paper's. Generated from the {self.kind} classes.",
            "type": "object",
            "additionalProperties": False,
            "properties": {name: block_schema(cls, self.family) for name, cls in sorted(self._classes.items())},
        }


def _merge(defaults: dict, cfg: dict, where: str, schema: dict) -> dict:
    """`cfg` over `defaults`, key by key. A key with no default is accepted where the
    schema knows it (an option of a shared block, e.g. the `step` schedule's
    step_epochs): defaults stay minimal, so a new option reruns no existing job."""
    if not isinstance(cfg, dict):
        raise InputError(f"config key '{where}': expected a mapping, got {type(cfg).__name__}")
    known = schema.get("properties", {})
    out = copy.deepcopy(defaults)
    for key, value in cfg.items():
        if key not in defaults and key not in known:
            raise InputError(f"config key '{where}.{key}': unknown key (known: {', '.join(sorted(set(defaults) | set(known)))})")
        if isinstance(defaults.get(key), dict):
            out[key] = _merge(defaults[key], value, f"{where}.{key}", known.get(key, {}))
        else:
            out[key] = copy.deepcopy(value)
    return out
