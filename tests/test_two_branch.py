"""The two-branch recurrent network (Masi et al.): the multi-scale LoG layer,
the two branches (each its own first dense block) and their fusion, the
paper's radii per mode, the hypersphere loss and score, the video score
(g of the mean window distance), windows of frames from the face stage to the
stratified epochs and the per-frame score table, per-block learning rates,
the paper's plateau schedule, the centre hook, the ablations of Table 1 as
settings that train, resume, and overfitting a few synthetic videos.

The paper's constants are checked against issue 28's reading of Masi et al.
(ECCV 2020; the paper's body was not readable here, docs/reproducing/two_branch.md
lists where each comes from)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dfrobust.core.config import block
from dfrobust.core.errors import InputError
from dfrobust.detectors import build_data, build_detector, load_trained, predict_faces
from dfrobust.detectors.tensors import to_tensor
from dfrobust.detectors.deep_log import MultiScaleLoG, gaussian_kernel
from dfrobust.detectors.two_branch import PoolWindows, WindowEpoch, pool_windows
from dfrobust.media import ffmpeg
from dfrobust.media.store import FaceRecord, FaceShard, write_shard
from dfrobust.media.windows import sample_windows, settings, span, stored_length, window_count, windows_of
from dfrobust.stages.faces import extract_shard
from dfrobust.stages.score import COLUMNS, score_faces
from dfrobust.training.data import FacePool, build_pool
from dfrobust.training.logbook import read_log
from dfrobust.training.optim import build_optimizer, build_scheduler
from synthetic import synthetic_videos, write_synthetic_shards

from conftest import operation, train_killed_and_resumed

torch.set_num_threads(1)  # DenseNet's many small ops: one thread is faster than two on a shared machine

SMALL = {"pretrained": False, "input_size": 32}
WINDOWS = {"windows": {"length": 4, "step": {"train": 1, "val": 1, "test": 2}}}


def detector(**cfg):
    torch.manual_seed(0)
    return build_detector("two_branch", {**SMALL, **cfg})


# --- the multi-scale LoG layer -------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 5, 8, 17])
def test_log_bands_of_a_constant_map_are_zero(size):
    layer = MultiScaleLoG(3, 8, scales=3)
    x = torch.full((2, 3, size, size), 0.7) + torch.tensor([0.0, 5.0, -2.0]).view(1, 3, 1, 1)
    bands = layer.bands(x)
    assert bands.shape == (2, 9, size, size)
    assert bands.abs().max() < 1e-5
    # the 1x1 conv has no bias: the mix is blind to DC, and so is the layer with fixed statistics
    # (in training, BatchNorm would scale the bands' rounding noise up to its unit variance)
    assert layer.mix(bands).abs().max() < 1e-5
    assert layer.eval()(x).abs().max() < 1e-5


def test_log_response_to_a_step_edge_is_at_the_edge():
    x = torch.zeros(1, 1, 64, 64)
    x[..., 32:] = 1.0  # vertical step between columns 31 and 32
    bands = MultiScaleLoG(1, 1, scales=3).bands(x)[0]  # (3, 64, 64)
    energy = (bands**2).sum(dim=(0, 1))  # per column
    assert energy[32 - 12 : 32 + 12].sum() / energy.sum() > 0.99
    assert energy[:8].max() < 1e-10 and energy[-8:].max() < 1e-10
    for scale, band in enumerate(bands):  # every scale: odd around the edge, peak within its reach
        row = band[20]
        assert torch.allclose(row[:32].flip(0), -row[32:], atol=1e-6)
        assert 32 - row[32:].abs().argmax() - 1 < 32 and row[32:].abs().argmax() < 3 * 2**scale
        assert (band - row).abs().max() < 1e-6  # the same on every row


def test_gaussian_is_a_fixed_buffer_that_training_does_not_change():
    g = gaussian_kernel(1.0)
    assert g.shape == (5, 5) and g.sum().item() == pytest.approx(1.0, abs=1e-6) and torch.equal(g, g.T)
    det = detector()
    assert "log.gaussian" in dict(det.named_buffers()) and "log.gaussian" not in dict(det.named_parameters())
    before = det.log.gaussian.clone()
    mix_before = det.log.mix.weight.detach().clone()
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    x = torch.randint(0, 256, (4, 2, 3, 32, 32), dtype=torch.uint8)
    for _ in range(2):
        opt.zero_grad()
        det.loss(det(det.preprocess(x)), torch.tensor([0, 1, 0, 1])).backward()
        opt.step()
    assert torch.equal(det.log.gaussian, before)
    assert not torch.equal(det.log.mix.weight, mix_before)


# --- network, learning rates, pretrained weights -------------------------------------


def test_shapes_with_and_without_the_lstm():
    x = torch.randn(3, 4, 3, 32, 32)
    assert detector()(x).shape == (3, 256)
    frames = detector(lstm=False)(x)
    assert frames.shape == (3, 4, 1024)
    assert detector()(torch.randn(5, 3, 32, 32)).shape == (5, 256)  # a 4-D batch: windows of one face


def test_the_log_branch_has_its_own_dense_block_initialised_as_the_rgb_branchs():
    """Phi_LoG = LoG on the stem's maps, then its own DenseBlock and transition (copies of the
    RGB branch's, the same initial weights, separate parameters)."""
    det = detector()
    f = det.densenet.features
    assert type(det.log_block) is type(f.denseblock1) and type(det.log_transition) is type(f.transition1)
    assert det.log.mix.in_channels == 3 * 64 and det.log.mix.out_channels == 64  # the stem's width, the block's input
    for copy, original in ((det.log_block, f.denseblock1), (det.log_transition, f.transition1)):
        mine, theirs = copy.state_dict(), original.state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
        assert not {id(p) for p in copy.parameters()} & {id(p) for p in original.parameters()}
    single = detector(log_branch=False)
    assert single.log is None and single.log_block is None and single.fusion is None
    assert single(torch.randn(2, 3, 3, 32, 32)).shape == (2, 256)


