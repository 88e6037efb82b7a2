"""FFD (Dang, Liu, Stehouwer et al., CVPR 2020): the attention map, its loss, its masks
from the dataset to the loss, and training (overfit, resume, every procedure)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from dfrobust.detectors import build_data, build_detector, detector_class, resize_crops
from dfrobust.detectors.tensors import cat_collate, to_tensor
from dfrobust.media.store import FaceShard
from dfrobust.training import train_step
from dfrobust.training.data import build_pool
from dfrobust.training.optim import build_optimizer
from dfrobust.training.procedures import build_procedure
from synthetic import synthetic_videos, write_synthetic_shards

from conftest import make_ffpp_tree, train_killed_and_resumed

torch.set_num_threads(2)
TINY = {"input_size": 32, "pretrained": False}


def hull_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The synthetic fakes' manipulated region (tests/synthetic.manipulate blends the hull of
    landmarks 17..67), as a 0/255 mask."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks[17:]).astype(np.int32)), 255)
    return mask


def with_masks(records, skip: tuple[str, ...] = ()):
    """The records with their fakes' masks (fakes of the methods in `skip`: none, as FaceShifter)."""
    for r in records:
        if r.label == 1 and r.manipulation not in skip:
            r.masks = np.stack([hull_mask(lm, r.crops.shape[1]) for lm in r.landmarks])
    return records


@pytest.fixture(scope="module")
def faces():
    """16 faces at 32 px (8 real, 8 fake) with the fakes' masks: uint8 NCHW, labels, masks (16, 32, 32)."""
    records = with_masks(synthetic_videos(2, 1, frames=4, size=48, seed=0))
    crops = np.concatenate([r.crops for r in records])
    masks = np.concatenate([r.masks if r.masks is not None else np.zeros((r.n_faces, 48, 48), np.uint8) for r in records])
    masks = np.stack([cv2.resize(m, (32, 32), interpolation=cv2.INTER_AREA) for m in masks])
    labels = np.concatenate([[r.label] * r.n_faces for r in records])
    return to_tensor(resize_crops(crops, 32)), torch.as_tensor(labels), torch.from_numpy(masks)


def extras(masks: torch.Tensor, known) -> dict:
    return {"masks": masks, "mask_known": torch.as_tensor(known, dtype=torch.bool)}


# -- the detector ------------------------------------------------------------------------------------
def test_ffd_is_registered_with_the_authors_settings():
    """JStehouwer/FFD_CVPR2020 train.py: CONFIGS['xcp'] img_size 299, map_size 19; Adam lr 1e-4, weight_decay 1e-3;
    loss_l1 + loss_cse (lambda 1); normalisation mean = std = 0.5; no augmentation."""
    d = detector_class("ffd").defaults
    assert (d["backbone"], d["input_size"], d["mean"], d["std"]) == ("legacy_xception", 299, [0.5] * 3, [0.5] * 3)
    assert (d["map"], d["map_site"], d["map_supervision"], d["map_weight"], d["weak_target"]) == ("reg", "block7", "supervised", 1.0, 0.75)
    assert d["optimizer"]["name"] == "adam" and (d["optimizer"]["lr"], d["optimizer"]["weight_decay"]) == (1e-4, 1e-3)
    assert (d["batch_size"], d["augment"], d["drop_rate"], d["templates"]) == (30, [], 0.0, 10)
    assert build_data("ffd", TINY).needs_masks


def test_ffd_map_has_the_feature_maps_size_and_lies_in_0_1():
    """Paper Sec. 3 / authors' xception.py: the map is regressed from block7's 728 x 19 x 19 features at 299 px."""
    torch.manual_seed(0)
    det = build_detector("ffd", {"pretrained": False}).eval()
    seen = {}
    det.net.block7.register_forward_hook(lambda m, i, o: seen.update(f=o.shape))
    with torch.no_grad():
        logits, att = det(det.preprocess(torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8)))
    assert seen["f"] == (2, 728, 19, 19) and att.shape == (2, 1, 19, 19) and det.map_size == (19, 19)
    assert logits.shape == (2, 2) and 0 <= float(att.min()) and float(att.max()) <= 1
    small = build_detector("ffd", TINY).eval()
    with torch.no_grad():
        feats = small.features(small.preprocess(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)))
        _, att = small(small.preprocess(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)))
    assert att.shape[-2:] == feats.shape[-2:]


