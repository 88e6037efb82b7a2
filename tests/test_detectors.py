"""Detectors: registry and config, capsule routing, self-blending, SAM, weight
loading, inference, and that each detector can fit a few synthetic faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dfrobust.detectors import (available_detectors, build_data, build_detector, config_schema, detector_class, load_trained,
                                predict_faces, register, resize_crops, resolve_config)
from dfrobust.detectors.base import Detector
from dfrobust.detectors.tensors import to_tensor
from dfrobust.detectors.capsule import DynamicRouting, PrimaryCapsules, squash
from dfrobust.detectors.inference import save_weights
from dfrobust.core.errors import InputError
from dfrobust.training import SAM, train_step
from dfrobust.training.data import FacePool
from dfrobust.training.optim import build_optimizer
from synthetic import synthetic_videos


torch.set_num_threads(2)
TINY = {"input_size": 32, "pretrained": False}


@pytest.fixture(scope="module")
def faces():
    """16 faces at 48 px: 8 real (2 videos x 4 frames) and 8 fake."""
    records = synthetic_videos(2, 1, frames=4, size=48, seed=0)
    crops = np.concatenate([r.crops for r in records])
    return crops, np.concatenate([r.landmarks for r in records]), np.concatenate([[r.label] * r.n_faces for r in records])


def pool_of(crops, landmarks, labels, size=32) -> FacePool:
    scale = size / crops.shape[1]
    return FacePool(crops=resize_crops(crops, size), landmarks=landmarks * scale, labels=np.asarray(labels, np.int64),
                    video_index=np.zeros(len(labels), np.int64), videos=[])


# -- registry and config ---------------------------------------------------------------------
def test_the_three_paper_detectors_are_registered_with_paper_defaults():
    assert {"xception", "capsule", "sbi"} <= set(available_detectors())
    x, c, s = (detector_class(n).defaults for n in ("xception", "capsule", "sbi"))
    assert (x["input_size"], x["batch_size"], x["epochs"], x["frames_per_video"], x["val_frames_per_video"]) == (299, 64, 10, 100, 32)
    assert x["optimizer"]["name"] == "adam" and x["optimizer"]["lr"] == 1e-3 and x["optimizer"]["betas"] == [0.9, 0.999]
    assert (c["input_size"], c["batch_size"], c["epochs"], c["optimizer"]["lr"]) == (300, 64, 25, 5e-4)
    assert (s["input_size"], s["batch_size"], s["epochs"], s["frames_per_video"]) == (380, 32, 100, 8)
    assert s["optimizer"] | {} == s["optimizer"] and (s["optimizer"]["name"], s["optimizer"]["base"]) == ("sam", "sgd")
    assert (s["optimizer"]["lr"], s["optimizer"]["momentum"], s["optimizer"]["rho"]) == (1e-3, 0.9, 0.05)
    assert s["lr_schedule"] == {"name": "linear_decay", "decay_start": 0.75}
    assert s["blend_ratios"] == [0.25, 0.5, 0.75, 1, 1, 1]


def test_config_block_overrides_merge_and_unknown_keys_fail():
    cfg = resolve_config("xception", {"input_size": 64, "optimizer": {"lr": 0.01}})
    assert cfg["input_size"] == 64 and cfg["optimizer"]["lr"] == 0.01
    assert cfg["optimizer"]["betas"] == [0.9, 0.999] and cfg["epochs"] == 10
    with pytest.raises(InputError, match="detectors.xception.epoch'"):
        resolve_config("xception", {"epoch": 3})
    with pytest.raises(InputError, match="detectors.sbi.optimizer.lrate'"):
        resolve_config("sbi", {"optimizer": {"lrate": 1}})
    with pytest.raises(InputError, match="unknown detector 'xceptoin'"):
        build_detector("xceptoin", {})


class _Linear(Detector):
    defaults = {"input_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "hidden": 4}

    def __init__(self, cfg):
        super().__init__(cfg)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, cfg["hidden"]), nn.Linear(cfg["hidden"], 2))

    def forward(self, x):
        return self.net(x)

    def loss(self, output, labels):
        return nn.functional.cross_entropy(output, labels)

    def proba(self, output):
        return output.softmax(1)[:, 1]


def test_a_new_detector_is_one_registered_class():
    register("test_linear")(_Linear)
    det = build_detector("test_linear", {"hidden": 7})
    assert isinstance(det, _Linear) and det.net[1].out_features == 7 and det.name == "test_linear"
    with pytest.raises(ValueError, match="already registered"):
        register("test_linear")(type("Other", (_Linear,), {}))


def _schema():
    return config_schema()


def _schema_defaults(node):
    """The defaults a schema fills in (settings without one stay unset)."""
    if node.get("type") == "object":
        return {k: _schema_defaults(v) for k, v in node["properties"].items() if "default" in v or "properties" in v}
    return node["default"]


@pytest.mark.parametrize("name", ["xception", "capsule", "sbi"])
def test_schema_block_has_the_class_defaults(name):
    """The schema fills the config from the same values the class falls back on."""
    block = _schema()["properties"][name]
    assert block["additionalProperties"] is False
    assert _schema_defaults(block) == detector_class(name).defaults
    for key, sub in block["properties"].items():
        assert sub.get("description"), f"{name}.{key} has no description"


def test_schema_accepts_the_documented_blocks_and_rejects_typos():
    import jsonschema

    from dfrobust.core.config import with_definitions

    schema = with_definitions(_schema())
    validator = jsonschema.Draft202012Validator(schema)
    demo = {"xception": {"input_size": 64, "pretrained": False, "epochs": 3, "batch_size": 32, "frames_per_video": 8,
                         "val_frames_per_video": 4},
            "sbi": {"pretrained": "/models/efficientnet_b4.pth", "optimizer": {"lr": 0.01}}}
    assert not list(validator.iter_errors(demo))
    assert list(validator.iter_errors({"xception": {"epoch": 3}}))
    assert list(validator.iter_errors({"capsule": {"optimizer": {"name": "rmsprop"}}}))
    assert list(validator.iter_errors({"effnet": {}}))


def test_a_detector_module_with_defaults_only_is_accepted_by_config_validation():
    """No schema edit: the new class's block is generated, its settings typed by their defaults."""
    from dfrobust.config import validate_config

    register("test_linear_cfg")(type("LinearCfg", (_Linear,), {}))
    config = validate_config({"detectors": {"test_linear_cfg": {"hidden": 9}}})
    assert config["detectors"]["test_linear_cfg"]["hidden"] == 9
    assert config["detectors"]["test_linear_cfg"]["optimizer"]["name"] == "adam"  # the shared default
    with pytest.raises(InputError, match="detectors.test_linear_cfg.hidden"):
        validate_config({"detectors": {"test_linear_cfg": {"hidden": "nine"}}})


