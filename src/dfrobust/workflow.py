"""What the Snakefile starts from: the validated config and the run's plan.

    config, plan, notes = prepare(snakemake_config)

Validation fills every default once (the rules' params are the validated
blocks); the plan (dfrobust.plan) names every job and path; the stored face
crop is sized for every planned model's detector (dfrobust.media.crops);
`notes` are lines for the run's log.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from dfrobust.config import check_model_weights, plugin_modules, reads_masks, validate_config, weights_formats
from dfrobust.core.config import block
from dfrobust.datasets import any_present
from dfrobust.demo import planned_counts
from dfrobust.media.crops import resolve_faces
from dfrobust.media.operations import expand_operations
from dfrobust.plan import Plan, build_plan


def prepare(config: dict) -> tuple[dict, Plan, list[str]]:
    """(validated config, plan, notes) of a workflow config; InputError naming the key."""
    validated = validate_config(config)
    operations = expand_operations(block("operations", validated["operations"]))
    plan = build_plan(validated, operations, lambda kind, cfg: planned_counts(kind, cfg, validated), any_present,
                      weights_formats(plugin_modules(config)))
    check_model_weights(plan.models.values(), validated["detectors"])  # weights files fit their detectors, before any job
    detectors = [(m.method, m.detector_cfg(validated["detectors"])) for m in plan.models.values()]
    validated["faces"], notes = resolve_faces(validated["faces"], detectors)
    plan.reads_masks = any(reads_masks(method, plugin_modules(config)) for method, _ in detectors)
    return validated, plan, notes


def export_checkout(basedir: str) -> list[str]:
    """Name the checkout whose Snakefile runs, for envs/dfrobust.post-deploy.sh: it installs
    this checkout into a rule's conda environment (--sdm conda). Jobs inherit it.

    Returns a note when the dfrobust imported here is another checkout's (an editable
    install of a second clone): its code, not this checkout's, would run every job."""
    os.environ["DFROBUST_REPO"] = str(basedir)
    here = Path(basedir).resolve() / "src" / "dfrobust"
    imported = Path(__file__).resolve().parent
    if here.is_dir() and imported != here and (imported.parent.parent / "Snakefile").is_file():
        return [f"dfrobust is imported from {imported}, not from this checkout ({here}): the jobs run "
                f"that code. Install this checkout (make setup) or set PYTHONPATH={here.parent}"]
    return []


def names_regex(names: Iterable[str]) -> str:
    """A wildcard constraint matching exactly these names (never the empty string)."""
    return "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True)) or "(?!)"
