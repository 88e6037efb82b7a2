"""Config schemas: load them, fill defaults, validate, and name the bad key.

The schema is split by block and ships with the package (dfrobust/core/schema/):
config.yaml describes the top level, <block>.yaml the block of the same name,
and defs.yaml the pieces several blocks share (quality names, optimiser,
learning-rate schedule, ...), which every block can `$ref` as `#/$defs/<name>`.
Missing keys are filled from the schema's defaults; a wrong key or type fails
with the dotted name of the key. Blocks whose schema is generated from code
(the detectors) are passed in by the caller (dfrobust.config).
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any, Mapping

import jsonschema
import yaml

from dfrobust.core.errors import InputError
from dfrobust.core.settings import Settings

SHARED = "defs"  # defs.yaml: no block of its own, `$defs` for every block
TOP = "config"


@functools.lru_cache(maxsize=None)
def _schema_files() -> dict[str, dict]:
    folder = resources.files("dfrobust.core") / "schema"
    return {entry.name[: -len(".yaml")]: yaml.safe_load(entry.read_text())
            for entry in sorted(folder.iterdir(), key=lambda e: e.name) if entry.name.endswith(".yaml")}


def definitions() -> dict[str, dict]:
    """The shared `$defs` (a deep copy): the one place quality names, the optimiser
    block and the other shared settings are declared."""
    return copy.deepcopy(_schema_files()[SHARED]["$defs"])


def vocabulary(name: str) -> tuple:
    """The values of a shared enum, e.g. vocabulary("quality") -> ("raw", "c23", "c40")."""
    return tuple(definitions()[name]["enum"])


def with_definitions(schema: dict) -> dict:
    """`schema` with the shared `$defs` added (its own `$defs` win)."""
    schema = copy.deepcopy(schema)
    schema["$defs"] = {**definitions(), **schema.get("$defs", {})}
    return schema


def load_schemas() -> tuple[dict, dict[str, dict]]:
    """(top-level schema, {block name: block schema}) of the shipped schema files."""
    files = _schema_files()
    blocks = {name: with_definitions(schema) for name, schema in files.items() if name not in (TOP, SHARED)}
    return with_definitions(files[TOP]), blocks


def resolve_ref(schema: dict, root: dict) -> dict:
    """`schema` with its local `$ref` (if any) followed, its own keys winning."""
    ref = schema.get("$ref")
    if not ref:
        return schema
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref supported, got {ref}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    merged = {**resolve_ref(node, root), **{k: v for k, v in schema.items() if k != "$ref"}}
    return merged


def fill_defaults(value: Any, schema: dict, root: dict) -> Any:
    """Recursively add schema defaults for missing keys (objects are created
    when absent so their own defaults apply), also in the objects of a list
    (an operation, a model row)."""
    schema = resolve_ref(schema, root)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [fill_defaults(item, schema["items"], root) for item in value]
    kind = schema.get("type")
    if not isinstance(value, dict) or not (kind in ("object", None) or isinstance(kind, list) and "object" in kind):
        return value
    for key, sub in schema.get("properties", {}).items():
        sub_resolved = resolve_ref(sub, root)
        if key not in value:
            if "default" in sub_resolved:
                value[key] = copy.deepcopy(sub_resolved["default"])
            elif sub_resolved.get("type") == "object" and "properties" in sub_resolved:
                value[key] = {}
            else:
                continue
        value[key] = fill_defaults(value[key], sub_resolved, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        known = set(schema.get("properties", {}))
        for key in value:
            if key not in known:
                value[key] = fill_defaults(value[key], extra, root)
    return value


def check(value: Any, schema: dict, prefix: str) -> None:
    """Raise InputError naming the first bad key (dotted, under `prefix`)."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join([prefix, *map(str, err.absolute_path)]).strip(".") or "(top level)"
        named = _named_item(value, list(err.absolute_path))
        where += f"' ({named!r})" if named else "'"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        message = err.message
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = set(err.schema.get("properties", {}))
            message = (f"unknown key(s) {sorted(set(err.instance) - known)} "
                       f"(known: {', '.join(sorted(known))})")
        raise InputError(f"config key '{where}: {message}{more}")


def _named_item(value: Any, path: list) -> str | None:
    """The `name` of the innermost named list item on `path` (an operation, a
    model...), so an error says which entry it is about."""
    named = None
    for step in path:
        if isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
            if isinstance(value, dict) and isinstance(value.get("name"), str):
                named = value["name"]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            break
    return named


def resolve_block(name: str, value: dict | None) -> dict:
    """One shipped block (e.g. "demo"), defaults filled and validated."""
    schema = load_schemas()[1][name]
    value = fill_defaults(copy.deepcopy(value) if value is not None else {}, schema, schema)
    check(value, schema, name)
    return value


def block(name: str, value: Mapping | None) -> Settings:
    """One shipped block as the frozen object the library takes (dfrobust.core.settings):
    `value` (a partial block, or one already validated) with the schema's defaults filled once."""
    plain = value.to_dict() if isinstance(value, Settings) else value
    return Settings(resolve_block(name, plain), name)


def block_defaults(name: str) -> dict:
    """A shipped block with nothing set: its defaults."""
    return resolve_block(name, {})


def validate_config(config: dict, generated: dict[str, dict] | None = None) -> dict:
    """The whole config, defaults filled, every block validated, keys sorted.

    `generated`: block name -> schema of blocks whose schema is made by code.
    """
    config = copy.deepcopy(dict(config))
    top, blocks = load_schemas()
    blocks.update({name: with_definitions(schema) for name, schema in (generated or {}).items()})
    top_only = copy.deepcopy(top)
    # the top schema knows which keys exist; each block is checked by its own schema
    for name in blocks:
        top_only.setdefault("properties", {}).setdefault(name, {"description": f"the {name} block"})
    fill_defaults(config, top_only, top_only)
    check(config, top_only, "")
    for name, schema in blocks.items():
        config[name] = fill_defaults(config.get(name, {}) if config.get(name) is not None else {}, schema, schema)
        check(config[name], schema, name)
    return canonical(config)


def canonical(value: Any) -> Any:
    """The same config with every mapping's keys sorted (lists keep their order).

    Snakemake compares a job's params by their text, so two configs that
    differ only in key order (hand-edited vs machine-written YAML) must give
    identical params, or every job would rerun.
    """
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def deep_update(base: dict, update: dict) -> dict:
    """Recursive dict merge (update wins), returning a new dict."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
