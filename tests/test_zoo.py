"""The other papers' detectors and training procedures through the workflow, on
the tiny run's faces: the tests/zoo fragments (PIM and DualFlat, a gradient and a
generator BAT procedure and the traditional baselines, SBI's variants) are merged
into config/tiny.yaml as the rows of one table; each row trains through the train
rule, is scored on the clean test faces, and lands in the table (scoring a test
copy is the same score rule, run by Table I). The procedures left out here take
the same train rule; each fits 16 faces in its unit tests (tests/test_bat.py). The
two-branch fragment changes the face stage itself (windows): its rows run on faces
extracted again, in a copy of their own, and are scored on a test copy too, which
holds the same windows."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, job_counts, run

FRAGMENTS = ("pim.yaml", "bat.yaml", "bat_efficientnet_b4.yaml", "sbi.yaml")


def zoo_config(config: dict) -> tuple[dict, list[dict]]:
    """`config` with the fragments' detector and procedure blocks and a `zoo` table of their rows."""
    rows = []
    for name in FRAGMENTS:
        fragment = yaml.safe_load((REPO / "tests" / "zoo" / name).read_text())
        rows += fragment["models"]
        for block in ("detectors", "procedures"):
            for key, settings in fragment.get(block, {}).items():
                config.setdefault(block, {}).setdefault(key, {}).update(settings)
    config.setdefault("tables", {})["zoo"] = {
        "title": "The papers' detectors (tiny)", "rows": rows, "metrics": ["video_auc"],
        "columns": [{"test_set": "ffpp_raw", "label": "clean"}]}
    return config, rows


@pytest.fixture(scope="module")
def zoo_run(tiny_run, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("zoo")
    shutil.copytree(tiny_run, workdir, symlinks=True, dirs_exist_ok=True)
    config, rows = zoo_config(yaml.safe_load((workdir / "config.yaml").read_text()))
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    plan = job_counts(run(workdir, "-n", "results/tables/zoo.csv").stdout)
    run(workdir, "--cores", "2", "results/tables/zoo.csv", timeout=2400)
    return workdir, rows, plan


@pytest.mark.slow
def test_every_zoo_row_trains_once_on_the_tiny_runs_faces(zoo_run):
    _, rows, plan = zoo_run
    # no face job: the tiny run's faces serve every detector
    assert plan["train"] == len(rows) == 8 and "extract_faces" not in plan and "distort_copy" not in plan, plan
    assert plan["score"] == len(rows) and plan["table"] == 1


@pytest.mark.slow
def test_zoo_table_has_a_finite_auc_for_every_row_and_column(zoo_run):
    workdir, rows, _ = zoo_run
    table = pd.read_csv(workdir / "results" / "tables" / "zoo.csv")
    assert len(table) == len(rows)
    values = table.drop(columns=["method", "train_quality"]).to_numpy(dtype=float)
    assert ((values >= 0) & (values <= 100)).all(), table


@pytest.mark.slow
def test_zoo_models_record_their_procedure_and_generators(zoo_run):
    workdir, _, _ = zoo_run
    models = workdir / "results" / "models"
    hparams = json.loads((models / "xception+two_gen_bat" / "raw" / "hparams.json").read_text())
    assert hparams["procedure"]["name"] == "two_gen_bat"
    # the generators are training state beside the detector; the scored weights are the detector's alone
    weights = torch.load(models / "xception+two_gen_bat" / "raw" / "weights.pt", map_location="cpu", weights_only=False)
    assert not any("generator" in key for key in _keys(weights))
    pim = json.loads((models / "convnext_base+pim" / "raw" / "hparams.json").read_text())
    assert pim["procedure"]["name"] == "pim" and pim["procedure"]["r"] == 0.1


def _keys(obj) -> list[str]:
    if isinstance(obj, dict):
        return [str(k) for k in obj] + [k for v in obj.values() for k in _keys(v)]
    return []


@pytest.fixture(scope="module")
def windows_run(tiny_run, tmp_path_factory):
    """tests/zoo/twobranch.yaml over the tiny run: windows are a face-stage setting, so the faces of
    the rows it needs are extracted again (as windows) and the two-branch rows train and score on them."""
    workdir = tmp_path_factory.mktemp("windows")
    shutil.copytree(tiny_run, workdir, symlinks=True, dirs_exist_ok=True)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    fragment = yaml.safe_load((REPO / "tests" / "zoo" / "twobranch.yaml").read_text())
    config["faces"].update(fragment["faces"])
    config["detectors"].update(fragment["detectors"])
    config["tables"]["windows"] = {
        "title": "Two-branch (tiny)", "rows": fragment["models"], "metrics": ["video_auc", "frame_auc"],
        "columns": [{"test_set": "ffpp_raw", "label": "clean"}, {"test_set": "ffpp_raw", "operation": "hflip", "label": "hflip"}]}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    plan = job_counts(run(workdir, "-n", "results/tables/windows.csv").stdout)
    run(workdir, "--cores", "2", "results/tables/windows.csv", timeout=2400)
    return workdir, fragment["models"], plan


@pytest.mark.slow
def test_two_branch_rows_train_and_score_windows_through_the_workflow(windows_run):
    workdir, rows, plan = windows_run
    assert plan["train"] == len(rows) and plan["extract_faces"] > 0, plan  # the faces again, as windows
    table = pd.read_csv(workdir / "results" / "tables" / "windows.csv")
    assert len(table) == len(rows)
    values = table.drop(columns=["method", "train_quality"]).to_numpy(dtype=float)
    assert ((values >= 0) & (values <= 100)).all(), table
    # one score row per face, each carrying its window's score: the test faces are 1 window of 3 frames
    # per video (tiny: 3 test frames), and every row of a video its video's score
    scores = pd.read_csv(workdir / "results" / "scores" / "two_branch" / "c23" / "ffpp" / "raw" / "test" / "clean.csv")
    assert scores.groupby("video_id")["window"].nunique().eq(1).all() and scores.groupby("video_id").size().le(3).all()
    assert scores.groupby("video_id")["video_score"].nunique().eq(1).all()
