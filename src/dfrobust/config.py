"""Load and validate the workflow config against its JSON schema.

The schema is split by block: config/schema/config.yaml describes the top
level, and config/schema/<block>.yaml the block of the same name (each file
is a complete schema whose root is that block, so local `$ref`s work).
Missing keys are filled from the schema's defaults; a wrong key or type fails
at start with the dotted name of the key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dfrobust.errors import InputError

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "config" / "schema"


def load_schemas(schema_dir: str | Path = SCHEMA_DIR) -> tuple[dict, dict[str, dict]]:
    """(top-level schema, {block name: block schema})."""
    schema_dir = Path(schema_dir)
    top = yaml.safe_load((schema_dir / "config.yaml").read_text())
    blocks = {
        path.stem: yaml.safe_load(path.read_text())
        for path in sorted(schema_dir.glob("*.yaml"))
        if path.stem != "config"
    }
    return top, blocks


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if not ref:
        return schema
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref supported, got {ref}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return _resolve(node, root)


def fill_defaults(value: Any, schema: dict, root: dict) -> Any:
    """Recursively add schema defaults for missing keys (objects are created
    when absent so their own defaults apply)."""
    schema = _resolve(schema, root)
    if not isinstance(value, dict) or schema.get("type") not in ("object", None):
        return value
    for key, sub in schema.get("properties", {}).items():
        sub_resolved = _resolve(sub, root)
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


def _check(value: Any, schema: dict, prefix: str) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join([prefix, *map(str, err.absolute_path)]).strip(".") or "(top level)"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise InputError(f"config key '{where}': {err.message}{more}")


def validate_config(config: dict, schema_dir: str | Path = SCHEMA_DIR) -> dict:
    """Validate `config` in place-safe fashion and return it with defaults filled."""
    config = copy.deepcopy(dict(config))
    top, blocks = load_schemas(schema_dir)
    top_only = copy.deepcopy(top)
    # the top schema knows which keys exist; each block is checked by its own schema
    for name in blocks:
        top_only.setdefault("properties", {}).setdefault(name, {"description": f"see config/schema/{name}.yaml"})
    fill_defaults(config, top_only, top_only)
    _check(config, top_only, "")
    for name, schema in blocks.items():
        config[name] = fill_defaults(config.get(name, {}) if config.get(name) is not None else {}, schema, schema)
        _check(config[name], schema, name)
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


def load_config(path: str | Path, overrides: dict | None = None, schema_dir: str | Path = SCHEMA_DIR) -> dict:
    """Read a YAML config (plus optional overrides) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file does not exist")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err})") from err
    if overrides:
        config = deep_update(config, overrides)
    return validate_config(config, schema_dir)


def deep_update(base: dict, update: dict) -> dict:
    """Recursive dict merge (update wins), returning a new dict."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