# -- capsule ------------------------------------------------------------------------------------
def test_squash_keeps_direction_and_maps_norm_below_one():
    t = torch.randn(5, 8, 3) * torch.tensor([0.01, 1.0, 100.0])
    s = squash(t, dim=1)
    norms = s.norm(dim=1)
    assert (norms < 1).all() and (norms > 0).all()
    cos = nn.functional.cosine_similarity(s, t, dim=1)
    torch.testing.assert_close(cos, torch.ones_like(cos))
    # long vectors approach 1, short ones shrink quadratically
    assert norms[:, 2].min() > 0.99 and norms[:, 0].max() < 0.01


def test_capsule_routing_shapes_and_output_norms():
    torch.manual_seed(0)
    primary, routing = PrimaryCapsules(10), DynamicRouting(n_in=10, iterations=2)
    u = primary(torch.randn(3, 256, 5, 5))
    assert u.shape == (3, 8, 10)
    assert (u.norm(dim=-1) < 1).all()  # squashed along the capsule axis, as in the authors' code
    routing.eval()
    v = routing(u)
    assert v.shape == (3, 4, 2)
    assert (v.norm(dim=1) < 1).all()  # each output capsule's 4-vector is squashed
    torch.testing.assert_close(routing(u), v, rtol=0, atol=0)  # no noise or dropout in eval mode
    routing.train()
    assert not torch.equal(routing(u), v)  # routing-weight noise and prior dropout in training


