"""Blurring adversarial training and its variants (Wang, Guo & Zuo, TIP 2022):
the pixel-wise blur, the flow warp, each adversary's step (Grad-BAT's Eq. 6,
Grad-SAT's flow against Xiao et al.'s sum, Combined AT's composition), the
generators, the loss of Eq. 7, RAdam and the step schedule, resuming, and the
traditional baselines as config/protocols/bat.yaml declares them."""

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
from dfrobust.training.blur import gaussian_weights, inverse_sigma, offsets, pixel_blur
from dfrobust.training.flow import flow_smoothness, warp
from dfrobust.training.generator import BlurGenerator
from dfrobust.training.logbook import read_log
from dfrobust.training.optim import build_optimizer, build_scheduler
from dfrobust.training.procedures import PROCEDURES, build_procedure
from dfrobust.training.procedures.adversarial import attacking, detector_loss, fgsm
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


def test_any_real_sigma_is_a_valid_kernel():
    """The kernel depends on sigma^2: a negative sigma (an unsigned step may cross 0) is the blur of
    |sigma|, sigma = 0 the identity, a huge sigma the box filter; no bound is needed."""
    torch.manual_seed(3)
    x = torch.rand(2, 3, 12, 12) * 255
    sigma = torch.rand(2, 1, 12, 12) * 3
    assert torch.equal(pixel_blur(x, inverse_sigma(-sigma), 5), pixel_blur(x, inverse_sigma(sigma), 5))
    assert torch.equal(pixel_blur(x, inverse_sigma(torch.zeros(2, 1, 12, 12)), 5), x)
    box = F.avg_pool2d(F.pad(x, (2,) * 4, mode="reflect"), 5, stride=1)
    assert torch.allclose(pixel_blur(x, inverse_sigma(torch.full((2, 1, 12, 12), 1e4)), 5), box, atol=1e-3)
    # the optional bound clamps |sigma|
    assert torch.equal(inverse_sigma(torch.tensor([-3.0, 0.5, 4.0]), sigma_max=2.0), torch.tensor([0.5, 2.0, 0.5]))


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


def xiao_flow_loss(flow: torch.Tensor) -> list[float]:
    """Xiao et al. (ICLR 2018) Eq. 4 by hand, per image: the sum over all pixels p and every neighbour q
    of p in the image (4-neighbourhood) of sqrt(|du(p) - du(q)|^2 + |dv(p) - dv(q)|^2)."""
    out = []
    for f in flow.tolist():
        u, v = f
        h, w = len(u), len(u[0])
        total = 0.0
        for i in range(h):
            for j in range(w):
                for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
                    if 0 <= a < h and 0 <= b < w:
                        total += ((u[i][j] - u[a][b]) ** 2 + (v[i][j] - v[a][b]) ** 2) ** 0.5
        out.append(total)
    return out


def test_flow_smoothness_is_xiaos_sum_over_pixels():
    torch.manual_seed(4)
    flow = torch.randn(3, 2, 5, 7, dtype=torch.float64)
    assert flow_smoothness(flow, eps=0.0).tolist() == pytest.approx(xiao_flow_loss(flow), rel=1e-12)
    # a sum, not a mean: twice the image, about twice the penalty (the weight 0.05 is Xiao et al.'s for the sum)
    tiled = flow.repeat(1, 1, 2, 1)
    assert (flow_smoothness(tiled, eps=0.0) / flow_smoothness(flow, eps=0.0)).min() > 1.9


def test_flow_smoothness_is_zero_for_a_constant_flow_and_grows_with_roughness():
    flat = torch.full((2, 2, 8, 8), 0.7)
    assert flow_smoothness(flat, eps=0.0).max() == 0
    assert flow_smoothness(flat).max() < 2 * 2 * 8 * 7 * 1e-4 + 1e-6  # sqrt(eps) per neighbour pair, twice
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