def test_fused_maps_are_28x28x128_per_branch_at_224_px():
    torch.manual_seed(0)
    det = build_detector("two_branch", {"pretrained": False}).eval()  # the paper's 224 px
    with torch.no_grad():
        rgb, log = det.branches(torch.randn(1, 3, 224, 224))
    assert rgb.shape == log.shape == (1, 128, 28, 28)
    # fusion: the two 28x28x128 maps, concatenated, through a 1x1 conv with two groups to 128 channels
    assert det.fusion.kernel_size == (1, 1) and det.fusion.groups == 2
    assert det.fusion.in_channels == 256 and det.fusion.out_channels == 128
    assert detector(fusion_groups=1).fusion.groups == 1


def test_dropout_follows_every_dense_layer_the_first_blocks_included():
    det = detector()
    f = det.densenet.features
    for dense_block in (f.denseblock1, det.log_block, f.denseblock2, f.denseblock3, f.denseblock4):
        assert {layer.drop_rate for layer in dense_block.values()} == {0.2}
    plain = detector(dense_dropout=0.0)
    assert {layer.drop_rate for layer in plain.log_block.values()} == {0.0}


def test_the_config_block_has_the_papers_defaults_and_rejects_other_values():
    from dfrobust.detectors import config_schema, detector_class, resolve_config

    schema = config_schema()["properties"]["two_branch"]
    assert {k: v["default"] for k, v in schema["properties"].items() if "default" in v} == detector_class("two_branch").defaults
    assert all(v.get("description") for v in schema["properties"].values())
    cfg = resolve_config("two_branch", {})
    assert (cfg["frames_per_video"], cfg["val_frames_per_video"], cfg["real_windows"], cfg["dense_dropout"]) == (270, 110, 2, 0.2)
    for bad in ({"fusion_groups": 3}, {"loss": "bce"}, {"lstm_combine": "mean"}, {"r_minus": -1.0}):
        with pytest.raises(InputError):
            resolve_config("two_branch", bad)


def test_radii_default_to_the_papers_per_mode():
    """r- / r+ = 0.042 / 1.638 with the LSTM (2D = 256), 2.5 / 97.5 frame by frame (D = 1024)."""
    assert (detector().r_minus, detector().r_plus) == (0.042, 1.638)
    assert (detector(lstm=False).r_minus, detector(lstm=False).r_plus) == (2.5, 97.5)
    assert detector().margin == pytest.approx(0.84) and detector(lstm=False).margin == pytest.approx(50.0)
    assert (detector(r_minus=0.5, r_plus=2.0).r_minus, detector(lstm=False, r_plus=120.0).r_plus) == (0.5, 120.0)
    assert detector(lstm_combine="sum").embedding_size == 128 and detector(lstm_hidden=256).embedding_size == 512


@pytest.mark.parametrize("order, expected", [("output", [1, 1 / 16, 1 / 8, 1 / 4, 1 / 2]),
                                             ("input", [1, 1 / 2, 1 / 4, 1 / 8, 1 / 16]), ("same", [1] * 5)])
def test_block_learning_rates(order, expected):
    det = detector(block_lr=order)
    groups = det.trainable_parameters()
    assert [g["lr"] / 1e-3 for g in groups] == pytest.approx(expected)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in det.parameters()}
    # the LoG branch (its dense block copy included), the fusion and the LSTM learn at lr
    new = {id(p) for m in (det.log, det.log_block, det.log_transition, det.fusion, det.fusion_out, det.lstm)
           for p in m.parameters()}
    assert {id(p) for p in groups[0]["params"]} == new
    opt = build_optimizer(groups, det.cfg["optimizer"])
    assert opt.param_groups[0]["weight_decay"] == 1e-6 and type(opt).__name__ == "Adam"


def test_pretrained_path_loads_a_local_densenet_file(tmp_path):
    source = detector()
    path = tmp_path / "densenet121.pth"
    torch.save(source.densenet.state_dict(), path)
    torch.manual_seed(1)
    loaded = build_detector("two_branch", {**SMALL, "pretrained": str(path)})
    assert "loaded" in loaded.weights_report
    for key, value in source.densenet.state_dict().items():
        assert torch.equal(loaded.densenet.state_dict()[key], value), key
    with pytest.raises(InputError, match="r_minus"):
        build_detector("two_branch", {**SMALL, "r_minus": 2.0, "r_plus": 1.0})


# --- loss and score ------------------------------------------------------------------


