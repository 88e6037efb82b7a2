"""Training library: face pools, batch balancing, schedules, outputs, resume
after a kill, NaN detection, and checkpoint selection on validation only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from dfrobust.detectors import available_detectors, load_trained, predict_faces, register
from dfrobust.detectors.base import Detector
from dfrobust.detectors.data import BalancedFaces
from dfrobust.core.errors import InputError
from dfrobust.media.store import iter_faces
from dfrobust.training import TrainingDiverged, train
from dfrobust.training.data import FacePool, build_pool, pick_frames
from dfrobust.training.logbook import COLUMNS, read_log
from dfrobust.training.optim import LinearDecay, build_optimizer, build_scheduler
from synthetic import manipulate, synthetic_videos, write_synthetic_shards

from conftest import train_killed_and_resumed

torch.set_num_threads(2)


class Toy(Detector):
    """A small CNN: fast enough to run the training loop many times in tests."""

    defaults = {
        "input_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3,
        "optimizer": {"name": "adam", "base": "sgd", "lr": 1e-2, "betas": [0.9, 0.999], "momentum": 0.0,
                      "weight_decay": 0.0, "rho": 0.05},
        "lr_schedule": {"name": "constant", "decay_start": 0.75},
        "epochs": 3, "batch_size": 8, "frames_per_video": 4, "val_frames_per_video": 4, "balanced": True,
    }

    def __init__(self, cfg):
        super().__init__(cfg)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8, 2))

    def forward(self, x):
        return self.net(x)

    def loss(self, output, labels):
        return nn.functional.cross_entropy(output, labels)

    def proba(self, output):
        return output.softmax(1)[:, 1]


if "toy" not in available_detectors():
    register("toy")(Toy)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Train: 4 real videos + 8 fakes; val: 2 reals + 4 fakes; 4 faces each at 48 px."""
    root = tmp_path_factory.mktemp("faces")
    train_shards = write_synthetic_shards(root / "train", synthetic_videos(4, 2, frames=4, size=48, seed=0), per_shard=5)
    val_shards = write_synthetic_shards(root / "val", synthetic_videos(2, 2, frames=4, size=48, seed=1), split="val")
    return train_shards, val_shards


# -- data ---------------------------------------------------------------------------------------
def test_pick_frames_spreads_evenly():
    assert pick_frames(10, 3).tolist() == [0, 4, 9] or pick_frames(10, 3).tolist() == [0, 5, 9]
    assert pick_frames(3, 8).tolist() == [0, 1, 2]
    assert pick_frames(7, 1).tolist() == [3]
    assert len(set(pick_frames(100, 99).tolist())) == 99


def test_build_pool_reads_the_asked_labels_and_resizes(shards, tmp_path):
    train_shards, _ = shards
    pool = build_pool(train_shards, 3, 32, (0, 1), tmp_path, "train", log=lambda m: None)
    assert pool.crops.shape == (12 * 3, 32, 32, 3) and pool.crops.dtype == np.uint8
    assert pool.summary() == {"faces": 36, "real_faces": 12, "fake_faces": 24, "videos": 12, "real_videos": 4, "fake_videos": 8}
    first = next(iter_faces(train_shards))
    np.testing.assert_allclose(pool.landmarks[0], first.landmarks[0] * 32 / 48, rtol=1e-6)
    reals = build_pool(train_shards, 4, 32, (0,), tmp_path, "reals", log=lambda m: None)
    assert set(reals.labels.tolist()) == {0} and len(reals) == 16
    with pytest.raises(InputError, match="does not exist"):
        build_pool([tmp_path / "shard_999.npz"], 4, 32, (0, 1), tmp_path, "x")


def test_a_pool_that_cannot_fit_fails_before_writing(shards, tmp_path, monkeypatch):
    import types

    import dfrobust.training.data as data

    monkeypatch.setattr(data.shutil, "disk_usage", lambda path: types.SimpleNamespace(free=1000))
    with pytest.raises(InputError, match="needs up to .* GB .* TMPDIR"):
        build_pool(shards[0], 4, 32, (0, 1), tmp_path, "train", log=lambda m: None)
    assert not list(tmp_path.iterdir())


