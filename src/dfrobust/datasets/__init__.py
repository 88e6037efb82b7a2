"""Datasets: a reader per published layout (FaceForensics++ and DFD inside
it, Celeb-DF v2, DFDC, the DFDC preview, WildDeepfake's face-crop sequences).

READERS maps a dataset kind to its reader module; each has
build_index(cfg) -> (index, missing), planned_counts(cfg) -> {split: videos}
and label_files(cfg) (see dfrobust.datasets.common for the contract,
common.missing_report / common.check_missing for what is missing). The
embedded demos, written in two of these layouts, are dfrobust.demo.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from dfrobust.datasets import celebdf, dfd, dfdc, dfdc_preview, ffpp, wilddeepfake

READERS: dict[str, ModuleType] = {"ffpp": ffpp, "dfd": dfd, "celebdf": celebdf, "dfdc": dfdc, "dfdc_preview": dfdc_preview,
                                  "wilddeepfake": wilddeepfake}
DEMOS = {"demo": "ffpp", "demo_celebdf": "celebdf"}  # an embedded demo's kind (dfrobust.demo) -> the layout it is written in


def reader(kind: str) -> ModuleType:
    """The reader of a dataset kind (a demo is read in its layout)."""
    return READERS[DEMOS.get(kind, kind)]


def any_present(kind: str, cfg: dict, splits: tuple[str, ...], quality: str) -> bool:
    """Whether any video a dataset lists in these splits is on disk at this quality (planning:
    stops at the first one found, so a present dataset costs one file check)."""
    module = reader(kind)
    cfg = module.settings(cfg)
    root = Path(cfg["root"])
    return any((root / entry.relpath(quality)).is_file() for entry in module.videos(cfg) if entry.split in splits)
