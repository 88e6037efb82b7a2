"""Blurring adversarial training and its variants (Wang, Guo & Zuo, TIP 2022):
the pixel-wise blur, the flow warp, each adversary's step, the generators,
RAdam and the step schedule, resuming, and the traditional baselines."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch.nn import functional as F
from torchvision.transforms.functional import gaussian_blur

from conftest import REPO, train_killed_and_resumed
from dfrobust.core.errors import InputError
from dfrobust.detectors import build_detector, resolve_config
from dfrobust.detectors.augment import Augmenter
from dfrobust.detectors.tensors import to_tensor
from dfrobust.training.blur import gaussian_weights, offsets, pixel_blur
from dfrobust.training.flow import flow_smoothness, warp
from dfrobust.training.generator import BlurGenerator
from dfrobust.training.logbook import read_log
from dfrobust.training.optim import build_optimizer, build_scheduler
from dfrobust.training.procedures import PROCEDURES, build_procedure
from dfrobust.training.procedures.adversarial import attacking, detector_loss
from synthetic import synthetic_videos, write_synthetic_shards

torch.set_num_threads(2)

VARIANTS = ["grad_aat", "grad_sat", "grad_bat", "gen_bat", "two_gen_bat", "combined_at"]
SMALL_GENERATOR = {"generator_width": 8, "generator_blocks": 1}


def small(name: str, **settings) -> dict:
    """A procedure block with a small generator (tests)."""
    extra = SMALL_GENERATOR if name in ("gen_bat", "two_gen_bat", "combined_at") else {}
    return {"name": name, **extra, **settings}


def faces16() -> tuple[torch.Tensor, torch.Tensor]:
    """16 synthetic faces at 32 px (8 real, 8 fake): uint8 NCHW and labels."""
    records = synthetic_videos(4, 1, frames=2, size=32, seed=0)
    crops = np.concatenate([r.crops for r in records])
    labels = np.concatenate([[r.label] * r.n_faces for r in records])
    return to_tensor(crops), torch.as_tensor(labels, dtype=torch.int64)


def xception(**cfg):
    return build_detector("xception", resolve_config("xception", {"pretrained": False, "input_size": 32, **cfg}))


@pytest.fixture(scope="module")
def trained_xception():
    """Xception at 32 px after a few plain steps, so that its eval-mode loss is not flat (a fresh network outputs ~0)."""
    torch.manual_seed(0)
    det = xception().train()
    images, labels = faces16()
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    plain = build_procedure(None, det)
    for i in range(6):
        plain.step(opt, images, labels, f"warm-up {i}")
    # batch-norm statistics of these faces (six steps leave the running ones near their start, where
    # the eval-mode output can be flat enough that no adversary moves the loss)
    bn = [m for m in det.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bn:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    with torch.no_grad():
        det(det.preprocess(images))
    for m in bn:
        m.momentum = 0.1
    return det.eval(), images.float(), labels


# -- the pixel-wise blur ------------------------------------------------------------------------


def unfold_blur(images, inv_sigma, k):
    """Reference: Eq. 5 with unfold (every neighbourhood copied), weights of Eq. 4 computed directly."""
    r = k // 2
    b, c, h, w = images.shape
    patches = F.unfold(F.pad(images, (r,) * 4, mode="reflect"), k).view(b, c, k * k, h, w)
    d2 = torch.tensor([dy * dy + dx * dx for dy, dx in offsets(k)], dtype=images.dtype).view(1, 1, -1, 1, 1)
    sigma = 1.0 / inv_sigma.unsqueeze(2)
    kernel = torch.exp(-d2 / (2 * sigma ** 2)) / (2 * np.pi * sigma ** 2)
    return (patches * kernel).sum(2) / kernel.sum(2)


def test_blur_with_sigma_towards_zero_returns_the_input():
    x = torch.rand(2, 3, 12, 12) * 255
    for inv_sigma in (1e2, 1e4, 1e8):
        out = pixel_blur(x, torch.full((2, 1, 12, 12), inv_sigma), 9)
        assert torch.allclose(out, x, atol=1e-4, rtol=0), inv_sigma
    assert not torch.allclose(pixel_blur(x, torch.full((2, 1, 12, 12), 1.0), 9), x, atol=1.0)


@pytest.mark.parametrize("sigma, k", [(0.5, 9), (1.0, 9), (2.0, 9), (1.5, 5)])
def test_constant_sigma_is_the_standard_gaussian_blur(sigma, k):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 24, 20) * 255
    out = pixel_blur(x, torch.full((2, 1, 24, 20), 1.0 / sigma), k)
    r = k // 2
    inner = (..., slice(r, -r), slice(r, -r))
    ref_tv = gaussian_blur(x, [k, k], [sigma, sigma])
    assert (out - ref_tv)[inner].abs().max() < 1e-3
    img = x[0].permute(1, 2, 0).numpy()
    ref_cv = torch.from_numpy(cv2.GaussianBlur(img, (k, k), sigma, sigmaY=sigma)).permute(2, 0, 1)
    assert (out[0] - ref_cv)[inner].abs().max() < 1e-3
    # both libraries pad by reflection, as the blur does, so the borders agree too
    assert (out - ref_tv).abs().max() < 1e-3


def test_zero_inverse_sigma_is_the_box_filter():
    x = torch.rand(1, 3, 10, 10) * 255
    out = pixel_blur(x, torch.zeros(1, 1, 10, 10), 3)
    box = F.avg_pool2d(F.pad(x, (1,) * 4, mode="reflect"), 3, stride=1)
    assert torch.allclose(out, box, atol=1e-3)


@pytest.mark.parametrize("channels", [1, 3])
def test_blur_matches_the_unfold_formula_for_any_sigma_map(channels):
    torch.manual_seed(1)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64) * 255
    inv_sigma = torch.rand(2, channels, 16, 16, dtype=torch.float64) * 2 + 0.2
    assert torch.allclose(pixel_blur(x, inv_sigma, 7), unfold_blur(x, inv_sigma, 7), atol=1e-9)
    assert torch.allclose(gaussian_weights(inv_sigma, 7).sum(1), torch.ones(1, dtype=torch.float64))


@pytest.mark.parametrize("channels", [1, 3])
def test_blur_gradients_match_finite_differences(channels):
    torch.manual_seed(2)
    x = torch.rand(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    inv_sigma = (torch.rand(2, channels, 7, 6, dtype=torch.float64) + 0.3).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, s: pixel_blur(a, s, 5), (x, inv_sigma))
    # and one directional derivative in sigma by hand, central differences
    direction = torch.randn_like(inv_sigma)
    (grad,) = torch.autograd.grad(pixel_blur(x, inv_sigma, 5).square().sum(), inv_sigma)
    h = 1e-6
    f = lambda s: pixel_blur(x, s, 5).square().sum().item()  # noqa: E731
    numeric = (f(inv_sigma + h * direction) - f(inv_sigma - h * direction)) / (2 * h)
    assert numeric == pytest.approx(float((grad * direction).sum()), rel=1e-5)


def test_blur_rejects_maps_that_do_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        pixel_blur(torch.zeros(1, 3, 8, 8), torch.ones(1, 2, 8, 8), 3)
    with pytest.raises(ValueError, match="odd"):
        pixel_blur(torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 8, 8), 4)


# -- the flow warp --------------------------------------------------------------------------------


def test_warp_by_zero_is_identity_and_by_a_pixel_is_a_shift():
    x = torch.rand(1, 3, 9, 11) * 255
    assert torch.allclose(warp(x, torch.zeros(1, 2, 9, 11)), x, atol=1e-3)
    flow = torch.zeros(1, 2, 9, 11)
    flow[:, 0] = 1.0  # sample one pixel to the right
    assert torch.allclose(warp(x, flow)[..., :-1], x[..., 1:], atol=1e-3)
    flow = torch.zeros(1, 2, 9, 11)
    flow[:, 1] = -0.5  # half a pixel up: the mean of two rows
    assert torch.allclose(warp(x, flow)[..., 1:, :], (x[..., 1:, :] + x[..., :-1, :]) / 2, atol=1e-3)


def test_flow_smoothness_is_zero_for_a_constant_flow_and_grows_with_roughness():
    flat = torch.full((2, 2, 8, 8), 0.7)
    assert flow_smoothness(flat).max() < 1e-3
    rough = flat + 0.1 * torch.randn(2, 2, 8, 8)
    rougher = flat + 0.5 * torch.randn(2, 2, 8, 8)
    assert (flow_smoothness(rough) > 0.05).all() and (flow_smoothness(rougher) > flow_smoothness(rough)).all()


# -- one adversarial step -------------------------------------------------------------------------


def test_one_grad_aat_step_increases_the_loss(trained_xception):
    det, x, y = trained_xception
    proc = build_procedure({"name": "grad_aat"}, det)
    with attacking(det):
        clean = detector_loss(det, x, y, "test").item()
        adv = proc.adversarial(x, y, "test")
        assert (adv - x).abs().max() <= 0.5 + 1e-4 and adv.min() >= 0 and adv.max() <= 255
        assert detector_loss(det, adv, y, "test").item() > clean
    assert not det.training


def test_one_grad_bat_step_increases_the_loss(trained_xception):
    det, x, y = trained_xception
    proc = build_procedure({"name": "grad_bat"}, det)
    with attacking(det):
        start = detector_loss(det, pixel_blur(x, torch.ones(16, 1, 32, 32), 9), y, "test").item()
        adv = proc.adversarial(x, y, "test")
        assert detector_loss(det, adv, y, "test").item() > start
        # blurring only: every pixel is a convex combination of its neighbourhood
        assert adv.min() >= x.min() - 1e-3 and adv.max() <= x.max() + 1e-3


def test_one_grad_sat_step_increases_the_loss(trained_xception):
    det, x, y = trained_xception
    proc = build_procedure({"name": "grad_sat"}, det)
    with attacking(det):
        torch.manual_seed(5)
        adv = proc.adversarial(x, y, "test")
        torch.manual_seed(5)
        start = warp(x, (torch.rand(16, 2, 32, 32) * 2 - 1) * 0.5)  # the same random start
        assert detector_loss(det, adv, y, "test").item() > detector_loss(det, start, y, "test").item()
        assert detector_loss(det, adv, y, "test").item() > detector_loss(det, x, y, "test").item()


@pytest.mark.parametrize("name", ["gen_bat", "two_gen_bat"])
def test_a_generator_step_increases_the_loss(trained_xception, name):
    det, x, y = trained_xception
    # Adam's first step moves each generator weight by lr along its gradient's sign: at 1e-4 the step
    # stays where the first-order gain (lr x the gradient's L1 norm) decides, so the loss must rise
    proc = build_procedure(small(name, generator_optimizer={"name": "adam", "lr": 1e-4}), det)

    def blurred_loss():
        with torch.no_grad():
            out = torch.empty_like(x)
            for gen_name, label in proc.roles.items():
                idx = slice(None) if label is None else y == label
                out[idx] = pixel_blur(x[idx], proc.generators[gen_name](x[idx]), 9)
            return detector_loss(det, out, y, "test").item()

    det.zero_grad(set_to_none=True)
    with attacking(det):
        before = blurred_loss()
        before_state = {k: v.clone() for k, v in det.state_dict().items()}
        proc.adversarial(x, y, "test")
        assert blurred_loss() > before
    # the generator step leaves the detector alone
    assert all(torch.equal(before_state[k], v) for k, v in det.state_dict().items())
    assert all(p.grad is None for p in det.parameters())


def test_generators_bound_sigma():
    gen = BlurGenerator(width=8, blocks=1, sigma_max=2.0)
    inv_sigma = gen(torch.rand(3, 3, 30, 30) * 255)
    assert inv_sigma.shape == (3, 1, 30, 30) and (inv_sigma >= 0.5).all()
    assert gen(torch.rand(1, 3, 299, 299) * 255).shape == (1, 1, 299, 299)  # Xception's odd size


def test_two_gen_bat_blurs_each_class_with_its_own_generator(trained_xception):
    det, x, y = trained_xception
    proc = build_procedure(small("two_gen_bat"), det)
    with torch.no_grad():
        for p in proc.generators["generator_real"].parameters():
            p.zero_()  # raw output 0 everywhere: 1/sigma = 0.5 + log 2 for every real face
    fixed = pixel_blur(x, torch.full((16, 1, 32, 32), 0.5 + np.log(2)), 9)
    proc.cfg = {**proc.cfg, "generator_optimizer": {**proc.cfg["generator_optimizer"], "lr": 1e-12}}
    for opt in proc.optimizers.values():
        for g in opt.param_groups:
            g["lr"] = 1e-12
    with attacking(det):
        adv = proc.adversarial(x, y, "test")
    real = y == 0
    assert torch.allclose(adv[real], fixed[real], atol=1e-3)
    assert not torch.allclose(adv[~real], fixed[~real], atol=1e-1)


# -- training -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANTS)
def test_each_variant_overfits_16_faces(name):
    """A small timm network (xception's settings, timm's test_resnet backbone) learns 16 faces under each adversary.
    Judged with batch statistics, as trained: a few dozen steps do not settle batch norm's running averages."""
    torch.manual_seed(0)
    det = xception(backbone="test_resnet", drop_rate=0.0).train()
    images, labels = faces16()
    proc = build_procedure(small(name), det)
    opt = build_optimizer(det.trainable_parameters(), {"name": "adam", "lr": 3e-3, "betas": [0.9, 0.999],
                                                       "weight_decay": 0.0})
    losses = [proc.step(opt, images, labels, f"step {i}") for i in range(20)]
    assert det.training
    with torch.no_grad():
        out = det(det.preprocess(images))
    assert ((det.proba(out) > 0.5).long() == labels).all(), name
    assert det.loss(out, labels).item() < 0.1 and losses[-1] < 0.1 < 0.5 < losses[0], (name, losses[0], losses[-1])


