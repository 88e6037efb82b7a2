"""The Deepfake Detection Challenge (DFDC) dataset: its training parts and its public test set.

    dfdc_train_part_0/metadata.json         {"aaqaifqrwn.mp4": {"label": "REAL"|"FAKE", "original": ..., "split": "train"}, ...}
    dfdc_train_part_0/aaqaifqrwn.mp4 ...
    ...
    dfdc_train_part_49/...
    test/labels.csv                         filename,label   (label 1 = fake, 0 = real)
    test/videos/aabqyygbaa.mp4 ...          (or directly in test/)

A training part's videos go to the split its metadata.json names (always
"train" in the published files); the test set's to "test". One quality,
"native".

Config keys (besides `root` and `on_missing`: error|warn, default error):

    parts        training parts to index: "all" (every dfdc_train_part_N/
                 under root, default), a list of part numbers, or [] for none
    test_set     folder of the public test set (holding labels.csv), relative
                 to root, default "test"; null: no test set
    test_videos  folder of the test videos, relative to test_set; default
                 null: videos/, or test_set itself when the videos are
                 there (and there is no videos/ folder)
    splits       which splits to index, default null: every split (the parts'
                 metadata say train, the test set is test)

Ids: "dfdc/dfdc_train_part_<N>/<name>" and "dfdc/test/<name>" (whatever the
test folder is called); manipulation "DFDC" for fakes, "original" for reals.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from dfrobust.core.errors import InputError
from dfrobust.datasets.common import (COMMON_DEFAULTS, NATIVE, ORIGINAL, SPLITS, Entry, count_splits, dataset_root,
                                      fixed, list_videos, make_index, order, read_json_object, wanted_splits)

KIND = "dfdc"
MANIPULATION = "DFDC"
PART = re.compile(r"^dfdc_train_part_(\d+)$")
METADATA = "metadata.json"
TEST_LABELS = "labels.csv"
METADATA_LABEL = {"REAL": 0, "FAKE": 1}
CSV_LABEL = {"0": 0, "1": 1}
QUALITIES = (NATIVE,)
DEFAULTS = {**COMMON_DEFAULTS, "parts": "all", "test_set": "test", "test_videos": None, "splits": None}


def settings(cfg: dict) -> dict:
    return {**DEFAULTS, **cfg}


def part_folders(cfg: dict) -> list[str]:
    """Names of the training-part folders to read, in part order."""
    cfg = settings(cfg)
    root, parts = Path(cfg["root"]), cfg["parts"]
    if parts == "all":
        found = [p.name for p in root.iterdir() if p.is_dir() and PART.match(p.name)] if root.is_dir() else []
        return sorted(found, key=lambda name: int(PART.match(name)[1]))
    if parts is None:
        return []
    if not isinstance(parts, (list, tuple)) or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in parts):
        raise InputError(f"config key 'parts' of the DFDC dataset: expected \"all\" or a list of part numbers, got {parts!r}")
    return [f"dfdc_train_part_{p}" for p in sorted(set(parts))]


def check_filename(path: Path, where: str, name: object) -> str:
    if not isinstance(name, str) or not name.endswith(".mp4") or "/" in name or "\\" in name or name == ".mp4":
        raise InputError(f"{path}: {where}: {name!r} is not a video file name (<name>.mp4)")
    return name[: -len(".mp4")]


def read_metadata(path: Path) -> list[tuple[str, int, str]]:
    """(name, label, split) of every video of one training part's metadata.json."""
    data = read_json_object(path, "DFDC metadata file")
    out = []
    for filename, info in data.items():
        name = check_filename(path, "key", filename)
        if not isinstance(info, dict) or info.get("label") not in METADATA_LABEL:
            raise InputError(f"{path}: {filename}: expected {{\"label\": \"REAL\" or \"FAKE\", ...}}, got {info!r}")
        split = info.get("split", "train")
        if split not in SPLITS:
            raise InputError(f"{path}: {filename}: split {split!r} is not one of {', '.join(SPLITS)}")
        out.append((name, METADATA_LABEL[info["label"]], split))
    return out