def reference_blur(images: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    """Eq. 4-5 with sigma itself (not 1/sigma), unfold and the normalised kernel written out: the test's own blur."""
    r = k // 2
    b, c, h, w = images.shape
    patches = F.unfold(F.pad(images, (r,) * 4, mode="reflect"), k).view(b, c, k * k, h, w)
    d2 = torch.tensor([dy * dy + dx * dx for dy, dx in offsets(k)], dtype=images.dtype).view(1, 1, -1, 1, 1)
    kernel = torch.exp(-d2 / (2 * sigma.unsqueeze(2) ** 2))
    return (patches * kernel).sum(2) / kernel.sum(2)


def test_grad_bat_step_is_eq6_unsigned(trained_xception):
    """sigma_adv = sigma + eps grad_sigma L (Eq. 6: FGSM without the sign), sigma the constant map 1,
    L each face's own cross-entropy on its blurred copy: computed here without the module."""
    det, x, y = trained_xception
    proc = build_procedure({"name": "grad_bat", "epsilon": 4.5}, det)
    with attacking(det):
        sigma = torch.ones(16, 1, 32, 32, requires_grad=True)
        logits = det(det.preprocess(reference_blur(x, sigma, 9)))
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), sigma)
        step = 4.5 * grad
        got = proc.sigma_map(x, y, "test")
        scale = float(step.abs().max())
        assert scale > 1e-3  # the gradient is not flat
        # float32 through two blur implementations: the step agrees to 1e-3 of its largest entry
        assert float((got - 1.0 - step).abs().max()) < 1e-3 * scale
        # per face: another batch around a face leaves its step alone
        alone = proc.sigma_map(x[:3], y[:3], "test")
        assert float((alone - got[:3]).abs().max()) < 1e-3 * scale
        # the adversarial faces are the blur with that map
        assert torch.allclose(proc.adversarial(x, y, "test"), reference_blur(x, got, 9), atol=1e-2)


def test_grad_bat_sigma_is_a_per_pixel_continuum(trained_xception):
    """Not a signed step: the sigmas are not a handful of values (a signed +-0.5 step on 1/sigma from 1
    gave only 2/3, 1 or 2), and they scale with epsilon."""
    det, x, y = trained_xception
    with attacking(det):
        small = build_procedure({"name": "grad_bat", "epsilon": 1.0}, det).sigma_map(x, y, "test")
        large = build_procedure({"name": "grad_bat", "epsilon": 3.0}, det).sigma_map(x, y, "test")
    assert small.unique().numel() > 1000
    assert not torch.isin(small, torch.tensor([2 / 3, 1.0, 2.0])).all()
    assert torch.allclose(large - 1.0, 3.0 * (small - 1.0), rtol=1e-3, atol=1e-6)


def test_one_grad_bat_step_increases_the_loss(trained_xception):
    det, x, y = trained_xception
    proc = build_procedure({"name": "grad_bat"}, det)
    with attacking(det):
        start = detector_loss(det, pixel_blur(x, torch.ones(16, 1, 32, 32), 9), y, "test").item()
        adv = proc.adversarial(x, y, "test")
        assert detector_loss(det, adv, y, "test").item() > start
        # blurring only: every pixel is a convex combination of its neighbourhood
        assert adv.min() >= x.min() - 1e-3 and adv.max() <= x.max() + 1e-3