def test_adversarial_weight_scales_the_adversarial_term(trained_xception):
    det, x, y = trained_xception
    proc = build_procedure({"name": "grad_aat", "adv_weight": 3.0}, det)
    with attacking(det):
        adv = proc.adversarial(x, y, "test")
        inputs = det.preprocess(torch.cat([x, adv]))
        clean, attacked = detector_loss(det, x, y, "t"), detector_loss(det, adv, y, "t")
        assert proc.joint_loss(inputs, y, "t").item() == pytest.approx(((clean + 3 * attacked) / 4).item(), rel=1e-5)
        equal = build_procedure({"name": "grad_aat"}, det)
        together = det.loss(det(inputs), torch.cat([y, y]))  # the authors' mean over the concatenated batch
        assert equal.joint_loss(inputs, y, "t").item() == pytest.approx(together.item(), rel=1e-5)


@pytest.mark.parametrize("name", ["two_gen_bat", "grad_sat"])
def test_resume_restores_the_generators(tmp_path, name):
    """A killed two_gen_bat run resumes detector, generators and their optimisers to the same weights
    (grad_sat: its random flows continue from the checkpointed random state)."""
    root = tmp_path / "faces"
    shards = (write_synthetic_shards(root / "train", synthetic_videos(3, 1, frames=3, size=32, seed=0), per_shard=4),
              write_synthetic_shards(root / "val", synthetic_videos(2, 1, frames=2, size=32, seed=1), split="val"))
    cfg = {"backbone": "test_resnet", "pretrained": False, "input_size": 32, "epochs": 2, "batch_size": 6,
           "frames_per_video": 3, "val_frames_per_video": 2, "drop_rate": 0.0,
           "optimizer": {"name": "radam", "lr": 5e-4, "weight_decay": 5e-4},
           "lr_schedule": {"name": "step", "step_epochs": 1, "gamma": 0.1}}
    straight, resumed, summary, messages = train_killed_and_resumed("xception", cfg, shards, tmp_path, kill_after=1,
                                                                    procedure=small(name))
    assert summary["resumed_after"] == [1] and any("resuming" in m for m in messages)

    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [r["train_loss"] for r in read_log(straight / "log.csv")] == [r["train_loss"] for r in read_log(resumed / "log.csv")]
    assert [r["lr"] for r in read_log(straight / "log.csv")] == pytest.approx([5e-4, 5e-5])
    if name == "two_gen_bat":
        gens_a, gens_b = a["procedure"]["generators"], b["procedure"]["generators"]
        assert set(gens_a) == {"generator_real", "generator_fake"}
        for gen in gens_a:
            assert all(torch.equal(gens_a[gen][k], gens_b[gen][k]) for k in gens_a[gen]), gen
            opt_a, opt_b = a["procedure"]["optimizers"][gen], b["procedure"]["optimizers"][gen]
            assert opt_a["param_groups"][0]["lr"] == pytest.approx(2e-4)  # 2e-3 following the detector's x0.1
            for i, st in opt_a["state"].items():
                assert torch.equal(st["exp_avg"], opt_b["state"][i]["exp_avg"])
        # the saved model is the detector alone
        weights = torch.load(straight / "weights.pt", weights_only=True)["state_dict"]
        assert not any("generator" in k for k in weights)