def test_balanced_epochs_draw_both_classes_equally():
    labels = np.array([0] * 5 + [1] * 20)
    pool = FacePool(crops=np.zeros((25, 4, 4, 3), np.uint8), landmarks=np.zeros((25, 68, 2), np.float32),
                    labels=labels, video_index=np.arange(25), videos=[])
    ds = BalancedFaces(pool, seed=3, balanced=True)
    drawn = labels[ds.order]
    assert len(ds) == 24 and (drawn == 0).sum() == (drawn == 1).sum() == 12
    fakes = ds.order[drawn == 1]
    assert len(set(fakes.tolist())) == 12  # without replacement within a class
    np.testing.assert_array_equal(BalancedFaces(pool, seed=3, balanced=True).order, ds.order)
    assert not np.array_equal(BalancedFaces(pool, seed=4, balanced=True).order, ds.order)
    natural = BalancedFaces(pool, seed=3, balanced=False)
    assert sorted(natural.order.tolist()) == list(range(25))


def test_linear_decay_follows_sbi_schedule():
    f = LinearDecay(100, 0.75)
    assert f(0) == f(75) == 1.0
    assert f(76) == pytest.approx(1 - 1 / 25) and f(99) == pytest.approx(1 / 25)
    model = nn.Linear(2, 2)
    opt = build_optimizer(model.parameters(), Toy.defaults["optimizer"] | {"lr": 1.0})
    sched = build_scheduler(opt, {"name": "linear_decay", "decay_start": 0.5}, 4)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 0.5])


