"""The workflow config: read it, fill the defaults, validate every block.

Most blocks are described by the schema files shipped in
dfrobust/core/schema/; the `detectors` block is generated from the
registered detector classes (their settings and defaults), and the
`procedures` block from the training procedures, so a new detector or
procedure needs no schema edit.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import yaml

from dfrobust.core.config import deep_update
from dfrobust.core.config import validate_config as _validate
from dfrobust.core.errors import InputError
from dfrobust.core.io import write_json


def generated_schemas() -> dict[str, dict]:
    """Schemas of the blocks that code defines.

    Making them imports every detector (torch, timm: seconds), and Snakemake
    parses the workflow once per cluster job, so they are cached on disk under
    a hash of the code they come from (a changed detector module makes a new one).
    Once the detectors are imported anyway, the live registry is used.
    """
    if "dfrobust.training.procedures" in sys.modules:
        return _generate()
    package = Path(__file__).parent
    sources = [*sorted((package / "detectors").glob("*.py")), *sorted((package / "training" / "procedures").glob("*.py")),
               package / "core" / "configurable.py", package / "core" / "schema" / "defs.yaml", Path(__file__)]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:20]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dfrobust" / f"schemas-{digest}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    schemas = _generate()
    try:
        write_json(cache, schemas)
    except OSError:
        pass  # a read-only home only costs the import next time
    return schemas


GENERATED_BLOCKS = ("detectors", "procedures")


def _generate() -> dict[str, dict]:
    """The generated blocks' schemas, and what the plan needs to know of the detectors
    without importing them (`reads_masks`: those whose data reads manipulation masks)."""
    from dfrobust.detectors import available_detectors, detector_class
    from dfrobust.detectors import config_schema as detectors
    from dfrobust.training.procedures import config_schema as procedures

    reads_masks = [name for name in available_detectors() if detector_class(name).data_class.needs_masks]
    return {"detectors": detectors(), "procedures": procedures(), "reads_masks": reads_masks}


def validate_config(config: dict) -> dict:
    """The config with defaults filled, validated (InputError naming the key), keys sorted."""
    generated = generated_schemas()
    return _validate(config, {name: generated[name] for name in GENERATED_BLOCKS})


def reads_masks(method: str) -> bool:
    """Whether a detector's data reads manipulation masks (FFD), known without importing it."""
    return method in generated_schemas()["reads_masks"]


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
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
    return validate_config(config)
