"""dfrobust.core.gpu: each local GPU job gets its own GPU through lock files."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from dfrobust.core import gpu


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "DFROBUST_GPU_LOCK_DIR"):
        monkeypatch.delenv(var, raising=False)
    yield
    gpu.release_gpu()


def holder(lock_dir, gpus, seconds=30):
    """A separate process that claims a GPU, prints it, then holds it."""
    code = textwrap.dedent(f"""
        import os, sys, time
        from dfrobust.core.gpu import claim_gpu
        got = claim_gpu({gpus!r}, lock_dir={str(lock_dir)!r}, timeout=10)
        print(got, os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
        time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().split()


def test_visible_gpus_reads_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpu.visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu.visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert gpu.visible_gpus() == []


def test_no_gpu_no_nvidia_smi_means_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))          # no nvidia-smi here
    assert gpu.visible_gpus() == []
    assert gpu.claim_gpu(lock_dir=tmp_path / "locks") is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_gpus_from_nvidia_smi(monkeypatch, tmp_path):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nprintf '0\\n1\\n'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu.visible_gpus() == ["0", "1"]


def test_concurrent_jobs_get_different_gpus_and_a_third_waits(tmp_path):
    locks = tmp_path / "locks"
    first, (got1, env1) = holder(locks, ["0", "1"])
    second, (got2, env2) = holder(locks, ["0", "1"])
    try:
        assert {got1, got2} == {"0", "1"}
        assert (env1, env2) == (got1, got2)               # each job sees only its own GPU
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="in use by other jobs"):
            gpu.claim_gpu(["0", "1"], lock_dir=locks, timeout=1, poll=0.2)
        assert time.monotonic() - start >= 1
        # a killed job gives its GPU back
        first.kill()
        first.wait()
        assert gpu.claim_gpu(["0", "1"], lock_dir=locks, timeout=5, poll=0.2) == got1
        assert os.environ["CUDA_VISIBLE_DEVICES"] == got1
        assert gpu.claim_gpu(["0", "1"], lock_dir=locks) == got1   # already held: same GPU
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()


def test_release_lets_another_job_take_the_gpu(tmp_path):
    locks = tmp_path / "locks"
    assert gpu.claim_gpu(["5"], lock_dir=locks) == "5"
    gpu.release_gpu()
    other, (got, _) = holder(locks, ["5"], seconds=0)
    other.wait()
    assert got == "5"


def test_waiting_job_gets_the_gpu_when_it_is_freed(tmp_path, capfd):
    locks = tmp_path / "locks"
    busy, _ = holder(locks, ["0"], seconds=1)
    assert gpu.claim_gpu(["0"], lock_dir=locks, timeout=20, poll=0.2) == "0"
    busy.wait()
    assert "busy, waiting" in capfd.readouterr().err


def test_slurm_allocation_is_left_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert gpu.claim_gpu(lock_dir=tmp_path / "locks") == "3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not (tmp_path / "locks").exists()


def test_default_lock_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DFROBUST_GPU_LOCK_DIR", str(tmp_path / "shared"))
    assert gpu.default_lock_dir() == tmp_path / "shared"
    monkeypatch.delenv("DFROBUST_GPU_LOCK_DIR")
    assert gpu.default_lock_dir().name == f"dfrobust-gpu-locks-{os.getuid()}"
