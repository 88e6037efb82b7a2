"""The SLURM profile, for real: a one-node SLURM 22.05 cluster from Debian
packages (tests/slurm/start_cluster.sh) runs the workflow through
`snakemake --profile slurm`.

Tests marked `slurm` need root (they install packages and start daemons) and
are skipped, with the reason, where the machine cannot do that. The dry-run
tests need no cluster.

The cluster runs use the slurm profile plus two overlays from tests/slurm/:
profile/ (squeue for job status, as the test cluster has no accounting; keep
SLURM logs) and resources.yaml (jobs sized for a 2-core node). Each run works
in its own temporary directory (sbatch and Snakemake write there, never into
the repository), which holds a `slurm` link to the repository's profile so the
profile is found by name exactly as from the repository root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, make_ffpp_tree, moving_face_frames

# --- What the cluster run builds -------------------------------------------
# Table I from a small FF++-shaped copy (ffpp_config: one quality, one
# manipulation, one tiny model, two operations): every stage of the DAG, ten
# SLURM jobs. The tiny demo config (CONFIG = [REPO / "config" / "tiny.yaml"])
# also works but is too slow for the test budget here: through this 2-core
# cluster every job costs ~10 s of Snakemake start-up, and its face stage
# alone (24 shard jobs) takes 4.5 min. gpu_probe (tests/slurm/Snakefile)
# records what a GPU job sees from inside.
TARGET = "results/table1.csv"
CONFIG: list[Path] | None = None   # config files; None: the small FF++ copy (ffpp_config)
GPU_RULES = {"gpu_probe", "train", "score"}   # must have gone through sbatch with a GPU
CPU_RULES = {"extract_faces", "distort_copy"}
LOCAL_RULES = {"dataset_index", "faces", "metrics", "table1"}   # run by Snakemake itself, never sbatch
# The plain command's dry run from the repository root (default config.yaml):
DRY_RUN_TARGET = "results/table1.csv"
DRY_RUN_GPU_RULES = {"train", "score"}

RUN_TIMEOUT = 420           # seconds; a hung status check must fail the test, not hang CI
SLURM_DIR = REPO / "tests" / "slurm"
STATE_DIR = Path("/tmp/dfrobust-slurm")
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


# --- Helpers ----------------------------------------------------------------

def why_no_cluster() -> str | None:
    if os.geteuid() != 0:
        return "needs root: it installs SLURM from Debian packages and starts slurmctld/slurmd/munged"
    installed = all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not installed and shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is unavailable to install it (slurmctld slurmd slurm-client munge)"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and "start_cluster.sh" not in conf.read_text(errors="replace"):
        return "this machine has its own SLURM configuration (/etc/slurm/slurm.conf); the test does not replace it"
    return None


def planned_jobs(dry_run_output: str) -> list[dict]:
    """The jobs of a dry run: rule name and resources as printed."""
    jobs = []
    for block in re.split(r"\n(?=\s*rule \w+:)", dry_run_output):
        head = re.match(r"\s*rule (\w+):", block)  # indented inside a group job
        if not head:
            continue
        printed = re.search(r"^\s+resources: (.*)$", block, re.M)
        resources = dict(item.split("=", 1) for item in printed.group(1).split(", ")) if printed else {}
        jobs.append({"rule": head.group(1), "resources": resources})
    return jobs


def family_resources(config: dict, family: str, rule: str = "") -> dict[str, str]:
    """What rule_resources(family) must ask for on a first attempt, as a dry run prints it
    (scoring one copy has its own time limit)."""
    settings = {k: v for k, v in config["resources"][family].items() if v is not None and k != "score_runtime"}
    if rule == "score":
        settings["runtime"] = config["resources"][family]["score_runtime"]
    return {k: str(v) for k, v in settings.items()}


def run_snakemake(args: list[str], cwd: Path, log_name: str, timeout: int = RUN_TIMEOUT) -> tuple[int, str]:
    """Run snakemake in `cwd`, output to cwd/log_name; on timeout kill it and fail."""
    log_path = cwd / log_name
    with open(log_path, "w") as log:
        proc = subprocess.Popen(SNAKEMAKE + args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            cancel_jobs(cwd)
            pytest.fail(f"snakemake {' '.join(args)} did not finish in {timeout} s:\n" + log_path.read_text()[-4000:])
    return proc.returncode, log_path.read_text()


def slurm_jobs(workdir: Path) -> list[dict]:
    """Jobs SLURM knows of (finished ones stay MinJobAge=300 s) that ran in `workdir`."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w[\w/:]*)=(\S*)", line))
        if fields.get("WorkDir") != str(workdir):
            continue
        comment = fields.get("Comment", "")
        fields["rule"] = comment.removeprefix("rule_").split("_wildcards_")[0]
        if fields["rule"].startswith("score_"):  # a group job: every score job of one model (the profile's groups)
            fields["group"], fields["rule"] = fields["rule"], "score"
        jobs.append(fields)
    return jobs


