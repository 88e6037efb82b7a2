"""Celeb-DF v2, in its published layout.

    Celeb-real/id0_0000.mp4 ...             real (celebrity interviews)
    YouTube-real/00000.mp4 ...              real (spelled Youtube-real/ in some copies: both are read)
    Celeb-synthesis/id0_id1_0000.mp4 ...    fake
    List_of_testing_videos.txt              the test split, one "<1|0> <folder>/<file>.mp4" a line

In the list the FIRST COLUMN IS 1 FOR A REAL VIDEO AND 0 FOR A FAKE: the
opposite of this project's labels (0 real, 1 fake). The reader turns it
around and checks every line against its folder (a "1" on a Celeb-synthesis
video is an error, not a silently inverted label). Listed videos are the
test split; every other video of the three folders is train. One quality,
"native" (the files as published).

Config keys (besides `root` and `on_missing`: error|warn, default error):

    test_list   the list of test videos, relative to root (or absolute),
                default "List_of_testing_videos.txt"
    splits      which splits to index, default [train, test]

Ids: "celebdf/<folder>/<name>" with the folder spelled YouTube-real whatever
the copy calls it ("celebdf/Celeb-real/id0_0000",
"celebdf/YouTube-real/00000", "celebdf/Celeb-synthesis/id0_id1_0000");
manipulation "original" for the real folders, "Celeb-synthesis" for fakes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dfrobust.core.errors import InputError
from dfrobust.datasets.common import (COMMON_DEFAULTS, NATIVE, ORIGINAL, Entry, count_splits, dataset_root, fixed,
                                      list_videos, make_index, order, wanted_splits)

KIND = "celebdf"
SYNTHESIS = "Celeb-synthesis"
FOLDERS = {"Celeb-real": 0, "YouTube-real": 0, SYNTHESIS: 1}  # canonical folder -> label
SPELLINGS = {"YouTube-real": ("YouTube-real", "Youtube-real")}  # canonical -> spellings met in copies
CANONICAL = {spelling: folder for folder in FOLDERS for spelling in SPELLINGS.get(folder, (folder,))}
LIST_LABEL = {"1": 0, "0": 1}  # the list's first column -> our label (its 1 = real)
QUALITIES = (NATIVE,)
SPLITS_HERE = ("train", "test")
DEFAULTS = {**COMMON_DEFAULTS, "test_list": "List_of_testing_videos.txt", "splits": list(SPLITS_HERE)}


def settings(cfg: dict) -> dict:
    return {**DEFAULTS, **cfg}


def list_path(cfg: dict) -> Path:
    cfg = settings(cfg)
    return Path(cfg["root"]) / cfg["test_list"]


def disk_folder(root: Path, folder: str) -> str:
    """The spelling of a canonical folder this copy uses (the canonical one when absent)."""
    present = [s for s in SPELLINGS.get(folder, (folder,)) if (root / s).is_dir()]
    if len(present) > 1:
        raise InputError(f"{root}: holds both {' and '.join(present)}/; keep one (they are the same Celeb-DF folder)")
    return present[0] if present else folder


def read_test_list(path: Path) -> list[tuple[str, str, int]]:
    """(canonical folder, name, label in this project's convention) of every
    line of List_of_testing_videos.txt, checked line by line."""
    if not path.is_file():
        raise InputError(f"{path}: Celeb-DF v2 test list does not exist (its config key 'test_list')")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a UTF-8 text file ({err.reason})") from err
    out, seen = [], {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[0] not in LIST_LABEL:
            raise InputError(f"{path}: line {number}: expected '<1|0> <folder>/<file>.mp4' (1 = real, 0 = fake), got {line.strip()!r}")
        parts = fields[1].replace("\\", "/").split("/")
        if len(parts) != 2 or parts[0] not in CANONICAL or not parts[1].endswith(".mp4") or parts[1] == ".mp4":
            raise InputError(f"{path}: line {number}: {fields[1]!r} is not a video of {', '.join(FOLDERS)} (<folder>/<file>.mp4)")
        folder, name = CANONICAL[parts[0]], parts[1][: -len(".mp4")]
        label = LIST_LABEL[fields[0]]
        if label != FOLDERS[folder]:
            said, truth = ("real", "fake") if label == 0 else ("fake", "real")
            raise InputError(f"{path}: line {number}: first column {fields[0]} says {said} but {fields[1]} is a {truth} video "
                             f"(the first column is 1 for real and 0 for fake)")
        if (folder, name) in seen:
            raise InputError(f"{path}: line {number}: {fields[1]} is listed twice (first on line {seen[folder, name]})")
        seen[folder, name] = number
        out.append((folder, name, label))
    if not out:
        raise InputError(f"{path}: the test list is empty")
    return out


def videos(cfg: dict) -> list[Entry]:
    """The listed test videos and (for train) every other video of the three folders."""
    cfg = settings(cfg)
    root = dataset_root(cfg, "Celeb-DF v2")
    splits = wanted_splits(cfg, SPLITS_HERE, "Celeb-DF v2")
    on_disk = {folder: disk_folder(root, folder) for folder in FOLDERS}
    test = read_test_list(list_path(cfg))
    listed = {(folder, name) for folder, name, _ in test}

    def entry(folder: str, name: str, split: str) -> Entry:
        label = FOLDERS[folder]
        manipulation = ORIGINAL if label == 0 else SYNTHESIS
        return Entry(f"{KIND}/{folder}/{name}", manipulation, label, name, split, fixed(f"{on_disk[folder]}/{name}.mp4"))

    entries = []
    if "test" in splits:
        entries += [entry(folder, name, "test") for folder, name, _ in test]
    if "train" in splits:
        for folder in FOLDERS:
            entries += [entry(folder, name, "train") for name in list_videos(root / on_disk[folder]) if (folder, name) not in listed]
    return order(entries)


def build_index(cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(index, missing): one row per video (quality "native"); `missing` = listed test videos whose file is absent."""
    cfg = settings(cfg)
    return make_index(videos(cfg), Path(cfg["root"]), QUALITIES, list_path(cfg))


def planned_counts(cfg: dict) -> dict[str, int]:
    """Videos per split: the test list's lines, and the other files of the three folders (no video is opened)."""
    return count_splits(videos(cfg))


def label_files(cfg: dict) -> list[Path]:
    return [list_path(cfg)]
