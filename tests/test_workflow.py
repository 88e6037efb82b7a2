"""The whole workflow: dry-run plans (fast) and one end-to-end run on config/tiny.yaml (slow)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, SMALL_PAIRS, SNAKEMAKE, job_counts, make_ffpp_tree, run, workdir_with

def test_default_config_plans_the_demo_build_and_every_face_job(tmp_path):
    workdir = workdir_with(tmp_path, REPO / "config.yaml")
    proc = run(workdir, "-n", "faces")
    # demo: 8/3/8 pairs -> 80/30/80 videos; 40 per shard -> 2+1+2 shards. Every model trains at raw and every
    # table tests the raw test videos (Table I's 2 shards); the Celeb-DF-layout demo has 12 test videos (1 shard).
    # Two demos, two indexes.
    assert job_counts(proc.stdout) == {"demo_dataset": 2, "dataset_index": 2, "extract_faces": 6, "faces": 1}


def test_face_and_copy_jobs_ask_for_a_gpu_where_retinaface_runs(tmp_path):
    """With RetinaFace weights (SBI's boxes), face jobs are GPU jobs (16-52 s a frame on a CPU);
    test copies too when they find faces again (operations.faces: redetect), else they stay CPU jobs."""
    weights = tmp_path / "retinaface_resnet50_2020-07-20.pth"
    weights.write_bytes(b"")
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    config["faces"]["retinaface"] = {"weights": str(weights)}
    asks_gpu = {}
    for faces in ("reuse", "redetect"):
        config["operations"]["faces"] = faces
        (tmp_path / faces).mkdir()
        proc = run(workdir_with(tmp_path / faces, config), "-n", "-p", "results/table1.csv")
        for block in proc.stdout.split("\nrule ")[1:]:
            rule = block.split(":", 1)[0]
            if rule in ("extract_faces", "distort_copy"):
                asks_gpu.setdefault((faces, rule), set()).add(bool(re.search(r"resources:.*\bgpu=1\b", block)))
    assert asks_gpu == {("reuse", "extract_faces"): {True}, ("reuse", "distort_copy"): {False},
                        ("redetect", "extract_faces"): {True}, ("redetect", "distort_copy"): {True}}, asks_gpu


def test_default_config_plans_its_declared_tables_on_shared_work(tmp_path):
    workdir = workdir_with(tmp_path, REPO / "config.yaml")
    declared = [f"results/tables/{name}.csv" for name in ("robust_training", "cross_manipulation", "cross_dataset")]
    counts = job_counts(run(workdir, "-n", *declared).stdout)
    # robust_training: 3 small models (plain, PIM, BAT) on 3 columns (clean, c40, res_x4);
    # cross_manipulation: 2 models trained on one manipulation each, scored once on the raw test copy, metrics
    # for each of the 4 single-manipulation test sets; cross_dataset: Table I's 3 models on FF++ raw (Table I's
    # clean cell, a score shared with Table I) and on Celeb-DF (3 new scores)
    assert counts["train"] == 3 + 2 + 3, counts
    assert counts["score"] == 3 * 3 + 2 + 3 * 2 and counts["metrics"] == 3 * 3 + 2 * 4 + 3 * 2, counts
    assert counts["table"] == 3 and counts["demo_dataset"] == 2


def test_ffpp_layout_plans_one_face_job_per_quality_split_and_shard(tmp_path):
    root = make_ffpp_tree(tmp_path / "ffpp", SMALL_PAIRS)
    workdir = workdir_with(tmp_path, {"dataset": {"kind": "ffpp", "root": str(root)}, "faces": {"shard_size": 4}})
    proc = run(workdir, "-n", "faces")
    # train 20 videos -> 5 shards, val 10 -> 3, test 10 -> 3; the default models train at three qualities
    # (3 x (5 + 3)) and Table I tests the raw test videos (3)
    assert job_counts(proc.stdout) == {"dataset_index": 1, "extract_faces": 27, "faces": 1}
    shards = set(re.findall(r"results/faces/ffpp/(\w+)/(\w+)/shard_(\d+)\.npz", proc.stdout))
    assert len(shards) == 27 and ("c40", "train", "004") in shards and ("raw", "test", "002") in shards


def test_paper_config_plans_twenty_six_gpu_training_jobs(tmp_path):
    """config/ffpp.yaml: Table I's 8 models, and per quality efficientnet_b4 (+Two-Gen-BAT),
    convnext_base (+PIM), ffd and multi_attention: 26 GPU training jobs, each scored on 13 copies."""
    root = make_ffpp_tree(tmp_path / "ffpp", SMALL_PAIRS)
    config = yaml.safe_load((REPO / "config" / "ffpp.yaml").read_text())
    config["dataset"]["root"] = str(root)
    workdir = workdir_with(tmp_path, config)
    proc = run(workdir, "-n", "results/table1.csv")
    counts = job_counts(proc.stdout)
    assert counts["train"] == 26 and counts["score"] == 26 * 13 and counts["metrics"] == 26 * 13
    assert counts["distort_copy"] == 12  # 12 processed copies (clean is scored on the clean faces) x 1 test shard
    trained = set(re.findall(r"results/models/([\w+]+)/(\w+)/weights\.pt", proc.stdout))
    qualities = ("raw", "c23", "c40")
    assert trained == {(m, q) for m in ("capsule", "xception", "efficientnet_b4", "efficientnet_b4+two_gen_bat",
                                        "convnext_base", "convnext_base+pim", "ffd", "multi_attention")
                       for q in qualities} | {
        ("sbi", "raw"), ("sbi", "c23")}
    blocks = proc.stdout.split("\nrule ")
    train_blocks = [b for b in blocks if b.startswith("train:")]
    assert len(train_blocks) == 26 and all(re.search(r"resources:.*\bgpu=1\b", b) for b in train_blocks)


def test_showcase_trains_capsules_extractor_first_and_scores_only_the_table_rows(tmp_path):
    """config/showcase.yaml: Capsule's `pretrained` names the weights of a `pretraining` model, so its
    training job waits for that model's; the pretraining model is trained, never scored."""
    proc = run(workdir_with(tmp_path, REPO / "config" / "showcase.yaml"), "-n", "-p", "results/table1.csv")
    counts = job_counts(proc.stdout)
    assert counts["train"] == 3 and counts["score"] == 2 * 13, counts
    trains = {re.search(r"output: results/models/(\w+)/raw/weights\.pt", b).group(1): b
              for b in proc.stdout.split("\nrule ") if b.startswith("train:")}
    assert set(trains) == {"capsule", "xception", "vgg19bn_pool3"}
    inputs = re.search(r"input: (.*)", trains["capsule"]).group(1).split(", ")
    assert "results/models/vgg19bn_pool3/raw/weights.pt" in inputs
    assert not any("weights.pt" in i for i in re.search(r"input: (.*)", trains["xception"]).group(1).split(", "))
    assert "results/scores/vgg19bn_pool3" not in proc.stdout


def test_a_row_that_does_not_download_waits_for_no_fetch(tmp_path):
    """The fetch of ImageNet weights is planned from each model's own settings: a row with
    `pretrained: false` over a detector block saying true waits for nothing."""
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    config["detectors"]["xception"]["pretrained"] = True
    config["models"] = [{"method": "xception", "quality": "raw"},
                        {"method": "xception", "quality": "raw", "name": "x_scratch", "settings": {"pretrained": False}}]
    config["tables"] = {}
    proc = run(workdir_with(tmp_path, config), "-n", "-p", "models")
    assert job_counts(proc.stdout)["fetch_pretrained"] == 1
    trains = {re.search(r"output: results/models/(\w+)/raw/weights\.pt", b).group(1): re.search(r"input: (.*)", b).group(1)
              for b in proc.stdout.split("\nrule ") if b.startswith("train:")}
    assert "resources/pretrained/xception.json" in trains["xception"]
    assert "resources/pretrained" not in trains["x_scratch"]


def test_a_scoring_perturbation_column_adds_score_jobs_only(tmp_path):
    """A column under a scoring perturbation (operation category features: the shallow features'
    statistics shifted) scores the clean faces again: no face job, no test copy; not a Table I column."""
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    row = [{"method": "xception", "quality": "raw"}]
    config["tables"] = {"t": {"rows": row, "columns": ["ffpp_raw"], "metrics": ["video_auc"]}}
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    before = job_counts(run(workdir_with(tmp_path / "a", config), "-n", "results/tables/t.csv").stdout)
    config["operations"]["extra"] = [{"name": "shift", "category": "features", "perturb": {"mean": 1.2, "variance": 0.65}}]
    config["tables"]["t"]["columns"].append({"test_set": "ffpp_raw", "operation": "shift"})
    after = job_counts(run(workdir_with(tmp_path / "b", config), "-n", "results/tables/t.csv").stdout)
    assert after == {**before, "score": before["score"] + 1, "metrics": before["metrics"] + 1}
    proc = run(workdir_with(tmp_path / "b", config), "-n", "-p", "results/table1.csv")
    assert "operation=shift" not in proc.stdout  # Table I's columns are operations on the video


def test_wrong_config_type_stops_at_start_naming_the_key(tmp_path):
    workdir = workdir_with(tmp_path, {"faces": {"crop_size": "large"}})
    proc = run(workdir, "-n", check=False)
    assert proc.returncode != 0
    assert "config key 'faces.crop_size': 'large' is not of type 'integer'" in proc.stdout + proc.stderr


def test_missing_dataset_directory_is_named(tmp_path):
    workdir = workdir_with(tmp_path, {"dataset": {"kind": "ffpp", "root": str(tmp_path / "nowhere")}})
    proc = run(workdir, "-n", check=False)
    assert proc.returncode != 0
    assert f"{tmp_path / 'nowhere'}: dataset directory does not exist" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_tiny_run_produces_table1(tiny_run):
    table = pd.read_csv(tiny_run / "results" / "table1.csv")
    assert list(table.columns) == ["method", "train_quality", "c40", "lighten", "hflip", "res_x2", "grayscale", "average"]
    assert [tuple(r) for r in table[["method", "train_quality"]].to_numpy()] == [
        ("xception", "raw"), ("capsule", "c40"), ("sbi", "c23")]
    values = table.drop(columns=["method", "train_quality"]).to_numpy()
    assert ((values >= 0) & (values <= 100)).all()
    for name in ("table1.md", "table1.tex", "table1_ci.csv", "figures/table1_heatmap.png", "figures/operations.png",
                 "figures/auc_drop.png", "figures/roc_xception_raw.png", "faces/summary.csv", "distorted/summary.csv",
                 "tables/protocols.md", "tables/protocols.tex", "tables/protocols_ci.csv"):
        assert (tiny_run / "results" / name).stat().st_size > 0, name


@pytest.mark.slow
def test_tiny_run_writes_the_declared_table_from_shared_work(tiny_run):
    """The `protocols` table of config/tiny.yaml: its raw columns reuse Table I's scores (the DF column is
    a filter of the same score file), its c40 column adds one clean test set."""
    table = pd.read_csv(tiny_run / "results" / "tables" / "protocols.csv")
    assert list(table.columns) == ["method", "train_quality", "ffpp_raw AUC", "ffpp_raw frame AUC", "DF AUC",
                                   "DF frame AUC", "ffpp_c40 AUC", "ffpp_c40 frame AUC"]
    table1 = pd.read_csv(tiny_run / "results" / "table1_ci.csv")
    clean = table1[table1.operation == "clean"].set_index(["method", "train_quality"])["video_auc"]
    for _, row in table.iterrows():  # the same cell computed once: Table I's clean AUC
        assert row["ffpp_raw AUC"] == pytest.approx(clean[(row["method"], row["train_quality"])], abs=0.006)
    record = json.loads((tiny_run / "results/metrics/xception/raw/ffpp_raw_DF/clean.json").read_text())
    assert record["counts"]["videos"]["fake"] == 2 and set(record["per_manipulation"]) == {"Deepfakes"}
    assert record["scores"].endswith("results/scores/xception/raw/ffpp/raw/test/clean.csv")


@pytest.mark.slow
def test_tiny_run_records_provenance_and_traces_a_cell(tiny_run):
    record = json.loads((tiny_run / "results/metrics/xception/raw/ffpp_raw/c40.json").read_text())
    provenance = record["provenance"]
    assert provenance["ffmpeg"] and provenance["code_version"]
    names = [Path(i["path"]).name for i in provenance["inputs"]]
    assert sorted(names) == ["c40.csv", "weights.pt"]  # each input once
    proc = subprocess.run([sys.executable, "-m", "dfrobust.cli", "trace", "xception", "raw", "c40", "--results",
                           str(tiny_run / "results"), "--json"], capture_output=True, text=True, cwd=tiny_run)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["video_auc"] == pytest.approx(record["video_auc"])


@pytest.mark.slow
def test_tiny_run_is_complete_and_config_edits_rerun_only_their_jobs(tiny_run):
    assert job_counts(run(tiny_run, "-n").stdout) == {}
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    edited = json.loads(json.dumps(config))
    edited["operations"]["list"][2]["filter"] = "curves=preset=strong_contrast"  # lighten's parameter
    (tiny_run / "config.yaml").write_text(yaml.safe_dump(edited))
    counts = job_counts(run(tiny_run, "-n").stdout)
    # lighten's copy, its scores and metrics for the 3 models, and what shows every operation
    assert counts == {"distort_copy": 1, "distorted": 1, "operations_figure": 1, "score": 3, "metrics": 3,
                      "table": 1, "delong": 1, "figures": 1, "all": 1}
    edited = json.loads(json.dumps(config))
    edited["tables"]["protocols"]["columns"].append("ffpp_c23")
    edited["test_sets"]["ffpp_c23"] = {"dataset": "ffpp", "quality": "c23"}
    (tiny_run / "config.yaml").write_text(yaml.safe_dump(edited))
    counts = job_counts(run(tiny_run, "-n").stdout)
    # a new column: the c23 test faces, each model's scores and metrics on them, and that table only
    assert counts == {"extract_faces": 1, "score": 3, "metrics": 3, "table": 1, "faces": 1, "all": 1}
    edited = json.loads(json.dumps(config))
    edited["detectors"]["xception"]["optimizer"] = {"name": "adam", "lr": 5e-4}
    (tiny_run / "config.yaml").write_text(yaml.safe_dump(edited))
    counts = job_counts(run(tiny_run, "-n").stdout)
    # xception's training, its 6 + 1 scores (Table I's copies, the c40 test set) and 6 + 2 metrics (Table I,
    # the protocols table's DF and c40 columns: its raw column is Table I's clean cell); the other models stay
    assert counts == {"train": 1, "score": 7, "metrics": 8, "table": 2, "delong": 1, "figures": 1, "all": 1}
    (tiny_run / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.slow
def test_rerunning_a_model_gives_the_same_table(tiny_run):
    """SBI's training again, then its scores and the tables: the same bytes. SBI is the tiny run's
    detector with the most randomness in training (blending, masks, augmentation, sampling)."""
    before = {name: (tiny_run / "results" / name).read_text() for name in ("table1.csv", "table1_ci.csv")}
    run(tiny_run, "--cores", "2", "--forcerun", "results/models/sbi/c23/weights.pt", "--allowed-rules", "train", "score",
        "metrics", "table", "delong", "figures", "all")
    assert {name: (tiny_run / "results" / name).read_text() for name in before} == before


@pytest.mark.slow
def test_html_report(tiny_run):
    run(tiny_run, "--report", str(tiny_run / "report.html"))
    html = (tiny_run / "report.html").read_text(errors="replace")
    assert "Table I" in html and "table1_heatmap.png" in html


NEW_DETECTOR = '''"""A detector added by one module: a registered class and its defaults, nothing else."""

from torch import nn

from dfrobust.detectors.base import Detector
from dfrobust.detectors.registry import register


@register("tiny_linear")
class TinyLinear(Detector):
    """A linear classifier of the face pixels (a test of the registry)."""

    defaults = {"pretrained": False, "input_size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                "epochs": 1, "batch_size": 16, "frames_per_video": 4, "val_frames_per_video": 2, "width": 8}

    def __init__(self, cfg):
        super().__init__(cfg)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, cfg["width"]), nn.ReLU(), nn.Linear(cfg["width"], 2))

    def forward(self, x):
        return self.net(x)

    def loss(self, output, labels):
        return nn.functional.cross_entropy(output, labels)

    def proba(self, output):
        return output.softmax(1)[:, 1]
'''


@pytest.mark.slow
def test_a_new_detector_module_is_validated_planned_trained_and_scored(tiny_run, tmp_path):
    """One new module in dfrobust/detectors/ and one model row: no schema or rule edit."""
    repo = tmp_path / "repo"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        if (REPO / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, repo / rel)
    (repo / "src/dfrobust/detectors/tiny_linear.py").write_text(NEW_DETECTOR)
    workdir = tmp_path / "work"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["models"].append({"method": "tiny_linear", "quality": "raw"})
    config["detectors"]["tiny_linear"] = {"width": 4}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))

    def snakemake(*args):
        cmd = [SNAKEMAKE, "-s", str(repo / "Snakefile"), "--directory", str(workdir), "--configfile",
               str(workdir / "config.yaml"), "--rerun-triggers", "params", "mtime", "input", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env)
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
        return proc

    plain = subprocess.run([SNAKEMAKE, "-s", str(repo / "Snakefile"), "--directory", str(workdir), "--configfile",
                            str(workdir / "config.yaml"), "-n"], capture_output=True, text=True, timeout=300)
    assert f"not from this checkout ({repo / 'src' / 'dfrobust'})" in plain.stderr  # the installed one would run
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}  # the copy's dfrobust, in the Snakefile and every job

    counts = job_counts(snakemake("-n").stdout)
    # Table I's six copies, and the protocols table: ffpp_c40 (a score file of its own) and
    # ffpp_raw_DF (a metrics file from the clean raw scores)
    assert counts["train"] == 1 and counts["score"] == 6 + 1 and counts["metrics"] == 6 + 2, counts
    snakemake("--cores", "2", "results/metrics/tiny_linear/raw/ffpp_raw/clean.json")  # one cell: the other copies take the same rules
    cell = json.loads((workdir / "results/metrics/tiny_linear/raw/ffpp_raw/clean.json").read_text())
    assert cell["method"] == "tiny_linear" and cell["counts"]["videos"] == {"fake": 8, "real": 2}, cell
    hparams = json.loads((workdir / "results/models/tiny_linear/raw/hparams.json").read_text())
    assert hparams["config"]["width"] == 4 and hparams["config"]["optimizer"]["name"] == "adam"
    bad = {**config, "detectors": {**config["detectors"], "tiny_linear": {"width": "four"}}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = subprocess.run([SNAKEMAKE, "-s", str(repo / "Snakefile"), "--directory", str(workdir), "--configfile",
                           str(workdir / "config.yaml"), "-n"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0 and "detectors.tiny_linear.width" in proc.stdout + proc.stderr
