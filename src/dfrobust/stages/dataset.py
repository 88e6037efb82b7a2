"""The dataset stage (rules/data.smk): build the embedded demo, and index the
dataset (index.csv, missing.csv), stopping or warning on missing videos."""

from __future__ import annotations

from pathlib import Path

from dfrobust.datasets.ffpp import build_index, missing_report
from dfrobust.core.errors import InputError
from dfrobust.core.io import atomic_path
from dfrobust.core.runlog import log


def write_index(dataset_cfg: dict, out_index: str | Path, out_missing: str | Path) -> None:
    """Index one dataset (its block, with `kind`) in its own layout."""
    index, missing = build_index(dataset_cfg)
    report = missing_report(index, missing, dataset_cfg["root"])
    if report and dataset_cfg.get("on_missing", "error") == "error":
        raise InputError(report + "\n(set dataset.on_missing: warn to go on without them)")
    if report:
        log("WARNING: " + report)
    with atomic_path(out_missing) as tmp:
        missing.to_csv(tmp, index=False)
    with atomic_path(out_index) as tmp:
        index.to_csv(tmp, index=False)
    counts = index[index["exists"]].groupby(["split", "quality", "manipulation"]).size()
    log(f"indexed {int(index['exists'].sum())} of {len(index)} listed videos under {dataset_cfg['root']}")
    log(counts.to_string())


def build_demo_dataset(demo_cfg: dict, dataset_cfg: dict, seed: int, ffmpeg_path: str | None, manifest: str | Path) -> dict:
    """Build the embedded demo under the manifest's folder, with the dataset
    block's methods and qualities (the index must find what the demo writes)."""
    from dfrobust.datasets.demo import build_demo

    cfg = {**demo_cfg, "methods": dataset_cfg["methods"], "qualities": dataset_cfg["qualities"]}
    return build_demo(Path(manifest).parent, cfg, seed, ffmpeg_path)
