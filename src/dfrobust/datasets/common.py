"""What every dataset reader shares: the index's columns, building the index
from a list of videos, reading label files strictly, and reporting missing
videos.

A reader (dfrobust.datasets.READERS[kind]) exposes

    build_index(cfg) -> (index, missing)   one row per (video, quality), COLUMNS
    planned_counts(cfg) -> {split: videos} from the label/split files only
    label_files(cfg) -> [paths]            the files the index is read from
    settings(cfg) -> cfg                   the block with the reader's defaults (its DEFAULTS)
    videos(cfg) -> [Entry]                 every listed video

A reader of image sequences (wilddeepfake) adds SEQUENCE_COLUMNS to its
index; `sequence_of(row)` tells such a row from a video file's.

`cfg` always holds `root` (the dataset folder) and `on_missing` (error|warn,
used by check_missing; COMMON_DEFAULTS); each reader's docstring lists the
keys it adds, and its `settings(cfg)` fills their defaults (its DEFAULTS,
the one place they are written).

Video ids are unique across datasets: FF++ keeps "original/000",
"Deepfakes/000_003"; every other dataset prefixes its kind, then the video's
path under the root without ".mp4" (quality folders dropped, folder spelling
normalised): "celebdf/Celeb-synthesis/id0_id1_0000", "dfd/original/01__talking_angry_couch",
"dfdc/dfdc_train_part_0/aaqaifqrwn", "dfdc_preview/method_A/1224068/1224068_A/1224068_A_001".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from dfrobust.core.config import vocabulary
from dfrobust.core.errors import InputError

SPLITS = vocabulary("split")
#: what every reader's block holds besides its own keys (each reader's DEFAULTS extends it)
COMMON_DEFAULTS = {"on_missing": "error"}
#: mask_path: the video's manipulation-mask video where the dataset publishes one (FF++), else empty
COLUMNS = ("video_id", "manipulation", "label", "name", "split", "quality", "path", "exists", "mask_path")
#: after COLUMNS in the index of a dataset of image sequences (dfrobust.datasets.wilddeepfake): the
#: sequence's folder inside the archive `path` names, the frame rate it is read at as a stream, and
#: what an image without a detected face gives (whole_image|skip). A video dataset's index has none.
SEQUENCE_COLUMNS = ("member", "frame_rate", "missed_face")
ORIGINAL = "original"
NATIVE = "native"  # the one quality of datasets that ship a single version of each video


@dataclass(frozen=True)
class Entry:
    """One video of a dataset: its identity, and where its file is for a quality."""

    video_id: str
    manipulation: str
    label: int
    name: str
    split: str
    relpath: Callable[[str], str]  # quality -> path under the dataset root
    mask: str | None = None  # path under the root of its manipulation-mask video (the same at every quality), if any


def sequence_of(row: dict) -> dict | None:
    """{member, frame_rate, missed_face} of an index row of an image sequence; None for a video file's row."""
    member = row.get("member")
    if not isinstance(member, str) or not member:  # absent, or NaN in a CSV read back
        return None
    return {"member": member, "frame_rate": float(row["frame_rate"]), "missed_face": str(row["missed_face"])}


def fixed(relpath: str) -> Callable[[str], str]:
    """The relpath of a video that has the same file at every quality."""
    return lambda quality: relpath


def dataset_root(cfg: dict, what: str) -> Path:
    """cfg['root'] as a Path; an InputError when it is not a folder."""
    root = Path(cfg["root"])
    if not root.is_dir():
        raise InputError(f"{root}: {what} dataset directory does not exist (its config key 'root')")
    return root


def wanted_splits(cfg: dict, available: Iterable[str], what: str) -> tuple[str, ...]:
    """cfg['splits'] (default: every split the dataset has), checked against the vocabulary."""
    available = tuple(available)
    chosen = cfg.get("splits") or list(available)
    bad = [s for s in chosen if s not in SPLITS]
    if bad:
        raise InputError(f"config key 'splits' of the {what} dataset: {bad} are not split names ({', '.join(SPLITS)})")
    return tuple(s for s in SPLITS if s in chosen)


