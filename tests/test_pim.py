"""Gradient regularisation (PIM, DualFlat) and the paper's plain baselines:
the injection's math (Eq. 6-7, the statistics' gradient against an independent
computation, and the finite-difference identity of Eq. 11), the step's limits
(r -> 0, r = 0, alpha = 0, DualFlat as SAM), the step over SAM (its base
optimiser, never SAM's closure), PIMs absent from inference and from the saved
model, resume, the paper's constants, and each model fitting 16 faces."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from dfrobust.config import validate_config
from dfrobust.core.errors import InputError
from dfrobust.detectors import build_detector, detector_class, resize_crops
from dfrobust.detectors.augment import Augmenter
from dfrobust.detectors.base import Detector
from dfrobust.detectors.tensors import to_tensor
from dfrobust.plan import build_plan
from dfrobust.training import SAM
from dfrobust.training.optim import build_optimizer
from dfrobust.training.procedures import PROCEDURES, build_procedure
from dfrobust.training.procedures.base import Plain
from dfrobust.training.procedures.pim import PerturbationInjection, default_sites, inject
from synthetic import synthetic_videos, write_synthetic_shards

from conftest import REPO, operations_of, train_killed_and_resumed
from test_datasets import make_celebdf, make_dfd, make_dfdc, make_dfdc_preview
from test_wilddeepfake import make_wilddeepfake

TINY = {"input_size": 32, "pretrained": False}


class TinyNet(Detector):
    """Two convolutions, the second one a PIM site ("net.block"), optional batch norm and dropout."""

    def __init__(self, bn: bool = False, dropout: float = 0.0):
        super().__init__({"input_size": 8, "mean": [0.5] * 3, "std": [0.25] * 3, "optimizer": {"name": "sgd"}})
        layers = [("stem", nn.Conv2d(3, 4, 3, padding=1)), ("act", nn.Tanh()), ("block", nn.Conv2d(4, 5, 3, padding=1))]
        layers += [("bn", nn.BatchNorm2d(5))] if bn else []
        layers += [("act2", nn.Tanh()), ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()),
                   ("drop", nn.Dropout(dropout)), ("fc", nn.Linear(5, 2))]
        self.net = nn.Sequential(OrderedDict(layers))

    def forward(self, x):
        return self.net(x)

    def loss(self, output, labels):
        return nn.functional.cross_entropy(output, labels)

    def proba(self, output):
        return output.softmax(1)[:, 1]


def tiny(seed: int = 0, **kwargs) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(**kwargs)


def batch(seed: int = 1, n: int = 8, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8), torch.arange(n) % 2


def procedure(name: str, det, **settings):
    return build_procedure({"name": name, "layers": ["net.block"], **settings}, det)


def grads(det) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in det.parameters()]


def state(det) -> dict:
    return {k: v.detach().clone() for k, v in det.state_dict().items()}


# -- the injection (Eq. 6-7) and the identity of Eq. 11 ---------------------------------------------
def test_injection_moves_the_statistics_and_is_exactly_f_at_zero():
    f = torch.randn(4, 3, 5, 6) * 3 + 1
    zero = torch.zeros(1, 3, 1, 1)
    assert torch.equal(inject(f, zero, zero), f)
    d_mu, d_sigma = torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1), torch.tensor([0.2, 0.5, -0.3]).view(1, 3, 1, 1)
    out = inject(f, d_mu, d_sigma)
    mu, sigma = f.mean((2, 3), keepdim=True), (f.var((2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt()
    torch.testing.assert_close(out.mean((2, 3), keepdim=True), mu + d_mu)  # per instance and channel
    torch.testing.assert_close(out.std((2, 3), keepdim=True, unbiased=False), (sigma + d_sigma) * (sigma**2 - 1e-5).sqrt() / sigma)
    torch.testing.assert_close((out - mu - d_mu) / (sigma + d_sigma), (f - mu) / sigma)  # same normalised pattern


def test_finite_difference_of_the_perturbed_loss_is_the_statistics_gradient_norm():
    """Eq. 11: (L(f') - L(f)) / r = ||grad_(mu, sigma) L|| to first order, in float64 at r = 1e-3."""
    det = tiny().double()
    x, y = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.arange(6) % 2
    pims = PerturbationInjection(det, ["net.stem", "net.block"])
    with pims.probe() as probed:
        clean = det.loss(det(x), y)
        clean.backward()
    assert [tuple(d.shape) for pair in probed for d in pair] == [(1, 4, 1, 1)] * 2 + [(1, 5, 1, 1)] * 2  # per channel
    r = 1e-3
    deltas, norm = pims.ascent(probed, r)
    assert torch.linalg.vector_norm(torch.cat([d.flatten() for pair in deltas for d in pair])) == pytest.approx(r)
    with torch.no_grad(), pims.inject(deltas):
        perturbed = det.loss(det(x), y)
    assert float(norm) > 1e-3
    assert abs(float((perturbed - clean.detach()) / r - norm)) < 0.05 * float(norm)
    with torch.no_grad():  # the hooks are gone
        assert torch.equal(det.loss(det(x), y), clean.detach())


def test_statistics_gradient_and_delta_match_an_independent_computation():
    """Delta (Algorithm 1 step 5) against the loss's gradient with respect to the site's channel mean and std,
    computed here without the PIM hooks (and checked by central differences): the network is cut at the site,
    its output rebuilt as s (f - mu) / sigma + m with m = mu, s = sigma as leaves. The PIM's Delta is one value
    per channel shared by the batch, so its gradient is the sum over the batch of d L / d(m, s)."""
    det = tiny().double()
    net = det.net
    x, y = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.arange(6) % 2

    with torch.no_grad():
        f = net.block(net.act(net.stem(x)))
        mu = f.mean(dim=(2, 3), keepdim=True)
        sigma = (f.var(dim=(2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt()

    def loss_of(m: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        rebuilt = s * (f - mu) / sigma + m
        return nn.functional.cross_entropy(net.fc(net.flat(net.pool(net.act2(rebuilt)))), y)

    m, s = mu.clone().requires_grad_(), sigma.clone().requires_grad_()
    loss_of(m, s).backward()
    g_mu, g_sigma = m.grad.sum(0, keepdim=True), s.grad.sum(0, keepdim=True)  # (1, C, 1, 1)
    eps = 1e-6
    for c in range(f.shape[1]):  # the reference itself, by central differences on the shared Delta
        e = torch.zeros_like(mu[:1])
        e[0, c] = eps
        with torch.no_grad():
            assert float((loss_of(mu + e, sigma) - loss_of(mu - e, sigma)) / (2 * eps)) == pytest.approx(float(g_mu[0, c]), rel=1e-6, abs=1e-10)
            assert float((loss_of(mu, sigma + e) - loss_of(mu, sigma - e)) / (2 * eps)) == pytest.approx(float(g_sigma[0, c]), rel=1e-6, abs=1e-10)

    pims = PerturbationInjection(det, ["net.block"])
    with pims.probe() as probed:
        det.loss(det(x), y).backward()
    torch.testing.assert_close(probed[0][0].grad, g_mu)
    torch.testing.assert_close(probed[0][1].grad, g_sigma)
    r = 0.1
    (d_mu, d_sigma), = pims.ascent(probed, r)[0]
    norm = torch.sqrt((g_mu**2).sum() + (g_sigma**2).sum())
    torch.testing.assert_close(d_mu, r * g_mu / norm)
    torch.testing.assert_close(d_sigma, r * g_sigma / norm)
    # the perturbed pass sees the site's statistics moved by exactly Delta (Eq. 7)
    seen = {}
    handle = net.act2.register_forward_pre_hook(lambda mod, inputs: seen.update(f=inputs[0]))  # returns None
    with torch.no_grad(), pims.inject([(d_mu, d_sigma)]):
        perturbed = det.loss(det(x), y)
    handle.remove()
    torch.testing.assert_close(seen["f"].mean(dim=(2, 3), keepdim=True), mu + d_mu)
    with torch.no_grad():
        torch.testing.assert_close(loss_of(mu + d_mu, sigma + d_sigma), perturbed)


# -- the step --------------------------------------------------------------------------------
def test_r_to_zero_gives_the_plain_gradient_step():
    images, labels = batch()
    plain, pim = tiny(), tiny()
    Plain({}, plain).step(torch.optim.SGD(plain.parameters(), lr=0.5), images, labels, "step 1")
    steps = procedure("pim", pim, r=1e-7, alpha=1.0)
    steps.step(torch.optim.SGD(pim.parameters(), lr=0.5), images, labels, "step 1")
    for a, b in zip(plain.parameters(), pim.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # a real step moves elsewhere
    far = tiny()
    procedure("pim", far, r=1.0).step(torch.optim.SGD(far.parameters(), lr=0.5), images, labels, "step 1")
    assert max(float((a - b).detach().abs().max()) for a, b in zip(plain.parameters(), far.parameters())) > 1e-4


def test_alpha_zero_is_plain_training_step_for_step():
    """Batch norm and dropout included: the passes replay the clean pass's random draws and
    leave the running statistics as the clean pass set them."""
    plain, pim = tiny(bn=True, dropout=0.5), tiny(bn=True, dropout=0.5)
    opt_plain = torch.optim.Adam(plain.parameters(), lr=1e-2)
    opt_pim = torch.optim.Adam(pim.parameters(), lr=1e-2)
    steps = procedure("pim", pim, alpha=0.0, r=0.5)
    plain.train(), pim.train()
    for i in range(4):
        images, labels = batch(seed=i)
        torch.manual_seed(100 + i)
        a = Plain({}, plain).step(opt_plain, images, labels, f"step {i}")
        torch.manual_seed(100 + i)
        b = steps.step(opt_pim, images, labels, f"step {i}")
        assert a == b
        sa, sb = state(plain), state(pim)
        assert all(torch.equal(sa[k], sb[k]) for k in sa), i


def test_r_zero_is_plain_training_step_for_step():
    """Table VI's r = 0 row: Delta = 0 exactly, so the perturbed pass repeats the clean one (same dropout draws,
    batch norm restored) and the step is plain training's, bit for bit (why the protocol reuses the plain row)."""
    plain, pim = tiny(bn=True, dropout=0.5), tiny(bn=True, dropout=0.5)
    opt_plain = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    opt_pim = torch.optim.SGD(pim.parameters(), lr=0.1, momentum=0.9)
    steps = procedure("pim", pim, alpha=1.0, r=0.0)
    plain.train(), pim.train()
    for i in range(3):
        images, labels = batch(seed=i)
        torch.manual_seed(200 + i)
        a = Plain({}, plain).step(opt_plain, images, labels, f"step {i}")
        torch.manual_seed(200 + i)
        b = steps.step(opt_pim, images, labels, f"step {i}")
        assert a == b
        sa, sb = state(plain), state(pim)
        assert all(torch.equal(sa[k], sb[k]) for k in sa), i


def test_update_is_the_weighted_sum_of_clean_and_perturbed_gradients():
    alpha, r = 0.3, 0.2
    det = tiny(bn=True, dropout=0.5).train()
    images, labels = batch()
    x = det.preprocess(images)
    pims = PerturbationInjection(det, ["net.block"])
    torch.manual_seed(5)
    with pims.probe() as probed:
        det.loss(det(x), labels).backward()
    g1 = grads(det)
    running = state(det)
    deltas, _ = pims.ascent(probed, r)
    det.zero_grad()
    torch.manual_seed(5)  # the same dropout draws
    with pims.inject(deltas):
        det.loss(det(x), labels).backward()
    g2 = grads(det)
    assert not torch.equal(g1[0], g2[0])

    fresh = tiny(bn=True, dropout=0.5).train()
    steps = procedure("pim", fresh, alpha=alpha, r=r)
    torch.manual_seed(5)
    fresh.zero_grad()
    steps.gradient(x, labels, list(fresh.parameters()), "step 1")
    for got, a, b in zip(grads(fresh), g1, g2):
        torch.testing.assert_close(got, (1 - alpha) * a + alpha * b)
    after = state(fresh)
    assert all(torch.equal(after[k], running[k]) for k in after)  # running statistics of the clean pass


def test_dualflat_with_only_the_weight_term_is_one_sam_step():
    """alpha = 0, beta = 1: (θ + r' g/|g|)'s gradient applied at θ by the base optimiser, i.e. SAM with rho = r'."""
    images, labels = batch()
    sam_det, dual_det = tiny(), tiny()
    sam = SAM(sam_det.parameters(), torch.optim.SGD, rho=0.05, lr=0.5, momentum=0.9)
    sgd = torch.optim.SGD(dual_det.parameters(), lr=0.5, momentum=0.9)
    steps = procedure("dualflat", dual_det, alpha=0.0, beta=1.0, r_prime=0.05)
    for i in range(3):
        images, labels = batch(seed=i)
        assert Plain({}, sam_det).step(sam, images, labels, "s") == pytest.approx(steps.step(sgd, images, labels, "s"), rel=1e-6)
        for a, b in zip(sam_det.parameters(), dual_det.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    moved = tiny()
    assert not torch.allclose(next(moved.parameters()), next(dual_det.parameters()))


def test_dualflat_update_weights_the_three_gradients():
    alpha, beta, r, r_prime = 0.3, 0.4, 0.2, 0.1
    det = tiny()
    images, labels = batch()
    x = det.preprocess(images)
    pims = PerturbationInjection(det, ["net.block"])
    with pims.probe() as probed:
        det.loss(det(x), labels).backward()
    g1 = grads(det)
    deltas, _ = pims.ascent(probed, r)
    det.zero_grad()
    with pims.inject(deltas):
        det.loss(det(x), labels).backward()
    g2 = grads(det)
    norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in g1]))
    with torch.no_grad():
        for p, g in zip(det.parameters(), g1):
            p.add_(g * r_prime / norm)
    det.zero_grad()
    det.loss(det(x), labels).backward()
    g3 = grads(det)

    fresh = tiny()
    fresh.zero_grad()
    procedure("dualflat", fresh, alpha=alpha, beta=beta, r=r, r_prime=r_prime).gradient(x, labels, list(fresh.parameters()), "s")
    for got, a, b, c in zip(grads(fresh), g1, g2, g3):
        torch.testing.assert_close(got, (1 - alpha - beta) * a + alpha * b + beta * c)
    for p, q in zip(fresh.parameters(), tiny().parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)  # weights back at θ


def _counting(det) -> dict:
    calls = {"forward": 0}
    det.register_forward_pre_hook(lambda *_: calls.__setitem__("forward", calls["forward"] + 1))
    return calls


@pytest.mark.parametrize("name, settings, passes", [
    ("pim", {}, 2),                                     # Table V's SBI+PIM as PIM
    ("dualflat", {"alpha": 1.0, "beta": 0.0}, 2),       # ... as DualFlat 1:0 (the paper's "Ours" on SBI data)
    ("dualflat", {"alpha": 0.5, "beta": 0.5}, 3),       # a Table IX row with the weight term
])
def test_over_a_real_sam_the_step_is_the_procedures_with_sams_base(name, settings, passes):
    """Over SAM (rho 0.05 > 0, SBI's) PIM and DualFlat take their own step with SAM's base SGD: the same
    update as over plain SGD, with their own passes (2, or 3 with beta), never SAM's closure (which would
    take 4 or 6 and step along SAM's perturbed gradient). SBI+PIM wrapping SAM fails here."""
    a, b = tiny(), tiny()
    calls_a, calls_b = _counting(a), _counting(b)
    sgd = torch.optim.SGD(a.parameters(), lr=0.5, momentum=0.9)
    sam = SAM(b.parameters(), torch.optim.SGD, rho=0.05, lr=0.5, momentum=0.9)
    steps_a, steps_b = procedure(name, a, **settings), procedure(name, b, **settings)
    for i in range(3):
        images, labels = batch(seed=i)
        assert steps_a.step(sgd, images, labels, "s") == steps_b.step(sam, images, labels, "s")
    assert calls_a["forward"] == calls_b["forward"] == 3 * passes
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert not any("e_w" in state for state in sam.state.values())  # SAM's own ascent never ran
    # and a plain SAM step (SBI*) from the same start does move elsewhere
    c = tiny()
    Plain({}, c).step(SAM(c.parameters(), torch.optim.SGD, rho=0.05, lr=0.5, momentum=0.9), *batch(seed=0), "s")
    d = tiny()
    procedure(name, d, **settings).step(torch.optim.SGD(d.parameters(), lr=0.5, momentum=0.9), *batch(seed=0), "s")
    assert not all(torch.allclose(p, q) for p, q in zip(c.parameters(), d.parameters()))


def test_dualflat_accepts_sbi_and_says_sams_rho_is_unused(capsys):
    """Table IX trains DualFlat on SBI's data: the sbi detector (SAM over SGD by default) is accepted, and the
    train log says its step is DualFlat's with SAM's base optimiser."""
    det = build_detector("sbi", {**TINY, "backbone": "efficientnet_b0"})
    steps = build_procedure({"name": "dualflat"}, det)
    assert (steps.alpha, steps.beta) == (1.0, 0.0)
    assert "applied by SAM's base optimiser (sgd); SAM's rho (0.05) is not used" in capsys.readouterr().out


def test_bad_settings_are_one_line_errors():
    det = tiny()
    with pytest.raises(InputError, match="procedures.pim.layers'.*net.nowhere|has no attribute"):
        procedure("pim", det, layers=["net.nowhere"])
    with pytest.raises(InputError, match="alpha \\+ beta = 1.5 > 1"):
        procedure("dualflat", det, alpha=0.7, beta=0.8)
    with pytest.raises(InputError, match="no default PIM places for a Sequential network"):
        build_procedure({"name": "pim"}, det)
    with pytest.raises(InputError, match="procedures.pim.r"):
        PROCEDURES.resolve("pim", {"r": -1})
    det.spare = nn.Conv2d(5, 5, 1)  # a module forward never calls
    steps = build_procedure({"name": "pim", "layers": ["net.block", "spare"]}, det)
    with pytest.raises(InputError, match="PIM after spare: the module is not on the forward path"):
        steps.step(torch.optim.SGD(det.parameters(), lr=0.1), *batch(), "s")


# -- where the PIMs sit, and that they never reach inference -------------------------------------
@pytest.mark.parametrize("name, settings, sites", [
    ("convnext_base", {}, ["net.stages.0.blocks.0", "net.stages.0.blocks.1", "net.stages.0.blocks.2"]),
    ("resnet50", {}, ["net.layer1.0", "net.layer1.1", "net.layer1.2"]),
    ("efficientnet_b4", {}, ["net.blocks.1.0", "net.blocks.1.1", "net.blocks.1.2", "net.blocks.1.3"]),
    ("xception", {}, ["net.block1"]),
    ("sbi", {"backbone": "convnext_base", "input_size": 224}, ["net.stages.0.blocks.0", "net.stages.0.blocks.1",
                                                               "net.stages.0.blocks.2"]),
])
def test_pims_sit_after_the_first_stage(name, settings, sites):
    det = build_detector(name, {**TINY, **settings})
    assert default_sites(det, "layers") == sites
    channels = {"convnext_base": 128, "sbi": 128, "resnet50": 256, "efficientnet_b4": 32, "xception": 128}[name]
    assert all(det.get_submodule(s).__class__ is det.get_submodule(sites[0]).__class__ for s in sites)
    x = torch.zeros(1, 3, det.input_size, det.input_size)
    pims = PerturbationInjection(det, sites)
    with torch.no_grad(), pims.probe() as probed:
        det.eval()(x)
    assert all(pair[0].shape == (1, channels, 1, 1) for pair in probed)


def test_pims_are_identity_in_eval_and_absent_from_the_model():
    det = build_detector("convnext_base", {**TINY, "backbone": "convnext_atto"})
    keys = set(det.state_dict())
    x = det.preprocess(to_tensor(np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)))
    steps = build_procedure({"name": "pim"}, det)
    det.eval()
    with torch.no_grad():
        plain = det(x)
        with steps.pims.probe():
            assert torch.equal(det(x), plain)
    det.train()
    steps.step(torch.optim.SGD(det.parameters(), lr=0.1), to_tensor(np.zeros((4, 32, 32, 3), np.uint8)),
               torch.tensor([0, 1, 0, 1]), "s")
    assert set(det.state_dict()) == keys
    assert not any(m._forward_hooks for m in det.modules())


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    return (write_synthetic_shards(root / "train", synthetic_videos(4, 2, frames=4, size=48, seed=0), per_shard=5),
            write_synthetic_shards(root / "val", synthetic_videos(2, 2, frames=4, size=48, seed=1), split="val"))


@pytest.mark.parametrize("pim", [{"name": "pim", "r": 0.1}, {"name": "dualflat", "r": 0.1, "alpha": 0.5, "beta": 0.3}])
def test_training_resumes_to_the_same_weights_and_exports_the_plain_backbone(shards, tmp_path, pim):
    import timm

    cfg = {**TINY, "backbone": "convnext_atto", "epochs": 2, "batch_size": 8, "frames_per_video": 2,
           "val_frames_per_video": 1, "drop_path_rate": 0.1, "optimizer": {"lr": 1e-3}}
    straight, resumed, summary, _ = train_killed_and_resumed("convnext_base", cfg, shards, tmp_path, kill_after=1,
                                                             procedure=pim)
    assert summary["resumed_after"] == [1]
    assert summary["procedure"] == PROCEDURES.resolve(pim["name"], {k: v for k, v in pim.items() if k != "name"}) | {"name": pim["name"]}
    a = torch.load(straight / "weights.pt", weights_only=True)
    b = torch.load(resumed / "weights.pt", weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])

    # the exported weights are a plain timm convnext's, and score the same
    net = timm.create_model("convnext_atto", pretrained=False, num_classes=2)
    net.load_state_dict({k.removeprefix("net."): v for k, v in a["state_dict"].items()}, strict=True)
    from dfrobust.detectors import load_trained

    det = load_trained(straight)
    x = det.preprocess(to_tensor(np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)))
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), det(x), rtol=0, atol=0)


