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
