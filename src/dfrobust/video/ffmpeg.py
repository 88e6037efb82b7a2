"""Find ffmpeg, probe videos, decode sampled frames and encode frame arrays.

Everything goes through the ffmpeg binary (not OpenCV's bundled decoder) so the
exact program that applies the operations also decodes, and its version can be
recorded with every result.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from dfrobust.errors import InputError

ENV_VAR = "DFROBUST_FFMPEG"


def find_ffmpeg(override: str | None = None) -> str:
    """The ffmpeg binary: config override, $DFROBUST_FFMPEG, `ffmpeg` on PATH,
    then the one shipped in the imageio-ffmpeg wheel."""
    for candidate in (override, os.environ.get(ENV_VAR)):
        if candidate:
            resolved = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
            if not resolved:
                raise InputError(f"ffmpeg binary {candidate!r} (from config or ${ENV_VAR}) does not exist")
            return resolved
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=8)
def ffmpeg_version(exe: str) -> str:
    """First line of `ffmpeg -version`, e.g. 'ffmpeg version n9.0.2-...'."""
    out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    n_frames: int
    codec: str


_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: Video: (?P<codec>\w+).*?, (?P<w>\d{2,5})x(?P<h>\d{2,5})")
_FPS_RE = re.compile(r"(?P<fps>[\d.]+) fps")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")
_DAMAGE_RE = re.compile(r"(partial file|corrupt input packet|Packet corrupt|moov atom not found)[^\n]*")


def _fail(path: str | os.PathLike, stderr: str, what: str) -> InputError:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    reason = lines[-1] if lines else "no output from ffmpeg"
    return InputError(f"{path}: {what} ({reason})")


def probe(path: str | os.PathLike, exe: str | None = None) -> VideoInfo:
    """Size, frame rate and frame count of the first video stream.

    Frames are counted by stream-copying the packets to the null muxer, which
    is exact for the mp4/H.264 files of FF++ and needs no decoding.
    """
    exe = exe or find_ffmpeg()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: video file does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: video file is empty (0 bytes)")
    cmd = [exe, "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    stream = _STREAM_RE.search(proc.stderr)
    if proc.returncode != 0 or stream is None:
        raise _fail(path, proc.stderr, "cannot read video (corrupt, truncated or not a video)")
    damage = _DAMAGE_RE.search(proc.stderr)
    if damage:
        raise InputError(f"{path}: video is truncated or corrupt ({damage.group(0).strip()})")
    frames = _FRAME_RE.findall(proc.stderr)
    n_frames = int(frames[-1]) if frames else 0
    if n_frames == 0:
        raise InputError(f"{path}: video stream has no frames")
    fps_match = _FPS_RE.search(proc.stderr[stream.start():])
    return VideoInfo(
        path=str(path),
        width=int(stream["w"]),
        height=int(stream["h"]),
        fps=float(fps_match["fps"]) if fps_match else 25.0,
        n_frames=n_frames,
        codec=stream["codec"],
    )


def even_sample(n_frames: int, n_samples: int) -> np.ndarray:
    """`n_samples` frame indices spread evenly over [0, n_frames) (all frames if fewer)."""
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    if n_samples <= 0 or n_samples >= n_frames:
        return np.arange(n_frames, dtype=np.int64)
    # centre of each of n_samples equal segments: never repeats, never the
    # very first/last frame (fades, encoder warm-up)
    return np.floor((np.arange(n_samples) + 0.5) * n_frames / n_samples).astype(np.int64)


def select_filter(indices: Sequence[int]) -> str:
    """ffmpeg `select` expression keeping exactly the given frame numbers."""
    terms = "+".join(f"eq(n\\,{int(i)})" for i in indices)
    return f"select='{terms}'"


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | None = None,
    exe: str | None = None,
    info: VideoInfo | None = None,
    filters: Sequence[str] = (),
    size: tuple[int, int] | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Decode the given frames (all if None) as an (n, h, w, 3) uint8 RGB array.

    Only the selected frames are converted and piped; `filters` are applied
    after selection (e.g. a downscale for detection). `size` is (w, h) of the
    output when the filters change it.
    """
    info = info or probe(path, exe or find_ffmpeg())
    frames = list(iter_frames(path, indices, exe, info, filters, size, threads))
    if not frames:
        width, height = size or (info.width, info.height)
        return np.zeros((0, height, width, 3), np.uint8)
    return np.stack(frames)


def iter_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | None = None,
    exe: str | None = None,
    info: VideoInfo | None = None,
    filters: Sequence[str] = (),
    size: tuple[int, int] | None = None,
    threads: int = 1,
) -> Iterator[np.ndarray]:
    """Like `read_frames`, but streams one (h, w, 3) frame at a time from the
    pipe, so 100 full-HD frames never sit in memory together."""
    exe = exe or find_ffmpeg()
    info = info or probe(path, exe)
    if indices is not None:
        indices = [int(i) for i in indices]  # any sequence or iterator, read once
        if not indices:
            return
    chain = ([select_filter(indices)] if indices is not None else []) + list(filters)
    width, height = size or (info.width, info.height)
    cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", str(threads), "-i", str(path)]
    if chain:
        cmd += ["-vf", ",".join(chain)]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    expected = len(indices) if indices is not None else info.n_frames
    frame_bytes = width * height * 3
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    produced = 0
    try:
        while True:
            buf = proc.stdout.read(frame_bytes)
            if len(buf) < frame_bytes:
                break
            produced += 1
            yield np.frombuffer(buf, np.uint8).reshape(height, width, 3)
    finally:
        proc.stdout.close()
        stderr = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        proc.wait()
    if proc.returncode != 0:
        raise _fail(path, stderr, "decoding failed")
    if produced != expected:
        raise InputError(f"{path}: decoded {produced} frames, expected {expected} (truncated or corrupt video)")


def encode_command(
    exe: str,
    output: str | os.PathLike,
    width: int,
    height: int,
    fps: float,
    crf: int,
    preset: str = "medium",
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
) -> list[str]:
    """ffmpeg command reading raw RGB frames on stdin and writing an H.264 file."""
    return [
        exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-",
        "-c:v", codec, "-preset", preset, "-crf", str(int(crf)), "-pix_fmt", pix_fmt,
        "-threads", "1", "-map_metadata", "-1", "-bitexact", "-fflags", "+bitexact",
        "-flags:v", "+bitexact", "-movflags", "+faststart", str(output),
    ]


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray] | np.ndarray,
    fps: float,
    crf: int,
    preset: str = "medium",
    pix_fmt: str = "yuv420p",
    exe: str | None = None,
) -> None:
    """Encode RGB uint8 frames with libx264 at the given CRF (0 = lossless).

    Single-threaded, bit-exact flags: the same frames give the same bytes, so
    the demo dataset is reproducible from its seed. Written atomically.
    """
    from dfrobust.io import atomic_path

    exe = exe or find_ffmpeg()
    iterator = iter(frames)
    first = np.ascontiguousarray(next(iterator), dtype=np.uint8)
    height, width = first.shape[:2]
    with atomic_path(path) as tmp:
        cmd = encode_command(exe, tmp, width, height, fps, crf, preset, pix_fmt)
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            proc.stdin.write(first.tobytes())
            for frame in iterator:
                if frame.shape[:2] != (height, width):
                    raise ValueError(f"{path}: frame size changed from {(height, width)} to {frame.shape[:2]}")
                proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        finally:
            proc.stdin.close()
            stderr = proc.stderr.read().decode(errors="replace")
            proc.wait()
        if proc.returncode != 0:
            raise RuntimeError(f"{path}: ffmpeg encode failed: {stderr.strip()}")
