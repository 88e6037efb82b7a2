"""Probe videos, decode sampled frames and encode frame arrays, through the ffmpeg binary.

Everything goes through ffmpeg (not OpenCV's bundled decoder) so the exact
program that applies the operations also decodes, and its version can be
recorded with every result. Command lines and filter graphs are built with
ffmpeg-python (`import ffmpeg`), never pasted together as strings; a filter
chain written in the config ("scale=iw/2:ih/2,hflip") is parsed into filters
and options first (`parse_chain`).

Wherever a video file goes, an image sequence may go instead
(dfrobust.media.sequence.ImageSequence: a folder of images in frame-number
order, read by the image2 demuxer at its frame rate): `input_of` builds the
input of either, so every decode and every operation runs the same ffmpeg
chain on a sequence as on a video stream.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import ffmpeg as ffmpeg_graph
import numpy as np

from dfrobust.core.errors import InputError
from dfrobust.core.tools import ffmpeg_version, find_ffmpeg  # noqa: F401  (re-exported)
from dfrobust.media.sequence import ImageSequence

Source = str | os.PathLike | ImageSequence  # a video file, or an image sequence read as one

QUIET = ("-hide_banner", "-nostdin", "-loglevel", "error")
# options that make an encode's bytes depend only on its input (no metadata, no version strings)
BITEXACT = {"map_metadata": -1, "bitexact": None, "fflags": "+bitexact", "flags:v": "+bitexact"}
RAW_RGB = {"f": "rawvideo", "pix_fmt": "rgb24", "fps_mode": "passthrough"}


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    n_frames: int
    codec: str
    pix_fmt: str | None = None  # the decoder's pixel format ("yuv420p"), None when the probe did not say


# -- filter chains -------------------------------------------------------------------


def split_top_level(text: str, separator: str) -> list[str]:
    """Split at `separator` where ffmpeg's own parser would: not inside quotes,
    brackets or after a backslash."""
    parts, current, quote, depth, escaped = [], [], False, 0, False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if char == "\\":
            escaped = True
        elif char == "'":
            quote = not quote
        elif not quote and char in "([":
            depth += 1
        elif not quote and char in ")]":
            depth -= 1
        elif not quote and depth == 0 and char == separator:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _unquote(value: str) -> str:
    """ffmpeg's quoting of one option value ('...' and backslash escapes) removed:
    ffmpeg-python quotes values itself."""
    out, quote, escaped = [], False, False
    for char in value:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "'":
            quote = not quote
        else:
            out.append(char)
    return "".join(out)


_OPTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_filter(single: str) -> tuple[str, list[str], dict[str, str]]:
    """'scale=iw/2:ih/2' -> ('scale', ['iw/2', 'ih/2'], {});
    'noise=alls=10:allf=t' -> ('noise', [], {'alls': '10', 'allf': 't'})."""
    name, _, options = single.partition("=")
    args, kwargs = [], {}
    for part in split_top_level(options, ":") if options else []:
        key, eq, value = part.partition("=")
        if eq and _OPTION_NAME.match(key):
            kwargs[key] = _unquote(value)
        else:
            args.append(_unquote(part))
    return name.strip(), args, kwargs


def apply_chain(stream, filters: Sequence[str]):
    """`stream` through each filter of a parsed chain (a list of single filters)."""
    for single in filters:
        name, args, kwargs = parse_filter(single)
        stream = stream.filter(name, *args, **kwargs)
    return stream


def select_frames(stream, indices: Sequence[int]):
    """Keep exactly the given frame numbers of `stream`."""
    return stream.filter("select", "+".join(f"eq(n,{int(i)})" for i in indices))


def input_of(source: Source, **options):
    """The ffmpeg-python input node of a video file or of an image sequence (image2, positions 0..n-1)."""
    if isinstance(source, ImageSequence):
        return ffmpeg_graph.input(source.pattern(), **source.input_options(), **options)
    return ffmpeg_graph.input(str(source), **options)


def command(graph, exe: str) -> list[str]:
    """The argument list of an ffmpeg-python graph, quiet and non-interactive."""
    return graph.global_args(*QUIET).compile(cmd=exe)


# -- probing -------------------------------------------------------------------------

_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: Video: (?P<codec>\w+).*?, (?P<w>\d{2,5})x(?P<h>\d{2,5})")
# the pixel format: the word just before the size, after an optional "(tv, bt709, progressive)"
_PIX_FMT_RE = re.compile(r", (?P<pix_fmt>[a-z][a-z0-9_]*)(?:\([^)]*\))?, \d{2,5}x\d{2,5}")
_FPS_RE = re.compile(r"(?P<fps>[\d.]+) fps")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")
# a rotation the player (and ffmpeg's decoder, which autorotates) applies: "Display Matrix: rotation of
# -90.00 degrees" (ffmpeg >= 6.1), "displaymatrix: rotation of ..." (older side data) or "rotate : 90" (metadata)
_ROTATION_RE = re.compile(r"(?:display ?matrix: rotation of|\brotate\s*:)\s*(-?[\d.]+)", re.IGNORECASE)
_DAMAGE_RE = re.compile(r"(partial file|corrupt input packet|Packet corrupt|moov atom not found)[^\n]*")


def failure(path: str | os.PathLike, stderr: str, what: str) -> InputError:
    """An InputError naming the file, the step and ffmpeg's last message."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    reason = lines[-1] if lines else "no output from ffmpeg"
    return InputError(f"{path}: {what} ({reason})")