def test_grad_sat_flow_is_one_signed_step_on_xiaos_objective_within_the_bound(trained_xception):
    """flow = clip(start + eps sign(grad_f sum_i [CE_i - 0.05 L_flow,i]), -eps, eps), L_flow Xiao et al.'s
    sum (written here with explicit neighbour differences), from the same random start."""
    det, x, y = trained_xception
    proc = build_procedure({"name": "grad_sat"}, det)
    eps, tau = 0.5, 0.05
    with attacking(det):
        torch.manual_seed(5)
        got = proc.flow(x, y, "test")
        torch.manual_seed(5)
        start = (torch.rand(16, 2, 32, 32) * 2 - 1) * eps
        flow = start.clone().requires_grad_(True)
        du_right = flow[:, :, :, 1:] - flow[:, :, :, :-1]
        du_down = flow[:, :, 1:, :] - flow[:, :, :-1, :]
        # each adjacent pair appears twice in the sum over p and q in N(p)
        smooth = 2 * ((du_right.square().sum(1) + 1e-8).sqrt().sum() + (du_down.square().sum(1) + 1e-8).sqrt().sum())
        ce = F.cross_entropy(det(det.preprocess(warp(x, flow))), y, reduction="sum")
        (grad,) = torch.autograd.grad(ce - tau * smooth, flow)
    expected = (start + eps * grad.sign()).clamp(-eps, eps)
    assert got.abs().max() <= eps
    assert (got == expected).float().mean() > 0.999  # a sign may flip where the gradient is ~0


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


def test_generators_leave_sigma_unbounded_unless_asked():
    torch.manual_seed(0)
    faces = torch.rand(3, 3, 30, 30) * 255
    free = BlurGenerator(width=8, blocks=1)
    inv_sigma = free(faces)
    assert inv_sigma.shape == (3, 1, 30, 30) and (inv_sigma < 0).any() and (inv_sigma.abs() < 0.5).any()
    assert free(torch.rand(1, 3, 299, 299) * 255).shape == (1, 1, 299, 299)  # Xception's odd size
    bounded = BlurGenerator(width=8, blocks=1, sigma_max=2.0)
    bounded.load_state_dict(free.state_dict())
    assert torch.equal(bounded(faces), inv_sigma.abs().clamp(min=0.5))


def test_two_gen_bat_blurs_each_class_with_its_own_generator(trained_xception):
    det, x, y = trained_xception
    proc = build_procedure(small("two_gen_bat"), det)
    with torch.no_grad():
        for p in proc.generators["generator_real"].parameters():
            p.zero_()  # output 0 everywhere: 1/sigma = 0, the 9 x 9 box filter, for every real face
    fixed = pixel_blur(x, torch.zeros(16, 1, 32, 32), 9)
    proc.cfg = {**proc.cfg, "generator_optimizer": {**proc.cfg["generator_optimizer"], "lr": 1e-12}}
    for opt in proc.optimizers.values():
        for g in opt.param_groups:
            g["lr"] = 1e-12
    with attacking(det):
        adv = proc.adversarial(x, y, "test")
    real = y == 0
    assert torch.allclose(adv[real], fixed[real], atol=1e-3)
    assert not torch.allclose(adv[~real], fixed[~real], atol=1e-1)


def test_combined_at_is_fgsm_on_the_two_generators_blurred_faces(trained_xception):
    """Combined AT: each class blurred by its generator (its forward before the update), then one FGSM
    step on the blurred faces: blur first, additive second."""
    det, x, y = trained_xception
    torch.manual_seed(6)
    proc = build_procedure(small("combined_at", generator_steps=1), det)
    for opt in proc.optimizers.values():
        for g in opt.param_groups:
            g["lr"] = 0.0
    blurred = torch.empty_like(x)
    with attacking(det):
        for name, label in (("generator_real", 0), ("generator_fake", 1)):
            gen = proc.generators[name].train()
            with torch.no_grad():
                blurred[y == label] = pixel_blur(x[y == label], gen(x[y == label]), 9)
        adv = proc.adversarial(x, y, "test")
        expected = fgsm(det, blurred, y, 0.5, "test")
        other_order = pixel_blur(fgsm(det, x, y, 0.5, "test"), torch.zeros(16, 1, 32, 32), 9)
    assert torch.allclose(adv, expected, atol=1e-3)
    assert (adv - blurred).abs().max() <= 0.5 + 1e-4 and not torch.allclose(adv, blurred, atol=0.1)
    assert not torch.allclose(adv, other_order, atol=0.1)


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