# -- the paper's baselines -----------------------------------------------------------------------------
def test_baselines_have_the_papers_constants():
    """Guan et al. (TIFS 2024) as issue 25 gives them: input 380 (EfficientNet-B4) and 224 (ConvNeXt-base,
    ResNet-50), ImageNet initialisation (Sec. V-A); SGD (Algorithm 1, step 9; lr 1e-3, momentum 0.9 and the
    linear decay are SBI's code's, the paper being silent); 100 epochs, 8 frames per training video, batch 64
    (Sec. V-A); no augmentation (Sec. V-A-3). PIM r = 0.1, alpha = 1 (Sec. IV / Algorithm 1); DualFlat
    r' = 0.05 (Eq. 14) and the paper's best alpha:beta = 1:0 (Tables VIII-IX), not 0.5:0.5 (one of their rows)."""
    for name, backbone, size in [("efficientnet_b4", "efficientnet_b4", 380), ("convnext_base", "convnext_base", 224),
                                 ("resnet50", "resnet50", 224)]:
        d = detector_class(name).defaults
        assert (d["backbone"], d["input_size"], d["pretrained"]) == (backbone, size, True)
        assert (d["epochs"], d["batch_size"], d["frames_per_video"]) == (100, 64, 8)
        assert d["optimizer"]["name"] == "sgd" and d["augment"] == []
        assert (d["optimizer"]["lr"], d["optimizer"]["momentum"], d["optimizer"]["weight_decay"]) == (1.0e-3, 0.9, 0.0)
        assert d["lr_schedule"] == {"name": "linear_decay", "decay_start": 0.75}
    config = validate_config({})
    assert config["procedures"]["pim"] == {"r": 0.1, "alpha": 1.0, "layers": []}
    assert config["procedures"]["dualflat"] == {"r": 0.1, "alpha": 1.0, "beta": 0.0, "r_prime": 0.05, "layers": []}


