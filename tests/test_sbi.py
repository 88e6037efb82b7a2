"""SBI as its authors ran it: forehead landmarks and their 75/25 mix, crop
geometry (jitter, fixed test crop, the stored crop computed from the
detectors), the albumentations pipelines and their ranges, self-blending,
RetinaFace from a local weights file in the published format, the face
stage storing both boxes from one decode, the checkpoint rule, and the
AdvProp backbone's normalisation."""

from __future__ import annotations

import zipfile

import cv2
import numpy as np
import pytest
import torch

from dfrobust.core.errors import InputError
from dfrobust.detectors import build_data, build_detector, resize_crops
from dfrobust.detectors import resolve_config
from dfrobust.detectors.crop import stored_crop_of
from dfrobust.media.crops import CropSpec, cut, resolve_faces, stored_crop
from dfrobust.detectors.sbi import SelfBlendFaces
from dfrobust.detectors.sbi_blend import (BLEND_RATIOS, CANVAS_MARGINS, StoredFace, Transforms, blend_face, hflip, self_blend)
from dfrobust.media.forehead import extend_landmarks, forehead_points
from dfrobust.media.geometry import margin_region, square_crop_box, union_box
from dfrobust.training.data import FacePool
from dfrobust.training.loop import selects
from synthetic import synthetic_videos

torch.set_num_threads(2)
SBI_TINY = {"pretrained": False, "backbone": "efficientnet_b0", "input_size": 32}


# -- forehead landmarks ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photos():
    """The two real face photos packages ship (matplotlib, scikit-image), with dlib's 68 landmarks."""
    from dfrobust.demo.identities import source_photos

    return [(p.image, p.landmarks) for p in source_photos()]


@pytest.fixture(scope="module")
def demo_faces():
    """Four identities of the embedded demo (reshaped, recoloured, mirrored photos) with their landmarks."""
    from dfrobust.core.config import resolve_block
    from dfrobust.demo.identities import make_identity

    cfg = resolve_block("demo", {})
    ids = [make_identity(i, np.random.default_rng(i), cfg["width"], cfg["height"], cfg) for i in range(4)]
    return [(i.canvas, i.landmarks) for i in ids]


def test_forehead_points_lie_above_the_brows_on_photos_and_demo_faces(photos, demo_faces):
    for image, lm in photos + demo_faces:
        pts = forehead_points(lm)
        brows, chin = lm[17:27, 1].min(), lm[8, 1]
        above = (brows - pts[:, 1].min()) / (chin - brows)
        # rule of thirds: hairline to brows ~ half of brows to chin
        assert 0.3 < above < 0.6, above
        assert np.all(np.diff(pts[:, 0]) > 0)  # left to right, as the authors' reordered points
        assert pts[:, 0].min() > lm[0, 0] - 2 and pts[:, 0].max() < lm[16, 0] + 2
        assert (pts[:, 0] >= 0).all() and (pts[:, 0] < image.shape[1]).all()  # (the demo's heads touch the frame top)
        area68 = cv2.contourArea(cv2.convexHull(lm.astype(np.float32)))
        area81 = cv2.contourArea(cv2.convexHull(extend_landmarks(lm)))
        assert area81 > 1.2 * area68