def test_loss_is_eq7s_sum_and_lambda_weights_the_adversarial_term(trained_xception):
    """Eq. 7: L(x) + L(G(x)), a sum (lambda = 1); Eq. 3's lambda weights the adversarial term."""
    det, x, y = trained_xception
    with attacking(det):
        proc = build_procedure({"name": "grad_aat"}, det)
        adv = proc.adversarial(x, y, "test")
        inputs = det.preprocess(torch.cat([x, adv]))
        clean, attacked = detector_loss(det, x, y, "t"), detector_loss(det, adv, y, "t")
        assert proc.joint_loss(inputs, y, "t").item() == pytest.approx((clean + attacked).item(), rel=1e-5)
        weighted = build_procedure({"name": "grad_aat", "adv_weight": 3.0}, det)
        assert weighted.joint_loss(inputs, y, "t").item() == pytest.approx((clean + 3 * attacked).item(), rel=1e-5)
        # twice the authors' mean over the concatenated batch
        together = det.loss(det(inputs), torch.cat([y, y]))
        assert proc.joint_loss(inputs, y, "t").item() == pytest.approx(2 * together.item(), rel=1e-5)


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
    # no sigma bound unless asked (the paper's); the authors' README trains generators 3 steps per detector step
    assert PROCEDURES.resolve("grad_bat", {})["sigma_max"] is None
    assert PROCEDURES.resolve("two_gen_bat", {})["sigma_max"] is None
    assert PROCEDURES.resolve("two_gen_bat", {})["generator_steps"] == 3
    assert PROCEDURES.resolve("two_gen_bat", {"sigma_max": 1.0})["sigma_max"] == 1.0
    with pytest.raises(InputError, match="procedures.two_gen_bat.sigma_max"):
        PROCEDURES.resolve("two_gen_bat", {"sigma_max": 0})


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

# the augment lists config/protocols/bat.yaml trains Table IV's rows with (not a test-only copy)
PROTOCOL = yaml.safe_load((REPO / "config" / "protocols" / "bat.yaml").read_text())
BASELINES = {row["name"]: row["settings"]["augment"] for row in PROTOCOL["tables"]["bat_table4_augmentation"]["rows"]
             if "augment" in row.get("settings", {})}
NOISE, BLUR, JPEG = (BASELINES[f"efficientnet_b4_bat_{kind}"] for kind in ("noise", "blur", "jpeg"))


def test_baselines_are_the_papers():
    """Sec. IV (data augmentation): Gaussian noise with p 0.5, mean 0 and a variance uniform in [0, 30];
    Gaussian blur with a 9 x 9 kernel and a variance uniform in [0, 30]; JPEG of quality 60-100 on every image."""
    assert NOISE == [{"name": "GaussNoiseVariance", "var_range": [0, 30], "mean": 0, "p": 0.5}]
    assert BLUR == [{"name": "GaussianBlurVariance", "kernel_size": 9, "var_range": [0, 30], "p": 0.5}]
    assert JPEG == [{"name": "ImageCompression", "quality_range": [60, 100], "p": 1.0}]
    # every table's baseline rows (Xception's and the other qualities' too) use the same lists
    checked = 0
    for table in PROTOCOL["tables"].values():
        for row in table["rows"]:
            for kind, spec in (("noise", NOISE), ("blur", BLUR), ("jpeg", JPEG)):
                if "name" in row and row["name"].endswith(f"_bat_{kind}"):
                    assert row["settings"]["augment"] == spec, row["name"]
                    checked += 1
    assert checked == 3 * (1 + 3) * 2  # Tables IV, V (3 qualities), X, XI: noise, blur, JPEG each


def _face() -> np.ndarray:
    return synthetic_videos(1, 0, frames=1, size=64, seed=3)[0].crops[0]


def _always(spec):
    return [{**entry, "p": 1.0} for entry in spec]


def _sharpness(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F).var())


