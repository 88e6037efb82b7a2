"""Directions, not values: a detector clearly above chance on the clean test copy loses AUC under
heavy compression (c40) and 4x down-scaling (res_x4), on the showcase's demo data (config/showcase.yaml,
shrunk: 8/2/5 pairs, 24 frames, Xception at 96 px for 4 epochs, 3 min 20 s on 2 idle cores).

An operation that silently becomes the identity leaves its AUC equal to clean's and fails here; so do
clean crops that miss the faces (nothing to learn). The test asserts the sign of each drop with DeLong's
paired test on the same videos (z > 1.96: the drop's 95% interval lies above zero) and a 5-point floor,
not the values, which depend on the seed. Measured (2026-11-30, 10 real and 40 fake test videos):
clean 0.855 [0.727-0.945], c40 0.700 (z 3.28), res_x4 0.645 (z 2.90); with c40 mapped to ffmpeg's
`null` filter it fails (README, "The showcase")."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from conftest import REPO, run, workdir_with

OPERATIONS = ("clean", "c40", "res_x4")


def direction_config() -> dict:
    """config/showcase.yaml's demo data and detector, fewer videos and one model; its operations by name."""
    from dfrobust.core.config import resolve_block

    showcase = yaml.safe_load((REPO / "config" / "showcase.yaml").read_text())
    config = copy.deepcopy(showcase)
    config["dataset"].update(root="resources/direction")
    config["demo"].update(pairs={"train": 8, "val": 2, "test": 5}, n_frames=24)
    config["faces"].update(frames={"train": 8, "val": 4, "test": 4}, shard_size=100)
    operations = resolve_block("operations", showcase.get("operations"))["list"]
    config["operations"] = {"list": [op for op in operations if op["name"] in OPERATIONS]}
    config["models"] = [{"method": "xception", "quality": "raw"}]
    config["detectors"] = {"xception": {**showcase["detectors"]["xception"], "epochs": 4, "frames_per_video": 8,
                                        "val_frames_per_video": 4}}
    config["resources"] = {"gpu": {"cpus_per_gpu": 2}}  # one training job: both cores
    config.pop("tables", None)
    return config


@pytest.fixture(scope="module")
def direction_run(tmp_path_factory):
    workdir = workdir_with(tmp_path_factory.mktemp("direction"), direction_config())
    targets = [f"results/metrics/xception/raw/ffpp_raw/{op}.json" for op in OPERATIONS]
    run(workdir, "--cores", "2", *targets)
    return workdir


@pytest.mark.slow
def test_a_detector_above_chance_loses_auc_under_c40_and_res_x4(direction_run):
    from dfrobust.evaluation.delong import delong_videos
    from dfrobust.evaluation.metrics import read_scores

    metrics = {op: json.loads((direction_run / f"results/metrics/xception/raw/ffpp_raw/{op}.json").read_text())
               for op in OPERATIONS}
    assert metrics["clean"]["ci_low"] >= 0.65, metrics["clean"]  # clearly above chance, its interval too
    scores = {op: read_scores(direction_run / f"results/scores/xception/raw/ffpp/raw/test/{op}.csv") for op in OPERATIONS}
    for op in ("c40", "res_x4"):
        # paired by video (the same test videos, processed): the drop's 95% interval lies above zero
        test = delong_videos(scores["clean"], scores[op])
        assert test.auc1 == pytest.approx(metrics["clean"]["video_auc"]) and test.auc2 == pytest.approx(metrics[op]["video_auc"])
        assert test.z > 1.96, (op, test)
        assert metrics[op]["video_auc"] <= metrics["clean"]["video_auc"] - 0.05, (op, metrics[op]["video_auc"])
