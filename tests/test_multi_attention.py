"""Multi-attentional deepfake detection (Zhao et al., CVPR 2021): bilinear attention pooling,
the regional independence loss and its centres, attention-guided augmentation, and training
(overfit, resume, every procedure)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dfrobust.detectors import build_detector, detector_class, resize_crops
from dfrobust.detectors.multi_attention import AGDA, RegionalIndependenceLoss, bilinear_attention_pooling
from dfrobust.detectors.tensors import to_tensor
from dfrobust.training import train_step
from dfrobust.training.optim import build_optimizer
from dfrobust.training.procedures import build_procedure
from dfrobust.training.procedures.adversarial import _halves
from dfrobust.training.procedures.pim import default_sites
from synthetic import synthetic_videos, write_synthetic_shards

from conftest import train_killed_and_resumed

torch.set_num_threads(2)
# B0 instead of B4 where the test is not about the backbone, only to save time: same stages, same code
SMALL = {"input_size": 32, "pretrained": False, "backbone": "tf_efficientnet_b0"}
AGDA_CFG = {"mode": "soft", "resize_factor": 0.3, "kernel_size": 11, "sigma": 7.0, "noise": 0.0, "threshold": None}


@pytest.fixture(scope="module")
def faces():
    records = synthetic_videos(2, 1, frames=4, size=48, seed=0)
    crops = np.concatenate([r.crops for r in records])
    labels = np.concatenate([[r.label] * r.n_faces for r in records])
    return to_tensor(resize_crops(crops, 32)), torch.as_tensor(labels, dtype=torch.int64)


# -- registry and architecture ------------------------------------------------------------------------
def test_multi_attention_is_registered_with_the_papers_settings():
    """Paper Sec. 4.1-4.2: EfficientNet-B4 at 380 px, SL_t = L2, SL_a = L5, M = 4, Adam lr 1e-3 weight decay 1e-6,
    batch 48 (quoted in yoctta/multiple-attention issue #8), alpha 0.05 decayed x0.9 per epoch, m_in 0.05/0.1,
    m_out 0.2, lambda_1 = lambda_2 = 1; AGDA resize factor 0.3, sigma 7."""
    d = detector_class("multi_attention").defaults
    assert (d["backbone"], d["input_size"], d["texture_stage"], d["attention_stage"], d["num_attentions"]) == (
        "tf_efficientnet_b4.ap_in1k", 380, 2, 5, 4)
    assert d["optimizer"]["name"] == "adam" and (d["optimizer"]["lr"], d["optimizer"]["weight_decay"]) == (1e-3, 1e-6)
    assert d["batch_size"] == 48 and (d["ce_weight"], d["ril_weight"]) == (1.0, 1.0)
    assert d["ril"] == {"alpha": 0.05, "alpha_decay": 0.9, "margin_in": [0.05, 0.1], "margin_out": 0.2}
    assert (d["agda"]["on"], d["agda"]["resize_factor"], d["agda"]["sigma"]) == (True, 0.3, 7.0)


def test_the_shapes_of_the_papers_b4_at_380_px():
    """Sec. 4.2: SL_t (b2) 32 x 95 x 95, SL_a (b5) 160 x 24 x 24, the last features 1792 x 12 x 12; textural
    features 4C = 128; P is M x 128. PIM's default sites are the SL_t stage's blocks (net.blocks.1)."""
    torch.manual_seed(0)
    det = build_detector("multi_attention", {"pretrained": False}).eval()
    with torch.no_grad():
        shallow, deep, final = det.backbone(torch.zeros(1, 3, 380, 380))
        a = det.heads(deep)
        textural, d = det.texture(shallow, a.shape[-2:])
    assert (shallow.shape, deep.shape, final.shape) == ((1, 32, 95, 95), (1, 160, 24, 24), (1, 1792, 12, 12))
    assert a.shape == (1, 4, 24, 24) and float(a.min()) >= 0  # ReLU
    assert textural.shape == (1, 128, 95, 95) and d.shape == (1, 32, 24, 24)
    assert det.local[0].in_features == 4 * 128 and det.glob[0].in_features == 1792
    assert default_sites(det, "x") == [f"net.blocks.1.{i}" for i in range(4)]


def test_bilinear_attention_pooling_matches_a_hand_computation():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]])  # (1, 2 channels, 2, 2)
    a = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]]]])  # (1, 2 heads, 2, 2)
    # head 0 picks the top-left position: (1, 0); head 1 sums everything by half: (5, 1), normalised
    expected = torch.tensor([[[1.0, 0.0], [5 / math.sqrt(26), 1 / math.sqrt(26)]]])
    torch.testing.assert_close(bilinear_attention_pooling(f, a), expected)
    # weighted average by the summed map [[1.5, .5], [.5, .5]] (sum 3): ((1.5 + 1 + 1.5 + 2) / 3, (.5 + .5) / 3)
    summed = a.sum(1, keepdim=True)
    torch.testing.assert_close(bilinear_attention_pooling(f, summed, "mean"), torch.tensor([[[2.0, 1 / 3]]]))
    # a map of another size is resized bilinearly to the features': a constant 1 x 1 map is constant
    torch.testing.assert_close(bilinear_attention_pooling(f, torch.full((1, 1, 1, 1), 0.5)), expected[:, 1:])


# -- regional independence loss ------------------------------------------------------------------------
def test_regional_independence_loss_is_zero_when_features_equal_their_centres():
    ril = RegionalIndependenceLoss(3, 4, (0.05, 0.1), 0.2)
    centres = torch.eye(4)[:3]  # e1, e2, e3: squared distances 2 > m_out
    ril.centres.copy_(centres)
    ril.alpha = 0.05
    v = centres.expand(4, 3, 4).clone()
    labels = torch.tensor([0, 1, 0, 1])
    updated = ril.update(v)
    torch.testing.assert_close(updated, centres) and torch.testing.assert_close(ril.centres, centres)
    assert float(ril(v, updated, labels)) == 0.0
    # intra: one fake's head moved by |delta|^2 = 0.2 > m_in(fake) = 0.1 costs (0.2 - 0.1) / B; a real's (0.2 - 0.05) / B
    moved = v.clone()
    moved[1, 0, 3] = math.sqrt(0.2)
    assert float(ril(moved, centres, labels)) == pytest.approx(0.1 / 4)
    moved[0, 2, 3] = math.sqrt(0.2)
    assert float(ril(moved, centres, labels)) == pytest.approx(0.1 / 4 + 0.15 / 4)
    # inter: two centres at squared distance 0.01 < m_out cost m_out - 0.01 (each unordered pair once)
    two = RegionalIndependenceLoss(2, 4, (0.05, 0.1), 0.2)
    close = torch.stack([torch.eye(4)[0], torch.eye(4)[0] + 0.1 * torch.eye(4)[1]])
    assert float(two(close.expand(3, 2, 4), close, torch.tensor([0, 1, 1]))) == pytest.approx(0.19)


def test_centres_move_once_per_training_forward_and_never_in_eval_or_the_loss(faces):
    torch.manual_seed(0)
    images, labels = faces
    det = build_detector("multi_attention", {**SMALL, "attention_dropout": 0.0}).train()
    det.ril.centres.normal_()
    calls = []
    update = det.ril.update
    det.ril.update = lambda v: calls.append(v.detach().clone()) or update(v)
    before = det.ril.centres.clone()
    x = det.preprocess(images)
    out = det(x)
    assert len(out) == 6 and len(calls) == 1  # the AGDA pass does not move them again
    torch.testing.assert_close(det.ril.centres, before + 0.05 * (calls[0].mean(0) - before))
    after = det.ril.centres.clone()
    det.loss(out, labels)
    det.eval()
    with torch.no_grad():
        det(x)
    assert torch.equal(det.ril.centres, after) and len(calls) == 1
    # adversarial training: the adversary's passes are in eval mode, the detector's pass on [x, x_adv] is one
    det.train()
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    build_procedure({"name": "grad_aat"}, det).step(opt, images, labels, "step")
    assert len(calls) == 2 and len(calls[1]) == 32


def test_alpha_decays_after_every_epoch():
    det = build_detector("multi_attention", SMALL)
    assert det.ril.alpha == 0.05
    det.start_epoch(3)
    assert det.ril.alpha == pytest.approx(0.05 * 0.9**2)
    det.start_epoch(1)
    assert det.ril.alpha == pytest.approx(0.05)


# -- attention-guided data augmentation ---------------------------------------------------------------------
def test_agda_blurs_where_the_attention_is_and_nowhere_else():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    a = torch.zeros(1, 1, 8, 8)
    a[0, 0, 3:5, 3:5] = 1.0
    agda = AGDA(AGDA_CFG)
    out, index = agda(x, a)
    weight = AGDA.weight(a, index, (32, 32))[0, 0]
    far, inside = weight == 0, weight > 1 - 1e-6
    assert index.tolist() == [0] and far.sum() > 500 and inside.sum() >= 16
    assert torch.equal(out[0][:, far], x[0][:, far])  # bit for bit where the head does not look
    torch.testing.assert_close(out[0][:, inside], agda.degrade(x)[0][:, inside], rtol=0, atol=1e-5)
    assert (out - x).abs()[0][:, inside].mean() > 0.3  # the attended region really changed
    hard = AGDA({**AGDA_CFG, "mode": "hard", "threshold": 0.5})
    dropped, _ = hard(x, a)
    strong = AGDA.weight(a, torch.zeros(1, dtype=torch.long), (32, 32))[0, 0] >= 0.5
    assert torch.equal(dropped[0][:, strong], torch.zeros_like(x[0][:, strong]))
    assert torch.equal(dropped[0][:, ~strong], x[0][:, ~strong])


def test_agda_picks_heads_in_proportion_to_the_square_root_of_their_mass():
    """The authors' AGDA.py: a head is drawn with probability proportional to sqrt(sum A_k + 1)."""
    a = torch.zeros(4000, 2, 3, 5)
    a[:, 1] = 1.0  # masses 0 and 15: weights 1 and 4
    agda = AGDA(AGDA_CFG)
    torch.manual_seed(1)
    first = agda.pick(a)
    assert abs(float(first.float().mean()) - 0.8) < 0.03
    torch.manual_seed(1)
    assert torch.equal(agda.pick(a), first)  # torch's generator: rewinding it repeats the draws


def test_eval_forward_is_one_deterministic_pass_and_training_adds_the_agda_pass(faces):
    torch.manual_seed(0)
    images, labels = faces
    det = build_detector("multi_attention", SMALL).eval()
    x = det.preprocess(images)
    with torch.no_grad():
        a, b = det(x), det(x)
    assert len(a) == 3 and all(torch.equal(p, q) for p, q in zip(a, b))
    assert ((det.proba(a) >= 0) & (det.proba(a) <= 1)).all()
    det.train()
    out = det(x)
    assert len(out) == 6 and all(len(o) == 16 for o in out)
    clean, _ = _halves(out, 8)
    assert len(clean) == 6 and all(len(o) == 8 for o in clean)
    loss = det.loss(out, labels)
    no_agda = build_detector("multi_attention", {**SMALL, "agda": {"on": False}}).train()
    assert len(no_agda(x)) == 3 and torch.isfinite(loss)


# -- training ----------------------------------------------------------------------------------------------
def test_detector_fits_sixteen_faces(faces):
    """As tests/test_detectors.py's overfit test (B0 for time: the same stages and heads). The whole loss has no
    fixed floor (the regional independence loss waits for its centres, a moving average at alpha = 0.05), so the
    classification terms (clean and augmented passes) must halve, the whole loss fall, and the classes separate."""
    images, labels = faces
    torch.manual_seed(0)
    det = build_detector("multi_attention", {**SMALL, "drop_path_rate": 0.0, "attention_dropout": 0.0,
                                             "final_dropout": 0.0}).train()
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    ce = []
    loss_of = det.loss
    det.loss = lambda out, y: ce.append(float(torch.nn.functional.cross_entropy(out[0].detach(), y)
                                              + torch.nn.functional.cross_entropy(out[3].detach(), y))) or loss_of(out, y)
    losses = [train_step(det, opt, images, labels, f"step {i}") for i in range(12)]
    assert np.mean(ce[-2:]) < 0.5 * np.mean(ce[:2]), ce
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    with torch.no_grad():
        p = det.predict_proba(det.preprocess(images)).float()
    assert p[labels == 1].min() > p[labels == 0].max(), p


@pytest.mark.parametrize("procedure", ["grad_aat", "grad_bat", "gen_bat", "pim"])
def test_multi_attention_trains_under_every_procedure(procedure, faces):
    images, labels = faces
    torch.manual_seed(0)
    det = build_detector("multi_attention", SMALL).train()
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    cfg = {"name": procedure, **({"generator_width": 8, "generator_blocks": 1} if "gen" in procedure else {})}
    states = []
    agda = det.agda.forward
    det.agda.forward = lambda x, a: states.append(torch.get_rng_state()) or agda(x, a)
    before = det.ril.centres.clone()
    loss = build_procedure(cfg, det).step(opt, images, labels, "step")
    assert np.isfinite(loss) and not torch.equal(det.ril.centres, before)
    if procedure == "pim":  # the perturbed pass repeats the clean pass's draws (PIM rewinds torch's generator)
        assert len(states) == 2 and torch.equal(states[0], states[1])


def test_resume_after_a_kill_gives_the_same_weights(tmp_path):
    """AGDA's draws, the centres and alpha's decay continue exactly where the killed run stopped."""
    root = tmp_path / "faces"
    shards = (write_synthetic_shards(root / "train", synthetic_videos(4, 2, frames=4, size=48, seed=0), per_shard=5),
              write_synthetic_shards(root / "val", synthetic_videos(2, 2, frames=4, size=48, seed=1), split="val"))
    cfg = {**SMALL, "epochs": 2, "batch_size": 8, "frames_per_video": 2, "val_frames_per_video": 2}
    straight, resumed, summary, _ = train_killed_and_resumed("multi_attention", cfg, shards, tmp_path, kill_after=1)
    assert summary["resumed_after"] == [1]
    a = torch.load(straight / "weights.pt", weights_only=True)["state_dict"]
    b = torch.load(resumed / "weights.pt", weights_only=True)["state_dict"]
    assert "ril.centres" in a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert float(a["ril.centres"].abs().sum()) > 0