def test_adam_stays_a_setting():
    """The baselines' earlier optimiser (Adam 1e-4, constant lr) is one row setting away."""
    det = build_detector("convnext_base", {**TINY, "backbone": "convnext_atto", "optimizer": {"name": "adam", "lr": 1.0e-4},
                                           "lr_schedule": {"name": "constant"}})
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 1.0e-4
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)


def test_protocol_configs_validate_and_the_paper_augmentation_builds(tmp_path):
    """The tiny fragment (tests/zoo) and the paper's tables (config/protocols/gradreg.yaml) are valid
    model rows; the best model (SBI data + ConvNeXt-base + PIM, i.e. DualFlat 1:0) is one of them."""
    counts = lambda kind, cfg: {"train": 40, "val": 20, "test": 30}  # noqa: E731
    for fragment in (REPO / "tests" / "zoo" / "pim.yaml", REPO / "config" / "protocols" / "gradreg.yaml"):
        config = yaml.safe_load(fragment.read_text())
        for block in config.get("datasets", {}).values():  # the overlay's other datasets: fixture trees
            block["root"] = str(DATASET_TREES[block["kind"]](tmp_path / block["kind"]))
        config = validate_config(config)
        plan = build_plan(config, operations_of(config["operations"]), counts)
        assert any(m.procedure_cfg()["name"] == "pim" for m in plan.models.values())
    best = plan.models["sbi_convnext+pim/raw"]
    assert best.method == "sbi" and best.detector_cfg(config["detectors"])["backbone"] == "convnext_base"
    augmented = [m for m in plan.models.values() if _thaw(m).get("augment")]
    assert augmented
    spec = _thaw(augmented[0])["augment"]
    assert [t["name"] for t in spec] == ["HorizontalFlip", "RGBShift", "HueSaturationValue", "RandomBrightnessContrast",
                                         "ImageCompression", "GaussNoise"]
    face = synthetic_videos(1, 0, frames=1, size=64, seed=0)[0].crops[0]
    outputs = {Augmenter(spec)(face, seed).tobytes() for seed in range(4)}
    assert len(outputs) == 4