def test_ffd_map_multiplies_block7s_features_into_block8():
    torch.manual_seed(0)
    det = build_detector("ffd", {**TINY, "input_size": 64}).eval()
    seen = {}
    det.net.block7.register_forward_hook(lambda m, i, o: seen.update(out=o.detach().clone()))
    det.net.block8.register_forward_pre_hook(lambda m, i: seen.update(inp=i[0].detach().clone()))
    with torch.no_grad():
        _, att = det(det.preprocess(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)))
    torch.testing.assert_close(seen["inp"], seen["out"] * att, rtol=0, atol=0)
    assert not torch.equal(seen["inp"], seen["out"])


def test_ffd_mam_is_the_mean_map_plus_regressed_templates():
    """Paper: M_att = mean + A alpha, the MAM's templates the principal components of ground-truth masks."""
    torch.manual_seed(0)
    det = build_detector("ffd", {**TINY, "input_size": 64, "map": "mam", "templates": 3}).eval()
    h, w = det.map_size
    rng = np.random.default_rng(0)
    masks = np.zeros((40, 64, 64), np.uint8)
    for m in masks:  # squares of random size and place: a few principal components explain them
        x, y, s = rng.integers(8, 24), rng.integers(8, 24), rng.integers(16, 32)
        m[y:y + s, x:x + s] = 255
    det.fit_templates(masks)
    mean, basis = det.attention.mean, det.attention.basis
    pooled = torch.nn.functional.adaptive_avg_pool2d(torch.as_tensor(masks, dtype=torch.float64)[:, None] / 255, (h, w)).flatten(1)
    torch.testing.assert_close(mean.double(), pooled.mean(0, keepdim=True), rtol=0, atol=1e-6)
    torch.testing.assert_close(basis.double() @ basis.double().T, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-5)
    x = det.preprocess(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    with torch.no_grad():
        f = det.features(x)
        alpha = det.attention.fc(torch.relu(det.attention.block(f)).mean((2, 3)))
        _, att = det(x)
    torch.testing.assert_close(att.flatten(1), mean + alpha @ basis, rtol=1e-5, atol=1e-6)


# -- the map loss --------------------------------------------------------------------------------------
def test_ffd_map_loss_is_zero_when_the_map_equals_the_mask():
    """Paper: L_map = |M_att - M_gt|_1 (supervised), reals' M_gt all zero; a fake without a mask is left out."""
    det = build_detector("ffd", TINY)
    mask = torch.zeros(3, 32, 32, dtype=torch.uint8)
    mask[0, 8:24, 4:20] = 255  # a known fake's mask
    labels = torch.tensor([1, 0, 1])  # fake with mask, real, fake without one
    att = torch.rand(3, 1, 2, 2)
    with det.batch_extras(extras(mask, [True, True, False])):
        target, known = det.mask_targets(att, labels)
    assert known.tolist() == [True, True, False] and target.shape == (3, 1, 2, 2)
    expected = torch.nn.functional.adaptive_avg_pool2d(mask[:1, None].float() / 255, (2, 2))
    torch.testing.assert_close(target[0], expected[0], rtol=0, atol=0)
    # area averages: the mask covers rows 8..23 (half of each map row's 16) and columns 4..19 (12 and 4 of 16)
    assert target[0, 0].tolist() == [[0.375, 0.125], [0.375, 0.125]]
    assert float(target[1:].abs().sum()) == 0
    assert float(det.map_loss(target, target, known, labels)) == 0.0
    wrong = det.map_loss(1 - target, target, known, labels)
    assert float(wrong) > 0
    # the unknown fake changes nothing, whatever its map
    other = target.clone()
    other[2] = 0.7
    assert float(det.map_loss(other, target, known, labels)) == 0.0
    torch.testing.assert_close(det.map_loss(1 - target, target, known, labels),
                               det.map_loss((1 - target)[:2], target[:2], known[:2], labels[:2]))
    # the whole loss: cross-entropy plus lambda L_map
    logits = torch.randn(3, 2)
    with det.batch_extras(extras(mask, [True, True, False])):
        ce = torch.nn.functional.cross_entropy(logits, labels)
        torch.testing.assert_close(det.loss((logits, target), labels), ce)
        torch.testing.assert_close(det.loss((logits, 1 - target), labels), ce + wrong)


def test_ffd_map_loss_variants():
    labels = torch.tensor([0, 1])
    known = torch.tensor([True, False])
    att = torch.zeros(2, 1, 3, 3)
    att[1, 0, 1, 1] = 0.75
    weak = build_detector("ffd", {**TINY, "map_supervision": "weak"})
    assert float(weak.map_loss(att, torch.zeros_like(att), known, labels)) == 0.0  # real all 0, fake's max 0.75
    att[1, 0, 1, 1] = 0.5
    assert float(weak.map_loss(att, torch.zeros_like(att), known, labels)) == pytest.approx(0.25 / 2)
    att[0] = 0.2
    assert float(weak.map_loss(att, torch.zeros_like(att), known, labels)) == pytest.approx((0.2 + 0.25) / 2)
    # supervised, unknown fakes weakly supervised: the real's L1 plus the fake's weak term
    mixed = build_detector("ffd", {**TINY, "unmasked_fakes": "weak"})
    assert float(mixed.map_loss(att, torch.zeros_like(att), known, labels)) == pytest.approx((0.2 + 0.25) / 2)
    plain = build_detector("ffd", TINY)
    assert float(plain.map_loss(att, torch.zeros_like(att), known, labels)) == pytest.approx(0.2)
    none = build_detector("ffd", {**TINY, "map_supervision": "none"})
    assert float(none.map_loss(att, torch.zeros_like(att), known, labels)) == 0.0
    threshold = build_detector("ffd", {**TINY, "map_threshold": 0.1})
    mask = torch.zeros(1, 4, 4, dtype=torch.uint8)
    mask[0, 0, 0] = 255  # 1/4 of the top-left cell of a 2 x 2 map
    with threshold.batch_extras(extras(mask, [True])):
        target, _ = threshold.mask_targets(torch.zeros(1, 1, 2, 2), torch.tensor([1]))
    assert target.flatten().tolist() == [1.0, 0.0, 0.0, 0.0]


def test_ffd_masks_follow_concatenated_batches_and_stay_out_of_others():
    """Adversarial training passes [x, x_adv]: each copy gets its face's mask. A pass on other faces
    (a generator's step on the fakes only) has no mask for its fakes; reals stay all-zero."""
    det = build_detector("ffd", TINY)
    mask = torch.zeros(2, 8, 8, dtype=torch.uint8)
    mask[1, :4] = 255
    labels = torch.tensor([0, 1])
    with det.batch_extras(extras(mask, [True, True])):
        target, known = det.mask_targets(torch.zeros(4, 1, 2, 2), labels.repeat(2))
        assert known.all() and torch.equal(target[:2], target[2:]) and float(target[3].sum()) == 2.0
        _, known = det.mask_targets(torch.zeros(1, 1, 2, 2), torch.tensor([1]))
        assert not known.any()
        _, known = det.mask_targets(torch.zeros(1, 1, 2, 2), torch.tensor([0]))
        assert known.all()
    _, known = det.mask_targets(torch.zeros(2, 1, 2, 2), labels)  # outside: no extras
    assert known.tolist() == [True, False]


# -- training --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("supervision", ["supervised"])
def test_detector_fits_sixteen_faces(supervision, faces):
    """As tests/test_detectors.py's overfit test: the loss halves within a few steps and the two classes separate."""
    images, labels, masks = faces
    torch.manual_seed(0)
    # lr 3e-4: at 1e-3 the loss spikes at step 9 with one thread (0.19 -> 0.86), not with two
    det = build_detector("ffd", {**TINY, "optimizer": {"lr": 3e-4}, "map_supervision": supervision}).train()
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    losses = []
    with det.batch_extras(extras(masks, [True] * 16)):
        for i in range(10):
            losses.append(train_step(det, opt, images, labels, f"step {i}"))
    assert np.mean(losses[-2:]) < 0.5 * np.mean(losses[:2]), losses
    with torch.no_grad():
        p = det.predict_proba(det.preprocess(images)).float()
    assert p[labels == 1].min() > p[labels == 0].max(), p


@pytest.mark.parametrize("procedure", ["plain", "grad_aat", "grad_sat", "grad_bat", "two_gen_bat", "pim"])
def test_ffd_trains_under_every_procedure(procedure, faces):
    images, labels, masks = faces
    torch.manual_seed(0)
    det = build_detector("ffd", TINY).train()
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    cfg = {"name": procedure, **({"generator_width": 8, "generator_blocks": 1} if "gen" in procedure else {})}
    steps = build_procedure(cfg, det)
    seen = []
    original = det.mask_targets

    def spy(att, y):
        out = original(att, y)
        seen.append((len(y), int(out[1].sum())))
        return out

    det.mask_targets = spy
    with det.batch_extras(extras(masks, [True] * 16)):
        loss = steps.step(opt, images, labels, "step 1")
    assert np.isfinite(loss)
    # every pass on the batch (adversaries' and the detector's: each half of [clean, adversarial]) saw every
    # face's mask; a generator's pass on the fakes alone (two_gen_bat) has no masks for them, reals are known
    assert all(known == n for n, known in seen if n in (16, 32)) and (16, 16) in seen, seen
    if procedure == "two_gen_bat":
        assert (8, 8) in seen and (8, 0) in seen, seen


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Train: 4 real videos + 8 fakes (the FaceSwap ones without masks); val: 2 reals + 4 fakes; 4 faces each at 48 px."""
    root = tmp_path_factory.mktemp("ffd_faces")
    train = write_synthetic_shards(root / "train", with_masks(synthetic_videos(4, 2, frames=4, size=48, seed=0),
                                                              skip=("FaceSwap",)), per_shard=5)
    val = write_synthetic_shards(root / "val", with_masks(synthetic_videos(2, 2, frames=4, size=48, seed=1)), split="val")
    return train, val


def test_masks_go_from_the_shards_through_the_pool_to_the_batches(shards, tmp_path):
    records = list(FaceShard(shards[0][0]))
    assert any(r.masks is not None for r in records) and all(r.masks is None for r in records if r.label == 0)
    data = build_data("ffd", {**TINY, "crop": {"jitter": [1.2, 1.4]}})  # faces and masks cut per sample
    pool = build_pool(shards[0], 4, 48, (0, 1), tmp_path, "train", lambda m: None, view=data.pool_view,
                      masks=data.pool_masks)
    fake_without = [v["manipulation"] == "FaceSwap" for v in pool.videos]
    assert pool.masks.shape == (len(pool), 48, 48)
    assert (pool.mask_known == ~np.asarray(fake_without)[pool.video_index]).all()
    assert pool.summary()["fake_faces_with_masks"] == 16
    ds = data.train_dataset(pool, seed=5)
    items = [ds[i] for i in range(len(ds))]
    images, labels, batch = cat_collate(items)
    assert batch["masks"].shape == (len(ds), 32, 32) and batch["masks"].dtype == torch.uint8
    for (face, label, extra), row in zip(items, ds.order):
        assert bool(extra["mask_known"][0]) == bool(pool.mask_known[row])
        if label == 0:
            assert int(extra["masks"].max()) == 0
        elif extra["mask_known"][0]:
            # the mask is cut by the face's crop draw: it covers the face's altered (reddened) pixels
            m = extra["masks"][0].numpy() > 200
            assert m.sum() > 50
            rgb = face[0].permute(1, 2, 0).numpy().astype(int)
            assert (rgb[m][:, 0] - rgb[m][:, 2]).mean() > (rgb[~m][:, 0] - rgb[~m][:, 2]).mean()
    # the same draw as the face alone (the faces are those of a detector that reads no masks)
    plain = type(ds)(pool, 5, balanced=True, crop=data.crop)
    assert all(torch.equal(plain[i][0], items[i][0]) for i in range(0, len(ds), 7))


def test_resume_after_a_kill_gives_the_same_weights(shards, tmp_path):
    cfg = {**TINY, "epochs": 2, "batch_size": 8, "frames_per_video": 2, "val_frames_per_video": 2}
    straight, resumed, summary, messages = train_killed_and_resumed("ffd", cfg, shards, tmp_path, kill_after=1)
    assert summary["resumed_after"] == [1]
    a = torch.load(straight / "weights.pt", weights_only=True)["state_dict"]
    b = torch.load(resumed / "weights.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hparams = json.loads((straight / "hparams.json").read_text())
    assert hparams["data"]["train"]["fake_faces_with_masks"] == 2 * 4  # 2 frames of the 4 masked fake videos


# -- masks from the dataset ---------------------------------------------------------------------------------
def test_ffpp_index_names_each_fakes_mask_video(tmp_path):
    from dfrobust.datasets import ffpp

    root = make_ffpp_tree(tmp_path / "ffpp", {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]},
                          methods=("Deepfakes", "FaceShifter"), qualities=("c23",))
    index, _ = ffpp.build_index({"root": str(root), "methods": ["Deepfakes", "FaceShifter"], "qualities": ["c23"]})
    row = index[index["video_id"] == "Deepfakes/000_001"].iloc[0]
    assert row["mask_path"] == str(root / "manipulated_sequences/Deepfakes/masks/videos/000_001.mp4")
    assert (index.loc[index["label"] == 0, "mask_path"] == "").all()
    assert (index.loc[index["manipulation"] == "FaceShifter", "mask_path"] == "").all()


def test_face_stage_cuts_each_faces_mask_like_its_crop(tmp_path):
    """A mask video whose white square moves: each face's stored mask is that frame's square under its crop box."""
    from dfrobust.media.ffmpeg import find_ffmpeg, write_video
    from dfrobust.media.masks import attach_masks, face_masks

    exe = find_ffmpeg(None)
    frames = []
    for i in range(10):
        f = np.zeros((96, 128, 3), np.uint8)
        f[20 + i:60 + i, 30:70] = 255
        frames.append(f)
    path = tmp_path / "mask.mp4"
    write_video(path, frames, fps=25, crf=23, exe=exe)  # lossy, as FF++'s masks: ringing at the edges
    boxes = np.array([[20, 10, 84, 74], [40, 20, 104, 84]], np.int32)
    masks, why = face_masks(path, np.array([2, 7]), boxes, 32, 10, 128, 96, exe)
    assert why == "" and masks.shape == (2, 32, 32)
    for mask, frame, box in zip(masks, (frames[2], frames[7]), boxes):
        expected = cv2.resize(frame[box[1]:box[3], box[0]:box[2], 0], (32, 32), interpolation=cv2.INTER_AREA)
        assert np.abs(mask.astype(int) - expected).max() <= 128 and np.abs(mask.astype(int) - expected).mean() < 4
    masks, why = face_masks(path, np.array([2]), boxes[:1], 32, 11, 128, 96, exe)
    assert masks is None and "10 frames" in why

    class Record:
        crops = np.zeros((2, 32, 32, 3), np.uint8)
        frame_indices, crop_boxes, masks = np.array([2, 7]), boxes, None

    fields = {"n_frames": 10, "width": 128, "height": 96}
    attach_masks(Record, {"video_id": "x", "mask_path": str(path)}, fields, exe)
    assert fields["masks"] == "yes" and Record.masks.shape == (2, 32, 32)
    fields = {"n_frames": 10, "width": 128, "height": 96}
    attach_masks(Record, {"video_id": "x", "mask_path": float("nan")}, fields, exe)
    assert fields["masks"] == "none"
