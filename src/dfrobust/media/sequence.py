"""Image sequences in archives: datasets published as face crops rather than
videos (WildDeepfake: one .tar.gz per source video, one folder of images per
face sequence, each image named by its frame number in the source video).

A sequence is read as a video: its images in frame-number order make a
constant-rate stream (ffmpeg's image2 demuxer at the sequence's frame rate,
dfrobust.media.ffmpeg.ImageSequence), so the face stage and the test copies
run the same ffmpeg chains on it as on a video file.

    list_archive(path)          what an archive holds, without extracting (never raises for a damaged one)
    sample_by_number(numbers,n) n images spread evenly by frame number
    extract_sequences(...)      one pass over an archive: the wanted sequences' images, renamed
                                000000.png, 000001.png, ... in frame-number order, into a scratch folder
    SequenceCache               one shard job's sequences: each archive unpacked once, freed after use

Archives are opened with tarfile's format detection ("r:*"), never trusting
the name: a ".tar.gz" may be plain tar. Member names are never used as paths
(nothing is extracted with extractall), so a name holding ".." cannot write
outside the scratch folder.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import struct
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Collection, Iterator, Sequence

import numpy as np

from dfrobust.core.errors import InputError

IMAGE_EXTS = (".png", ".jpg", ".jpeg")  # compared lower-case
READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)  # gzip.BadGzipFile is an OSError
ARCHIVE_RE = re.compile(r"^(?P<stem>[^.].*?)\.(?:tar\.gz|tgz|tar)$")
_NUMBER_RE = re.compile(r"^(\d+)$")


def archive_stem(name: str) -> str | None:
    """'17.tar.gz' -> '17' ('.tgz', '.tar' too); None for anything else (hidden files included)."""
    match = ARCHIVE_RE.match(name)
    return match.group("stem") if match else None


def member_folder(name: str) -> str:
    """A member's path inside an archive, normalised: no './', no trailing '/'."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in (".", "/")]
    return "/".join(parts)


def frame_number(name: str) -> int | None:
    """The frame number an image's name gives ('942.png' -> 942, '0942.png' -> 942); None when not a number."""
    stem = name.rsplit(".", 1)[0]
    match = _NUMBER_RE.match(stem)
    return int(match.group(1)) if match else None


def image_ext(name: str) -> str | None:
    """The image extension of a file name (lower-case), None for other files."""
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot > 0 else ""
    return ext if ext in IMAGE_EXTS else None


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _reject_reason(names: list[str]) -> str | None:
    """Why a folder's image names cannot make a sequence, or None when they can."""
    bad = sorted(n for n in names if frame_number(n) is None)
    if bad:
        return f"image {bad[0]} is not named by a frame number" + (f" ({len(bad)} such)" if len(bad) > 1 else "")
    exts = sorted({image_ext(n) for n in names})
    if len(exts) > 1:
        return f"images of {len(exts)} types ({', '.join(exts)})"
    seen: dict[int, str] = {}
    for name in sorted(names):
        number = frame_number(name)
        if number in seen:
            return f"frame {number} is given twice ({seen[number]} and {name})"
        seen[number] = name
    return None


@dataclass(frozen=True)
class ArchiveListing:
    """What one archive holds (from its members' headers, nothing extracted).

    sequences: member folder -> number of images; empty: leaf folders without
    images; rejected: member folder -> why its images cannot make a sequence;
    error: why the archive cannot be read (then nothing else is set).
    `size` and `mtime_ns` are the file's when listed (the listing cache's key)."""

    size: int
    mtime_ns: int
    sequences: dict[str, int] = field(default_factory=dict)
    empty: tuple[str, ...] = ()
    rejected: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "sequences": dict(self.sequences),
                "empty": list(self.empty), "rejected": dict(self.rejected), "error": self.error}

    @classmethod
    def from_json(cls, data: dict) -> "ArchiveListing":
        return cls(int(data["size"]), int(data["mtime_ns"]), {str(k): int(v) for k, v in data["sequences"].items()},
                   tuple(data["empty"]), {str(k): str(v) for k, v in data["rejected"].items()}, data["error"])


def list_archive(path: str | Path) -> ArchiveListing:
    """Every sequence folder of an archive (gzip or plain tar, whatever its name) and its image count.

    A folder is a sequence when it holds image files (.png, .jpg, .jpeg) directly;
    files whose names start with '.' and non-image files are ignored. A leaf
    folder (no folder below it) without images is listed as empty. Never raises
    for a damaged archive: `error` gives the reason (every member is read, so a
    truncated end is found)."""
    path = Path(path)
    stat = path.stat()
    images: dict[str, list[str]] = {}
    folders: set[str] = set()
    try:
        with tarfile.open(path, "r:*") as tar:
            for info in tar:
                name = member_folder(info.name)
                if not name:
                    continue
                if info.isdir():
                    folders.add(name)
                    continue
                parent, _, base = name.rpartition("/")
                if parent:
                    folders.add(parent)
                if not info.isfile() or base.startswith(".") or image_ext(base) is None:
                    continue
                images.setdefault(parent, []).append(base)
    except READ_ERRORS as error:
        return ArchiveListing(stat.st_size, stat.st_mtime_ns, error=f"{first_line(error)}")
    # every ancestor of a listed folder is a folder too (archives may omit directory entries)
    for name in list(folders) + list(images):
        parts = name.split("/")
        folders.update("/".join(parts[:k]) for k in range(1, len(parts)))
    with_children = {name.rpartition("/")[0] for name in folders if "/" in name}
    sequences, rejected = {}, {}
    for folder, names in sorted(images.items()):
        reason = _reject_reason(names)
        if reason:
            rejected[folder] = reason
        else:
            sequences[folder] = len(names)
    empty = tuple(sorted(f for f in folders if f not in images and f not in with_children))
    return ArchiveListing(stat.st_size, stat.st_mtime_ns, sequences, empty, rejected)


# -- sampling ------------------------------------------------------------------------


def sample_by_number(numbers: Sequence[int], n: int) -> np.ndarray:
    """Positions of `n` images spread evenly by frame number (all of them when n <= 0 or n >= len).

    The targets are ffmpeg.even_sample's over the span of frame numbers
    (numbers[0] .. numbers[-1], every number in it counted, present or not);
    each target goes to the image with the nearest number (a tie: the lower),
    then positions are made strictly increasing. Without gaps in the numbers
    this is exactly even_sample(len(numbers), n); with gaps, the samples follow
    the source video's timeline, not the images' count."""
    numbers = np.asarray(numbers, dtype=np.int64)
    m = len(numbers)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    if n <= 0 or n >= m:
        return np.arange(m, dtype=np.int64)
    span = int(numbers[-1] - numbers[0] + 1)
    targets = numbers[0] + np.floor((np.arange(n) + 0.5) * span / n).astype(np.int64)
    right = np.searchsorted(numbers, targets, side="left").clip(0, m - 1)
    left = (right - 1).clip(0, m - 1)
    nearest = np.where(np.abs(numbers[left] - targets) <= np.abs(numbers[right] - targets), left, right)
    out = np.empty(n, dtype=np.int64)
    previous = -1
    for k, position in enumerate(nearest):
        previous = min(max(int(position), previous + 1), m - n + k)
        out[k] = previous
    return out
