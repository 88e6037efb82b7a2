"""The workflow config: read it, fill the defaults, validate every block.

Most blocks are described by the schema files shipped in
dfrobust/core/schema/; the `detectors` block is generated from the
registered detector classes (their settings and defaults), and the
`procedures` block from the training procedures, so a new detector or
procedure needs no schema edit. A detector outside the project (a plugin: a
module named by `detectors.<name>.module`, or an installed package's entry
point in the group `dfrobust.detectors`) is imported before validation, so
its block is generated and validated as the built-in ones.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import yaml

from dfrobust.core.config import deep_update
from dfrobust.core.config import validate_config as _validate
from dfrobust.core.errors import InputError
from dfrobust.core.io import write_json

PACKAGE = Path(__file__).parent


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dfrobust"


def plugin_modules(config: dict | None) -> dict[str, str]:
    """{config key: module} of the detector plugins a (raw) config names: `detectors.<name>.module`."""
    blocks = (config or {}).get("detectors")
    if not isinstance(blocks, dict):
        return {}
    out = {}
    for name, cfg in blocks.items():
        if isinstance(cfg, dict) and "module" in cfg:
            if not isinstance(cfg["module"], str) or not cfg["module"]:
                raise InputError(f"config key 'detectors.{name}.module': expected a module name, got {cfg['module']!r}")
            out[f"detectors.{name}.module"] = cfg["module"]
    return out


def _plugin_sources(plugins: dict[str, str]) -> list[bytes]:
    """What the generated schemas depend on outside the package: each plugin module's source
    (a package: its .py files) and the installed entry points of the detector group."""
    from importlib.metadata import entry_points

    out = []
    for key, module in sorted(plugins.items()):
        try:
            spec = importlib.util.find_spec(module)
        except Exception as err:  # noqa: BLE001 - a parent package that fails to import, a bad name
            raise InputError(f"config key '{key}': cannot import detector module {module!r} ({type(err).__name__}: {err})") from None
        if spec is None:
            raise InputError(f"config key '{key}': no module {module!r} (is its folder on PYTHONPATH, or its package installed?)")
        files = [Path(spec.origin)] if spec.origin and Path(spec.origin).is_file() else []
        for folder in spec.submodule_search_locations or []:
            files += sorted(Path(folder).rglob("*.py"))
        out += [module.encode(), *(path.read_bytes() for path in files)]
    for ep in sorted(entry_points(group="dfrobust.detectors"), key=lambda ep: ep.name):
        out.append(f"{ep.name}={ep.value}".encode())
    return out


def generated(plugins: dict[str, str] | None = None) -> dict[str, dict]:
    """What code defines that validation and planning read: the schemas of the blocks generated
    from classes ("schemas": detectors, procedures) and the weights formats ("formats",
    dfrobust.detectors.formats.describe).

    Making them imports every detector (torch, timm: seconds), and Snakemake
    parses the workflow once per cluster job, so they are cached on disk under
    a hash of the code they come from (a changed detector module, or plugin
    module, makes a new one). Once the detectors are imported anyway, the
    live registry is used.
    """
    plugins = plugins or {}
    if "dfrobust.training.procedures" in sys.modules:
        return _generate(plugins)
    sources = [*sorted((PACKAGE / "detectors").glob("*.py")), *sorted((PACKAGE / "training" / "procedures").glob("*.py")),
               PACKAGE / "core" / "configurable.py", PACKAGE / "core" / "schema" / "defs.yaml", Path(__file__)]
    digest = hashlib.sha256(b"".join([*(path.read_bytes() for path in sources), *_plugin_sources(plugins)])).hexdigest()[:20]
    cache = cache_dir() / f"generated-{digest}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    out = _generate(plugins)
    try:
        write_json(cache, out)
    except OSError:
        pass  # a read-only home only costs the import next time
    return out


def generated_schemas(plugins: dict[str, str] | None = None) -> dict[str, dict]:
    """Schemas of the blocks that code defines (generated from the registered classes)."""
    return generated(plugins)["schemas"]


def weights_formats(plugins: dict[str, str] | None = None) -> dict[str, dict]:
    """The weights formats a model row may name (`format`), as plain data."""
    return generated(plugins)["formats"]


def reads_masks(method: str, plugins: dict[str, str] | None = None) -> bool:
    """Whether a detector's data reads manipulation masks (FFD), known without importing it."""
    return method in generated(plugins)["reads_masks"]


def _generate(plugins: dict[str, str]) -> dict[str, dict]:
    """The generated blocks' schemas, the weights formats, and what the plan needs to know of
    the detectors without importing them (`reads_masks`: those whose data reads manipulation masks)."""
    from dfrobust.detectors import config_schema as detectors
    from dfrobust.detectors.formats import describe
    from dfrobust.detectors.registry import load_entry_points, load_plugins
    from dfrobust.training.procedures import config_schema as procedures

    load_entry_points()
    load_plugins(plugins)
    from dfrobust.detectors import available_detectors, detector_class

    reads = [name for name in available_detectors() if detector_class(name).data_class.needs_masks]
    return {"schemas": {"detectors": detectors(), "procedures": procedures()}, "formats": describe(), "reads_masks": reads}


def validate_config(config: dict) -> dict:
    """The config with defaults filled, validated (InputError naming the key), keys sorted."""
    return _validate(config, generated_schemas(plugin_modules(config)))


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


def check_model_weights(models, detectors: dict) -> None:
    """Every model scoring a weights file (a `weights` row) fits its detector: checked once, at
    planning, before any job (dfrobust.detectors.inference.check_weights: an InputError naming the
    file and the first keys that do not fit). A file that passed is remembered on disk under its
    size and modification time, the detector settings and the code's hash, so a later parse (one
    per cluster job) reads neither torch nor the file. A file a planned model writes
    (results/models/...) is checked when it is loaded."""
    for model in models:
        if model.weights is None or not Path(model.weights).is_file():
            continue
        path = Path(model.weights)
        cfg = model.detector_cfg(detectors)
        stat = path.stat()
        key = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, model.method, model.format, cfg,
                          model.own_settings()], sort_keys=True, default=str).encode()
        code = [p.read_bytes() for p in sorted((PACKAGE / "detectors").glob("*.py"))]
        digest = hashlib.sha256(b"".join([key, *code, *_plugin_sources(plugin_modules({"detectors": detectors}))]))
        mark = cache_dir() / "weights" / f"{digest.hexdigest()[:24]}.json"
        if mark.is_file():
            continue
        from dfrobust.detectors.inference import check_weights

        try:
            summary = check_weights(path, model.method, model.format, cfg, model.own_settings())
        except InputError as err:
            raise InputError(f"config key '{model.origin}.weights': {err}") from None
        try:
            write_json(mark, {"weights": str(path), "method": model.method, "format": model.format, **summary})
        except OSError:
            pass