def test_procedure_state_round_trips():
    det = xception(backbone="test_resnet")
    first = build_procedure(small("combined_at"), det)
    second = build_procedure(small("combined_at"), det)
    images, labels = faces16()
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    first.step(opt, images[:6], labels[:6], "t")
    second.load_state_dict(first.state_dict())
    for name in first.generators:
        sa, sb = first.generators[name].state_dict(), second.generators[name].state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert first.optimizers[name].state_dict()["state"].keys() == second.optimizers[name].state_dict()["state"].keys()


def test_procedure_settings_are_validated():
    for name in VARIANTS:
        assert PROCEDURES.resolve(name, {})["adv_weight"] == 1.0
    assert PROCEDURES.resolve("two_gen_bat", {})["generator_optimizer"] == {
        "name": "radam", "lr": 2e-3, "betas": [0.9, 0.999], "weight_decay": 5e-4}
    with pytest.raises(InputError, match="procedures.grad_bat.kernel_size"):
        PROCEDURES.resolve("grad_bat", {"kernel_size": 4})
    with pytest.raises(InputError, match="procedures.gen_bat.generator_optimizer.lrr"):
        PROCEDURES.resolve("gen_bat", {"generator_optimizer": {"lrr": 1}})
    with pytest.raises(InputError, match="procedures.grad_aat.epsilon"):
        PROCEDURES.resolve("grad_aat", {"epsilon": -1})