def read_labels_csv(path: Path) -> list[tuple[str, int]]:
    """(name, label) of every row of the test set's labels.csv (header filename,label; 1 = fake)."""
    if not path.is_file():
        raise InputError(f"{path}: DFDC test label file does not exist (config key 'test_set': the folder holding labels.csv, "
                          f"relative to root; null for none)")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: not a readable CSV file ({err})") from err
    header = [h.strip() for h in rows[0]] if rows else []
    if "filename" not in header or "label" not in header:
        raise InputError(f"{path}: expected a header with columns filename,label, got {','.join(header) or 'an empty file'!r}")
    col_name, col_label = header.index("filename"), header.index("label")
    out, seen = [], {}
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InputError(f"{path}: line {number}: expected {len(header)} columns, got {len(row)}")
        name = check_filename(path, f"line {number}", row[col_name].strip())
        label = row[col_label].strip()
        if label not in CSV_LABEL:
            raise InputError(f"{path}: line {number}: label {label!r} is not 0 (real) or 1 (fake)")
        if name in seen:
            raise InputError(f"{path}: line {number}: {name}.mp4 is listed twice (first on line {seen[name]})")
        seen[name] = number
        out.append((name, CSV_LABEL[label]))
    if not out:
        raise InputError(f"{path}: lists no videos")
    return out


def public_test_set(cfg: dict) -> tuple[Path, str] | None:
    """(labels.csv, folder of the videos relative to root) of the test set, or None."""
    cfg = settings(cfg)
    if cfg["test_set"] is None:
        return None
    root = Path(cfg["root"])
    test = Path(cfg["test_set"])
    videos = cfg["test_videos"]
    if videos is None:  # videos/ unless the videos sit next to labels.csv (then a lost videos/ reads as missing)
        videos = "." if not (root / test / "videos").is_dir() and list_videos(root / test) else "videos"
    return root / test / TEST_LABELS, (test / videos).as_posix()


def entry(name: str, label: int, split: str, folder: str, id_folder: str) -> Entry:
    relpath = f"{folder}/{name}.mp4" if folder not in ("", ".") else f"{name}.mp4"
    return Entry(f"{KIND}/{id_folder}/{name}", MANIPULATION if label else ORIGINAL, label, name, split, fixed(relpath))


def videos(cfg: dict) -> list[Entry]:
    cfg = settings(cfg)
    root = dataset_root(cfg, "DFDC")
    splits = wanted_splits(cfg, SPLITS, "DFDC")
    entries = []
    for part in part_folders(cfg):
        entries += [entry(name, label, split, part, part) for name, label, split in read_metadata(root / part / METADATA)]
    test = public_test_set(cfg)
    if test is not None:
        labels, folder = test
        entries += [entry(name, label, "test", folder, "test") for name, label in read_labels_csv(labels)]
    if not entries:
        raise InputError(f"{root}: no DFDC videos to index (no dfdc_train_part_N/ folder and no test set; "
                         f"see the config keys 'parts' and 'test_set')")
    return order([e for e in entries if e.split in splits])


def build_index(cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(index, missing): one row per video (quality "native"); `missing` = listed videos whose file is absent."""
    cfg = settings(cfg)
    return make_index(videos(cfg), Path(cfg["root"]), QUALITIES, cfg["root"])


def planned_counts(cfg: dict) -> dict[str, int]:
    """Videos per split, from the metadata.json files and labels.csv (no video is opened)."""
    return count_splits(videos(cfg))


def label_files(cfg: dict) -> list[Path]:
    root = Path(settings(cfg)["root"])
    files = [root / part / METADATA for part in part_folders(cfg)]
    test = public_test_set(cfg)
    return files + ([test[0]] if test else [])