def _points(distances, dim=256, seed=0):
    """Embeddings at the given distances from the origin, random directions."""
    directions = torch.nn.functional.normalize(torch.randn(len(distances), dim, generator=torch.Generator().manual_seed(seed)), dim=1)
    return directions * torch.tensor(distances, dtype=torch.float32)[:, None]


def test_loss_is_zero_with_reals_inside_and_fakes_outside_and_positive_otherwise():
    det = detector(r_minus=0.5, r_plus=2.0)  # centre 0
    labels = torch.tensor([0, 0, 1, 1])
    assert det.loss(_points([0.1, 0.45, 2.5, 10.0]), labels).item() == 0.0
    # a real at 1.0 (0.5 beyond r-) and a fake at 1.5 (0.5 short of r+): 0.5 / 2 + 0.5 / 2
    assert det.loss(_points([0.1, 1.0, 1.5, 10.0]), labels).item() == pytest.approx(0.5, abs=1e-5)
    assert det.loss(_points([3.0, 3.0]), torch.tensor([0, 0])).item() == pytest.approx(2.5, abs=1e-5)
    assert det.loss(_points([0.0, 0.0]), torch.tensor([1, 1])).item() == pytest.approx(2.0, abs=1e-5)
    det.center.fill_(1.0)  # distances are measured from the centre
    shifted = _points([0.1, 0.45, 2.5, 10.0]) + 1.0
    assert det.loss(shifted, labels).item() == 0.0


def test_gradients_pull_reals_to_the_centre_and_push_fakes_away():
    det = detector()
    det.center.copy_(torch.randn(256) * 0.1)
    emb = (det.center + _points([1.0, 3.0, 0.5, 1.5], seed=1)).requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 1])
    det.loss(emb, labels).backward()
    radial = torch.nn.functional.normalize((emb - det.center).detach(), dim=1)
    along = (emb.grad * radial).sum(1)  # descent moves by -grad: positive = towards c
    assert (along[:2] > 0).all() and (along[2:] < 0).all()
    # each active hinge has gradient of norm 1 / (its class count), purely radial
    assert emb.grad.norm(dim=1) == pytest.approx(torch.full((4,), 0.5), abs=1e-5)
    # finite differences agree (double precision)
    det = det.double()
    emb = emb.detach().double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: det.loss(e, labels), (emb,), eps=1e-6, atol=1e-5)


def test_score_is_monotonic_in_the_distance_and_half_between_the_margins():
    det = detector(r_minus=0.5, r_plus=2.0)
    d = [0.0, 0.5, 1.25, 2.0, 10.0, 1e4]
    scores = det.proba(_points(d)).tolist()
    assert scores == sorted(scores) and scores[0] == 0.0 and all(0 <= s < 1 for s in scores)
    assert scores[2] == pytest.approx(0.5)  # (r- + r+) / 2 = 1.25
    assert scores[-2] < scores[-1]  # no saturation among far fakes
    assert detector().proba(_points([0.84])).item() == pytest.approx(0.5, abs=1e-6)  # the paper's radii: R = 0.84
    frames = detector(lstm=False, r_minus=0.5, r_plus=2.0)
    per_frame = _points([0.5, 2.0, 1.25, 1.25], dim=1024).view(2, 2, 1024)
    # a window's score is g(the mean of its faces' distances), as a video's
    expected = [1.25 / (1.25 + 1.25), 0.5]
    assert frames.proba(per_frame).tolist() == pytest.approx(expected, abs=1e-6)
    # every face is a sample: reals (0.5, 2.0) -> mean(0, 1.5), fakes (1.25, 1.25) -> mean(0.75, 0.75)
    assert frames.loss(per_frame, torch.tensor([0, 1])).item() == pytest.approx(0.75 + 0.75, abs=1e-5)
    # frame by frame each face keeps its own value; with the LSTM every face carries its window's
    assert torch.allclose(frames.face_values(per_frame, 2), torch.tensor([[0.5, 2.0], [1.25, 1.25]]), atol=1e-5)
    assert torch.allclose(det.face_values(_points([1.0, 3.0]), 3), torch.tensor([[1.0] * 3, [3.0] * 3]), atol=1e-5)


def test_video_score_is_g_of_the_mean_window_distance_not_the_mean_window_score():
    """Windows at d = [0, 10] against [3, 3]: the mean distance ranks the first video higher (5 > 3);
    the mean of d / (d + R) (R = 0.84) would rank it lower (0.461 < 0.781)."""
    det = detector()
    first, second = [np.array([0.0]), np.array([10.0])], [np.array([3.0]), np.array([3.0])]
    assert det.video_score(first) == pytest.approx(5 / 5.84) and det.video_score(second) == pytest.approx(3 / 3.84)
    assert det.video_score(first) > det.video_score(second)
    mean_of_scores = [np.mean([det.score_of(w[0]) for w in video]) for video in (first, second)]
    assert mean_of_scores[0] < mean_of_scores[1]  # the order the old rule gave
    # without the LSTM a window's value is its faces' mean distance
    frames = detector(lstm=False)
    assert frames.video_score([np.array([1.0, 3.0]), np.array([8.0])]) == pytest.approx(5 / 55)