# -- RAdam and the step schedule ------------------------------------------------------------------


def test_radam_decays_weights_directly_and_steps_like_sgd_at_first():
    w = torch.nn.Parameter(torch.tensor([2.0, -1.0]))
    opt = build_optimizer([w], {"name": "radam", "lr": 0.1, "betas": [0.9, 0.999], "weight_decay": 0.5})
    w.grad = torch.tensor([0.0, 3.0])
    opt.step()
    # decoupled decay: w (1 - lr wd); the first RAdam steps (variance not yet tractable) are lr x the bias-corrected momentum
    assert w.detach().tolist() == pytest.approx([2.0 * 0.95, -1.0 * 0.95 - 0.1 * 3.0])


def test_step_schedule_divides_by_ten_every_ten_epochs():
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"name": "radam", "lr": 5e-4, "betas": [0.9, 0.999],
                                                                 "weight_decay": 5e-4})
    sched = build_scheduler(opt, {"name": "step", "step_epochs": 10, "gamma": 0.1}, 30)
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([5e-4] * 10 + [5e-5] * 10 + [5e-6] * 10)


def test_detectors_accept_the_step_schedule():
    cfg = resolve_config("xception", {"lr_schedule": {"name": "step", "step_epochs": 5, "gamma": 0.5},
                                      "optimizer": {"name": "radam"}})
    assert cfg["lr_schedule"] == {"name": "step", "decay_start": 0.75, "step_epochs": 5, "gamma": 0.5}