def queued_jobs(workdir: Path) -> list[dict]:
    """Pending and running jobs of `workdir`: id, state, comment (rule_<name>_wildcards_<values>)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%Z|%S|%k"], capture_output=True, text=True,
                         check=True).stdout
    rows = [line.split("|") for line in out.splitlines()]
    return [{"id": i, "state": state, "start": start, "comment": comment} for i, state, where, start, comment in rows
            if where == str(workdir) and state in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")]


def shard_of(comment: str) -> str:
    """The face shard file of an extract_faces job from its SLURM comment."""
    dataset, quality, split, shard = comment.split("_wildcards_")[1].split("_")
    return f"results/faces/{dataset}/{quality}/{split}/shard_{shard}.json"


def cancel_jobs(workdir: Path) -> None:
    for job in slurm_jobs(workdir):
        if job.get("JobState") in ("PENDING", "RUNNING"):
            subprocess.run(["scancel", job["JobId"]], check=False)


def new_workdir(tmp_path_factory, name: str) -> Path:
    """A run directory whose `slurm` resolves like the repository root's."""
    workdir = tmp_path_factory.mktemp(name)
    (workdir / "slurm").symlink_to(REPO / "slurm")
    return workdir


def cluster_args(config_args: list[str], targets: list[str], snakefile: Path = REPO / "Snakefile") -> list[str]:
    return ["-s", str(snakefile), "--profile", "slurm", "--profile", str(SLURM_DIR / "profile"),
            "--configfile", *config_args, str(SLURM_DIR / "resources.yaml"), "--", *targets]


# --- Fixtures ---------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    reason = why_no_cluster()
    if reason:
        pytest.skip(reason)
    start = subprocess.run([str(SLURM_DIR / "start_cluster.sh"), str(STATE_DIR)], capture_output=True, text=True,
                           timeout=600)
    if start.returncode != 0:
        subprocess.run([str(SLURM_DIR / "stop_cluster.sh"), str(STATE_DIR)], check=False)
        pytest.fail(f"could not start the test cluster:\n{start.stdout}\n{start.stderr}")
    yield STATE_DIR
    subprocess.run([str(SLURM_DIR / "stop_cluster.sh"), str(STATE_DIR)], check=False)