def test_cross_entropy_head_is_the_plain_encoder():
    det = detector(loss="ce")
    assert det.head.in_features == 256 and det.head.out_features == 2 and not det.hypersphere
    out = det(torch.randn(2, 3, 3, 32, 32))
    expected = torch.nn.functional.cross_entropy(det.head(out), torch.tensor([0, 1]))
    assert det.loss(out, torch.tensor([0, 1])).item() == pytest.approx(expected.item())
    assert torch.allclose(det.proba(out), det.head(out).softmax(1)[:, 1])
    frames = detector(loss="ce", lstm=False)
    out = frames(torch.randn(2, 3, 3, 32, 32))  # (2, 3, 1024): each face its own sample
    logits = frames.head(out).reshape(-1, 2)
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0, 0, 1, 1, 1]))
    assert frames.loss(out, torch.tensor([0, 1])).item() == pytest.approx(expected.item(), abs=1e-6)


# --- windows -------------------------------------------------------------------------


@pytest.mark.parametrize("n_frames", [1, 6, 9, 10, 23, 64, 100, 301])
@pytest.mark.parametrize("length, step", [(1, 1), (4, 1), (10, 1), (10, 7), (3, 2)])
@pytest.mark.parametrize("n_windows", [1, 3, 10])
def test_sampled_windows_are_evenly_stepped_disjoint_and_inside_the_video(n_frames, length, step, n_windows):
    idx = sample_windows(n_frames, n_windows, length, step)
    assert (np.diff(idx) > 0).all() and idx.min() >= 0 and idx.max() < n_frames
    if n_frames < span(length, step):  # shorter than one window: one short window
        assert len(idx) < length and np.array_equal(idx, np.arange(0, n_frames, step))
        return
    assert len(idx) == length * min(n_windows, n_frames // span(length, step))
    for window in idx.reshape(-1, length):
        assert (np.diff(window) == step).all()


def test_windows_spread_over_the_video():
    idx = sample_windows(300, 3, 10, 1).reshape(3, 10)
    assert idx[:, 0].tolist() == [45, 145, 245]  # centred in thirds
    assert window_count(100, 10) == 10 and window_count(32, 10) == 4 and window_count(2, 4) == 1


def _record(video_id, sampled, found, label=0, size=8):
    found = np.asarray(found, np.int64)
    n = len(found)
    crops = np.zeros((n, size, size, 3), np.uint8)
    crops[..., 0] = (found % 256)[:, None, None]
    side = size / 1.3  # the face box the stored crop is the FF++ 1.3x square of
    box = [(size - side) / 2, (size - side) / 2, (size + side) / 2, (size + side) / 2]
    return FaceRecord(video_id=video_id, manipulation="original" if label == 0 else "Deepfakes", label=label, crops=crops,
                      frame_indices=found, boxes=np.tile(np.array([box], np.float32), (n, 1)),
                      crop_boxes=np.tile(np.array([[0, 0, size, size]], np.int32), (n, 1)),
                      landmarks=np.zeros((n, 68, 2), np.float32), sampled_indices=np.asarray(sampled, np.int64))


def test_windows_come_back_from_a_record_with_missing_faces_and_short_videos():
    sampled = sample_windows(100, 3, 4, 2)
    found = np.delete(sampled, [5])  # no face in the second window's second frame
    wins = windows_of(_record("v", sampled, found), 4)
    assert [w.frames.tolist() for w in wins] == sampled.reshape(3, 4).tolist()
    assert [len(w.rows) for w in wins] == [4, 3, 4]
    assert [w.first_frame for w in wins] == sampled[::4].tolist()
    assert wins[1].rows.tolist() == [4, 5, 6]  # rows of the record's faces, in time order
    short = windows_of(_record("s", [0, 2, 4], [0, 2, 4]), 4)
    assert len(short) == 1 and len(short[0].rows) == 3
    with pytest.raises(InputError, match="not windows of 4"):
        windows_of(_record("single", [3, 9, 20, 22], [3, 9, 20, 22]), 4)
    assert settings(block("faces", {"windows": {"length": 0}}), "train") is None and settings(block("faces", {}), "test") is None
    assert settings(block("faces", {"windows": {"length": 10, "step": {"test": 7}}}), "test") == (10, 7)
    assert stored_length({"faces_config": WINDOWS}) == 4 and stored_length({"faces_config": {"windows": {"length": 0}}}) == 0


def test_face_stage_stores_windows_and_reports_a_short_video(face_video, tmp_path):
    short = tmp_path / "short.mp4"
    ffmpeg.write_video(short, ffmpeg.read_frames(face_video)[:4], fps=25, crf=18)
    videos = [dict(video_id="original/000", manipulation="original", label=0, path=str(face_video)),
              dict(video_id="original/001", manipulation="original", label=0, path=str(short))]
    cfg = dict(detector="dlib_hog", upsample=0, detect_max_side=640, track=True, track_face_px=120, fallback_upsample=1,
               crop_scale=1.3, crop_size=32, frames={"train": 6, "val": 4, "test": 3}, min_faces=1, threads=1,
               windows={"length": 3, "step": {"train": 1, "val": 1, "test": 2}})
    messages = []
    records, rows = extract_shard(videos, "train", cfg, ffmpeg.find_ffmpeg(), log=messages.append, progress=False)
    long, brief = records
    assert long.sampled_indices.tolist() == sample_windows(20, 2, 3, 1).tolist() == [3, 4, 5, 13, 14, 15]
    assert [row["n_windows"] for row in rows] == [2, 1]
    records, rows = extract_shard(videos, "test", cfg, ffmpeg.find_ffmpeg(), log=messages.append, progress=False)
    assert records[0].sampled_indices.tolist() == [7, 9, 11]  # one frame in every 2, a window centred in the video
    assert records[1].sampled_indices.tolist() == [0, 2] and rows[1]["n_windows"] == 0  # 4 frames < one window (5)
    assert rows[1]["status"] == "ok" and any(m.startswith("SHORT original/001: 4 frames") for m in messages)
    # the test copies reuse the clean faces' frames: the same windows, boxes carried through the geometry
    from dfrobust.stages.distort import distort_shard

    write_shard(tmp_path / "clean.npz", records, rows, {"quality": "raw", "split": "test", "shard": 0, "faces_config": cfg})
    pd.DataFrame([{**v, "quality": "raw", "split": "test", "exists": True} for v in videos]).to_csv(tmp_path / "index.csv",
                                                                                                  index=False)
    op = operation("hflip", "flip", filter="hflip")
    distort_shard(tmp_path / "clean.npz", tmp_path / "index.csv", [op.params()], cfg, None, [tmp_path / "hflip.npz"],
                  progress=False, log=lambda *a: None)
    copy = FaceShard(tmp_path / "hflip.npz")
    assert stored_length(copy.summary) == 3
    for record in records:
        flipped = copy.read(record.video_id)
        assert np.array_equal(flipped.sampled_indices, record.sampled_indices)
        assert [w.frames.tolist() for w in windows_of(flipped, 3)] == [w.frames.tolist() for w in windows_of(record, 3)]


def _encoded_shards(tmp_path, split="train"):
    """Videos whose crops encode (video number, frame index); windows of 4, some faces missing."""
    records = []
    for v, (label, n_windows, missing) in enumerate([(0, 3, []), (0, 2, [1]), (1, 2, []), (1, 2, []), (1, 3, [4]),
                                                     (1, 1, [0]), (1, 2, [])]):
        sampled = sample_windows(200, n_windows, 4, 1)
        found = np.delete(sampled, missing)
        rec = _record(f"{'original' if label == 0 else 'Deepfakes'}/{v:03d}", sampled, found, label=label, size=16)
        rec.crops[..., 1] = v
        records.append(rec)
    return write_synthetic_shards(tmp_path / split, records, per_shard=4, split=split, faces_config=WINDOWS), records


def test_pool_keeps_whole_windows_of_one_video_in_time_order(tmp_path):
    shards, records = _encoded_shards(tmp_path)
    data = build_data("two_branch", SMALL)
    messages = []
    pool = build_pool(shards, 8, 16, (0, 1), tmp_path, "train", messages.append, pick=data.pool_rows)
    assert data.window_length == 4
    # video 5's only window misses a face: left out and reported
    assert [v["video_id"] for v in pool.videos] == [r.video_id for r in records if r.video_id != "Deepfakes/005"]
    assert any("1 video(s) left out" in m and "Deepfakes/005" in m for m in messages)
    # 8 faces per video = 2 complete windows (video 1 has one, video 4 two of its three)
    assert [len(w) for w in pool_windows(pool, 4)] == [2, 1, 2, 2, 2, 2]
    epoch = WindowEpoch(pool, 4, seed=3)
    labels = np.array([v["label"] for v in pool.videos])
    drawn = labels[epoch.videos]
    # a stratified epoch: every real twice (2 x 2), as many fakes: the one manipulation's 4 videos once each
    assert len(epoch) == 8 and (drawn == 0).sum() == (drawn == 1).sum() == 4
    assert sorted(np.flatnonzero(labels == 1)) == sorted(epoch.videos[drawn == 1])
    assert np.bincount(epoch.videos[drawn == 0]).tolist() == [2, 2]
    for i in range(len(epoch)):
        x, y = epoch[i]
        assert x.shape == (1, 4, 3, 16, 16) and x.dtype == torch.uint8
        video = set(x[0, :, 1].flatten().tolist())
        frames = x[0, :, 0, 0, 0].tolist()
        assert len(video) == 1 and int(y) == int(pool.videos[epoch.videos[i]]["label"])
        assert np.diff(frames).tolist() == [1, 1, 1]  # four consecutive frames of one video
    other = WindowEpoch(pool, 4, seed=4)
    assert not np.array_equal(epoch.choice, other.choice) or not np.array_equal(epoch.videos, other.videos)
    assert len(PoolWindows(pool, 4)) == 11 and len(PoolWindows(pool, 4, labels=(0,))) == 3
    single = write_synthetic_shards(tmp_path / "single", records[:2], faces_config={})
    with pytest.raises(InputError, match="faces.windows.length"):
        build_pool(single, 8, 16, (0, 1), tmp_path, "single", messages.append, pick=build_data("two_branch", SMALL).pool_rows)


def _ffpp_like_pool(reals: int, per_manipulation: int, windows: int = 3, length: int = 2) -> FacePool:
    """A pool of `reals` real videos and `per_manipulation` fakes of each FF++ manipulation."""
    videos = [{"label": 0, "manipulation": "original"} for _ in range(reals)]
    for name in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
        videos += [{"label": 1, "manipulation": name} for _ in range(per_manipulation)]
    n = windows * length
    return FacePool(crops=np.zeros((len(videos) * n, 4, 4, 3), np.uint8), landmarks=np.zeros((len(videos) * n, 68, 2), np.float32),
                    labels=np.repeat([v["label"] for v in videos], n), video_index=np.repeat(np.arange(len(videos)), n),
                    videos=videos)


def test_a_stratified_epoch_draws_every_real_twice_and_half_of_each_manipulation():
    """FF++'s training split (720 reals, 720 fakes per manipulation), scaled down 1:20: reals x2
    (72), each manipulation /2 (18 of 36 each), 144 windows, classes balanced."""
    pool = _ffpp_like_pool(36, 36)
    manipulation = np.array([v["manipulation"] for v in pool.videos])
    seen = set()
    for seed in range(3):
        epoch = WindowEpoch(pool, 2, seed=seed)
        assert len(epoch) == 144
        counts = np.bincount(epoch.videos, minlength=len(pool.videos))
        assert (counts[:36] == 2).all()  # every real video twice
        for name in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
            drawn = counts[manipulation == name]
            assert drawn.sum() == 18 and set(drawn) <= {0, 1}  # a random half, none twice
            seen.add(tuple(np.flatnonzero(drawn)))
        assert (epoch.choice >= 0).all() and (epoch.choice < 3).all()  # a random window of each drawn video
    assert len(seen) > 4  # other halves in other epochs
    # the full split: 1440 real and 4 x 360 fake windows, 2880 per stratified epoch
    full = WindowEpoch(_ffpp_like_pool(720, 720, windows=1), 2, seed=0)
    assert len(full) == 2880
    assert np.bincount(full.labels[full.videos]).tolist() == [1440, 1440]
    # natural mix: every video once
    assert sorted(WindowEpoch(pool, 2, seed=0, balanced=False).videos) == list(range(len(pool.videos)))
    assert len(WindowEpoch(pool, 2, seed=0, real_windows=3)) == 2 * 3 * 36


def test_prepare_puts_the_centre_at_the_mean_real_window_embedding(tmp_path):
    shards, _ = _encoded_shards(tmp_path)
    det, data = detector(), build_data("two_branch", SMALL)
    pool = build_pool(shards, 8, 32, (0, 1), tmp_path, "train", lambda m: None, pick=data.pool_rows)
    det.train()
    data.prepare(det, pool)
    assert det.training
    det.eval()
    with torch.no_grad():
        reals = [det(det.preprocess(to_tensor(pool.crops[rows])[None]))[0] for _, rows in PoolWindows(pool, 4, (0,)).items]
    assert torch.allclose(det.center, torch.stack(reals).mean(0), atol=1e-5)
    assert "center" in det.state_dict()


def test_score_table_has_one_row_per_face_carrying_its_windows_score(tmp_path):
    records = []
    for v, (label, sampled, found) in enumerate([(0, [10, 12, 14, 16, 50, 52, 54, 56], [10, 12, 14, 16, 50, 54, 56]),
                                                 (1, [0, 2, 4], [0, 2, 4]), (1, [5, 7, 9, 11], [5, 7, 9, 11])]):
        rec = _record(f"{'original' if label == 0 else 'Deepfakes'}/{v:03d}", sampled, found, label=label, size=32)
        rec.crops[:] = np.random.default_rng(v).integers(0, 256, rec.crops.shape, dtype=np.uint8)
        records.append(rec)
    path = tmp_path / "test" / "shard_000.npz"
    path.parent.mkdir()
    write_shard(path, records, [{"video_id": r.video_id, "manipulation": r.manipulation, "label": r.label} for r in records],
                {"split": "test", "faces_config": WINDOWS})
    det = detector().eval()
    messages = []
    import dfrobust.stages.score as score_stage

    score_stage.log = messages.append
    table = score_faces(det, [path], batch_size=8)
    # frame metrics count frames: one row per face, each its own frame
    assert table["video_id"].tolist() == ["original/000"] * 7 + ["Deepfakes/001"] * 3 + ["Deepfakes/002"] * 4
    assert table["frame_index"].tolist() == [10, 12, 14, 16, 50, 54, 56, 0, 2, 4, 5, 7, 9, 11]
    assert table["window"].tolist() == [0] * 4 + [1] * 3 + [0] * 3 + [0] * 4
    assert any("2 window(s) with fewer than 4 faces" in m for m in messages)
    # each face carries its window's score, the window scored alone on the faces it has
    with torch.no_grad():
        windows = [det(det.preprocess(to_tensor(records[0].crops[rows])[None])) for rows in (slice(0, 4), slice(4, 7))]
    distances = [det.distance(w).item() for w in windows]
    assert table["score"].iloc[:4].tolist() == pytest.approx([distances[0] / (distances[0] + 0.84)] * 4, abs=1e-6)
    assert table["score"].iloc[4:7].tolist() == pytest.approx([distances[1] / (distances[1] + 0.84)] * 3, abs=1e-6)
    # the video's score: g(mean of its windows' distances), each window once whatever its faces
    mean = np.mean(distances)
    assert table["video_score"].iloc[:7].tolist() == pytest.approx([mean / (mean + 0.84)] * 7, abs=1e-6)
    assert table.groupby("video_id")["video_score"].nunique().eq(1).all()
    # frame detectors still score every face, as predict_faces does, and write the five columns only
    frame = build_detector("xception", {"pretrained": False, "input_size": 32}).eval()
    rows = score_faces(frame, [path], batch_size=8)
    assert len(rows) == sum(r.n_faces for r in records) and list(rows.columns) == COLUMNS
    assert np.allclose(rows["score"], predict_faces(frame, np.concatenate([r.crops for r in records]), 8))
    single = tmp_path / "single.npz"
    write_shard(single, records, [{"video_id": r.video_id, "manipulation": r.manipulation, "label": r.label} for r in records],
                {"faces_config": {"windows": {"length": 0}}})
    with pytest.raises(InputError, match="faces.windows.length"):
        score_faces(det, [single], 8)


def test_frame_by_frame_rows_keep_each_faces_own_score(tmp_path):
    sampled = [0, 2, 4, 6, 20, 22, 24, 26]
    rec = _record("original/000", sampled, sampled, size=32)
    rec.crops[:] = np.random.default_rng(0).integers(0, 256, rec.crops.shape, dtype=np.uint8)
    det = detector(lstm=False).eval()
    [(frames, scores, extra)] = build_data("two_branch", det.cfg).score_records(det, [rec], 4, 8, lambda m: None)
    with torch.no_grad():
        d = det.distance(det(det.preprocess(to_tensor(rec.crops).view(2, 4, 3, 32, 32)))).double().numpy()
    assert frames.tolist() == sampled
    assert scores.tolist() == pytest.approx((d / (d + 50.0)).ravel().tolist(), abs=1e-6)
    assert extra["video_score"].tolist() == pytest.approx([d.mean() / (d.mean() + 50.0)] * 8, abs=1e-6)


# --- schedule, training loop, resume, overfitting ------------------------------------


def test_schedule_divides_the_lr_by_ten_after_fifty_epochs_without_a_lower_validation_loss():
    """The paper: lr / 10 after 50 stratified epochs without a drop of the validation loss, at
    most 3 times (PyTorch's ReduceLROnPlateau, patience 50: 50 such epochs are tolerated, the
    next one reduces)."""
    det = detector()
    schedule = det.cfg["lr_schedule"]
    assert (schedule["name"], schedule["factor"], schedule["patience"], schedule["max_reductions"]) == ("plateau", 0.1, 50, 3)
    assert det.cfg["epochs"] == 204 == 4 * (50 + 1)
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    sched = build_scheduler(opt, det.cfg["lr_schedule"], det.cfg["epochs"])
    start = [g["lr"] for g in opt.param_groups]
    # epoch 1 sets the best loss, epoch 11 lowers it, then it never drops again
    losses = [1.0] * 10 + [0.9] + [0.95] * 250
    history = []
    for loss in losses:
        sched.step(loss)
        history.append(opt.param_groups[0]["lr"])  # the lr of the next epoch
    first = 11 + 51  # 50 epochs after epoch 11 are tolerated; the 51st (epoch 62) reduces
    assert history[first - 2] == pytest.approx(1e-3) and history[first - 1] == pytest.approx(1e-4)
    # each later plateau: 51 more epochs; the third reduction is the last
    for k, epoch in enumerate([first + 51, first + 102], start=2):
        assert history[epoch - 2] == pytest.approx(10.0 ** -(2 + k)) and history[epoch - 1] == pytest.approx(10.0 ** -(3 + k))
    assert history[-1] == pytest.approx(1e-6) and len(set(np.round(np.log10(history), 6))) == 4
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([s / 1000 for s in start])
    # an improvement resets the count
    sched = build_scheduler(build_optimizer(det.trainable_parameters(), det.cfg["optimizer"]), det.cfg["lr_schedule"], 204)
    for loss in [1.0] * 50 + [0.5] + [0.6] * 50:
        sched.step(loss)
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    state = sched.state_dict()
    again = build_scheduler(build_optimizer(det.trainable_parameters(), det.cfg["optimizer"]), det.cfg["lr_schedule"], 204)
    again.load_state_dict(state)
    assert again.state_dict() == state
    with pytest.raises(InputError, match="plateau schedule needs"):
        build_scheduler(opt, {"name": "plateau"}, 3, "detectors.x.lr_schedule")


def test_overfits_eight_synthetic_videos_within_a_hundred_steps():
    records = synthetic_videos(4, 1, frames=4, size=32, seed=0)
    x = torch.stack([to_tensor(r.crops) for r in records])  # 8 windows of 4 faces
    y = torch.tensor([r.label for r in records])
    det = detector()  # the paper's settings: Adam 1e-3, block lrs, dropout, BiLSTM, radii 0.042 / 1.638
    pool = FacePool(crops=np.concatenate([r.crops for r in records]), landmarks=np.concatenate([r.landmarks for r in records]),
                    labels=np.repeat(y.numpy(), 4), video_index=np.repeat(np.arange(8), 4),
                    videos=[{"label": int(label)} for label in y])
    data = build_data("two_branch", det.cfg)
    data.window_length = 4
    data.prepare(det, pool)
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    det.train()
    losses = []
    for _ in range(80):
        opt.zero_grad()
        loss = det.loss(det(det.preprocess(x)), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.35 * losses[0]
    det.eval()
    with torch.no_grad():
        scores = det.proba(det(det.preprocess(x)))
    assert roc_auc_score(y, scores) == 1.0


def _table1_rows() -> list[tuple[str, dict]]:
    """(name, settings) of every row of the protocol's Table 1 (a, b, c)."""
    import yaml

    from conftest import REPO

    tables = yaml.safe_load((REPO / "config" / "protocols" / "two_branch.yaml").read_text())["tables"]
    return [(f"{t[-2:]}:{row.get('name') or row['method']}", row.get("settings", {}))
            for t in ("two_branch_t1a", "two_branch_t1b", "two_branch_t1c") for row in tables[t]["rows"]]


@pytest.mark.parametrize("name, settings", _table1_rows(), ids=[name for name, _ in _table1_rows()])
def test_each_ablation_is_a_setting_of_the_detector_and_trains_on_sixteen_faces(name, settings):
    """Every row of Table 1 is the detector with its settings: it builds, places its centre (the
    hypersphere), and a training step on 4 windows of 4 faces changes every layer that learns."""
    records = synthetic_videos(2, 1, frames=4, size=32, seed=0)  # 2 real, 2 fake videos: 16 faces
    x = torch.stack([to_tensor(r.crops) for r in records])
    y = torch.tensor([r.label for r in records])
    det = detector(**settings)
    pool = FacePool(crops=np.concatenate([r.crops for r in records]), landmarks=np.concatenate([r.landmarks for r in records]),
                    labels=np.repeat(y.numpy(), 4), video_index=np.repeat(np.arange(4), 4),
                    videos=[{"label": int(label), "manipulation": r.manipulation} for label, r in zip(y, records)])
    data = build_data("two_branch", det.cfg)
    data.window_length = 4
    data.prepare(det, pool)
    assert bool(torch.count_nonzero(det.center)) == det.hypersphere  # the cross-entropy head needs no centre
    epoch = data.train_dataset(pool, seed=0)
    assert len(epoch) == 8 and sorted(int(epoch[i][1]) for i in range(len(epoch))) == [0] * 4 + [1] * 4
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    before = {k: v.detach().clone() for k, v in det.named_parameters()}
    det.train()
    opt.zero_grad()
    loss = det.loss(det(det.preprocess(x)), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and loss.item() > 0
    changed = {k for k, v in det.named_parameters() if not torch.equal(v, before[k])}
    for module in det.new_modules() + [det.densenet.features.denseblock1, det.densenet.features.denseblock4]:
        ids = {id(p) for p in module.parameters()}
        assert {k for k, p in det.named_parameters() if id(p) in ids} & changed, (name, type(module).__name__)
    det.eval()
    with torch.no_grad():
        assert det.proba(det(det.preprocess(x))).shape == (4,)


def test_trains_resumes_and_scores_windows(tmp_path):
    train_shards = write_synthetic_shards(tmp_path / "train", synthetic_videos(3, 1, frames=8, size=32, seed=0), faces_config=WINDOWS)
    val_shards = write_synthetic_shards(tmp_path / "val", synthetic_videos(2, 1, frames=4, size=32, seed=1), split="val",
                                        faces_config=WINDOWS)
    cfg = {**SMALL, "epochs": 3, "batch_size": 4, "frames_per_video": 8, "val_frames_per_video": 4,
           "lr_schedule": {"patience": 0}}
    straight, resumed, summary, _ = train_killed_and_resumed("two_branch", cfg, (train_shards, val_shards), tmp_path,
                                                                    kill_after=2)
    assert summary["resumed_after"] == [2]
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])  # centre included
    assert a["scheduler"] == b["scheduler"]
    rows = read_log(resumed / "log.csv")
    assert [r["val_loss"] for r in rows] == [r["val_loss"] for r in read_log(straight / "log.csv")]
    hp = json.loads((resumed / "hparams.json").read_text())
    assert hp["data"]["train"]["videos"] == 6 and hp["data"]["train"]["faces"] == 48  # 2 windows of 4 per video
    model = load_trained(resumed)
    assert torch.count_nonzero(model.center) > 0
    test = write_synthetic_shards(tmp_path / "test", synthetic_videos(2, 1, frames=8, size=32, seed=2), split="test",
                                  faces_config=WINDOWS)
    table = score_faces(model, test, 8)
    # 2 windows of 4 faces per video, one row per face
    assert len(table) == 32 and table.groupby("video_id").size().tolist() == [8, 8, 8, 8]
    assert table.groupby("video_id")["window"].nunique().tolist() == [2, 2, 2, 2]
    assert table["score"].between(0, 1).all() and table.groupby("video_id")["video_score"].nunique().eq(1).all()
    # the score file as the score job writes it: the metrics read the video's own score back
    from dfrobust.evaluation.metrics import compute_metrics, read_scores

    path = tmp_path / "scores.csv"
    table.to_csv(path, index=False, float_format="%.8g")
    metrics = compute_metrics(read_scores(path), block("evaluation", {"bootstrap": 0}))
    assert metrics["counts"]["frames"] == {"real": 16, "fake": 16} and 0 <= metrics["video_auc"] <= 1
