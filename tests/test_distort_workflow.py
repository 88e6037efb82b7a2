"""The distort rules in Snakemake dry runs: one job per (operation, shard), and a
config edit to one operation reruns exactly that operation's jobs."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dfrobust.core.config import block_defaults

from conftest import REPO, SMALL_PAIRS, job_counts, make_ffpp_tree

TARGET = "results/distorted/summary.csv"
N_SHARDS = 3  # 10 test videos (2 originals + 4 methods x 2 fakes), 4 per shard
BLUR = '{extra: [{name: blur, category: blur, filter: "gblur=sigma=2"}]}'


def snakemake(workdir: Path, *args: str) -> str:
    cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "1", "--rerun-triggers", "params", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def outputs_of(output: str) -> list[str]:
    return [path for line in output.splitlines() if line.strip().startswith("output:")
            for path in line.split(":", 1)[1].strip().split(", ")]


@pytest.fixture
def workdir(tmp_path):
    """An FF++-shaped tree (empty video files: dry runs never open them) and its config."""
    make_ffpp_tree(tmp_path / "ffpp", SMALL_PAIRS)
    config = {"dataset": {"kind": "ffpp", "root": str(tmp_path / "ffpp")},
              "faces": {"shard_size": 4, "frames": {"train": 4, "val": 2, "test": 2}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def complete(workdir: Path) -> None:
    """Make every job of the default plan look done: its files exist and
    Snakemake has recorded its params (--touch), without running anything."""
    planned = outputs_of(snakemake(workdir, "-n", TARGET))
    snakemake(workdir, "--touch", TARGET)  # records each job's params, creates nothing
    for path in planned:
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).touch()
    assert job_counts(snakemake(workdir, "-n", TARGET)) == {}


def test_one_job_per_operation_and_shard(workdir):
    counts = job_counts(snakemake(workdir, "-n", TARGET))
    # 12 processed copies of the 13 operations: clean is scored on the clean test faces themselves
    assert counts == {"dataset_index": 1, "extract_faces": N_SHARDS, "distort_copy": 12 * N_SHARDS, "distorted": 1}


def inputs_by_output(output: str) -> dict[str, list[str]]:
    """First output of each planned job -> its inputs (from a dry run's job listing)."""
    jobs, inputs = {}, []
    for line in output.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "input":
            inputs = value.strip().split(", ")
        elif key == "output":
            jobs[value.strip().split(", ")[0]] = inputs
            inputs = []
    return jobs


def test_per_frame_copies_read_the_frames_their_test_face_job_stores(workdir):
    output = snakemake(workdir, "-n", TARGET)
    outputs = outputs_of(output)
    frames = [f"results/faces/ffpp/raw/test/shard_{k:03d}.frames.zip" for k in range(N_SHARDS)]
    assert set(frames) <= set(outputs)
    jobs = inputs_by_output(output)
    for name in ("lighten", "hflip", "res_x4", "grayscale", "noise"):
        assert frames[1] in jobs[f"results/distorted/ffpp/raw/test/{name}/shard_001.npz"], name
    for name in ("c23", "c40"):  # codecs need the whole stream
        assert not any(path.endswith(".frames.zip") for path in jobs[f"results/distorted/ffpp/raw/test/{name}/shard_001.npz"])


def test_adding_an_operation_adds_exactly_its_jobs(workdir):
    fresh = job_counts(snakemake(workdir, "-n", TARGET, "--config", f"operations={BLUR}"))
    assert fresh["distort_copy"] == 13 * N_SHARDS
    complete(workdir)
    output = snakemake(workdir, "-n", TARGET, "--config", f"operations={BLUR}")
    assert job_counts(output) == {"distort_copy": N_SHARDS, "distorted": 1}
    assert all(path.startswith("results/distorted/ffpp/raw/test/blur/") for path in outputs_of(output) if "shard_" in path)


def test_editing_one_operation_reruns_only_its_jobs(workdir):
    complete(workdir)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    operations = block_defaults("operations")["list"]
    for op in operations:
        if op["name"] == "noise":
            op["filter"] = op["filter"].replace("alls=10", "alls=25")
    (workdir / "config.yaml").write_text(yaml.safe_dump({**config, "operations": {"list": operations}}))
    output = snakemake(workdir, "-n", TARGET)
    assert job_counts(output) == {"distort_copy": N_SHARDS, "distorted": 1}
    assert all("/noise/" in path for path in outputs_of(output) if "shard_" in path)


def test_one_decode_switch_runs_one_job_per_shard(workdir):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    (workdir / "config.yaml").write_text(yaml.safe_dump({**config, "operations": {"one_decode": True}}))
    counts = job_counts(snakemake(workdir, "-n", TARGET, "results/figures/operations.png"))
    assert counts == {"dataset_index": 1, "extract_faces": N_SHARDS, "distort_shard_all": N_SHARDS, "distorted": 1,
                      "operations_figure": 1}


def test_bad_operation_stops_the_workflow_with_its_name(workdir):
    cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "-n", TARGET,
           "--config", 'operations={extra: [{name: fog, category: weather, filter: "gblur=sigma=2"}]}']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "operations.extra.0.category' ('fog'): 'weather' is not one of" in proc.stdout + proc.stderr
