"""Shared fixtures: a face video made from a real photo, and FF++-shaped trees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def grace_hopper() -> np.ndarray:
    """A real face photo that matplotlib ships (dlib finds her face)."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    return np.asarray(Image.open(path).convert("RGB"))


def moving_face_frames(n: int = 20, size=(320, 240), shift: int = 2) -> list[np.ndarray]:
    """Frames of a face photo panning slowly across a wider canvas."""
    import cv2

    w, h = size
    face = cv2.resize(grace_hopper(), (int(h * 0.85), h))
    frames = []
    for i in range(n):
        canvas = np.full((h, w, 3), 90, np.uint8)
        x = 20 + i * shift
        canvas[:, x:x + face.shape[1]] = face[:, : max(0, min(face.shape[1], w - x))]
        frames.append(canvas)
    return frames


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> Path:
    from dfrobust.media.ffmpeg import write_video

    path = tmp_path_factory.mktemp("videos") / "face.mp4"
    write_video(path, moving_face_frames(), fps=25, crf=18)
    return path


def make_ffpp_tree(root: Path, pairs: dict[str, list[list[str]]], methods=("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"),
                   qualities=("raw", "c23", "c40"), video: Path | None = None, skip: set[str] = frozenset()) -> Path:
    """An FF++ layout with split files; files are copies of `video` (or empty)."""
    payload = video.read_bytes() if video else b""
    root.mkdir(parents=True, exist_ok=True)
    for split, split_pairs in pairs.items():
        (root / f"{split}.json").write_text(json.dumps(split_pairs))
        names = {n for p in split_pairs for n in p}
        fakes = {f"{a}_{b}" for a, b in split_pairs} | {f"{b}_{a}" for a, b in split_pairs}
        for q in qualities:
            for n in names:
                rel = f"original_sequences/youtube/{q}/videos/{n}.mp4"
                if rel not in skip:
                    (root / rel).parent.mkdir(parents=True, exist_ok=True)
                    (root / rel).write_bytes(payload)
            for m in methods:
                for n in fakes:
                    rel = f"manipulated_sequences/{m}/{q}/videos/{n}.mp4"
                    if rel not in skip and f"{m}/{q}" not in skip:
                        (root / rel).parent.mkdir(parents=True, exist_ok=True)
                        (root / rel).write_bytes(payload)
    return root


SMALL_PAIRS = {"train": [["000", "001"], ["002", "003"]], "val": [["004", "005"]], "test": [["006", "007"]]}


@pytest.fixture
def ffpp_tree(tmp_path) -> Path:
    return make_ffpp_tree(tmp_path / "ffpp", SMALL_PAIRS)


@pytest.fixture(autouse=True, scope="session")
def _quiet_threads():
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    yield


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake (dry) run ({} when nothing is to be done)."""
    import re

    counts: dict[str, int] = {}
    if "Job stats:" not in output:
        return counts
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match[1]] = int(match[2])
    counts.pop("total", None)
    return counts


# -- a training job killed and resumed ------------------------------------------------------

class Killed(Exception):
    """A training job killed mid-run (raised from its log callback)."""


def train_killed_and_resumed(method: str, cfg: dict, shards, tmp_path: Path, kill_after: int, **kwargs):
    """Train `method` straight into tmp_path/straight; and into tmp_path/resumed, killed once
    epoch `kill_after` is logged (a checkpoint, no weights yet), then run again. Returns
    (straight, resumed, the resumed run's summary, its log messages)."""
    from dfrobust.training import train

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(method, cfg, *shards, straight, seed=3, log=lambda m: None, **kwargs)

    def kill(message):
        if f"epoch {kill_after}/{cfg['epochs']}: train_loss" in message:
            raise Killed

    with pytest.raises(Killed):
        train(method, cfg, *shards, resumed, seed=3, log=kill, **kwargs)
    assert not (resumed / "weights.pt").exists() and (resumed / "checkpoint.pt").exists()
    messages = []
    summary = train(method, cfg, *shards, resumed, seed=3, log=messages.append, **kwargs)
    return straight, resumed, summary, messages

# -- the workflow on a config (tests/test_workflow.py, tests/test_zoo.py) ----------------

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def run(workdir: Path, *args: str, check: bool = True, timeout: int = 1500) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--rerun-triggers", "params", "mtime", "input", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return proc


def workdir_with(tmp_path: Path, config: dict | Path) -> Path:
    if isinstance(config, Path):
        shutil.copy(config, tmp_path / "config.yaml")
    else:
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """config/tiny.yaml from nothing to Table I (the demo build included)."""
    workdir = workdir_with(tmp_path_factory.mktemp("tiny"), REPO / "config" / "tiny.yaml")
    run(workdir, "--cores", "2")
    return workdir


# -- operations as the config declares them -------------------------------------------------

def operations_of(value: dict | None = None):
    """The expanded operations of an `operations` block (a partial one: the schema fills the rest)."""
    from dfrobust.core.config import block
    from dfrobust.media.operations import expand_operations

    return expand_operations(block("operations", value or {}))


def operation(name: str, category: str, **entry):
    """One operation as an entry of `operations.list` declares it."""
    return operations_of({"list": [{"name": name, "category": category, **entry}]})[0]