def test_capsule_detector_outputs_class_activations():
    det = build_detector("capsule", TINY).eval()
    assert not any(p.requires_grad for p in det.extractor.parameters())
    assert det.extractor[-1].__class__.__name__ == "MaxPool2d" and det.extractor[-3].out_channels == 256
    out = det(det.preprocess(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)))
    assert out.shape == (2, 4, 2)
    torch.testing.assert_close(out.sum(-1), torch.ones(2, 4))
    loss = det.loss(out, torch.tensor([0, 1]))
    expected = sum(nn.functional.cross_entropy(out[:, d], torch.tensor([0, 1])) for d in range(4))
    torch.testing.assert_close(loss, expected)
    assert ((det.proba(out) >= 0) & (det.proba(out) <= 1)).all()


# -- SAM -------------------------------------------------------------------------------------------
def test_sam_evaluates_the_gradient_twice_and_descends():
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1
    model = nn.Linear(5, 1)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.05, momentum=0.9)
    calls = []

    def closure():
        calls.append([p.detach().clone() for p in model.parameters()])
        opt.zero_grad()
        loss = ((model(x).squeeze(1) - y) ** 2).mean()
        loss.backward()
        return loss

    first = float(opt.step(closure).detach())
    assert len(calls) == 2
    assert not torch.equal(calls[0][0], calls[1][0])  # second gradient at w + e(w)
    step = torch.linalg.vector_norm(torch.cat([(b - a).flatten() for a, b in zip(calls[0], calls[1])]))
    torch.testing.assert_close(step, torch.tensor(0.05))  # |e(w)| = rho
    for _ in range(59):
        last = float(opt.step(closure).detach())
    assert len(calls) == 120
    assert last < 0.05 * first
    # momentum lives in the base optimiser and survives a state round trip
    state = opt.state_dict()
    opt2 = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.05, momentum=0.9)
    opt2.load_state_dict(state)
    assert any("momentum_buffer" in s for s in opt2.base_optimizer.state.values())


