"""The DFDC preview dataset (Dolhansky et al. 2019), in its published layout.

    dataset.json                 {"<path>.mp4": {"label": "real"|"fake", "set": "train"|"test", ...}, ...}
    original_videos/<subject>/<file>.mp4 ...
    method_A/<subject>/<...>/<file>.mp4 ...
    method_B/<subject>/<...>/<file>.mp4 ...

dataset.json's keys are the video paths relative to the root; its `set`
field puts a video in the train or the test split (the preview has no
validation set). One quality, "native". Other fields of an entry are ignored.

Config keys (besides `root` and `on_missing`: error|warn, default error):

    splits   which splits to index, default [train, test]

Ids: "dfdc_preview/<path without .mp4>"; manipulation "original" for real
videos, the top folder of a fake ("method_A", "method_B"; "DFDC_preview"
for a fake directly under the root).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

from dfrobust.core.errors import InputError
from dfrobust.datasets.common import (COMMON_DEFAULTS, NATIVE, ORIGINAL, Entry, count_splits, dataset_root, fixed,
                                      make_index, order, read_json_object, stem, wanted_splits)

KIND = "dfdc_preview"
LABELS = "dataset.json"
LABEL = {"real": 0, "fake": 1}
SETS = ("train", "test")
QUALITIES = (NATIVE,)
DEFAULTS = {**COMMON_DEFAULTS, "splits": list(SETS)}


def settings(cfg: dict) -> dict:
    return {**DEFAULTS, **cfg}


def labels_path(cfg: dict) -> Path:
    return Path(cfg["root"]) / LABELS


def read_dataset_json(path: Path) -> list[tuple[str, int, str]]:
    """(relative path, label, split) of every video of dataset.json."""
    data = read_json_object(path, "DFDC preview label file (dataset.json)")
    out = []
    for key, info in data.items():
        rel = key.replace("\\", "/")
        parts = PurePosixPath(rel).parts
        if not rel.endswith(".mp4") or rel.startswith("/") or ".." in parts or PurePosixPath(rel).name == ".mp4":
            raise InputError(f"{path}: {key!r} is not a video path relative to the dataset root (<folder>/.../<file>.mp4)")
        if not isinstance(info, dict) or info.get("label") not in LABEL or info.get("set") not in SETS:
            raise InputError(f"{path}: {key}: expected {{\"label\": \"real\" or \"fake\", \"set\": \"train\" or \"test\", ...}}, "
                             f"got {info!r}")
        out.append((rel, LABEL[info["label"]], info["set"]))
    if not out:
        raise InputError(f"{path}: lists no videos")
    return out


def manipulation_of(rel: str, label: int) -> str:
    if label == 0:
        return ORIGINAL
    parts = PurePosixPath(rel).parts
    return parts[0] if len(parts) > 1 else "DFDC_preview"


def videos(cfg: dict) -> list[Entry]:
    cfg = settings(cfg)
    dataset_root(cfg, "DFDC preview")
    splits = wanted_splits(cfg, SETS, "DFDC preview")
    entries = [Entry(f"{KIND}/{stem(rel)}", manipulation_of(rel, label), label, PurePosixPath(stem(rel)).name, split, fixed(rel))
               for rel, label, split in read_dataset_json(labels_path(cfg)) if split in splits]
    return order(entries)


def build_index(cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(index, missing): one row per video (quality "native"); `missing` = listed videos whose file is absent."""
    cfg = settings(cfg)
    return make_index(videos(cfg), Path(cfg["root"]), QUALITIES, labels_path(cfg))


def planned_counts(cfg: dict) -> dict[str, int]:
    """Videos per split, from dataset.json alone (no video is opened)."""
    return count_splits(videos(cfg))


def label_files(cfg: dict) -> list[Path]:
    return [labels_path(cfg)]
