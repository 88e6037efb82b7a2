"""Apply operations to the whole stream of a video and keep the sampled frames.

Every operation sees the entire stream (temporal noise changes with each frame,
inter-frame compression predicts from neighbours), and only then are the frames
the test protocol samples selected. Pixel operations go filter -> select ->
raw RGB pipe, so they add no compression of their own; a codec operation is a
real encode of the whole stream followed by a decode of the sampled frames.

One ffmpeg decode can feed several operations (`split` into one branch per
operation, each to its own pipe).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable

import ffmpeg as ffmpeg_graph
import numpy as np

from dfrobust.core.errors import InputError
from dfrobust.core.io import atomic_path
from dfrobust.media import ffmpeg
from dfrobust.media.operations import Operation, output_size

# lossless RGB copy of a processed stream (operations.keep_videos)
KEEP_ENCODER = {"c:v": "libx264rgb", "crf": 0, "preset": "medium", "pix_fmt": "rgb24", **ffmpeg.BITEXACT}

Sink = Callable[[int, np.ndarray], None]


def codec_options(codec: dict) -> dict:
    """ffmpeg output options of a codec operation."""
    return ffmpeg.encoder_options(codec["encoder"], codec["crf"], codec["preset"], codec["pix_fmt"], codec["threads"])


class _PipeReader(threading.Thread):
    """Reads fixed-size RGB frames from one ffmpeg output pipe and hands them on.

    It always drains the pipe, even after its sink failed, so ffmpeg never
    blocks on a full pipe while the other branches wait."""

    def __init__(self, fd: int, size: tuple[int, int], indices: list[int], sink: Sink | None):
        super().__init__(daemon=True)
        self.fd, self.size, self.indices, self.sink = fd, size, indices, sink
        self.frames: list[np.ndarray] = []
        self.count = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        width, height = self.size
        frame_bytes = width * height * 3
        with os.fdopen(self.fd, "rb") as pipe:
            while len(buf := pipe.read(frame_bytes)) == frame_bytes:
                self.count += 1
                if self.error is not None or self.count > len(self.indices):
                    continue
                frame = np.frombuffer(buf, np.uint8).reshape(height, width, 3)
                try:
                    if self.sink is None:
                        self.frames.append(frame)
                    else:
                        self.sink(self.indices[self.count - 1], frame)
                except BaseException as error:  # re-raised by the caller after ffmpeg ends
                    self.error = error


def distort_video(
    path: ffmpeg.Source,
    operations: list[Operation],
    indices: dict[str, list[int]],
    width: int,
    height: int,
    exe: str,
    threads: int = 1,
    sinks: dict[str, Sink] | None = None,
    keep: dict[str, str | os.PathLike] | None = None,
) -> dict[str, list[np.ndarray]]:
    """Apply every operation to the whole stream of one video (or image sequence,
    read as a stream at its frame rate: dfrobust.media.ffmpeg.input_of) in a single decode.

    indices: operation name -> frame numbers to keep (frame numbers of the source).
    sinks:   operation name -> callable(frame index, frame) given each kept frame as
             it arrives (then the frames are not stored); others are returned.
    keep:    operation name -> where to write the full processed video (lossless
             libx264rgb CRF 0 for pixel operations, the encoded file itself for
             codec operations).
    Returns operation name -> kept frames (RGB uint8) for operations without a sink.
    """
    sinks, keep = sinks or {}, keep or {}
    codec = [op for op in operations if op.is_codec]
    out: dict[str, list[np.ndarray]] = {}
    if not operations:
        return out
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dfrobust-distort-")))
        encoded = {op.name: stack.enter_context(atomic_path(keep[op.name])) if op.name in keep
                   else workdir / f"{k}.mp4" for k, op in enumerate(codec)}
        source = ffmpeg.input_of(path, threads=threads).video
        branches = source.split() if len(operations) > 1 else None
        outputs, readers, write_ends = [], [], []
        for k, op in enumerate(operations):
            stream = branches[k] if branches is not None else source
            if op.is_codec:
                outputs.append(stream.output(str(encoded[op.name]), fps_mode="passthrough", **codec_options(op.codec)))
                continue
            stream = ffmpeg.apply_chain(stream, op.filters())
            if op.name in keep:
                kept = stack.enter_context(atomic_path(keep[op.name]))
                both = stream.split()
                outputs.append(both[0].output(str(kept), fps_mode="passthrough", **KEEP_ENCODER))
                stream = both[1]
            read_end, write_end = os.pipe()
            write_ends.append(write_end)
            outputs.append(ffmpeg.select_frames(stream, indices[op.name]).output(f"pipe:{write_end}", **ffmpeg.RAW_RGB))
            size = output_size(op, width, height, exe)
            readers.append((op, _PipeReader(read_end, size, list(indices[op.name]), sinks.get(op.name))))
        cmd = ffmpeg.command(ffmpeg_graph.merge_outputs(*outputs).overwrite_output(), exe)
        stderr = stack.enter_context(tempfile.TemporaryFile())
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, pass_fds=write_ends)
        except OSError:
            for _, reader in readers:
                os.close(reader.fd)
            raise
        finally:
            for fd in write_ends:
                os.close(fd)
        for _, reader in readers:
            reader.start()
        for _, reader in readers:
            reader.join()
        proc.wait()
        if proc.returncode != 0:
            stderr.seek(0)
            lines = [ln.strip() for ln in stderr.read().decode(errors="replace").splitlines() if ln.strip()]
            names = ", ".join(op.name for op in operations)
            raise InputError(f"{path}: ffmpeg failed applying {names} ({lines[-1] if lines else 'no message'})")
        for op, reader in readers:
            if reader.error is not None:
                raise reader.error
            if reader.count != len(indices[op.name]):
                raise InputError(f"{path}: operation {op.name!r} gave {reader.count} of the {len(indices[op.name])} "
                                 f"sampled frames (does its filter change the frame count?)")
            if op.name not in sinks:
                out[op.name] = reader.frames
        for op in codec:
            out.update(_decode_encoded(encoded[op.name], op, indices[op.name], width, height, exe, threads, sinks))
    return out


def _decode_encoded(path, op, indices, width, height, exe, threads, sinks) -> dict[str, list[np.ndarray]]:
    """The sampled frames of a codec operation's encoded stream."""
    info = ffmpeg.VideoInfo(path=str(path), width=width, height=height, fps=25.0, n_frames=-1, codec="h264")
    frames = ffmpeg.iter_frames(path, indices, exe=exe, info=info, threads=threads)
    if op.name in sinks:
        for index, frame in zip(indices, frames):
            sinks[op.name](index, frame)
        return {}
    return {op.name: list(frames)}