@pytest.fixture(scope="module")
def ffpp_config(tmp_path_factory) -> list[str]:
    """--configfile arguments for a small FF++ copy: one quality, one
    manipulation, 16 videos of a real face in 4 face shards, one tiny
    xception, two operations (clean, hflip)."""
    from dfrobust.media.ffmpeg import write_video

    root = tmp_path_factory.mktemp("ffpp")
    video = root / "face.mp4"
    write_video(video, moving_face_frames(), fps=25, crf=18)
    pairs = {"train": [["000", "001"], ["002", "003"]], "val": [["004", "005"]], "test": [["006", "007"]]}
    make_ffpp_tree(root / "FaceForensics++", pairs, methods=("Deepfakes",), qualities=("c23",), video=video)
    config = {
        "dataset": {"kind": "ffpp", "root": str(root / "FaceForensics++"), "qualities": ["c23"], "methods": ["Deepfakes"]},
        "faces": {"crop_size": 32, "frames": {"train": 4, "val": 2, "test": 2}, "shard_size": 6},
        "operations": {"base_quality": "c23", "list": [{"name": "clean", "category": "none"},
                                                       {"name": "hflip", "category": "flip", "filter": "hflip"}]},
        "models": [{"method": "xception", "quality": "c23"}],
        "detectors": {"xception": {"pretrained": False, "input_size": 32, "epochs": 1, "batch_size": 16,
                                   "frames_per_video": 4, "val_frames_per_video": 2}},
        "evaluation": {"bootstrap": 50},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return [str(path)]


@pytest.fixture(scope="module")
def run_config(ffpp_config) -> list[str]:
    """--configfile arguments of the tested run: CONFIG, else the FF++ copy."""
    return [str(path) for path in CONFIG] if CONFIG is not None else ffpp_config


@pytest.fixture(scope="module")
def slurm_run(cluster, run_config, tmp_path_factory):
    """The workflow run through the slurm profile, once for the module, with
    the face shards submitted as one job array (the profile's array option)."""
    workdir = new_workdir(tmp_path_factory, "slurm-run")
    start = time.monotonic()
    args = ["--slurm-array-jobs", "extract_faces",
            *cluster_args(run_config, [TARGET, "results/faces/summary.csv", "probe/gpu.json"], SLURM_DIR / "Snakefile")]
    rc, log = run_snakemake(args, workdir, "run1.log")
    assert rc == 0, log[-6000:]
    return {"workdir": workdir, "log": log, "seconds": time.monotonic() - start, "config": run_config,
            "jobs": slurm_jobs(workdir)}


# --- Dry runs (no cluster needed) ---------------------------------------------

def test_plain_command_plans_jobs_with_their_resources_from_the_repository_root():
    """`snakemake --profile slurm -n TARGET` from the repository root: the
    profile is found by name and jobs carry their family's resources. (A dry
    run does not say which rules are local; the cluster run checks that.)
    --forceall: `make test` after `make demo` in the same checkout finds the
    demo's results there, and a plain dry run would plan nothing."""
    from dfrobust.config import load_config

    result = subprocess.run(SNAKEMAKE + ["--profile", "slurm", "-n", "-p", "--forceall", DRY_RUN_TARGET], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Using profile slurm" in result.stdout + result.stderr
    jobs = planned_jobs(result.stdout)
    assert jobs, result.stdout[-3000:]
    config = load_config(REPO / "config.yaml")
    rules = {job["rule"] for job in jobs}
    assert DRY_RUN_GPU_RULES <= rules
    for job in jobs:
        if job["rule"] in DRY_RUN_GPU_RULES:
            assert family_resources(config, "gpu", job["rule"]).items() <= job["resources"].items(), job
        elif job["rule"] in CPU_RULES | {"demo_dataset"}:
            assert family_resources(config, "cpu").items() <= job["resources"].items(), job
            assert "gpu" not in job["resources"], job


def test_gpu_rule_dry_run_asks_for_a_gpu(tmp_path, ffpp_config):
    """A rule with `resources: **rule_resources("gpu")` plans gpu=1, cpus per
    GPU, memory and runtime from the config."""
    workdir = tmp_path
    (workdir / "slurm").symlink_to(REPO / "slurm")
    args = cluster_args(ffpp_config, ["probe/gpu.json"], SLURM_DIR / "Snakefile")
    result = subprocess.run(SNAKEMAKE + ["-n", *args], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (probe,) = [job for job in planned_jobs(result.stdout) if job["rule"] == "gpu_probe"]
    overlay = yaml.safe_load((SLURM_DIR / "resources.yaml").read_text())
    assert probe["resources"]["gpu"] == "1"
    assert probe["resources"]["cpus_per_gpu"] == str(overlay["resources"]["gpu"]["cpus_per_gpu"])
    assert probe["resources"]["mem_mb"] == str(overlay["resources"]["gpu"]["mem_mb"])
    assert probe["resources"]["runtime"] == str(overlay["resources"]["gpu"]["runtime"])


# --- On the cluster -----------------------------------------------------------

@pytest.mark.slurm
def test_jobs_go_through_sbatch_gpu_rules_with_a_gpu(slurm_run):
    workdir, jobs = slurm_run["workdir"], slurm_run["jobs"]
    print(f"SLURM run: {len(jobs)} SLURM jobs in {slurm_run['seconds']:.0f} s")
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    assert GPU_RULES | CPU_RULES <= set(by_rule), sorted(by_rule)
    assert not LOCAL_RULES & set(by_rule), "aggregation rules must not be submitted"
    for rule, rule_jobs in by_rule.items():
        for job in rule_jobs:
            assert job["JobState"] == "COMPLETED", job
            asks_gpu = "gpu" in job.get("TresPerJob", "")
            assert asks_gpu == (rule in GPU_RULES), (rule, job.get("TresPerJob"))
    # the plugin's per-job SLURM logs (kept by the test overlay) are under logs/slurm/rule_<name>/,
    # a group job's under logs/slurm/group_<group>/
    for rule, rule_jobs in by_rule.items():
        folder = f"group_{rule_jobs[0]['group']}" if "group" in rule_jobs[0] else f"rule_{rule}"
        assert list((workdir / "logs" / "slurm" / folder).rglob("*.log")), (rule, folder)
    # inside the GPU job: SLURM's GPU, which dfrobust.core.gpu keeps
    seen = json.loads((workdir / "probe" / "gpu.json").read_text())
    (probe_job,) = by_rule["gpu_probe"]
    assert seen["SLURM_JOB_ID"] == probe_job["JobId"]
    assert seen["CUDA_VISIBLE_DEVICES"] == "0" and seen["claimed"] == "0"
    assert not list(workdir.glob("slurm-*.out")), "sbatch output must go to the log folder"
    # the shards went as one array
    assert "Submitted array job" in slurm_run["log"]
    assert len({job.get("ArrayJobId") for job in by_rule["extract_faces"]}) == 1
    # scoring: one SLURM job per model (its score jobs, one per test copy, run inside it on one GPU)
    # (a group job's name: the group id, then the rules inside it)
    assert len(by_rule["score"]) == 1 and by_rule["score"][0]["group"] == "score_xception_c23_score", by_rule["score"]
    assert "gpu:1" in by_rule["score"][0].get("TresPerJob", ""), by_rule["score"][0]
    assert len(list((workdir / "logs" / "score").rglob("*.log"))) == 2  # yet one log per copy


@pytest.mark.slurm
def test_target_is_made(slurm_run):
    import pandas as pd

    target = slurm_run["workdir"] / TARGET
    assert target.exists() and target.stat().st_size > 0
    if CONFIG is None:   # ffpp_config: 16 videos, all with faces; one model, two operations
        summary = pd.read_csv(slurm_run["workdir"] / "results" / "faces" / "summary.csv")
        assert (summary.status == "ok").all() and len(summary) == 16, summary
        table = target.read_text()
        assert "xception" in table and "hflip" in table, table


@pytest.mark.slurm
def test_second_run_submits_nothing(slurm_run):
    workdir = slurm_run["workdir"]
    before = len(slurm_jobs(workdir))
    rc, log = run_snakemake(cluster_args(slurm_run["config"], [TARGET, "results/faces/summary.csv", "probe/gpu.json"], SLURM_DIR / "Snakefile"),
                            workdir, "run2.log")
    assert rc == 0, log[-4000:]
    assert "Nothing to be done" in log
    assert "submitted with SLURM jobid" not in log and "Submitted array job" not in log
    assert len(slurm_jobs(workdir)) == before


@pytest.mark.slurm
def test_editing_one_operation_rescores_only_its_copy(slurm_run, tmp_path):
    """Scoring is grouped per model for SLURM, yet outputs and reruns stay per copy."""
    workdir = slurm_run["workdir"]
    config = yaml.safe_load(Path(slurm_run["config"][0]).read_text())
    config["operations"]["list"][1]["filter"] = "hflip,eq=contrast=1.2"
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(config))
    scores = workdir / "results" / "scores" / "xception" / "c23" / "ffpp" / "c23" / "test"
    before = {p.name: p.stat().st_mtime_ns for p in scores.glob("*.csv")}
    submitted_before = {job["JobId"] for job in slurm_jobs(workdir)}
    rc, log = run_snakemake(cluster_args([str(edited)], [TARGET], SLURM_DIR / "Snakefile"), workdir, "edited.log")
    assert rc == 0, log[-4000:]
    after = {p.name: p.stat().st_mtime_ns for p in scores.glob("*.csv")}
    assert before["clean.csv"] == after["clean.csv"] and before["hflip.csv"] != after["hflip.csv"]
    new = [job for job in slurm_jobs(workdir) if job["JobId"] not in submitted_before]
    assert sorted(job["rule"] for job in new) == ["distort_copy", "score"], [job["rule"] for job in new]


@pytest.mark.slurm
def test_killed_run_resumes_without_redoing_finished_jobs(cluster, ffpp_config, tmp_path_factory):
    """Snakemake is killed (SIGKILL) in the middle of a run, and one running
    SLURM job dies with it (scancel); the other submitted jobs go on and finish
    on the cluster. After --unlock, the next run redoes only the job that died
    half-way: shards finished before the kill and by the orphaned jobs are kept."""
    workdir = new_workdir(tmp_path_factory, "slurm-kill")
    args = cluster_args(ffpp_config, ["results/faces/summary.csv"])
    log_path = workdir / "killed.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(SNAKEMAKE + args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        # wait for the middle of the run: a shard done, another one's job running
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            done = list((workdir / "results" / "faces").rglob("shard_*.json"))
            running = [job for job in queued_jobs(workdir)
                       if job["state"] == "RUNNING" and not (workdir / shard_of(job["comment"])).exists()]
            if done and running:
                break
            assert proc.poll() is None, "the run ended before it could be killed:\n" + log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, log_path.read_text()[-4000:]
            time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        victim = max(running, key=lambda job: job["start"])     # the latest started: surely half-way
        subprocess.run(["scancel", victim["id"]], check=True)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    died = shard_of(victim["comment"])
    # the orphaned jobs finish on the cluster while no Snakemake watches them
    deadline = time.monotonic() + 300
    while queued_jobs(workdir):
        assert time.monotonic() < deadline, "orphaned SLURM jobs did not finish"
        time.sleep(1)

    shards = [f"results/faces/ffpp/c23/{split}/shard_{k:03d}.json" for split, n in (("train", 2), ("val", 1), ("test", 1))
              for k in range(n)]
    before = {shard: (workdir / shard).stat().st_mtime_ns for shard in shards if (workdir / shard).exists()}
    index_mtime = (workdir / "results" / "datasets" / "ffpp" / "index.csv").stat().st_mtime_ns
    submitted_before = {job["JobId"] for job in slurm_jobs(workdir)}

    rc, log = run_snakemake(args, workdir, "locked.log")
    assert rc != 0 and "--unlock" in log, "a killed run leaves its lock: " + log[-2000:]
    rc, log = run_snakemake(["--unlock", *args], workdir, "unlock.log")
    assert rc == 0, log[-3000:]
    rc, log = run_snakemake(args, workdir, "resumed.log")
    assert rc == 0, log[-6000:]

    assert (workdir / "results" / "faces" / "summary.csv").exists()
    assert (workdir / "results" / "datasets" / "ffpp" / "index.csv").stat().st_mtime_ns == index_mtime
    redone = {shard for shard in shards if (workdir / shard).stat().st_mtime_ns != before.get(shard)}
    assert redone == {died}, f"only the shard whose job died half-way ({died}) is redone, not {redone}"
    resubmitted = [job for job in slurm_jobs(workdir) if job["JobId"] not in submitted_before]
    assert [job["rule"] for job in resubmitted] == ["extract_faces"]
