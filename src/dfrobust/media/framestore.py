"""The sampled clean frames of a shard of test videos, stored once, losslessly,
in the decoder's own pixel format, so a per-frame operation (curves, eq, flips,
scaling, grayscale; `Operation.scope`) filters these few frames instead of
decoding the whole stream again for every operation.

The face stage writes them from the decode it already makes (the frames it
samples, before any conversion); a test copy reads one video at a time. A
shard is one zip archive, uncompressed: one Matroska file per video (a
lossless intra-frame codec, UT Video when it takes the pixel format, so a
frame decodes at a small fraction of an H.264 frame's cost) and `frames.json`
(per video: pixel format, encoder, the frame numbers stored, in order).
Matroska carries the colour range and matrix, which ffmpeg's RGB conversion
reads, so the stored frames convert exactly as the source's do. Frames are
stored upright (the decoder applied any rotation), and read with autorotate
off. Full-range yuvj* frames are stored as their yuv* twins tagged full range.
A video whose pixel format no lossless encoder here takes is not stored: its
copies take the whole-stream path.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import re
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator

from dfrobust.core.io import atomic_path
from dfrobust.media import ffmpeg

# lossless intra-frame encoders, cheapest to decode first (720p 4:4:4, 32 frames, one thread:
# utvideo 0.13 s, magicyuv 0.12 s, ffvhuff 0.25 s, ffv1 0.8 s; bench/README.md)
ENCODERS = ("utvideo", "magicyuv", "ffvhuff", "ffv1")
INDEX = "frames.json"


@functools.lru_cache(maxsize=32)
def encoder_formats(encoder: str, exe: str) -> tuple[str, ...]:
    """The pixel formats an ffmpeg encoder takes as they are (no conversion)."""
    proc = subprocess.run([exe, "-hide_banner", "-h", f"encoder={encoder}"], capture_output=True, text=True)
    match = re.search(r"Supported pixel formats:([^\n]*)", proc.stdout)
    return tuple(match[1].split()) if proc.returncode == 0 and match else ()


def stored_format(pix_fmt: str) -> str:
    """The pixel format the frames are stored in: the decoder's own, except that the
    deprecated full-range yuvj* formats are their yuv* twins with the range tagged
    full (the same samples; ffmpeg treats the two alike)."""
    return re.sub(r"^yuvj", "yuv", pix_fmt)


def lossless_encoder(pix_fmt: str | None, exe: str) -> str | None:
    """The first of ENCODERS that stores `pix_fmt` unconverted, or None."""
    if not pix_fmt:
        return None
    return next((enc for enc in ENCODERS if stored_format(pix_fmt) in encoder_formats(enc, exe)), None)


def store_options(encoder: str, pix_fmt: str) -> dict:
    """ffmpeg output options of one video's stored frames (Matroska, one thread, no metadata)."""
    full = {"color_range": "pc"} if stored_format(pix_fmt) != pix_fmt else {}
    return {"c:v": encoder, "pix_fmt": stored_format(pix_fmt), **full, "threads": 1, "f": "matroska", **ffmpeg.BITEXACT}


class FrameWriter:
    """Collects the stored frames of a shard's videos (each written by the face
    stage's decode to `path_for(video_id)`), then `write`s the archive."""

    def __init__(self, exe: str, workdir: str | os.PathLike | None = None):
        """workdir: where the videos' files wait for the archive (next to it, rather
        than a node's small /tmp); None: the system's temporary folder."""
        self.exe = exe
        if workdir is not None:
            Path(workdir).mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.TemporaryDirectory(prefix=".dfrobust-frames-", dir=workdir)
        self.videos: dict[str, dict] = {}
        self._names = itertools.count()

    def target(self, video_id: str, pix_fmt: str | None) -> tuple[Path, dict] | None:
        """(file, ffmpeg output options) for one video's frames, or None when no
        lossless encoder takes its pixel format (the video is then not stored)."""
        encoder = lossless_encoder(pix_fmt, self.exe)
        if encoder is None:
            return None
        return Path(self._tmp.name) / f"{next(self._names)}.mkv", store_options(encoder, pix_fmt)

    def add(self, video_id: str, path: Path, pix_fmt: str, options: dict, indices) -> None:
        """Record a video whose frames ffmpeg wrote to `path` (the frame numbers in stored order)."""
        self.videos[video_id] = {"file": str(path), "pix_fmt": pix_fmt, "encoder": options["c:v"],
                                 "indices": [int(i) for i in indices]}

    def write(self, out: str | os.PathLike) -> None:
        """The archive, atomically: members stored (already compressed), one per video."""
        index = {}
        with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for k, (video_id, entry) in enumerate(self.videos.items()):
                member = f"{k:05d}.mkv"
                zf.write(entry["file"], member)
                index[video_id] = {**{key: v for key, v in entry.items() if key != "file"}, "member": member}
            zf.writestr(INDEX, json.dumps(index, indent=1, sort_keys=True))
        self.close()

    def close(self) -> None:
        self._tmp.cleanup()


def write_empty(out: str | os.PathLike) -> None:
    """An archive with no videos (a shard whose frames no test copy needs)."""
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(INDEX, "{}")


class FrameStore:
    """Read access to one shard's stored frames."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with zipfile.ZipFile(self.path) as zf:
            self.index: dict[str, dict] = json.loads(zf.read(INDEX))

    def __contains__(self, video_id: str) -> bool:
        return video_id in self.index

    def indices(self, video_id: str) -> list[int]:
        """The frame numbers stored for a video, in stored order."""
        return list(self.index[video_id]["indices"])

    @contextlib.contextmanager
    def extracted(self, video_id: str) -> Iterator[Path]:
        """One video's frames as a Matroska file (a temporary copy, removed after)."""
        entry = self.index[video_id]
        with tempfile.TemporaryDirectory(prefix="dfrobust-frames-") as tmp:
            with zipfile.ZipFile(self.path) as zf:
                path = Path(zf.extract(entry["member"], tmp))
            yield path