def test_forehead_turns_and_scales_with_the_face(photos):
    lm = photos[0][1].astype(np.float64)
    angle, scale, shift = np.deg2rad(25), 1.7, np.array([40.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = lm @ rot.T + shift
    np.testing.assert_allclose(forehead_points(moved), forehead_points(lm) @ rot.T + shift, atol=1e-3)


# -- masks with and without forehead -------------------------------------------------------------------
def photo_canvas(photos):
    """Grace Hopper's blending canvas (their crop_face(margin=True)) and its 81 landmarks."""
    image, lm = photos[0]
    lm = np.rint(lm)
    region = margin_region([*lm.min(0), *lm.max(0)], CANVAS_MARGINS, np.array([0, 0, image.shape[1], image.shape[0]]))
    return image[region[1]:region[3], region[0]:region[2]], np.rint(extend_landmarks(lm)) - region[:2]


def forehead_share(photos, forehead: float, n: int) -> float:
    img, lm81 = photo_canvas(photos)
    probe = np.rint((lm81[74] + np.array([lm81[19:25, 0].mean(), lm81[17:27, 1].min()])) / 2).astype(int)  # mid-forehead
    transforms = Transforms()
    covered = [self_blend(img, lm81, np.random.default_rng(s), transforms, forehead=forehead)[2][probe[1], probe[0]] > 0
               for s in range(n)]
    return float(np.mean(covered))


def test_masks_cover_the_forehead_in_three_quarters_of_the_samples(photos):
    assert forehead_share(photos, 1.0, 30) == 1.0 and forehead_share(photos, 0.0, 30) == 0.0  # the probe tells them apart
    assert 0.68 <= forehead_share(photos, 0.75, 300) <= 0.82


# -- crops -------------------------------------------------------------------------------------------------
def test_training_crops_span_1_1_to_1_4_per_side_and_test_crops_are_fixed():
    spec = CropSpec("retinaface", 1.25, "box", (1.1, 1.4))
    box, bounds = np.array([100.0, 80.0, 200.0, 220.0]), np.array([0, 0, 1000, 1000])
    rng = np.random.default_rng(0)
    regions = np.array([spec.region(box, bounds, rng) for _ in range(2000)])
    width, height = (regions[:, 2] - regions[:, 0]) / 100, (regions[:, 3] - regions[:, 1]) / 140
    for extent in (width, height):
        assert 1.1 - 0.02 <= extent.min() < 1.13 and 1.37 < extent.max() <= 1.4 + 0.02
    left, right = box[0] - regions[:, 0], regions[:, 2] - box[2]
    assert left.min() >= 4 and left.max() <= 21 and abs(np.corrcoef(left, right)[0, 1]) < 0.1  # sides drawn independently
    assert (np.abs(width * 100 - height * 140) > 2).mean() > 0.9  # not square
    fixed = {tuple(spec.region(box, bounds)) for _ in range(5)}
    assert fixed == {(87, 62, 213, 238)}  # 1.25x: w/8 and h/8 each side, their int() + 1
    assert margin_region(box, [0.125] * 4, np.array([90, 0, 1000, 230])).tolist() == [90, 62, 213, 230]  # cut at the edge


def test_the_stored_crop_is_computed_from_the_detectors():
    ffpp = [(name, resolve_config(name, {})) for name in ("xception", "capsule", "sbi")]  # the validated blocks
    need = stored_crop(ffpp)
    assert need["crop_scale"] == pytest.approx(1.4) and need["retinaface"] == ["sbi"]
    assert need["crop_size"] == 484 >= 380  # 380 px from a 1.1x crop of a 1.4x stored square
    assert stored_crop_of([("xception", {}), ("capsule", {})]) == {**stored_crop(ffpp[:2]), "crop_scale": 1.3, "crop_size": 300}
    assert stored_crop_of([("sbi", {"input_size": 48})])["crop_size"] == 62  # the demo
    two = [ffpp[2], ("sbi", {**ffpp[2][1], "input_size": 224, "crop": {**ffpp[2][1]["crop"], "jitter": [1.2, 1.6]}})]
    assert (stored_crop(two)["crop_scale"], stored_crop(two)["crop_size"]) == (pytest.approx(1.6), 553)  # 380 x 1.6 / 1.1
    with pytest.raises(InputError, match="detectors.sbi has no crop"):
        stored_crop([("sbi", {"input_size": 48})])
    faces, notes = resolve_faces({"crop_scale": None, "crop_size": None, "retinaface": {"weights": "w.pth"}}, ffpp)
    assert (faces["crop_scale"], faces["crop_size"], notes) == (pytest.approx(1.4), 484, [])
    faces, notes = resolve_faces({"crop_scale": 1.3, "crop_size": 320, "retinaface": {"weights": None}}, ffpp)
    assert (faces["crop_scale"], faces["crop_size"]) == (1.3, 320)
    assert any("faces.crop_size = 320 is below the size detector sbi needs (484)" in n for n in notes)
    assert any("faces.crop_scale = 1.3" in n for n in notes) and any("retinaface.weights is not set" in n for n in notes)


def test_every_detector_crop_fits_in_the_stored_crop():
    """The stored square around the union of the dlib and RetinaFace boxes holds Xception's 1.3x square
    and SBI's largest 1.4x crop, wherever the face is in the frame."""
    rng = np.random.default_rng(3)
    ffpp, sbi = CropSpec("face", 1.3, "square", None), CropSpec("retinaface", 1.25, "box", (1.1, 1.4))
    big = CropSpec("retinaface", 1.4, "box", None)
    for _ in range(300):
        w, h = 640, 360
        side = rng.uniform(40, 200)
        x0, y0 = rng.uniform(-0.2 * side, w - 0.8 * side), rng.uniform(-0.2 * side, h - 0.8 * side)
        dlib = np.array([x0, y0, x0 + side, y0 + side])
        retina = dlib + np.array([0.06, -0.3, -0.06, 0.05]) * side * rng.uniform(0.5, 1.5)
        stored = square_crop_box(union_box(dlib, retina), 1.4, w, h)
        frame = np.array([0, 0, w, h])
        for spec, box in ((ffpp, dlib), (big, retina)):
            r = spec.region(box, frame)
            assert (r[:2] >= stored[:2] - 1).all() and (r[2:] <= stored[2:] + 1).all(), (spec, box, r, stored)  # +-1: rounding
        # so cutting at the stored crop's edge is cutting at the frame's
        inner, outer = sbi.region(retina, stored), sbi.region(retina, frame)
        assert (np.abs(inner - outer) <= 1).all()


def test_a_crop_of_the_whole_stored_crop_is_the_plain_resize():
    records = synthetic_videos(1, 1, frames=3, size=48, seed=0)
    data = build_data("xception", {"pretrained": False, "input_size": 32})
    for rec in records:  # synthetic crops are the whole frame: FF++'s 1.3x square is clamped to it
        np.testing.assert_array_equal(data.view_faces(rec), resize_crops(rec.crops, 32))
    crop = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(cut(crop, np.array([100, 50, 228, 178]), np.array([132, 82, 196, 146]), 32), crop[16:48, 16:48])


# -- the authors' albumentations pipelines ----------------------------------------------------------------
def test_pipelines_are_albumentations_with_the_authors_ranges():
    t = Transforms()
    t.source.save_applied_params = t.pair.save_applied_params = True
    img = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    drawn: dict[str, list] = {}
    n = 300
    for _ in range(n):
        for name, params in t.seeded(t.source, rng)(image=img)["applied_transforms"]:
            drawn.setdefault("source." + name, []).append(params)
        for name, params in t.seeded(t.pair, rng)(image=img, image1=img)["applied_transforms"]:
            drawn.setdefault("pair." + name, []).append(params)
    share = {k: len(v) / n for k, v in drawn.items()}
    for prefix in ("source.", "pair."):
        shifts = np.array([p["noise_map"] for p in drawn[prefix + "RGBShift"]])
        assert np.abs(shifts).max() <= 20 and np.abs(shifts).max() > 15
        hsv = np.array([[p["hue_shift"], p["sat_shift"], p["val_shift"]] for p in drawn[prefix + "HueSaturationValue"]])
        assert np.abs(hsv).max() <= 0.3
    for prefix, limit in (("source.", 0.1), ("pair.", 0.3)):
        alpha = np.array([p["alpha"] for p in drawn[prefix + "RandomBrightnessContrast"]])
        beta = np.array([p["beta"] for p in drawn[prefix + "RandomBrightnessContrast"]]) / 255
        assert np.abs(alpha - 1).max() <= limit + 1e-6 and np.abs(alpha - 1).max() > 0.8 * limit
        assert np.abs(beta).max() <= limit + 1e-6
    assert 0.24 < share["source.RGBShift"] < 0.36 and share["source.HueSaturationValue"] == 1
    scales = [p["scale"] for p in drawn["source.Downscale"]]
    assert set(scales) == {0.5, 0.25} and 0.2 < scales.count(0.5) / n < 0.3 and 0.2 < scales.count(0.25) / n < 0.3
    sharpen = np.array([p["alpha"] for p in drawn["source.Sharpen"]])
    assert 0.43 < len(sharpen) / n < 0.57 and sharpen.min() >= 0.2 and sharpen.max() <= 0.5
    for name in ("RGBShift", "HueSaturationValue", "RandomBrightnessContrast"):
        assert 0.24 < share["pair." + name] < 0.36
    quality = np.array([p["quality"] for p in drawn["pair.ImageCompression"]])
    assert 0.43 < len(quality) / n < 0.57 and quality.min() >= 40 and quality.max() <= 100
    affine = [t.seeded(t.affine, rng)(image=img, mask=img[..., 0]) and t.affine.params for _ in range(200)]
    sx = np.array([p["scale"]["x"] for p in affine])
    shift = np.array([p["matrix"][:2, 2] - (23.5 - np.diag(p["matrix"])[:2] * 23.5) for p in affine]) / 48
    assert sx.min() >= 0.95 and sx.max() <= 1 / 0.95 and np.abs(shift[:, 0]).max() <= 0.03 + 1e-6
    assert np.abs(shift[:, 1]).max() <= 0.015 + 1e-6 and np.abs(shift[:, 0]).max() > 0.02
    assert (t.elastic.alpha, t.elastic.sigma, t.elastic.noise_distribution) == (50, 7, "uniform")


def test_pipelines_repeat_on_the_same_seed_and_pairs_share_their_draw():
    t = Transforms()
    img = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    other = np.roll(img, 5, axis=1)
    a = t.alter(img, np.random.default_rng(7))
    assert np.array_equal(a, t.alter(img, np.random.default_rng(7)))
    assert any(not np.array_equal(a, t.alter(img, np.random.default_rng(s))) for s in range(8, 12))
    for seed in range(20):  # identical images stay identical: one draw for both
        x, y = t.augment_pair(img, img.copy(), np.random.default_rng(seed))
        assert np.array_equal(x, y)
        x2, y2 = t.augment_pair(img, other, np.random.default_rng(seed))
        assert np.array_equal(x2, x)


# -- self-blending -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_self_blend_changes_the_face_only_inside_the_mask(photos, seed):
    img, lm81 = photo_canvas(photos)
    real, fake, mask = self_blend(img, lm81, np.random.default_rng(seed), hull="face_xray" if seed % 2 else "landmarks")
    assert real.shape == fake.shape == img.shape and fake.dtype == np.uint8 and mask.shape == img.shape[:2]
    outside = mask == 0
    assert outside.any() and (mask > 0).any()
    np.testing.assert_array_equal(fake[outside], real[outside])
    assert np.isclose(mask.max(), BLEND_RATIOS, atol=1e-6).any()
    assert mask[:4, :4].max() == 0 and mask[-4:, -4:].max() == 0  # the mask is around the face
    np.testing.assert_array_equal(self_blend(img, lm81, np.random.default_rng(seed), hull="face_xray" if seed % 2 else "landmarks")[1], fake)


def test_hflip_mirrors_the_frame_with_landmark_roles(photos):
    image, lm = photos[0]
    lm81 = extend_landmarks(lm)
    box = np.array([10.0, 20.0, 50.0, 90.0])
    flipped, left, lm2, box2 = hflip(image, 0, lm81, box, image.shape[1])
    assert left == 0 and np.array_equal(flipped, image[:, ::-1]) and box2.tolist() == [image.shape[1] - 50, 20, image.shape[1] - 10, 90]
    # the flipped left eye sits where the right eye was, mirrored; the forehead runs left to right again
    np.testing.assert_allclose(np.sort(lm2[36:42, 0]), np.sort(image.shape[1] - lm81[42:48, 0]))
    assert np.all(np.diff(lm2[68:, 0]) > 0)
    _, _, lm3, box3 = hflip(flipped, left, lm2, box2, image.shape[1])
    np.testing.assert_allclose(lm3, lm81, atol=1e-4)
    assert box3.tolist() == box.tolist()


def sbi_pool(records, det) -> FacePool:
    parts = [det.pool_view(r, np.arange(r.n_faces)) for r in records]
    geometry = {k: np.concatenate([p[2][k] for p in parts]) for k in parts[0][2]}
    labels = np.concatenate([[r.label] * r.n_faces for r in records])
    return FacePool(crops=np.concatenate([p[0] for p in parts]), landmarks=np.concatenate([p[1] for p in parts]),
                    labels=labels.astype(np.int64), video_index=np.zeros(len(labels), np.int64), geometry=geometry)


def test_sbi_items_pair_each_real_with_its_blend():
    records = synthetic_videos(2, 1, frames=4, size=48, seed=0)
    data = build_data("sbi", SBI_TINY)
    pool = sbi_pool(records, data)
    assert pool.crops.shape[1] == 48 and pool.geometry["crop_boxes"].shape == (16, 4)  # the stored crops
    train = SelfBlendFaces(pool, seed=1, train=True, crop=data.crop)
    assert len(train) == 8 and train.notes and "no RetinaFace boxes" in train.notes[0]  # reals only
    x, y = train[0]
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.uint8 and y.tolist() == [0, 1]
    assert not torch.equal(x[0], x[1]) and torch.equal(train[0][0], x)  # reproducible from its seed
    val = SelfBlendFaces(pool, seed=2, train=False, crop=data.crop)
    assert all(torch.equal(val[i][0], val[i][0]) for i in range(2))  # a fixed validation set
    assert any(not torch.equal(train[i][0], SelfBlendFaces(pool, 3, True, data.crop)[i][0]) for i in range(4))
    assert data.train_labels == (0,) and data.val_labels == (0,)
    assert build_data("sbi", {**SBI_TINY, "val_fakes": "dataset"}).val_labels == (0, 1)


def test_sbi_trains_only_on_faces_with_a_retinaface_box_and_scores_around_it(photos):
    image, lm = photos[1]
    from dfrobust.media.faces import face_of
    from dfrobust.media.store import record_from_faces

    dlib = np.array([175.0, 76.0, 266.0, 167.0])
    retina = np.array([180.0, 53.0, 261.0, 172.0])
    faces = [face_of(image, i, dlib, lm, 1.4, 120, retina if i else None) for i in range(3)]
    rec = record_from_faces("original/000", "original", 0, faces, np.arange(3), 120)
    rec.meta.update(width=image.shape[1], height=image.shape[0])
    det, data = build_detector("sbi", {**SBI_TINY, "input_size": 64}), build_data("sbi", {**SBI_TINY, "input_size": 64})
    pool = sbi_pool([rec], data)
    ds = SelfBlendFaces(pool, seed=0, train=True, crop=data.crop)
    assert sorted(ds.order.tolist()) == [1, 2] and ds.n_unusable == 1
    test_faces = data.view_faces(rec)
    assert test_faces.shape == (3, 64, 64, 3)
    spec = data.crop.spec
    for i, box in enumerate([dlib, retina, retina]):  # the face box where RetinaFace found none
        x0, y0, x1, y1 = (int(v) for v in spec.region(box, np.array([0, 0, 512, 512])))
        expected = cv2.resize(image[y0:y1, x0:x1], (64, 64), interpolation=cv2.INTER_LINEAR)
        assert np.abs(test_faces[i].astype(int) - expected).mean() < 6  # through the stored crop at 120 px
    face = StoredFace(rec.crops[1], rec.crop_boxes[1], extend_landmarks(lm)[:68], retina, (512, 512))
    real, _ = blend_face(face, np.random.default_rng(0), spec, 64, Transforms(), train=False)
    # validation reals are the test crop (up to the colour change when the target was the altered copy)
    assert np.corrcoef(real.ravel(), test_faces[1].ravel())[0, 1] > 0.95
    [(frames, scores)] = data.score_records(det.eval(), [rec], 0, 64)
    assert scores.shape == (3,) and frames.tolist() == rec.frame_indices.tolist()


# -- RetinaFace ------------------------------------------------------------------------------------------------
PUBLISHED_KEYS = ["body.conv1.weight", "body.layer4.2.bn3.running_var", "fpn.output1.0.weight", "fpn.merge1.1.bias",
                  "ssh1.conv3X3.0.weight", "ssh3.conv7x7_3.1.running_mean", "ssh2.conv7X7_2.0.weight",
                  "ClassHead.0.conv1x1.weight", "BboxHead.2.conv1x1.bias", "LandmarkHead.1.conv1x1.weight"]


def face_everywhere(net):
    """Heads that call every anchor a face with no offset: boxes are the anchors themselves."""
    with torch.no_grad():
        for head in (*net.BboxHead, *net.LandmarkHead, *net.ClassHead):
            head.conv1x1.weight.zero_()
            head.conv1x1.bias.zero_()
        for head in net.ClassHead:
            head.conv1x1.bias.copy_(torch.tensor([-8.0, 8.0] * 2))
    return net


@pytest.fixture(scope="module")
def retina_weights(tmp_path_factory):
    from dfrobust.media.retinaface import RetinaFace

    torch.manual_seed(0)
    net = face_everywhere(RetinaFace())
    root = tmp_path_factory.mktemp("retina")
    pth = root / "retinaface_resnet50_2020-07-20.pth"
    torch.save(net.state_dict(), pth)
    with zipfile.ZipFile(root / "retinaface_resnet50_2020-07-20-f168fae3c.zip", "w") as zf:
        zf.write(pth, pth.name)
    return root


def test_retinaface_loads_weights_in_the_published_format(retina_weights, tmp_path):
    from dfrobust.media.retinaface import RetinaFace, load_retinaface

    keys = RetinaFace().state_dict().keys()
    assert all(k in keys for k in PUBLISHED_KEYS) and not any(k.startswith("body.fc") for k in keys)
    a = load_retinaface(retina_weights / "retinaface_resnet50_2020-07-20.pth")
    b = load_retinaface(retina_weights / "retinaface_resnet50_2020-07-20-f168fae3c.zip")
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in PUBLISHED_KEYS)
    with pytest.raises(InputError, match="faces.retinaface.weights"):
        load_retinaface(tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(InputError, match="not retinaface_resnet50_2020-07-20 weights"):
        load_retinaface(wrong)


def test_retinaface_decodes_boxes_and_five_landmarks(retina_weights):
    from dfrobust.media.retinaface import load_retinaface, predict, priors

    net = load_retinaface(retina_weights / "retinaface_resnet50_2020-07-20.pth")
    frame = np.full((64, 96, 3), 120, np.uint8)
    boxes, scores, points = predict(net, frame, max_size=None)
    assert boxes.shape[1:] == (4,) and points.shape == (len(boxes), 5, 2) and len(boxes) == len(scores) > 0
    assert (scores > 0.99).all()
    anchors = priors(64, 96).numpy()  # zero regressions: each box is an anchor, its five points the centre
    assert len(anchors) == sum(-(-64 // s) * -(-96 // s) * 2 for s in (8, 16, 32))
    corners = np.concatenate([anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2], 1).astype(np.int64)
    assert all((corners == b).all(axis=1).any() for b in boxes)
    np.testing.assert_allclose(points, np.repeat((boxes[:, None, :2] + boxes[:, None, 2:]) / 2, 5, 1), atol=1)
    # the package's resize: longer side to max_size (64 x 96 -> 128 x 192), centred zero padding to a
    # 192 x 192 square (32 rows above), boxes unpadded and scaled back by 96 / 192
    big, _, _ = predict(net, frame, max_size=192)
    anchors = priors(192, 192).numpy()
    padded = np.concatenate([anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2], 1).astype(np.int64)
    expected = ((padded - [0, 32, 0, 32]) * 0.5).astype(np.int64)
    assert len(big) and all((expected == b).all(axis=1).any() for b in big)


def test_retinaface_box_is_the_one_overlapping_the_landmarks():
    from dfrobust.media.detect import match_box

    lm_box = np.array([100, 100, 200, 220])
    boxes = np.array([[90, 70, 210, 230], [300, 50, 500, 260], [105, 95, 195, 215]], np.float32)
    # of the two largest (the second face and the first), the one overlapping the landmarks
    np.testing.assert_array_equal(match_box(boxes, lm_box), boxes[0])
    assert match_box(boxes[1:2], lm_box) is None


def test_the_face_stage_stores_dlib_and_retinaface_boxes_from_one_decode(retina_weights, face_video, monkeypatch, tmp_path):
    from dfrobust.media import ffmpeg
    from dfrobust.media.store import FaceShard, write_shard
    from dfrobust.stages import faces as stage

    decodes = []
    real_iter = ffmpeg.iter_frames
    monkeypatch.setattr(stage.ffmpeg, "iter_frames", lambda *a, **k: decodes.append(a[0]) or real_iter(*a, **k))
    cfg = dict(detector="dlib_hog", upsample=0, detect_max_side=640, track=True, track_face_px=120, fallback_upsample=1,
               crop_scale=1.4, crop_size=64, frames={"test": 3}, min_faces=1, threads=1, shard_size=4,
               retinaface={"weights": str(retina_weights / "retinaface_resnet50_2020-07-20.pth"), "max_size": 320,
                           "window": 2.0, "score_threshold": 0.7, "nms_threshold": 0.4, "device": "cpu"})
    videos = [dict(video_id="original/000", manipulation="original", label=0, path=str(face_video))]
    records, rows = stage.extract_shard(videos, "test", cfg, ffmpeg.find_ffmpeg(), progress=False)
    assert decodes == [str(face_video)] and rows[0]["status"] == "ok"
    write_shard(tmp_path / "shard_000.npz", records, rows, {"split": "test"})
    rec = FaceShard(tmp_path / "shard_000.npz").read("original/000")
    assert np.isfinite(rec.retina_boxes).all() and rec.retina_boxes.shape == (3, 4)
    for box, retina, cbox in zip(rec.boxes, rec.retina_boxes, rec.crop_boxes):
        union = union_box(box, retina)  # the stored crop is 1.4x the union of both boxes (as the frame allows)
        np.testing.assert_array_equal(cbox, square_crop_box(union, 1.4, 320, 240))
    with pytest.raises(InputError, match="faces.crop_scale / faces.crop_size are not set"):
        stage.extract_shard(videos, "test", {**cfg, "crop_scale": None}, ffmpeg.find_ffmpeg(), progress=False)


# -- checkpoint rule, backbone ----------------------------------------------------------------------------------
def test_latest_of_top5_follows_sbis_checkpoint_rule():
    aucs = [0.5, 0.6, 0.7, 0.8, 0.9, 0.55, 0.95, 0.85, 0.4, 0.62]
    entered = [e + 1 for e in range(len(aucs)) if selects("latest_of_top5", aucs[: e + 1], -np.inf)]
    # the first five; then 0.55 >= 0.5, 0.95, 0.85 >= 0.6 enter; 0.4 and 0.62 (< 0.7) do not
    assert entered == [1, 2, 3, 4, 5, 6, 7, 8]
    best, kept = -np.inf, []
    for e in range(len(aucs)):
        if selects("best_val_auc", aucs[: e + 1], best):
            best, kept = aucs[e], kept + [e + 1]
    assert kept == [1, 2, 3, 4, 5, 7]
    assert selects("latest_of_top5", [0.9] * 6, -np.inf)  # ties enter, as their >=


def test_sbi_defaults_are_the_authors_advprop_b4_on_0_1_pixels(tmp_path):
    det = build_detector("sbi", {"pretrained": False})
    cfg = det.cfg
    assert cfg["backbone"] == "tf_efficientnet_b4.ap_in1k" and cfg["input_size"] == 380
    assert cfg["selection"] == "latest_of_top5" and cfg["forehead"] == 0.75 and cfg["hull"] == "landmarks"
    assert cfg["crop"] == {"box": "retinaface", "scale": 1.25, "shape": "box", "jitter": [1.1, 1.4]}
    x = torch.randint(0, 256, (1, 3, 380, 380), dtype=torch.uint8)
    torch.testing.assert_close(det.preprocess(x), x.float() / 255)
    weights = tmp_path / "advprop_b4.pth"
    torch.save(det.net.state_dict(), weights)
    loaded = build_detector("sbi", {"pretrained": str(weights)})
    assert "loaded" in loaded.weights_report and torch.equal(loaded.net.conv_stem.weight, det.net.conv_stem.weight)
