"""Datasets: the FaceForensics++ layout, the cross-dataset readers (DFD,
Celeb-DF v2, DFDC, DFDC preview), and the embedded demo datasets.

READERS maps a dataset kind to its reader module; each has
build_index(cfg) -> (index, missing), planned_counts(cfg) -> {split: videos}
and label_files(cfg) (see dfrobust.datasets.common for the contract,
common.missing_report / common.check_missing for what is missing).
"""

from __future__ import annotations

from types import ModuleType

from dfrobust.datasets import celebdf, dfd, dfdc, dfdc_preview, ffpp

READERS: dict[str, ModuleType] = {"ffpp": ffpp, "dfd": dfd, "celebdf": celebdf, "dfdc": dfdc, "dfdc_preview": dfdc_preview}
DEMOS = {"demo": "ffpp", "demo_celebdf": "celebdf"}  # an embedded demo's kind -> the layout it is written in


def reader(kind: str) -> ModuleType:
    """The reader of a dataset kind (a demo is read in its layout)."""
    return READERS[DEMOS.get(kind, kind)]


def planned_counts(kind: str, cfg: dict, config: dict) -> dict[str, int]:
    """Videos per split of a dataset, from its split or label files only (a
    dry run plans every face job before any video is read). A demo is not
    built yet when the workflow plans: its counts come from its config block
    (`config` is the whole validated config)."""
    if kind == "demo":
        pairs = config["demo"]["pairs"]
        return {split: 2 * pairs[split] * (1 + len(cfg["methods"])) for split in ffpp.SPLITS}
    if kind == "demo_celebdf":
        from dfrobust.datasets.demo_celebdf import planned_counts as demo_counts

        return demo_counts(config["demo_celebdf"])
    return READERS[kind].planned_counts(cfg)