# --- per-frame operations on the stored sampled frames (dfrobust.media.framestore) ---


def stored_pts(indices: list[int]) -> str:
    """A setpts expression giving the k-th stored frame its frame number in the source
    (a flat sum of steps, no nesting: fine for hundreds of frames)."""
    terms = [str(int(indices[0]))]
    terms += [f"{int(b) - int(a)}*gte(N,{k})" for k, (a, b) in enumerate(zip(indices, indices[1:]), start=1)]
    return "+".join(terms)


def distort_stored(
    path: str | os.PathLike,
    op: Operation,
    stored: list[int],
    wanted: list[int],
    width: int,
    height: int,
    exe: str,
    threads: int = 1,
    sink: Sink | None = None,
) -> list[np.ndarray]:
    """`op` (scope 'frame' or 'position') applied to a video's stored sampled frames:
    the same RGB frames the whole-stream path (`distort_video`) gives, bit for bit.

    path:   the video's stored frames (framestore), frame numbers `stored` in stored order;
    wanted: the frame numbers to return (a subset of `stored`), in order;
    width, height: the source frame size (the stored frames' size).
    A 'frame' operation filters only the wanted frames. A 'position' operation
    (noise) must see each frame at its frame number: every stored frame is given
    its frame number as timestamp and the gaps are filled by repeating it (fps), so frame n
    is again the n-th frame through the filters; the fillers' pixels never reach
    a kept frame. Returns the frames ([] when `sink` takes them).
    """
    if op.scope not in ("frame", "position"):
        raise ValueError(f"operation {op.name!r} needs the whole stream (scope {op.scope!r})")
    wanted = [int(i) for i in wanted]
    if not wanted:
        return []
    position = {int(index): k for k, index in enumerate(stored)}
    missing = [i for i in wanted if i not in position]
    if missing:
        raise InputError(f"{path}: frames {missing} are not among the stored frames")
    stream = ffmpeg_graph.input(str(path), threads=threads, noautorotate=None).video
    if op.scope == "frame":
        stream = ffmpeg.apply_chain(ffmpeg.select_frames(stream, [position[i] for i in wanted]), op.filters())
    else:
        last = max(wanted)
        kept = [int(i) for i in stored if int(i) <= last]
        # one clone after the last frame: fps gives a frame only once it has seen the next one
        stream = stream.filter("trim", end_frame=len(kept)).filter("tpad", stop=1, stop_mode="clone")
        stream = stream.filter("settb", "1").filter("setpts", stored_pts(kept + [kept[-1] + 1])).filter("fps", fps=1, start_time=0)
        stream = ffmpeg.select_frames(ffmpeg.apply_chain(stream, op.filters()), wanted)
    cmd = ffmpeg.command(stream.output("pipe:", **ffmpeg.RAW_RGB), exe)
    out_width, out_height = output_size(op, width, height, exe)
    frames = []
    for index, frame in zip(wanted, ffmpeg.read_rgb(cmd, out_width, out_height, len(wanted), path)):
        if sink is None:
            frames.append(frame)
        else:
            sink(index, frame)
    return frames
