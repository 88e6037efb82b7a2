"""One GPU per job on a workstation with several GPUs.

Snakemake's local executor counts GPUs (`--resources gpu=N`, set in
profiles/local) but does not tell a job *which* GPU to use, so every job would
land on GPU 0. A GPU job's script calls `claim_gpu()` first, before anything
touches CUDA: it takes the first GPU whose lock file it can lock and sets
CUDA_VISIBLE_DEVICES to that GPU, so the job sees exactly one GPU (as
`cuda:0`). The lock is an flock held by the process, so it is released when
the job ends, also when it is killed.

Under SLURM (`sbatch --gpus=1`) SLURM itself sets CUDA_VISIBLE_DEVICES to the
allocated GPU; `claim_gpu()` then leaves it alone.

Lock files live in $DFROBUST_GPU_LOCK_DIR, by default a folder per user in the
system's temporary directory (point several users at one shared folder to make
their pipelines share the GPUs too).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_held: dict[str, int] = {}   # GPU id -> file descriptor of its lock, for this process


def default_lock_dir() -> Path:
    configured = os.environ.get("DFROBUST_GPU_LOCK_DIR")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"dfrobust-gpu-locks-{os.getuid()}"


def visible_gpus() -> list[str]:
    """GPU ids this process may use: the list in CUDA_VISIBLE_DEVICES when it is
    set (empty or -1: none), else the indices nvidia-smi reports (none without
    nvidia-smi). Does not initialise CUDA."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        ids = [part.strip() for part in listed.split(",") if part.strip()]
        # CUDA stops at the first invalid entry; -1 is the usual "no GPU"
        return [] if not ids or ids[0].startswith("-") else ids
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return []
    try:
        out = subprocess.run([nvidia_smi, "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip().isdigit()]


def in_slurm_gpu_job() -> bool:
    """True inside a SLURM job that SLURM gave its own GPUs (it set CUDA_VISIBLE_DEVICES)."""
    return "SLURM_JOB_ID" in os.environ and "CUDA_VISIBLE_DEVICES" in os.environ


def _cuda_already_initialised() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def claim_gpu(gpus: list[str] | None = None, lock_dir: str | Path | None = None,
              timeout: float | None = None, poll: float = 2.0) -> str | None:
    """Pin this process to one free GPU and return its id (None: no GPU, run on CPU).

    gpus: the candidates (default `visible_gpus()`). Waits for a GPU to become
    free, saying so on stderr, for at most `timeout` seconds (None: as long as
    it takes) and then raises TimeoutError. Calling it again returns the GPU
    already held. Must run before CUDA is initialised in this process.
    """
    if _held:
        return next(iter(_held))
    if in_slurm_gpu_job() and gpus is None:
        return os.environ["CUDA_VISIBLE_DEVICES"]
    candidates = visible_gpus() if gpus is None else list(gpus)
    if not candidates:
        return None
    if _cuda_already_initialised():
        raise RuntimeError("claim_gpu() must be called before CUDA is initialised (CUDA_VISIBLE_DEVICES is read once)")
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting = False
    while True:
        for gpu in candidates:
            fd = _try_lock(lock_dir / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', gpu)}.lock")
            if fd is not None:
                _held[gpu] = fd
                os.environ["CUDA_VISIBLE_DEVICES"] = gpu
                if waiting:
                    print(f"dfrobust.core.gpu: got GPU {gpu}", file=sys.stderr)
                return gpu
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"all {len(candidates)} GPU(s) {','.join(candidates)} are in use by other jobs "
                               f"(lock files in {lock_dir})")
        if not waiting:
            print(f"dfrobust.core.gpu: all GPUs ({','.join(candidates)}) are busy, waiting for one "
                  f"(lock files in {lock_dir})", file=sys.stderr)
            waiting = True
        time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))


def release_gpu() -> None:
    """Give the claimed GPU back before the process ends (it is released at exit anyway)."""
    for gpu, fd in list(_held.items()):
        os.close(fd)
        del _held[gpu]