def probe(path: Source, exe: str | None = None) -> VideoInfo:
    """Size (as displayed: a quarter-turn rotation swaps the coded width and
    height, as the decoder does), frame rate and frame count of the first video stream.

    Frames are counted by stream-copying the packets to the null muxer, which
    is exact for the mp4/H.264 files of FF++ and needs no decoding. An image
    sequence is probed the same way (one packet per image: its frame rate is the
    sequence's, its frame count its number of images).
    """
    exe = exe or find_ffmpeg()
    sequence = path if isinstance(path, ImageSequence) else None
    if sequence is None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: video file does not exist")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: video file is empty (0 bytes)")
    elif not len(sequence) or not (sequence.folder / f"{0:06d}{sequence.ext}").is_file():
        raise InputError(f"{sequence}: image sequence has no images")
    graph = input_of(path).output("-", map="0:v:0", c="copy", f="null")
    cmd = graph.global_args("-hide_banner", "-nostdin").compile(cmd=exe)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    stream = _STREAM_RE.search(proc.stderr)
    if proc.returncode != 0 or stream is None:
        raise failure(path, proc.stderr, "cannot read video (corrupt, truncated or not a video)")
    damage = _DAMAGE_RE.search(proc.stderr)
    if damage:
        raise InputError(f"{path}: video is truncated or corrupt ({damage.group(0).strip()})")
    frames = _FRAME_RE.findall(proc.stderr)
    n_frames = int(frames[-1]) if frames else 0
    if n_frames == 0:
        raise InputError(f"{path}: video stream has no frames")
    if sequence is not None and n_frames != len(sequence):
        raise InputError(f"{path}: ffmpeg reads {n_frames} of its {len(sequence)} images")
    fps_match = _FPS_RE.search(proc.stderr[stream.start():])
    width, height = int(stream["w"]), int(stream["h"])
    pix_fmt = _PIX_FMT_RE.search(stream.group(0))
    if quarter_turn(proc.stderr, stream.end()):
        width, height = height, width  # decoded frames come out upright: the displayed size
    return VideoInfo(
        path=str(path),
        width=width,
        height=height,
        fps=float(fps_match["fps"]) if fps_match else 25.0,
        n_frames=n_frames,
        codec=stream["codec"],
        pix_fmt=pix_fmt["pix_fmt"] if pix_fmt else None,
    )


def quarter_turn(stderr: str, start: int) -> bool:
    """Whether the video stream whose description starts at `start` carries a
    rotation by an odd multiple of 90 degrees (phone videos shot upright are
    often stored sideways with one). ffmpeg's decoder applies it, so frames
    come out with width and height swapped relative to the coded size."""
    end = stderr.find("Stream ", start)
    block = stderr[start: end if end >= 0 else len(stderr)]
    match = _ROTATION_RE.search(block)
    return bool(match) and round(float(match[1]) / 90) % 2 == 1


def even_sample(n_frames: int, n_samples: int) -> np.ndarray:
    """`n_samples` frame indices spread evenly over [0, n_frames) (all frames if fewer)."""
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    if n_samples <= 0 or n_samples >= n_frames:
        return np.arange(n_frames, dtype=np.int64)
    # centre of each of n_samples equal segments: never repeats, never the
    # very first/last frame (fades, encoder warm-up)
    return np.floor((np.arange(n_samples) + 0.5) * n_frames / n_samples).astype(np.int64)


