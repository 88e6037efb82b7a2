"""What the bench scripts share: the device to time on, waiting for it, and the
tests' synthetic faces (tests/synthetic.py, a test fixture outside the library:
importing this module puts tests/ on the path, so import it before `synthetic`).
(Imported as `benchutil`: a script run as `python bench/x.py` has bench/ on its path.)"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dfrobust.detectors.inference import pick_device


def bench_device(device: str | None, threads: int | None = None) -> tuple[torch.device, str]:
    """(device, its description): torch's CPU threads set first when given; cuDNN's
    autotuner on for CUDA (fixed shapes, so timed steps use the fastest kernels)."""
    if threads:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return dev, where


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that wall time measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