# -- the training entry point --------------------------------------------------------------------
def test_train_writes_every_output(shards, tmp_path):
    out = tmp_path / "toy"
    messages = []
    summary = train("toy", {"epochs": 2}, *shards, out, seed=5, log=messages.append)
    for name in ("weights.pt", "hparams.json", "log.csv", "curve.png", "checkpoint.pt"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temporaries
    rows = read_log(out / "log.csv")
    assert [r["epoch"] for r in rows] == [1, 2] and list(rows[0]) == COLUMNS
    assert all(r["images_per_s"] > 0 and 0 <= r["val_auc"] <= 1 for r in rows)
    hp = json.loads((out / "hparams.json").read_text())
    assert hp["seed"] == 5 and hp["device"] == "cpu" and hp["config"]["epochs"] == 2
    assert hp["config"]["batch_size"] == 8 and hp["versions"]["torch"]
    assert hp["data"]["train"]["real_faces"] == 16 and hp["data"]["val"]["videos"] == 6
    assert hp["selected_epoch"] == summary["selected_epoch"]
    assert any("epoch 2/2" in m for m in messages)


def test_selection_uses_validation_auc_only(tmp_path):
    """Validation fakes carry the opposite artefact, so the better the model
    learns the training fakes, the worse it does on validation: selection must
    follow validation AUC, not the last epoch or the training loss."""
    train_shards = write_synthetic_shards(tmp_path / "train", synthetic_videos(4, 2, frames=4, size=32, seed=0))
    val = synthetic_videos(3, 0, frames=4, size=32, seed=2)
    swapped = []
    for r in val:  # val "fakes" are plain faces, val "reals" carry the artefact
        rng = np.random.default_rng(0)
        fake_like = np.stack([manipulate(c, lm, rng) for c, lm in zip(r.crops, r.landmarks)])
        swapped.append(r)
        swapped.append(type(r)(**{**r.__dict__, "video_id": r.video_id + "_x", "label": 0, "crops": fake_like}))
    for r in swapped[::2]:
        r.label, r.manipulation, r.video_id = 1, "Deepfakes", r.video_id.replace("original", "Deepfakes")
    val_shards = write_synthetic_shards(tmp_path / "val", swapped, split="val")

    out = tmp_path / "toy"
    summary = train("toy", {"epochs": 4, "optimizer": {"lr": 0.05}}, train_shards, val_shards, out, seed=1, log=lambda m: None)
    rows = read_log(out / "log.csv")
    aucs = [r["val_auc"] for r in rows]
    assert summary["selected_epoch"] == 1 + int(np.argmax(aucs))
    assert summary["selected_epoch"] < len(rows)  # not simply the last epoch
    # weights.pt is that epoch's model: it reproduces the logged validation AUC
    det = load_trained(out)
    faces = list(iter_faces(val_shards))
    probs = np.concatenate([predict_faces(det, r.crops, 64) for r in faces])
    labels = np.concatenate([[r.label] * r.n_faces for r in faces])
    assert roc_auc_score(labels, probs) == pytest.approx(aucs[summary["selected_epoch"] - 1], abs=1e-9)


@pytest.mark.parametrize("method, cfg", [
    ("capsule", {"input_size": 32, "pretrained": False, "epochs": 2, "batch_size": 8, "frames_per_video": 2,
                 "val_frames_per_video": 2}),
    # B0 instead of B4 only to save time: the loop, SAM, schedule and blending are the same
    ("sbi", {"backbone": "efficientnet_b0", "input_size": 32, "pretrained": False, "epochs": 2, "batch_size": 8,
             "frames_per_video": 2, "val_frames_per_video": 1, "lr_schedule": {"decay_start": 0.0}}),
])
def test_resume_after_a_kill_gives_the_same_weights(shards, tmp_path, method, cfg):
    """Capsule has routing noise and dropout, SBI random blends, SAM and a decaying lr:
    all of it must continue exactly where the killed run stopped."""
    straight, resumed, summary, messages = train_killed_and_resumed(method, cfg, shards, tmp_path, kill_after=1)
    assert any("resuming" in m and "after epoch 1" in m for m in messages)
    assert summary["resumed_after"] == [1]

    a = torch.load(straight / "weights.pt", weights_only=True)
    b = torch.load(resumed / "weights.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] and a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    rows_a, rows_b = read_log(straight / "log.csv"), read_log(resumed / "log.csv")
    assert [r["epoch"] for r in rows_b] == [1, 2] and [r["resumed"] for r in rows_b] == [0, 1]
    for ra, rb in zip(rows_a, rows_b):
        assert (ra["train_loss"], ra["val_loss"], ra["val_auc"], ra["lr"]) == (rb["train_loss"], rb["val_loss"], rb["val_auc"], rb["lr"])
    last_a = torch.load(straight / "checkpoint.pt", weights_only=True)["model"]
    last_b = torch.load(resumed / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)


def test_changed_settings_do_not_resume_a_foreign_checkpoint(shards, tmp_path):
    out = tmp_path / "toy"
    train("toy", {"epochs": 1}, *shards, out, seed=2, log=lambda m: None)
    messages = []
    train("toy", {"epochs": 1, "optimizer": {"lr": 0.02}}, *shards, out, seed=2, log=messages.append)
    assert any("other settings or data; starting over" in m for m in messages)
    assert [r["resumed"] for r in read_log(out / "log.csv")] == [0]


def test_nan_loss_stops_with_epoch_and_step(shards, tmp_path):
    # an absurd learning rate overflows the weights after the first update
    with pytest.raises(TrainingDiverged, match=r"toy: training loss is (nan|inf|-inf) at epoch 1, step [2-9]"):
        train("toy", {"optimizer": {"lr": 1e30}}, *shards, tmp_path / "toy", seed=0, log=lambda m: None)
    assert not (tmp_path / "toy" / "weights.pt").exists()


def test_bad_inputs_are_one_line_errors(shards, tmp_path):
    train_shards, val_shards = shards
    with pytest.raises(InputError, match="shard_404.npz"):
        train("toy", {}, [tmp_path / "shard_404.npz"], val_shards, tmp_path / "a", seed=0)
    with pytest.raises(InputError, match="one class only"):
        reals_only = write_synthetic_shards(tmp_path / "val_reals", synthetic_videos(2, 0, frames=2, size=32, seed=4))
        train("toy", {}, train_shards, reals_only, tmp_path / "b", seed=0, log=lambda m: None)
    with pytest.raises(InputError, match="detectors.toy.epochz"):
        train("toy", {"epochz": 1}, train_shards, val_shards, tmp_path / "c", seed=0)


def test_loader_workers_follow_the_jobs_cpu_threads():
    """On a GPU the loader gets the job's threads (cpus_per_gpu) but one; on a CPU none."""
    from dfrobust.training.loop import loader_workers

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(6)
        assert loader_workers(torch.device("cuda")) == 5 and loader_workers(torch.device("cpu")) == 0
        torch.set_num_threads(1)
        assert loader_workers(torch.device("cuda")) == 0
    finally:
        torch.set_num_threads(threads)