DATASET_TREES = {"celebdf": make_celebdf, "dfd": make_dfd, "dfdc": make_dfdc, "dfdc_preview": make_dfdc_preview,
                 "wilddeepfake": make_wilddeepfake}


def _thaw(model) -> dict:
    from dfrobust.plan import _thaw as thaw

    return thaw(model.settings) or {}


# -- each model fits 16 faces -------------------------------------------------------------------
@pytest.fixture(scope="module")
def faces():
    records = synthetic_videos(2, 1, frames=4, size=48, seed=0)
    crops = np.concatenate([r.crops for r in records])
    return to_tensor(resize_crops(crops, 32)), torch.as_tensor(np.concatenate([[r.label] * r.n_faces for r in records]))


@pytest.mark.parametrize("name, procedure_name, lr, steps", [
    # from scratch at 32 px; ConvNeXt-base (88 M parameters) needs the most steps, with PIM its two passes each
    ("efficientnet_b4", "plain", 1e-4, 12), ("resnet50", "plain", 1e-3, 12), ("convnext_base", "pim", 3e-4, 20),
])
def test_model_fits_sixteen_faces(name, procedure_name, lr, steps, faces):
    x, y = faces
    torch.manual_seed(0)
    # Adam (a setting): this checks that the network and its loss learn, not the paper's optimiser
    det = build_detector(name, {**TINY, "optimizer": {"name": "adam", "lr": lr}}).train()
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    step = build_procedure({"name": procedure_name}, det)
    losses = [step.step(opt, x, y, f"step {i}") for i in range(steps)]
    assert np.mean(losses[-2:]) < 0.5 * losses[0], losses
    with torch.no_grad():
        p = det.predict_proba(det.preprocess(x))
    assert p[y == 1].min() > p[y == 0].max(), p