def test_noise_baseline_has_mean_0_and_a_variance_uniform_in_0_30():
    face = np.full((96, 96, 3), 128, np.uint8)  # mid-grey: no clipping
    variances = []
    for seed in range(300):
        diff = Augmenter(_always(NOISE))(face, seed).astype(np.float64) - face
        assert abs(diff.mean()) < 0.5
        variances.append(diff.var())
    variances = np.array(variances)
    # rounding to integers adds 1/12; the sample variance of 27,648 values is within a few percent
    assert variances.min() < 1.5 and 28 < variances.max() < 31.5
    assert np.mean(variances) == pytest.approx(15 + 1 / 12, abs=1.0)
    # uniform: each third of [0, 30] holds about a third of the draws
    thirds = np.histogram(variances - 1 / 12, bins=[-1, 10, 20, 32])[0]
    assert (thirds > 70).all(), thirds


def test_blur_baseline_is_a_9x9_gaussian_with_a_variance_uniform_in_0_30():
    face = _face()
    grid = np.linspace(0.05, 30, 600)
    found = []
    for seed in range(60):
        out = Augmenter(_always(BLUR))(face, seed)
        errors = [np.abs(cv2.GaussianBlur(face, (9, 9), v ** 0.5).astype(int) - out).max() for v in grid]
        assert min(errors) == 0 or np.array_equal(out, face), seed
        found.append(grid[int(np.argmin(errors))])
    found = np.array(found)
    assert found.min() < 5 and found.max() > 25 and 10 < found.mean() < 20


def test_jpeg_baseline_is_a_jpeg_round_trip_in_the_quality_range_on_every_face():
    face = _face()
    for seed in range(30):
        out = Augmenter(JPEG)(face, seed)  # as configured: p 1
        # albumentations hands the RGB array to OpenCV's encoder as it is (OpenCV reads it as BGR), as 1.1 did
        # for the authors: the round trip is OpenCV's at one quality of the range
        matches = [q for q in range(60, 101)
                   if np.array_equal(cv2.imdecode(cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, q])[1],
                                                  cv2.IMREAD_UNCHANGED), out)]
        assert matches, seed


def test_noise_and_blur_baselines_apply_to_about_half_of_the_faces():
    face = _face()
    for spec in (NOISE, BLUR):
        changed = sum(not np.array_equal(Augmenter(spec)(face, seed), face) for seed in range(200))
        assert 70 < changed < 130, spec[0]["name"]
    assert all(_sharpness(Augmenter(_always(BLUR))(face, seed)) <= _sharpness(face) for seed in range(20))


def test_baseline_transforms_reject_bad_arguments():
    with pytest.raises(InputError, match=r"augment.0.*var_range"):
        Augmenter([{"name": "GaussNoiseVariance", "var_range": [30, 0]}])
    with pytest.raises(InputError, match=r"augment.0.*kernel_size"):
        Augmenter([{"name": "GaussianBlurVariance", "kernel_size": 4}])
    with pytest.raises(InputError, match=r"augment.0.*var_rang"):
        Augmenter([{"name": "GaussNoiseVariance", "var_rang": [0, 30]}])


@pytest.mark.parametrize("method", ["ffd", "multi_attention"])
def test_table6_detectors_train_under_two_gen_bat(method):
    """Table VI's detectors (tuple outputs: FFD's logits and map, multi-attention's logits, features and
    centres) split into clean and blurred halves and take Two-Gen-BAT steps."""
    torch.manual_seed(0)
    det = build_detector(method, resolve_config(method, {"pretrained": False, "input_size": 64})).train()
    proc = build_procedure(small("two_gen_bat", generator_steps=1), det)
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    before = {k: v.clone() for k, v in det.state_dict().items()}
    images, labels = (torch.rand(4, 3, 64, 64) * 255).to(torch.uint8), torch.tensor([0, 1, 0, 1])
    assert np.isfinite(proc.step(opt, images, labels, "step 0"))
    assert any(not torch.equal(before[k], v) for k, v in det.state_dict().items())


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