def make_index(entries: list[Entry], root: Path, qualities: Iterable[str], source: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(index, missing) of `entries`: one row per (video, quality), in the
    order given, with the file's path and whether it exists. Two entries with
    one id are an error naming `source` (the label file or folder)."""
    check_unique_ids(entries, source)
    qualities = list(qualities)
    rows = []
    for entry in entries:
        for quality in qualities:
            path = root / entry.relpath(quality)
            rows.append({"video_id": entry.video_id, "manipulation": entry.manipulation, "label": int(entry.label),
                         "name": entry.name, "split": entry.split, "quality": quality, "path": str(path),
                         "exists": path.is_file(), "mask_path": str(root / entry.mask) if entry.mask else ""})
    index = pd.DataFrame(rows, columns=list(COLUMNS))
    index["label"] = index["label"].astype(int)
    index["exists"] = index["exists"].astype(bool)
    missing = index[~index["exists"]].reset_index(drop=True)
    return index, missing


def check_unique_ids(entries: list[Entry], source: str | Path) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.video_id in seen:
            raise InputError(f"{source}: video {entry.video_id} is listed twice")
        seen.add(entry.video_id)


def count_splits(entries: list[Entry]) -> dict[str, int]:
    """Videos per split, every split named (0 where the dataset has none)."""
    return {split: sum(e.split == split for e in entries) for split in SPLITS}


def order(entries: list[Entry]) -> list[Entry]:
    """A fixed order: by split, reals before fakes, then by id."""
    return sorted(entries, key=lambda e: (SPLITS.index(e.split), e.label, e.manipulation, e.video_id))


def stem(relpath: str) -> str:
    return relpath[: -len(".mp4")] if relpath.endswith(".mp4") else relpath


def list_videos(folder: Path) -> list[str]:
    """Names (without .mp4) of the .mp4 files directly in `folder`, sorted; [] when there is no folder."""
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".mp4")] for p in folder.iterdir() if p.name.endswith(".mp4") and not p.name.startswith("."))


def read_json_object(path: Path, what: str) -> dict:
    """A JSON file whose top level is an object, a key given twice being an
    error (json.load would silently keep the last): one line naming the file."""

    def no_duplicates(pairs):
        out = {}
        for key, value in pairs:
            if key in out:
                raise InputError(f"{path}: {key!r} is listed twice")
            out[key] = value
        return out

    if not path.is_file():
        raise InputError(f"{path}: {what} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a UTF-8 text file ({err.reason})") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object mapping video files to their labels, got a {type(data).__name__}")
    return data


def _report_folder(paths: list[str], root: Path) -> Path:
    """The folder a group of videos is reported under: the deepest folder all of them share."""
    parents = [os.path.dirname(p) for p in paths]
    try:
        return Path(os.path.commonpath(parents))
    except ValueError:  # mixed absolute and relative paths
        return Path(parents[0])


def missing_report(index: pd.DataFrame, missing: pd.DataFrame, root: str | Path) -> str:
    """Human-readable summary of what is missing: which folders, how many files, examples.

    Videos are grouped by manipulation, quality and top-level folder under
    the root (Celeb-real/ and YouTube-real/ apart, each dfdc_train_part_N/
    apart); each group is named by the deepest folder its videos share, so a
    whole missing folder reads as one line, not thousands of file names.
    """
    if missing.empty:
        return ""
    root = Path(root)

    def top(path: str) -> str:
        try:
            parts = Path(path).relative_to(root).parts
        except ValueError:
            return str(Path(path).parent)
        return parts[0] if len(parts) > 1 else ""

    keys = ["manipulation", "quality", "_top"]
    index = index.assign(_top=index["path"].map(top))
    missing = missing.assign(_top=missing["path"].map(top))
    folders = {key: _report_folder(group["path"].tolist(), root) for key, group in index.groupby(keys, sort=True)}
    totals = index.groupby(keys, sort=True).size()
    lines = [f"{root}: {len(missing)} of {len(index)} listed videos are missing"]
    for key, group in missing.groupby(keys, sort=True):
        manipulation, quality, _ = key
        folder = folders.get(key, Path(group["path"].iloc[0]).parent)
        state = "folder missing" if not folder.is_dir() else f"e.g. {', '.join(group['name'].astype(str).head(3))}"
        lines.append(f"  {manipulation}/{quality}: {len(group)}/{int(totals.get(key, len(group)))} missing ({state}: {folder})")
    return "\n".join(lines)


def unlisted_report(index: pd.DataFrame) -> list[str]:
    """Videos on disk, in the folders the index reads from, that no label file lists: one
    line per folder (they are not indexed, so not tested; a user should know)."""
    listed = set(index["path"])
    lines = []
    for folder in sorted({Path(p).parent for p in index["path"]}):
        if not folder.is_dir():
            continue
        extra = sorted(p.name for p in folder.glob("*.mp4") if str(p) not in listed)
        if extra:
            lines.append(f"{folder}: {len(extra)} video(s) listed by no label file, not indexed "
                         f"(e.g. {', '.join(extra[:3])})")
    return lines


def check_missing(index: pd.DataFrame, missing: pd.DataFrame, cfg: dict, log: Callable[[str], None] = print) -> str:
    """What cfg['on_missing'] says to do with missing videos: 'error' (the
    default) raises an InputError with the report; 'warn' logs it. Returns the
    report ('' when nothing is missing)."""
    report = missing_report(index, missing, cfg["root"])
    if report and cfg["on_missing"] == "error":
        raise InputError(report + "\n(set on_missing: warn to go on without them)")
    if report:
        log("WARNING: " + report)
    return report