@pytest.mark.parametrize("procedure_name", ["pim", "dualflat"])
def test_pim_steps_under_bf16_autocast(procedure_name, faces):
    """`compute: {precision: bf16}`: PIM's statistics and its extra passes run inside the step's autocast."""
    x, y = faces
    torch.manual_seed(0)
    det = build_detector("resnet50", {**TINY, "backbone": "test_resnet"}).train()
    det.set_compute({"precision": "bf16", "channels_last": True})
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    step = build_procedure({"name": procedure_name}, det)
    with det.autocast():
        losses = [step.step(opt, x, y, f"step {i}") for i in range(3)]
    assert np.isfinite(losses).all() and all(p.dtype == torch.float32 for p in det.parameters()), losses


def test_test_time_shift_scales_each_sites_statistics_by_exactly_its_factors():
    """Guan et al., Tables II-III: the shallow features' channel mean x1.2 and variance x0.65 at the PIM sites."""
    from dfrobust.training.procedures.pim import shift_statistics, shifted_statistics

    f = torch.randn(3, 5, 7, 7) * 2 + torch.arange(5.0).view(1, 5, 1, 1)
    g = shift_statistics(f, 1.2, 0.65)
    torch.testing.assert_close(g.mean(dim=(2, 3)), 1.2 * f.mean(dim=(2, 3)))
    torch.testing.assert_close(g.var(dim=(2, 3)), 0.65 * f.var(dim=(2, 3)))
    det = build_detector("resnet50", {"pretrained": False, "input_size": 32}).eval()
    x = det.preprocess(to_tensor(np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)))
    seen = {}
    site = det.get_submodule("net.layer1.0")
    # hooks that return None (a forward hook's return value would replace the module's output)
    handle = site.register_forward_hook(lambda m, i, o: seen.update(out=o.detach()))
    with torch.no_grad():
        plain = det(x)
        handle.remove()
        handle = det.get_submodule("net.layer1.1").register_forward_pre_hook(lambda m, i: seen.update(into=i[0].detach()))
        with shifted_statistics(det, {"mean": 1.2, "variance": 0.65, "sites": None}, "operations.perturb"):
            shifted = det(x)
        handle.remove()
    # what the next block reads is the first block's output, shifted (the sites: every block of layer1)
    torch.testing.assert_close(seen["into"], shift_statistics(seen["out"], 1.2, 0.65))
    assert not torch.allclose(plain, shifted)
    with torch.no_grad():
        torch.testing.assert_close(det(x), plain)  # the hooks are gone after the block
