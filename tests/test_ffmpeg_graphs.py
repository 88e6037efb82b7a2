"""Command lines and filter graphs built with ffmpeg-python give, bit for bit,
what the hand-assembled command strings dfrobust used before gave.

The reference below is the old construction, kept here only as the oracle:
`-vf` chains with a quoted select expression for decoding, and one
`-filter_complex` string per operation for the test copies. Every default
operation is compared on a small video, and so is the face stage's decode.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from dfrobust.media import ffmpeg
from dfrobust.media.distortion import distort_video
from dfrobust.media.operations import output_size

from conftest import operations_of

INDICES = [3, 4, 9, 15]
QUIET = ["-hide_banner", "-nostdin", "-loglevel", "error"]


def legacy_select(indices) -> str:
    return "select='" + "+".join(f"eq(n\\,{int(i)})" for i in indices) + "'"


def legacy_decode(path, indices, exe, size) -> np.ndarray:
    """The old iter_frames command: -threads 1 -i path -vf select -> raw RGB."""
    cmd = [exe, *QUIET, "-threads", "1", "-i", str(path), "-vf", legacy_select(indices),
           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    width, height = size
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


def legacy_copy(path, op, indices, exe) -> np.ndarray:
    """The old distort_video command for one operation."""
    if op.is_codec:
        c = op.codec
        with tempfile.TemporaryDirectory() as tmp:
            encoded = Path(tmp) / "x.mp4"
            cmd = [exe, *QUIET, "-threads", "1", "-i", str(path), "-filter_complex", "[0:v]null[s0]", "-map", "[s0]",
                   "-fps_mode", "passthrough", "-c:v", c["encoder"], "-preset", c["preset"], "-crf", str(c["crf"]),
                   "-pix_fmt", c["pix_fmt"], "-threads", str(c["threads"]), "-map_metadata", "-1", "-bitexact",
                   "-fflags", "+bitexact", "-flags:v", "+bitexact", "-y", str(encoded)]
            subprocess.run(cmd, capture_output=True, check=True)
            return legacy_decode(encoded, indices, exe, (320, 240))
    chain = op.filters() + [legacy_select(indices)]
    graph = f"[0:v]null[s0];[s0]{','.join(chain)}[p0]"
    cmd = [exe, *QUIET, "-threads", "1", "-i", str(path), "-filter_complex", graph, "-map", "[p0]",
           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    width, height = output_size(op, 320, 240, exe)
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


@pytest.fixture(scope="module")
def exe():
    return ffmpeg.find_ffmpeg()


OPERATIONS = {op.name: op for op in operations_of()}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_test_copy_frames_are_bit_identical_to_the_hand_built_command(name, face_video, exe):
    op = OPERATIONS[name]
    new = np.stack(distort_video(face_video, [op], {name: INDICES}, 320, 240, exe)[name])
    old = legacy_copy(face_video, op, INDICES, exe)
    assert new.shape == old.shape and np.array_equal(new, old), name


def test_face_stage_decode_is_bit_identical_to_the_hand_built_command(face_video, exe):
    new = ffmpeg.read_frames(face_video, INDICES, exe=exe)
    assert np.array_equal(new, legacy_decode(face_video, INDICES, exe, (320, 240)))


def test_config_filter_strings_are_parsed_into_filters_and_options():
    assert ffmpeg.parse_filter("scale=trunc(iw/4)*2:trunc(ih/4)*2") == ("scale", ["trunc(iw/4)*2", "trunc(ih/4)*2"], {})
    assert ffmpeg.parse_filter("noise=alls=10:allf=t") == ("noise", [], {"alls": "10", "allf": "t"})
    assert ffmpeg.parse_filter("scale='min(iw,640)':-2") == ("scale", ["min(iw,640)", "-2"], {})
    assert ffmpeg.parse_filter("hflip") == ("hflip", [], {})
