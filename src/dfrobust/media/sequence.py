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
from collections import Counter
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


# -- image sizes from headers (no decoding) ------------------------------------------


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's SOFn header; None when neither is found."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                pos += 1
                continue
            marker = data[pos + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                pos += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack(">H", data[pos + 2: pos + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and pos + 9 <= len(data):
                height, width = struct.unpack(">HH", data[pos + 5: pos + 9])
                return int(width), int(height)
            pos += 2 + length
    return None


# -- a sequence as a stream ----------------------------------------------------------


@dataclass(frozen=True)
class ImageSequence:
    """The images of one face sequence, unpacked into `folder` as 000000<ext>,
    000001<ext>, ... in frame-number order: what ffmpeg reads as a video (image2
    demuxer, one image per frame at `frame_rate`). `numbers[k]` is the source
    frame number of position k; `label` ("<archive>:<member>") names it in messages."""

    folder: Path
    ext: str
    numbers: tuple[int, ...]
    frame_rate: float
    label: str
    size: tuple[int, int] = (0, 0)  # (width, height) of every image, from their headers

    def pattern(self) -> str:
        return str(self.folder / f"%06d{self.ext}")

    def input_options(self) -> dict:
        """ffmpeg input options: positions 0..n-1 as a constant-rate stream. The sequence
        pattern (not glob, which sorts names as text) and the renamed images make the
        order the frame numbers'; ffmpeg's own start_number search is not needed."""
        return {"f": "image2", "pattern_type": "sequence", "start_number": 0, "framerate": f"{self.frame_rate:g}"}

    def sample(self, n: int) -> np.ndarray:
        """Positions of n images spread evenly by frame number (sample_by_number)."""
        return sample_by_number(self.numbers, n)

    def __len__(self) -> int:
        return len(self.numbers)

    def __str__(self) -> str:
        return self.label


def extract_sequences(archive: str | Path, members: Collection[str], into: str | Path,
                      frame_rate: float) -> dict[str, ImageSequence | InputError]:
    """The wanted sequence folders of one archive, in one pass over it.

    Each member's images are written, from their bytes (tarfile.extractfile, never
    extractall: member names are never paths), to into/<k>/, then renamed
    000000<ext>, ... in frame-number order. Returns member -> its ImageSequence,
    or the InputError (one line naming archive and member) that excludes it: a
    folder the archive does not hold (any more), names that are not frame numbers,
    images of several sizes (ffmpeg's image2 would rescale them without a word),
    or an archive that cannot be read (every member gets it)."""
    archive, into = Path(archive), Path(into)
    wanted = {member_folder(m): m for m in members}
    folders = {m: into / f"{k}" for k, m in enumerate(wanted)}
    files: dict[str, list[tuple[str, Path]]] = {m: [] for m in wanted}
    sizes: dict[str, Counter] = {m: Counter() for m in wanted}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for info in tar:
                name = member_folder(info.name)
                parent, _, base = name.rpartition("/")
                if parent not in wanted or not info.isfile() or base.startswith(".") or image_ext(base) is None:
                    continue
                data = tar.extractfile(info).read()
                folder = folders[parent]
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / f"in{len(files[parent])}{image_ext(base)}"
                target.write_bytes(data)
                files[parent].append((base, target))
                size = image_size(data)
                sizes[parent][size] += 1
    except READ_ERRORS as error:
        failed = InputError(f"{archive}: cannot be read ({first_line(error)})")
        return {wanted[m]: failed for m in wanted}
    out: dict[str, ImageSequence | InputError] = {}
    for member, original in wanted.items():
        where = f"{archive}:{member}"
        names = [n for n, _ in files[member]]
        reason = "no images (not in the archive)" if not names else _reject_reason(names)
        if reason is None and None in sizes[member]:
            reason = f"{sizes[member][None]} image(s) whose size cannot be read (not PNG or JPEG data)"
        if reason is None and len(sizes[member]) > 1:
            counted = ", ".join(f"{w}x{h} x{n}" for (w, h), n in sorted(sizes[member].items(), key=lambda kv: -kv[1]))
            reason = f"images of {len(sizes[member])} sizes ({counted}); ffmpeg would rescale them to the first's"
        if reason is not None:
            out[original] = InputError(f"{where}: {reason}")
            continue
        ordered = sorted(files[member], key=lambda item: frame_number(item[0]))
        ext = image_ext(ordered[0][0])
        for position, (_, path) in enumerate(ordered):
            path.rename(path.with_name(f"{position:06d}{ext}"))
        out[original] = ImageSequence(folders[member], ext, tuple(frame_number(n) for n, _ in ordered), float(frame_rate),
                                      where, next(iter(sizes[member])))
    return out


class SequenceCache:
    """The image sequences of one shard job's rows (index rows; those with a
    `member` are sequences, dfrobust.datasets.common.sequence_of gives their
    settings). An archive is unpacked on first use, all of its sequences the
    job's later rows need in one pass, into a temporary folder under `scratch`
    (default: tempfile's, i.e. $TMPDIR: node-local scratch on clusters that set it),
    and freed after the last row that needs it; everything is removed on exit,
    also after an error."""

    def __init__(self, rows: list[dict], sequences: list[dict | None], scratch: str | Path | None = None):
        """rows: the job's rows in the order they are processed; sequences: each row's
        {member, frame_rate, ...} or None for a video file's row."""
        self.rows = [(str(row["path"]), seq) for row, seq in zip(rows, sequences)]
        self.position = {id(row): k for k, row in enumerate(rows)}
        self.scratch = scratch
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._open: dict[str, tuple[Path, dict[str, ImageSequence | InputError]]] = {}
        self.unpacked = 0  # archives unpacked (one pass each)

    def __enter__(self) -> "SequenceCache":
        self._tmp = tempfile.TemporaryDirectory(prefix="dfrobust-sequences-", dir=self.scratch)
        return self

    def __exit__(self, *exc) -> None:
        self._open.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _unpack(self, archive: str, start: int) -> None:
        wanted = {}
        for path, seq in self.rows[start:]:
            if seq is not None and path == archive:
                wanted.setdefault(seq["member"], seq["frame_rate"])
        rates = set(wanted.values())
        folder = Path(tempfile.mkdtemp(prefix="a", dir=self._tmp.name))
        found = {}
        for rate in rates:  # one frame rate in practice (a dataset's setting): one pass
            found.update(extract_sequences(archive, [m for m, r in wanted.items() if r == rate], folder, rate))
        self.unpacked += 1
        self._open[archive] = (folder, found)

    @contextlib.contextmanager
    def source(self, row: dict, sequence: dict | None) -> Iterator[str | ImageSequence]:
        """The row's video path, or its ImageSequence (its archive unpacked on first use).
        Raises the InputError that excludes a sequence that cannot be read."""
        if sequence is None:
            yield str(row["path"])
            return
        if self._tmp is None:
            raise RuntimeError("SequenceCache used outside its `with` block")
        archive = str(row["path"])
        start = self.position[id(row)] if id(row) in self.position else 0  # a row not given at the start: look at all
        try:
            if archive not in self._open or sequence["member"] not in self._open[archive][1]:
                self._unpack(archive, start)
            got = self._open[archive][1][sequence["member"]]
            if isinstance(got, InputError):
                raise got
            yield got
        finally:
            later = any(path == archive and seq is not None for path, seq in self.rows[start + 1:])
            if not later and archive in self._open:
                shutil.rmtree(self._open.pop(archive)[0], ignore_errors=True)
