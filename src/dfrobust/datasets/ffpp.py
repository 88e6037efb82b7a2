"""The FaceForensics++ layout, its official splits, and the index of videos.

    original_sequences/youtube/{raw,c23,c40}/videos/NNN.mp4
    manipulated_sequences/{Deepfakes,Face2Face,FaceSwap,NeuralTextures}/{q}/videos/TTT_SSS.mp4
    manipulated_sequences/{method}/masks/videos/TTT_SSS.mp4    manipulation masks (every method but
                                                               FaceShifter; one for all qualities)
    {train,val,test}.json: lists of [a, b] pairs (360/70/70 in FF++); pair [a, b]
    puts originals a and b and fakes a_b and b_a of every method in that split.

Video ids are unique across methods ("original/000", "Deepfakes/000_003"), so
the fake 000_003 of each method stays a separate video everywhere downstream.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from dfrobust.core.config import block_defaults, vocabulary
from dfrobust.core.errors import InputError
from dfrobust.datasets.common import Entry, missing_report  # noqa: F401  (missing_report: kept here for callers)

SPLITS = vocabulary("split")
QUALITIES = vocabulary("quality")
METHODS = vocabulary("ffpp_method")
CRF = {"raw": 0, "c23": 23, "c40": 40}  # what the quality names mean: raw is lossless H.264
ORIGINAL = "original"
NO_MASKS = ("FaceShifter",)  # FF++ publishes no mask videos for these methods


@dataclass(frozen=True)
class Video:
    video_id: str
    manipulation: str
    label: int
    name: str
    split: str

    def relpath(self, quality: str, original_source: str) -> str:
        """Path of this video's file for one quality, relative to the dataset root."""
        if self.manipulation == ORIGINAL:
            return f"original_sequences/{original_source}/{quality}/videos/{self.name}.mp4"
        return f"manipulated_sequences/{self.manipulation}/{quality}/videos/{self.name}.mp4"

    def mask_relpath(self) -> str | None:
        """Path of this fake's manipulation-mask video, relative to the dataset root (None: a real
        video, or a method FF++ publishes no masks for)."""
        if self.manipulation == ORIGINAL or self.manipulation in NO_MASKS:
            return None
        return f"manipulated_sequences/{self.manipulation}/masks/videos/{self.name}.mp4"


def read_split(path: str | Path) -> list[tuple[str, str]]:
    """Pairs of one official split file, checked for shape."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: split file does not exist (set dataset.splits_dir to the folder with train/val/test.json)")
    try:
        pairs = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, (str, int)) for x in p) for p in pairs
    ):
        raise InputError(f"{path}: expected a JSON list of [a, b] pairs of video names")
    return [(str(a), str(b)) for a, b in pairs]


def read_splits(splits_dir: str | Path, splits: tuple[str, ...] = SPLITS) -> dict[str, list[tuple[str, str]]]:
    """All split files; a name appearing in two splits is an error (it would leak)."""
    result = {split: read_split(Path(splits_dir) / f"{split}.json") for split in splits}
    seen: dict[str, str] = {}
    for split, pairs in result.items():
        for name in {n for pair in pairs for n in pair}:
            if name in seen and seen[name] != split:
                raise InputError(f"{splits_dir}: video {name} is in both {seen[name]}.json and {split}.json")
            seen[name] = split
    return result


def split_videos(pairs: list[tuple[str, str]], methods: list[str] | tuple[str, ...], split: str) -> list[Video]:
    """The videos of one split in a fixed order: originals, then each method's fakes."""
    originals = sorted({name for pair in pairs for name in pair})
    videos = [Video(f"{ORIGINAL}/{n}", ORIGINAL, 0, n, split) for n in originals]
    fakes = sorted({f"{a}_{b}" for a, b in pairs} | {f"{b}_{a}" for a, b in pairs})
    for method in methods:
        videos += [Video(f"{method}/{n}", method, 1, n, split) for n in fakes]
    return videos


def n_shards(n_videos: int, shard_size: int) -> int:
    return max(1, math.ceil(n_videos / shard_size))


def shard_of(videos: list[Video], shard: int, shard_size: int) -> list[Video]:
    """Videos of one shard. Shards interleave (video i goes to shard i mod n) so
    every shard mixes reals and each method's fakes."""
    count = n_shards(len(videos), shard_size)
    if not 0 <= shard < count:
        raise IndexError(f"shard {shard} out of range (0..{count - 1})")
    return videos[shard::count]


def settings(cfg: dict) -> dict:
    """The block with the `dataset` schema's defaults for the keys it leaves out."""
    return {**block_defaults("dataset"), **cfg}


def splits_dir_of(dataset_cfg: dict) -> Path:
    return Path(settings(dataset_cfg)["splits_dir"] or dataset_cfg["root"])


def build_index(dataset_cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(index, missing): one row per (video, quality) with its path and whether it exists.

    `missing` lists every listed-but-absent file; whole missing quality or
    method folders are named in the error so the user sees the cause, not
    thousands of file names.
    """
    dataset_cfg = settings(dataset_cfg)
    root = Path(dataset_cfg["root"])
    if not root.is_dir():
        raise InputError(f"{root}: dataset directory does not exist (dataset.root)")
    splits = read_splits(splits_dir_of(dataset_cfg))
    source = dataset_cfg["original_source"]
    rows = []
    for split, pairs in splits.items():
        for video in split_videos(pairs, dataset_cfg["methods"], split):
            for quality in dataset_cfg["qualities"]:
                rel, mask = video.relpath(quality, source), video.mask_relpath()
                rows.append({**asdict(video), "quality": quality, "path": str(root / rel), "exists": (root / rel).is_file(),
                             "mask_path": str(root / mask) if mask else ""})
    index = pd.DataFrame(rows)
    missing = index[~index["exists"]].reset_index(drop=True)
    return index, missing


def videos(dataset_cfg: dict) -> list[Entry]:
    """Every listed video, as the other readers list theirs (dfrobust.datasets.common.Entry)."""
    dataset_cfg = settings(dataset_cfg)
    source = dataset_cfg["original_source"]
    return [Entry(v.video_id, v.manipulation, v.label, v.name, split,
                  lambda quality, v=v: v.relpath(quality, source), v.mask_relpath())
            for split, pairs in read_splits(splits_dir_of(dataset_cfg)).items()
            for v in split_videos(pairs, dataset_cfg["methods"], split)]


def planned_counts(dataset_cfg: dict) -> dict[str, int]:
    """Videos per split, from the split files alone (no video is opened)."""
    splits = read_splits(splits_dir_of(dataset_cfg))
    return {split: len(split_videos(pairs, settings(dataset_cfg)["methods"], split)) for split, pairs in splits.items()}


def label_files(dataset_cfg: dict) -> list[Path]:
    """The files the index is read from: the three split files."""
    return [splits_dir_of(dataset_cfg) / f"{split}.json" for split in SPLITS]