# -- the traditional baselines (the paper's Tables IV and V) -----------------------------------------

# the rows of tests/zoo/bat.yaml (the configs the workflow trains) are what is tested
BASELINES = {row["name"]: row["settings"]["augment"]
             for row in yaml.safe_load((REPO / "tests" / "zoo" / "bat.yaml").read_text())["models"] if "name" in row}
NOISE, BLUR, JPEG = BASELINES["xception_noise"], BASELINES["xception_blur"], BASELINES["xception_jpeg"]


def test_combined_baseline_is_the_three_in_order():
    assert BASELINES["xception_noise_blur_jpeg"] == NOISE + BLUR + JPEG


def _face() -> np.ndarray:
    return synthetic_videos(1, 0, frames=1, size=64, seed=3)[0].crops[0]


def _always(spec):
    return [{**entry, "p": 1.0} for entry in spec]


def _sharpness(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F).var())


def test_noise_baseline_adds_zero_mean_noise_of_the_chosen_strength():
    face = _face()
    stds = []
    for seed in range(20):
        diff = Augmenter(_always(NOISE))(face, seed).astype(np.float64) - face
        inner = diff[np.logical_and(face > 20, face < 235)]  # away from clipping
        assert abs(inner.mean()) < 1.0
        stds.append(inner.std())
    assert 0.0125 * 255 * 0.8 < min(stds) and max(stds) < 0.0277 * 255 * 1.2


