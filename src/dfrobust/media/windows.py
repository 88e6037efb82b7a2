"""Windows of frames for sequence detectors: which frames the face stage
samples, and how a stored face record gives its windows back.

A window is `length` frames, `step` frames apart (1: consecutive). A video's
windows are spread evenly over it without overlapping, and its record stores
them one after the other in `sampled_indices`, so window k is
sampled_indices[k*length:(k+1)*length]; the faces found in it are the rows
of `frame_indices` among those frames (a frame without a face is missing
from its window, never taken from the next). A video shorter than one window
gets one short window (every step-th frame), which the callers report.

With windows off (`faces.windows.length: 0`, the default) the face stage
samples single frames (dfrobust.media.ffmpeg.even_sample), as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dfrobust.core.errors import InputError
from dfrobust.core.settings import Settings


def settings(faces: Settings, split: str) -> tuple[int, int] | None:
    """(length, step) of the windows the validated faces block asks for on `split`; None when off."""
    if faces.windows.length <= 0:
        return None
    return int(faces.windows.length), int(faces.windows.step[split])


def stored_length(shard_summary: dict) -> int:
    """Window length a face shard (or a test copy of one) was sampled with (its recorded
    faces block); 0: single frames."""
    return int(shard_summary["faces_config"]["windows"]["length"])


def span(length: int, step: int) -> int:
    """Frames a window covers, first to last."""
    return (length - 1) * step + 1


def window_count(frames: int, length: int) -> int:
    """Windows that hold at least `frames` frames (faces.frames.{split} counts frames)."""
    return max(1, math.ceil(frames / length))


def sample_windows(n_frames: int, n_windows: int, length: int, step: int) -> np.ndarray:
    """Frame indices of up to `n_windows` windows spread evenly over [0, n_frames).

    Each window is centred in one of n equal segments of the video, so windows
    never overlap; a video too short for them all gets as many as fit, and a
    video shorter than one window one short window of every step-th frame.
    """
    if n_frames <= 0:
        return np.zeros(0, np.int64)
    width = span(length, step)
    if n_frames < width:
        return np.arange(0, n_frames, step, dtype=np.int64)
    n = min(int(n_windows), n_frames // width)
    segment = n_frames / n
    starts = np.floor(np.arange(n) * segment + (segment - width) / 2).astype(np.int64)
    return (starts[:, None] + np.arange(length, dtype=np.int64) * step).ravel()


@dataclass(frozen=True)
class Window:
    """One window of a record: its sampled frames and the rows of its faces."""

    frames: np.ndarray  # frame numbers sampled for it, in time order
    rows: np.ndarray  # rows of the record's faces found in those frames, in time order

    @property
    def first_frame(self) -> int:
        return int(self.frames[0])


def windows_of(record, length: int) -> list[Window]:
    """The windows of a face record sampled with windows of `length` frames.

    Raises InputError when the record's sampled frames are not such windows
    (e.g. a shard of single frames read as windows).
    """
    sampled = np.asarray(record.sampled_indices, np.int64)
    frames = np.asarray(record.frame_indices, np.int64)
    out = []
    for start in range(0, len(sampled), length):
        chunk = sampled[start : start + length]
        steps = np.diff(chunk)
        if len(steps) and (steps[0] <= 0 or (steps != steps[0]).any()):
            raise InputError(f"{record.video_id}: sampled frames {sampled[:2 * length].tolist()}... are not windows of {length} "
                             f"evenly spaced frames (faces.windows.length of the shard)")
        out.append(Window(chunk, np.flatnonzero(np.isin(frames, chunk))))
    return out
