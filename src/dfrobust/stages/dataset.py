"""The dataset stage (rules/data.smk): build an embedded demo, and index a
dataset in its own layout (index.csv, missing.csv), stopping or warning on
missing videos."""

from __future__ import annotations

from pathlib import Path

from dfrobust.core.io import atomic_path
from dfrobust.core.runlog import log
from dfrobust.datasets import reader
from dfrobust.datasets.common import check_missing, unlisted_report


def write_index(dataset_cfg: dict, out_index: str | Path, out_missing: str | Path) -> None:
    """Index one dataset (its block, with `kind`) with its reader (dfrobust.datasets.READERS)."""
    kind = reader(dataset_cfg["kind"])
    dataset_cfg = kind.settings(dataset_cfg)
    index, missing = kind.build_index(dataset_cfg)
    check_missing(index, missing, dataset_cfg, log)
    for line in unlisted_report(index):
        log(line)
    with atomic_path(out_missing) as tmp:
        missing.to_csv(tmp, index=False)
    with atomic_path(out_index) as tmp:
        index.to_csv(tmp, index=False)
    counts = index[index["exists"]].groupby(["split", "quality", "manipulation"]).size()
    log(f"indexed {int(index['exists'].sum())} of {len(index)} listed videos under {dataset_cfg['root']}")
    log(counts.to_string())


def build_demo_dataset(demo_cfg: dict, dataset_cfg: dict, seed: int, ffmpeg_path: str | None, manifest: str | Path,
                       look: dict | None = None) -> dict:
    """Build an embedded demo (dfrobust.demo.build) under the manifest's folder."""
    from dfrobust.demo import build

    return build(dataset_cfg["kind"], demo_cfg, dataset_cfg, seed, ffmpeg_path, Path(manifest).parent, look)