# -- decoding ------------------------------------------------------------------------


def read_frames(
    path: Source,
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
    path: Source,
    indices: Sequence[int] | None = None,
    exe: str | None = None,
    info: VideoInfo | None = None,
    filters: Sequence[str] = (),
    size: tuple[int, int] | None = None,
    threads: int = 1,
    store: tuple[str | os.PathLike, dict] | None = None,
) -> Iterator[np.ndarray]:
    """Like `read_frames`, but streams one (h, w, 3) frame at a time from the
    pipe, so 100 full-HD frames never sit in memory together.

    store: (path, output options): the same decode also writes the selected
    frames, before any conversion or `filters`, to this file
    (dfrobust.media.framestore: lossless, in the decoder's pixel format)."""
    exe = exe or find_ffmpeg()
    info = info or probe(path, exe)
    if indices is not None:
        indices = [int(i) for i in indices]  # any sequence or iterator, read once
        if not indices:
            return
    stream = input_of(path, threads=threads).video
    if indices is not None:
        stream = select_frames(stream, indices)
    if store is not None:
        both = stream.split()
        stored, stream = both[0], both[1]
        stored = stored.output(str(store[0]), fps_mode="passthrough", **store[1])
        graph = ffmpeg_graph.merge_outputs(apply_chain(stream, filters).output("pipe:", **RAW_RGB), stored)
        cmd = command(graph.overwrite_output(), exe)
    else:
        cmd = command(apply_chain(stream, filters).output("-", **RAW_RGB), exe)
    width, height = size or (info.width, info.height)
    expected = len(indices) if indices is not None else info.n_frames
    yield from read_rgb(cmd, width, height, expected, path)


def read_rgb(cmd: list[str], width: int, height: int, expected: int, path: Source) -> Iterator[np.ndarray]:
    """Run an ffmpeg command whose output is RAW_RGB on stdout and yield its
    (h, w, 3) frames; an InputError naming `path` when it fails or gives
    other than `expected` frames."""
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
        raise failure(path, stderr, "decoding failed")
    if produced != expected:
        raise InputError(f"{path}: decoded {produced} frames, expected {expected} (truncated or corrupt video)")


def frame_size_after(filters: Sequence[str], width: int, height: int, exe: str) -> tuple[int, int]:
    """(width, height) a filter chain makes of a width x height frame, measured by
    running it on one blank frame (the PPM header carries the size).
    Raises InputError with ffmpeg's message when the chain does not run."""
    source = ffmpeg_graph.input(f"color=c=gray:s={width}x{height}:r=25:d=0.2,format=yuv420p", f="lavfi").video
    graph = apply_chain(source, filters).output("-", **{"frames:v": 1, "f": "image2pipe", "c:v": "ppm"})
    proc = subprocess.run(command(graph, exe), capture_output=True)
    header = proc.stdout[:32].split()
    if proc.returncode != 0 or len(header) < 3 or header[0] != b"P6":
        lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        reason = lines[-1].strip() if lines else "no frame came out"
        raise InputError(f"filter chain {','.join(filters)!r}: ffmpeg cannot run it ({reason})")
    return int(header[1]), int(header[2])


# -- encoding ------------------------------------------------------------------------


def encoder_options(encoder: str, crf: int, preset: str, pix_fmt: str, threads: int = 1) -> dict:
    """Output options of an encode whose bytes depend only on its input
    (single-threaded by default, no metadata)."""
    return {"c:v": encoder, "preset": preset, "crf": int(crf), "pix_fmt": pix_fmt, "threads": int(threads), **BITEXACT}


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
    from dfrobust.core.io import atomic_path

    exe = exe or find_ffmpeg()
    iterator = iter(frames)
    first = np.ascontiguousarray(next(iterator), dtype=np.uint8)
    height, width = first.shape[:2]
    with atomic_path(path) as tmp:
        source = ffmpeg_graph.input("pipe:", f="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=f"{fps:g}")
        graph = source.output(str(tmp), movflags="+faststart", **encoder_options("libx264", crf, preset, pix_fmt))
        proc = subprocess.Popen(command(graph.overwrite_output(), exe), stdin=subprocess.PIPE, stderr=subprocess.PIPE)
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