def test_blur_baseline_blurs_as_opencv_with_a_sigma_in_range():
    face = _face()
    for seed in range(10):
        out = Augmenter(_always(BLUR))(face, seed)
        assert _sharpness(out) < 0.8 * _sharpness(face)
        errors = [np.abs(cv2.GaussianBlur(face, (9, 9), s).astype(int) - out).max() for s in np.linspace(0.5, 2.0, 61)]
        assert min(errors) <= 1


def test_jpeg_baseline_is_a_jpeg_round_trip_in_the_quality_range():
    face = _face()
    for seed in range(10):
        out = Augmenter(_always(JPEG))(face, seed)
        assert not np.array_equal(out, face)
        # albumentations hands the RGB array to OpenCV's encoder as it is (OpenCV reads it as BGR), as 1.1 did
        # for the authors: the round trip is OpenCV's at one quality of the range
        matches = [q for q in range(60, 101)
                   if np.array_equal(cv2.imdecode(cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, q])[1],
                                                  cv2.IMREAD_UNCHANGED), out)]
        assert matches, seed


def test_baselines_apply_to_about_half_of_the_faces_and_combine():
    face = _face()
    for spec in (NOISE, BLUR, JPEG):
        changed = sum(not np.array_equal(Augmenter(spec)(face, seed), face) for seed in range(200))
        assert 70 < changed < 130, spec[0]["name"]
    untouched = sum(np.array_equal(Augmenter(BASELINES["xception_noise_blur_jpeg"])(face, seed), face) for seed in range(200))
    assert 10 < untouched < 45  # 1/8 of the faces get none of the three


@pytest.mark.parametrize("name", VARIANTS)
def test_each_variant_steps_under_bf16_autocast(name):
    """`compute: {precision: bf16, channels_last: true}`: the adversaries (the blur's own backward
    included) run inside the training step's autocast; weights and generators stay float32."""
    torch.manual_seed(0)
    det = xception(backbone="test_resnet", drop_rate=0.0).train().set_compute({"precision": "bf16", "channels_last": True})
    images, labels = faces16()
    proc = build_procedure(small(name), det)
    opt = build_optimizer(det.trainable_parameters(), {"name": "adam", "lr": 3e-3, "betas": [0.9, 0.999], "weight_decay": 0.0})
    with det.autocast():
        losses = [proc.step(opt, images, labels, f"step {i}") for i in range(3)]
    assert np.isfinite(losses).all(), losses
    generators = [p for g in getattr(proc, "generators", {}).values() for p in g.parameters()]
    assert all(p.dtype == torch.float32 for p in [*det.parameters(), *generators])
