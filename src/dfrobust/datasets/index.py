"""The index job: write index.csv and missing.csv, and stop or warn on missing videos."""

from __future__ import annotations

from pathlib import Path

from dfrobust.datasets.ffpp import build_index, missing_report
from dfrobust.errors import InputError
from dfrobust.io import atomic_path
from dfrobust.runlog import log


def write_index(dataset_cfg: dict, out_index: str | Path, out_missing: str | Path) -> None:
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