# -- weights from a local file --------------------------------------------------------------------
def test_pretrained_path_loads_a_local_state_dict(tmp_path):
    import timm

    source = timm.create_model("legacy_xception", pretrained=False, num_classes=1000)
    path = tmp_path / "xception_imagenet.pth"
    torch.save(source.state_dict(), path)
    det = build_detector("xception", {**TINY, "pretrained": str(path)})
    torch.testing.assert_close(det.net.conv1.weight, source.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(det.net.block12.skip.weight, source.block12.skip.weight, rtol=0, atol=0)
    assert det.net.fc.out_features == 2  # the 1000-class head is skipped
    assert "skipped 2" in det.weights_report
    scratch = build_detector("xception", TINY)
    assert not torch.equal(scratch.net.conv1.weight, source.conv1.weight)


def test_pretrained_path_for_capsule_takes_torchvision_vgg19_keys(tmp_path):
    import torchvision

    vgg = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    path = tmp_path / "vgg19.pth"
    torch.save({"state_dict": {f"features.{k}": v for k, v in vgg.state_dict().items()}}, path)
    det = build_detector("capsule", {**TINY, "pretrained": str(path)})
    torch.testing.assert_close(det.extractor[16].weight, vgg[16].weight, rtol=0, atol=0)


def test_capsule_folds_a_vgg19bn_pool3_models_batch_norm_into_the_papers_plain_vgg19(tmp_path):
    """The showcase's extractor: weights trained with batch norm, used as the paper's plain VGG19 layers."""
    torch.manual_seed(0)
    source = build_detector("vgg19bn_pool3", TINY)
    for m in source.features:  # running statistics and affine terms far from the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    path = tmp_path / "weights.pt"
    torch.save({"format": 1, "method": "vgg19bn_pool3", "state_dict": source.state_dict()}, path)  # a weights.pt
    det = build_detector("capsule", {**TINY, "pretrained": str(path)})
    assert not any(isinstance(m, nn.BatchNorm2d) for m in det.extractor)
    assert [type(m) for m in det.extractor] == [type(m) for m in build_detector("capsule", TINY).extractor]
    assert "batch norm folded" in det.weights_report
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(det.extractor(x), source.eval().features(x), rtol=1e-4, atol=1e-4)
    truncated = {k: v for k, v in source.state_dict().items() if not k.startswith("features.24.")}
    torch.save(truncated, tmp_path / "truncated.pt")
    with pytest.raises(InputError, match="truncated.pt: a VGG19-BN state dict without every batch norm"):
        build_detector("capsule", {**TINY, "pretrained": str(tmp_path / "truncated.pt")})


def test_pretrained_path_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        build_detector("xception", {**TINY, "pretrained": str(tmp_path / "missing.pth")})
    wrong = tmp_path / "wrong.pth"
    torch.save({"foo.weight": torch.zeros(3)}, wrong)
    with pytest.raises(InputError, match="wrong.pth: no tensor matches"):
        build_detector("sbi", {**TINY, "pretrained": str(wrong)})


# -- inference ---------------------------------------------------------------------------------
def test_predict_faces_is_batched_deterministic_and_round_trips(tmp_path, faces):
    crops = faces[0]
    det = build_detector("capsule", TINY)
    save_weights(tmp_path / "weights.pt", det, det.state_dict(), epoch=3, val_auc=0.75)
    loaded = load_trained(tmp_path)
    assert not loaded.training and loaded.trained["epoch"] == 3 and loaded.input_size == 32
    p = predict_faces(loaded, crops, batch_size=5)
    assert p.shape == (16,) and p.dtype == np.float32 and ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(predict_faces(loaded, crops, batch_size=16), p, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(predict_faces(loaded, crops, batch_size=5), p)
    expected = det.eval().predict_proba(det.preprocess(to_tensor(resize_crops(crops, 32)))).detach().numpy()
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-6)
    assert predict_faces(loaded, crops[:0], batch_size=5).shape == (0,)
    with pytest.raises(InputError, match="do not exist"):
        load_trained(tmp_path / "nowhere")


# -- each detector fits 16 faces --------------------------------------------------------------
# From scratch at 32 px, so with learning rates above the paper's fine-tuning values;
# SBI's SAM wraps Adam here (SGD from scratch needs hundreds of steps).
OVERFIT = {
    "xception": ({"drop_rate": 0.0}, 8),
    "capsule": ({"optimizer": {"lr": 2e-2}, "routing_dropout": 0.0, "routing_noise": 0.0}, 16),
    "sbi": ({"optimizer": {"base": "adam", "lr": 3e-3}, "drop_rate": 0.0, "drop_path_rate": 0.0}, 10),
    "vgg19bn_pool3": ({}, 8),
}


def loss_floor(name: str) -> float:
    """Lowest reachable training loss. Capsule activations are squashed (norm < 1),
    so per output dimension the class scores differ by at most 1 (e.g. -0.5 vs 0.5),
    and its loss applies cross-entropy to soft-maxed scores: 4 x 0.49 = 1.96."""
    if name != "capsule":
        return 0.0
    p = torch.softmax(torch.tensor([[-0.5, 0.5]]), dim=1)
    return 4 * nn.functional.cross_entropy(p, torch.tensor([1])).item()


BF16 = {"precision": "bf16", "channels_last": True}  # the `compute` block for GPUs, here on the CPU


@pytest.mark.parametrize("name, compute", [(name, None) for name in OVERFIT] + [("xception", BF16), ("capsule", BF16)],
                         ids=[*OVERFIT, "xception-bf16+channels_last", "capsule-bf16+channels_last"])
def test_detector_fits_sixteen_faces(name, compute, faces):
    crops, _, labels = faces
    overrides, steps = OVERFIT[name]
    torch.manual_seed(0)
    det = build_detector(name, {**TINY, **overrides}).train().set_compute(compute)
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    x, y = to_tensor(resize_crops(crops, 32)), torch.as_tensor(labels, dtype=torch.int64)
    losses = []
    for i in range(steps):
        with det.autocast():
            losses.append(train_step(det, opt, x, y, f"step {i}"))
    assert all(p.dtype == torch.float32 for p in det.parameters())  # autocast computes in bf16, weights stay float32
    first, last, floor = np.mean(losses[:2]), np.mean(losses[-2:]), loss_floor(name)
    assert last - floor < 0.5 * (first - floor), losses
    # separated as trained (batch statistics: a few steps do not settle BN's running averages)
    with torch.no_grad(), det.autocast():
        p = det.predict_proba(det.preprocess(x)).float()
    assert p[y == 1].min() > p[y == 0].max(), p


def test_bf16_autocast_and_channels_last_change_how_not_what(faces):
    """Under `compute: {precision: bf16, channels_last: true}` the forward pass runs in bfloat16 on
    channels-last inputs and weights, and gives float32's outputs within bf16's rounding."""
    crops, _, _ = faces
    torch.manual_seed(0)
    det = build_detector("xception", {**TINY, "drop_rate": 0.0}).eval()
    x = to_tensor(resize_crops(crops, 32))
    with torch.no_grad():
        reference = det(det.preprocess(x))
        det.set_compute(BF16)
        assert det.preprocess(x).is_contiguous(memory_format=torch.channels_last)
        assert det.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        with det.autocast():
            fast = det(det.preprocess(x))
    assert fast.dtype == torch.bfloat16 and reference.dtype == torch.float32
    assert torch.allclose(fast.float(), reference, rtol=0.05, atol=0.02 * float(reference.abs().max()))
    with pytest.raises(InputError, match="compute.precision"):
        det.set_compute({"precision": "fp16"})


# -- augmentation ---------------------------------------------------------------------------
def test_augmentation_from_config_is_albumentations_seeded_and_checked(faces):
    from dfrobust.detectors.augment import Augmenter

    spec = [{"name": "HorizontalFlip", "p": 1.0}, {"name": "GaussNoise", "std_range": [0.1, 0.2], "p": 1.0}]
    augment = Augmenter(spec)
    face = faces[0][0]
    a, b, c = augment(face, 1), augment(face, 1), augment(face, 2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(a.astype(int) - face[:, ::-1].astype(int)).mean() > 5  # flipped, then noised
    three = Augmenter([{"name": n, "p": 0.3} for n in ("HorizontalFlip", "VerticalFlip", "Transpose")])
    outputs = [three(face, s) for s in range(300)]
    none = np.mean([np.array_equal(o, face) for o in outputs])
    every = np.mean([np.array_equal(o, face[::-1, ::-1].transpose(1, 0, 2)) for o in outputs])
    assert 0.2 < none < 0.5 and every < 0.12  # independent draws: 0.7^3 = 0.34 and 0.3^3 = 0.03, not 0.7 and 0.3
    with pytest.raises(InputError, match="augment.0.name': 'Flip2D' is not an albumentations transform"):
        Augmenter([{"name": "Flip2D"}])
    with pytest.raises(InputError, match="augment.0': GaussNoise"):
        Augmenter([{"name": "GaussNoise", "sigma": 3}])
    data = build_data("xception", {**TINY, "augment": [{"name": "HorizontalFlip", "p": 1.0}]})
    pool = pool_of(*faces)
    epoch = data.train_dataset(pool, seed=0)
    image, _ = epoch[0]
    j = int(epoch.order[0])
    assert np.array_equal(image[0].permute(1, 2, 0).numpy(), pool.crops[j][:, ::-1])
