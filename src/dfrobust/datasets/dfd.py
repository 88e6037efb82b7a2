"""Google's DeepFakeDetection (DFD), as shipped inside FaceForensics++.

    original_sequences/actors/{raw,c23,c40}/videos/01__exit_phone_room.mp4 ...
    manipulated_sequences/DeepFakeDetection/{raw,c23,c40}/videos/01_02__exit_phone_room__YVGY8LOK.mp4 ...
    manipulated_sequences/DeepFakeDetection/masks/videos/01_02__exit_phone_room__YVGY8LOK.mp4 (masks)

There are no official splits and no label file: the videos are those found
in the folders (the union over the configured qualities, so a video absent
at one quality is reported missing there), all in one split.

Config keys (besides `root`, the FF++ root, and `on_missing`: error|warn, default error):

    qualities   FF++ compression levels to index, default [raw, c23, c40]
    split       the split every video goes to, default "test"

Ids: "dfd/original/<name>" for the actors' videos (manipulation "original",
label 0), "dfd/DeepFakeDetection/<name>" for the fakes (label 1).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dfrobust.core.config import vocabulary
from dfrobust.core.errors import InputError
from dfrobust.datasets.common import COMMON_DEFAULTS, ORIGINAL, SPLITS, Entry, count_splits, dataset_root, list_videos, make_index, order

KIND = "dfd"
MANIPULATION = "DeepFakeDetection"
QUALITIES = vocabulary("quality")
FOLDERS = {ORIGINAL: "original_sequences/actors", MANIPULATION: f"manipulated_sequences/{MANIPULATION}"}
DEFAULTS = {**COMMON_DEFAULTS, "qualities": list(QUALITIES), "split": "test"}


def settings(cfg: dict) -> dict:
    out = {**DEFAULTS, **cfg}
    if out["split"] not in SPLITS:
        raise InputError(f"config key 'split' of the DFD dataset: {out['split']!r} is not one of {', '.join(SPLITS)}")
    bad = [q for q in out["qualities"] if q not in QUALITIES]
    if bad or not out["qualities"]:
        raise InputError(f"config key 'qualities' of the DFD dataset: {out['qualities']!r} (each one of {', '.join(QUALITIES)})")
    return out


def relpath(manipulation: str, quality: str, name: str) -> str:
    return f"{FOLDERS[manipulation]}/{quality}/videos/{name}.mp4"


def videos(cfg: dict) -> list[Entry]:
    """Every DFD video found at any configured quality (folder listings only)."""
    cfg = settings(cfg)
    root = dataset_root(cfg, "DFD (FaceForensics++)")
    entries = []
    for manipulation in FOLDERS:
        names = set()
        for quality in cfg["qualities"]:
            names.update(list_videos(root / Path(relpath(manipulation, quality, "x")).parent))
        label = 0 if manipulation == ORIGINAL else 1
        for name in sorted(names):
            entries.append(Entry(f"{KIND}/{manipulation}/{name}", manipulation, label, name, cfg["split"],
                                 lambda q, m=manipulation, n=name: relpath(m, q, n),
                                 None if label == 0 else relpath(manipulation, "masks", name)))
    if not entries:
        folders = ", ".join(f"{FOLDERS[m]}/{{{','.join(cfg['qualities'])}}}/videos" for m in FOLDERS)
        raise InputError(f"{root}: no DFD videos found (looked for .mp4 files in {folders})")
    return order(entries)


def build_index(cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(index, missing): one row per (video, quality); `missing` = rows whose file is absent."""
    cfg = settings(cfg)
    root = Path(cfg["root"])
    return make_index(videos(cfg), root, cfg["qualities"], root)


def planned_counts(cfg: dict) -> dict[str, int]:
    """Videos per split (all in cfg['split']), from the folder listings (no video is opened)."""
    return count_splits(videos(cfg))


def label_files(cfg: dict) -> list[Path]:
    """DFD has no label file: the index depends on the folders only."""
    return []
