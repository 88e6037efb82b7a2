"""Weights trained elsewhere, scored without training (dfrobust.detectors.formats).

Each format is checked against its authors' network, built here with random weights
(batch-norm statistics randomised too) and saved exactly as their code saves it: the
project must load the file and give the same outputs on the same faces. The authors'
modules are restated below with their attribute names (so their state_dict keys and
shapes), from:

* SBI: mapooon/SelfBlendedImages src/model.py (Detector: `net` = efficientnet-pytorch
  EfficientNet-B4 with 2 classes), src/train_sbi.py (torch.save({'model', 'optimizer',
  'epoch'})), src/utils/sam.py (SAM), src/inference/preprocess.py and
  src/utils/funcs.py (crop_face, phase='test'; cv2.resize to 380; x / 255) at commit 249281e8;
  the network itself is efficientnet-pytorch 0.7.1 (a test dependency);
* DeepfakeBench: SCLBD/DeepfakeBench training/networks/xception.py,
  training/networks/efficientnetb4.py (commit 1f12a3ee), training/detectors/xception_detector.py,
  efficientnetb4_detector.py, capsule_net_detector.py (commit 0222760d: `vgg_ext`, `fea_ext`,
  `routing_stats`), training/trainer/trainer.py (save_ckpt: torch.save(model.state_dict()));
* Capsule-Forensics-v2: nii-yamagishilab/Capsule-Forensics-v2 model_big.py (commit 2564248e:
  CapsuleNet = `fea_ext` + `routing_stats`; VggExtractor = torchvision vgg19 features[0:19]),
  train_binary_ffpp.py (torch.save(capnet.state_dict()), PyTorch 1.3: the legacy file format).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision
import yaml
from torch import nn
from torch.nn import functional as F

from dfrobust.core.errors import InputError
from dfrobust.detectors import build_data, build_detector
from dfrobust.detectors.inference import load_weights, save_weights
from dfrobust.media.store import FaceRecord

from conftest import REPO, SNAKEMAKE, grace_hopper, job_counts

torch.set_num_threads(2)
TOL = 1e-5


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Batch-norm statistics and affine parameters away from their initial values (else a
    mapping that mixed up two norms could still agree), in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(1 + torch.randn(m.weight.shape, generator=g) * 0.1)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return module.eval()


def faces_at(size: int, n: int = 2) -> np.ndarray:
    """n uint8 RGB faces at size x size (a photo and its mirror)."""
    face = cv2.resize(grace_hopper()[60:540, 20:500], (size, size), interpolation=cv2.INTER_AREA)
    return np.stack([face, face[:, ::-1]][:n])


def normalised(faces: np.ndarray, mean, std) -> torch.Tensor:
    """What their loaders give the network: ToTensor (x / 255) then Normalize(mean, std)."""
    x = torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def project_forward(detector, faces: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return detector(detector.preprocess(torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2)))


# -- SBI ---------------------------------------------------------------------------------------------
class SBIDetector(nn.Module):
    """SelfBlendedImages src/model.py Detector, as far as its state goes: `net` (the optimizer is not a Module)."""

    def __init__(self):
        super().__init__()
        from efficientnet_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-b4", num_classes=2)  # from_pretrained(advprop=True): same keys

    def forward(self, x):
        return self.net(x)


def sbi_crop_face(img: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """Their funcs.crop_face(img, None, bbox, False, crop_by_bbox=True, only_img=True, phase='test')."""
    h_img, w_img = len(img), len(img[0])
    (x0, y0), (x1, y1) = bbox
    w, h = x1 - x0, y1 - y0
    mw, mh = w / 4 * 0.5, h / 4 * 0.5
    y0n, y1n = max(0, int(y0 - mh)), min(h_img, int(y1 + mh) + 1)
    x0n, x1n = max(0, int(x0 - mw)), min(w_img, int(x1 + mw) + 1)
    return img[y0n:y1n, x0n:x1n]


@pytest.fixture(scope="module")
def sbi_file(tmp_path_factory):
    """(authors' network, its checkpoint as train_sbi.py saves it)."""
    pytest.importorskip("efficientnet_pytorch")
    torch.manual_seed(0)
    model = randomise(SBIDetector(), 1)
    # their SAM wraps SGD; its state_dict is SGD's param groups plus rho (and the scheduler's initial_lr),
    # its state the e_w copies of the parameters
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    state = optimizer.state_dict()
    state["param_groups"][0].update(rho=0.05, initial_lr=1e-3)
    state["state"] = {0: {"e_w": torch.zeros_like(params[0])}}
    path = tmp_path_factory.mktemp("sbi") / "97_0.9991.tar"
    torch.save({"model": model.state_dict(), "optimizer": state, "epoch": 97}, path)
    return model, path


def test_sbi_checkpoint_gives_the_authors_logits_and_their_face_crop(sbi_file):
    model, path = sbi_file
    frame = grace_hopper()  # 600 x 512, RGB (their frames are BGR2RGB-converted)
    box = np.array([131.6, 118.3, 377.2, 421.9])  # a RetinaFace box, frame pixels
    # theirs: crop around the box, cv2.resize to 380 (bilinear), x / 255
    theirs = cv2.resize(sbi_crop_face(frame, box.reshape(2, 2)), (380, 380))
    with torch.no_grad():
        their_logits = model(torch.from_numpy(theirs).permute(2, 0, 1)[None].float() / 255)
    # ours: the face stage's stored crop (here at the frame's resolution) and the row's format settings
    detector = load_weights(path, "sbi", "sbi", {"input_size": 48, "backbone": "efficientnet_b0"})  # the format's win
    assert detector.input_size == 380 and detector.trained == {"epoch": 97, "val_auc": None, "path": str(path), "format": "sbi"}
    crop_box = np.array([60, 60, 460, 460])
    record = FaceRecord("original/000", "original", 0, frame[60:460, 60:460][None], np.array([0]), box[None].astype(np.float32),
                        crop_box[None].astype(np.int32), np.zeros((1, 68, 2), np.float32), np.array([0]),
                        retina_boxes=box[None].astype(np.float32))
    data = build_data("sbi", detector.cfg)
    ours = data.view_faces(record)
    np.testing.assert_array_equal(ours[0], theirs)  # the same pixels
    our_logits = project_forward(detector, ours)
    assert (our_logits - their_logits).abs().max() < TOL
    [(frames, scores)] = data.score_records(detector, [record], 0, 4, log=lambda m: None)
    np.testing.assert_allclose(scores, their_logits.softmax(1)[:, 1].numpy(), atol=TOL)


def test_sbi_weights_fit_at_other_sizes_and_not_as_another_format(sbi_file, tmp_path):
    model, path = sbi_file
    detector = load_weights(path, "sbi", "sbi", {}, settings=None)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():  # their padding is fixed for 380 px; the project's is made the same (formats.py)
        assert (model(x) - detector(x)).abs().max() < TOL
    with pytest.raises(InputError, match=r"97_0.9991.tar: not a DeepfakeBench state dict: expected a mapping of names to "
                                         r"tensors; \['model', 'optimizer', 'epoch'\] hold"):
        load_weights(path, "efficientnet_b4", "deepfakebench", {})
    with pytest.raises(InputError, match=r"format sbi holds weights of detector\(s\) sbi, not 'efficientnet_b4'"):
        from dfrobust.detectors.formats import FORMATS

        FORMATS["sbi"].settings_for("efficientnet_b4", "format")


# -- DeepfakeBench ------------------------------------------------------------------------------------
class SeparableConv2d(nn.Module):
    def __init__(self, cin, cout, k=1, stride=1, padding=0, bias=False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, k, stride, padding, 1, groups=cin, bias=bias)
        self.pointwise = nn.Conv2d(cin, cout, 1, 1, 0, 1, 1, bias=bias)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class XceptionBlock(nn.Module):
    def __init__(self, cin, cout, reps, strides=1, start_with_relu=True, grow_first=True):
        super().__init__()
        self.skip = nn.Conv2d(cin, cout, 1, stride=strides, bias=False) if cout != cin or strides != 1 else None
        if self.skip is not None:
            self.skipbn = nn.BatchNorm2d(cout)
        relu = nn.ReLU(inplace=True)
        rep, filters = [], cin
        if grow_first:
            rep += [relu, SeparableConv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout)]
            filters = cout
        for _ in range(reps - 1):
            rep += [relu, SeparableConv2d(filters, filters, 3, 1, 1), nn.BatchNorm2d(filters)]
        if not grow_first:
            rep += [relu, SeparableConv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout)]
        rep = rep[1:] if not start_with_relu else [nn.ReLU(inplace=False)] + rep[1:]
        if strides != 1:
            rep.append(nn.MaxPool2d(3, strides, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, inp):
        x = self.rep(inp)
        return x + (self.skipbn(self.skip(inp)) if self.skip is not None else inp)


class DFBXception(nn.Module):
    """DeepfakeBench training/networks/xception.py, mode 'original' (`dropout`: its last_linear a Sequential)."""

    def __init__(self, dropout=False):
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(3, 32, 3, 2, 0, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, bias=False), nn.BatchNorm2d(64)
        self.block1 = XceptionBlock(64, 128, 2, 2, start_with_relu=False)
        self.block2 = XceptionBlock(128, 256, 2, 2)
        self.block3 = XceptionBlock(256, 728, 2, 2)
        for i in range(4, 12):
            setattr(self, f"block{i}", XceptionBlock(728, 728, 3, 1))
        self.block12 = XceptionBlock(728, 1024, 2, 2, grow_first=False)
        self.conv3, self.bn3 = SeparableConv2d(1024, 1536, 3, 1, 1), nn.BatchNorm2d(1536)
        self.conv4, self.bn4 = SeparableConv2d(1536, 2048, 3, 1, 1), nn.BatchNorm2d(2048)
        self.last_linear = nn.Sequential(nn.Dropout(dropout), nn.Linear(2048, 2)) if dropout else nn.Linear(2048, 2)
        self.adjust_channel = nn.Sequential(nn.Conv2d(2048, 512, 1, 1), nn.BatchNorm2d(512), nn.ReLU(inplace=True))

    def features(self, x):
        x = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
        for i in range(1, 13):
            x = getattr(self, f"block{i}")(x)
        return self.bn4(self.conv4(self.relu(self.bn3(self.conv3(x)))))

    def classifier(self, features):
        return self.last_linear(F.adaptive_avg_pool2d(self.relu(features), (1, 1)).flatten(1))


class DFBEfficientNetB4(nn.Module):
    """DeepfakeBench training/networks/efficientnetb4.py, mode 'Original', dropout false."""

    def __init__(self):
        super().__init__()
        from efficientnet_pytorch import EfficientNet

        self.efficientnet = EfficientNet.from_name("efficientnet-b4")  # from_pretrained in theirs: the same network
        self.efficientnet._conv_stem = nn.Conv2d(3, 48, kernel_size=3, stride=2, bias=False)
        self.efficientnet._fc = nn.Identity()
        self.last_layer = nn.Linear(1792, 2)

    def features(self, x):
        return self.efficientnet.extract_features(x)

    def classifier(self, x):
        return self.last_layer(F.adaptive_avg_pool2d(x, (1, 1)).flatten(1))


class DFBDetector(nn.Module):
    """Their xception / efficientnetb4 detectors: `backbone` (the loss holds no state)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.loss_func = nn.CrossEntropyLoss()

    def forward(self, x):
        return self.backbone.classifier(self.backbone.features(x))


# Capsule-Forensics-v2 model_big.py, which DeepfakeBench's capsule_net_detector.py repeats
class StatsNet(nn.Module):
    def forward(self, x):
        x = x.view(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        return torch.stack((torch.mean(x, 2), torch.std(x, 2)), dim=1)


class View(nn.Module):
    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.view(self.shape)


def squash(t, dim):
    norm = (t**2).sum(dim=dim, keepdim=True)
    return norm / (1 + norm) * t / torch.sqrt(norm)


class FeatureExtractor(nn.Module):
    def __init__(self):
        super().__init__()
        self.capsules = nn.ModuleList([nn.Sequential(
            nn.Conv2d(256, 64, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 16, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(16), nn.ReLU(), StatsNet(),
            nn.Conv1d(2, 8, kernel_size=5, stride=2, padding=2), nn.BatchNorm1d(8),
            nn.Conv1d(8, 1, kernel_size=3, stride=1, padding=1), nn.BatchNorm1d(1), View(-1, 8)) for _ in range(10)])

    def forward(self, x):
        return squash(torch.stack([capsule(x) for capsule in self.capsules], dim=-1), dim=-1)


class RoutingLayer(nn.Module):
    def __init__(self, n_in=10, n_out=2, data_in=8, data_out=4, iterations=2):
        super().__init__()
        self.num_iterations = iterations
        self.route_weights = nn.Parameter(torch.randn(n_out, n_in, data_out, data_in))

    def forward(self, x):  # random=False, dropout=0.0: their test-time call
        priors = (self.route_weights[:, None] @ x.transpose(2, 1)[None, :, :, :, None]).transpose(1, 0)
        logits = torch.zeros_like(priors)
        for i in range(self.num_iterations):
            outputs = squash((F.softmax(logits, dim=2) * priors).sum(dim=2, keepdim=True), dim=3)
            if i != self.num_iterations - 1:
                logits = logits + priors * outputs
        return outputs.squeeze(2).squeeze(-1).transpose(2, 1).contiguous()  # [b, data_out, out_caps]


class CapsuleNet(nn.Module):
    """Capsule-Forensics-v2 CapsuleNet: (classes, class_) with class_[:, 1] the fake score."""

    def __init__(self):
        super().__init__()
        self.fea_ext = FeatureExtractor()
        self.routing_stats = RoutingLayer()

    def forward(self, x):
        classes = F.softmax(self.routing_stats(self.fea_ext(x)), dim=-1)
        return classes, classes.mean(dim=1)


def vgg19_pool3() -> nn.Sequential:
    """Their VggExtractor.vgg_1: torchvision vgg19 features[0:19] (ImageNet weights in theirs; random here)."""
    return nn.Sequential(*list(torchvision.models.vgg19(weights=None).features.children())[0:19])


class DFBCapsule(nn.Module):
    """DeepfakeBench CapsuleNetDetector: `vgg_ext.vgg_1` (fine-tuned with the rest), `fea_ext`, `routing_stats`."""

    def __init__(self):
        super().__init__()
        self.vgg_ext = nn.Module()
        self.vgg_ext.vgg_1 = vgg19_pool3()
        self.fea_ext = FeatureExtractor()
        self.routing_stats = RoutingLayer()

    def forward(self, x):
        classes = F.softmax(self.routing_stats(self.fea_ext(self.vgg_ext.vgg_1(x))), dim=-1)
        return classes, classes.mean(dim=1)


def save_dfb(model: nn.Module, path: Path, prefix: str = "") -> Path:
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, path)
    return path


@pytest.mark.parametrize("dropout", [False, 0.5])
def test_deepfakebench_xception_gives_their_logits(tmp_path, dropout):
    torch.manual_seed(0)
    theirs = randomise(DFBDetector(DFBXception(dropout)), 2)
    path = save_dfb(theirs, tmp_path / "ckpt_best.pth")
    detector = load_weights(path, "xception", "deepfakebench", {"input_size": 64})
    assert detector.input_size == 256 and detector.cfg["mean"] == [0.5] * 3 and detector.cfg["std"] == [0.5] * 3
    faces = faces_at(256)
    x = normalised(faces, [0.5] * 3, [0.5] * 3)
    assert (detector.preprocess(torch.from_numpy(faces).permute(0, 3, 1, 2)) - x).abs().max() < 1e-6  # their normalisation
    with torch.no_grad():
        assert (project_forward(detector, faces) - theirs(x)).abs().max() < TOL


def test_deepfakebench_files_that_do_not_fit_fail_naming_the_keys(tmp_path):
    torch.manual_seed(0)
    theirs = randomise(DFBDetector(DFBXception()), 3)
    faces = faces_at(256)
    with torch.no_grad():
        expected = theirs(normalised(faces, [0.5] * 3, [0.5] * 3))
    # DataParallel / DDP: every key under `module.`
    parallel = save_dfb(theirs, tmp_path / "parallel.pth", prefix="module.")
    assert (project_forward(load_weights(parallel, "xception", "deepfakebench", {}), faces) - expected).abs().max() < TOL
    # a truncated download
    data = (tmp_path / "parallel.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"truncated.pth: not a PyTorch checkpoint, or a truncated one"):
        load_weights(tmp_path / "truncated.pth", "xception", "deepfakebench", {})
    # another detector's file: their capsule net's, read as their xception
    capsule = save_dfb(randomise(DFBCapsule(), 4), tmp_path / "capsule.pth")
    with pytest.raises(InputError, match=r"capsule.pth: does not fit detector xception as format deepfakebench \(nothing "
                                         r"loaded\): missing from the file 236: net.conv1.weight, .*; not in the detector "
                                         r"297: vgg_ext.vgg_1.0.weight, "):
        load_weights(capsule, "xception", "deepfakebench", {})
    # their 'adjust_channel' mode: a classifier on 512 channels
    state = theirs.state_dict()
    state["backbone.last_linear.weight"] = torch.zeros(2, 512)
    torch.save(state, tmp_path / "adjust.pth")
    with pytest.raises(InputError, match=r"shape differs 1: backbone.last_linear.weight \(2, 512\) \(detector: net.fc.weight "
                                         r"\(2, 2048\)\)"):
        load_weights(tmp_path / "adjust.pth", "xception", "deepfakebench", {})
    # a half-precision file is read as float32; a NaN is refused
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in theirs.state_dict().items()}, tmp_path / "half.pth")
    assert load_weights(tmp_path / "half.pth", "xception", "deepfakebench", {}).net.fc.weight.dtype == torch.float32
    state = theirs.state_dict()
    state["backbone.conv1.weight"] = state["backbone.conv1.weight"].clone().fill_(float("nan"))
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(InputError, match=r"nan.pth: tensor backbone.conv1.weight holds NaN"):
        load_weights(tmp_path / "nan.pth", "xception", "deepfakebench", {})


def test_deepfakebench_efficientnet_b4_gives_their_logits(tmp_path):
    pytest.importorskip("efficientnet_pytorch")
    torch.manual_seed(0)
    theirs = randomise(DFBDetector(DFBEfficientNetB4()), 5)
    path = save_dfb(theirs, tmp_path / "ckpt_best.pth", prefix="module.")
    detector = load_weights(path, "efficientnet_b4", "deepfakebench", {"backbone": "efficientnet_b4", "input_size": 380})
    assert detector.cfg["backbone"] == "tf_efficientnet_b4" and detector.input_size == 256  # their BN eps and padding
    faces = faces_at(256)
    with torch.no_grad():
        assert (project_forward(detector, faces) - theirs(normalised(faces, [0.5] * 3, [0.5] * 3))).abs().max() < TOL


def test_deepfakebench_capsule_gives_their_scores(tmp_path):
    torch.manual_seed(0)
    theirs = randomise(DFBCapsule(), 6)
    path = save_dfb(theirs, tmp_path / "ckpt_best.pth")
    detector = load_weights(path, "capsule", "deepfakebench", {"pretrained": True})  # the file's VGG, fine-tuned: no download
    faces = faces_at(256)
    with torch.no_grad():
        classes, class_ = theirs(normalised(faces, [0.5] * 3, [0.5] * 3))
        ours = project_forward(detector, faces)
    assert (ours - classes).abs().max() < TOL and (detector.proba(ours) - class_[:, 1]).abs().max() < TOL


def test_capsule_forensics_gives_their_scores_with_the_vgg_from_pretrained(tmp_path):
    torch.manual_seed(0)
    vgg = vgg19_pool3()
    torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, tmp_path / "vgg19.pth")  # torchvision's names
    capnet = randomise(CapsuleNet(), 7)
    path = tmp_path / "capsule_21.pt"
    torch.save(capnet.state_dict(), path, _use_new_zipfile_serialization=False)  # PyTorch 1.3 wrote the legacy format
    with pytest.raises(InputError, match="holds no extractor weights; detectors.capsule.pretrained must supply them"):
        load_weights(path, "capsule", "capsule_forensics", {"pretrained": False})
    detector = load_weights(path, "capsule", "capsule_forensics", {"pretrained": str(tmp_path / "vgg19.pth"), "input_size": 32})
    assert detector.input_size == 300 and detector.cfg["mean"] == [0.485, 0.456, 0.406]
    faces = faces_at(300)
    with torch.no_grad():
        classes, class_ = capnet(vgg.eval()(normalised(faces, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])))
        ours = project_forward(detector, faces)
    assert (ours - classes).abs().max() < TOL and (detector.proba(ours) - class_[:, 1]).abs().max() < TOL
    # a file without num_batches_tracked (saved before PyTorch 0.4.1) still fits; a missing weight does not
    state = {k: v for k, v in capnet.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pt")
    load_weights(tmp_path / "old.pt", "capsule", "capsule_forensics", {"pretrained": str(tmp_path / "vgg19.pth")})
    del state["routing_stats.route_weights"]
    torch.save(state, tmp_path / "short.pt")
    with pytest.raises(InputError, match=r"short.pt: does not fit detector capsule as format capsule_forensics \(nothing "
                                         r"loaded\): missing from the file 1: routing.weights"):
        load_weights(tmp_path / "short.pt", "capsule", "capsule_forensics", {"pretrained": str(tmp_path / "vgg19.pth")})


# -- untrusted files ----------------------------------------------------------------------------------
class Exploit:
    """Unpickling it calls open(marker, 'w'): code that runs on load, were the file unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "FFraw.tar"
    torch.save({"model": {"net._fc.weight": torch.zeros(2, 1792)}, "hook": Exploit(marker)}, path)
    whole = tmp_path / "model.pth"
    torch.save(nn.Linear(2, 2), whole)  # a pickled module: classes, not tensors
    for file in (path, whole):
        with pytest.raises(InputError, match=rf"{file.name}: refused: it is not plain tensors that "
                                             r"torch.load\(weights_only=True\) can read \(.*GLOBAL .*\); .*convert it where "
                                             r"you trust its source: torch.save"):
            load_weights(file, "sbi", "sbi", {})
    proc = subprocess.run([sys.executable, "-m", "dfrobust.cli", "inspect-weights", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "refused" in proc.stderr and "weights_only=False" not in proc.stderr
    assert not marker.exists()


# -- the command and the plan -------------------------------------------------------------------------
def test_inspect_weights_names_the_format_the_detector_and_the_keys_that_do_not_fit(tmp_path):
    torch.manual_seed(0)
    theirs = randomise(DFBDetector(DFBXception()), 8)
    path = save_dfb(theirs, tmp_path / "ckpt_best.pth", prefix="module.")
    cli = [sys.executable, "-m", "dfrobust.cli", "inspect-weights"]
    proc = subprocess.run([*cli, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "fits: format deepfakebench, detector xception (276 tensors)" in proc.stdout, proc.stdout
    assert f"model row: {{method: xception, weights: {path}, format: deepfakebench" in proc.stdout
    state = theirs.state_dict()
    del state["backbone.bn4.running_var"]
    state["backbone.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "edited.pth")
    proc = subprocess.run([*cli, str(tmp_path / "edited.pth"), "--format", "deepfakebench", "--json"], capture_output=True, text=True)
    found = json.loads(proc.stdout)
    best = found["candidates"][0]
    assert proc.returncode == 1 and (best["format"], best["method"], best["wrong"]) == ("deepfakebench", "xception", 2)
    assert "missing from the file 1: net.bn4.running_var; not in the detector 1: backbone.extra.weight" in best["problem"]


def test_a_weights_row_plans_no_training_and_takes_the_formats_settings(tmp_path):
    from dfrobust.config import validate_config
    from dfrobust.plan import build_plan

    from conftest import operations_of

    file = tmp_path / "FFraw.tar"
    file.write_bytes(b"")
    config = validate_config({
        "models": [{"method": "xception", "quality": "raw"},
                   {"method": "sbi", "weights": str(file), "format": "sbi", "name": "sbi_official", "quality": "raw"},
                   {"method": "xception", "weights": str(file), "format": "deepfakebench", "settings": {"input_size": 299},
                    "name": "xception_dfb"},
                   {"method": "capsule", "weights": str(file), "format": "capsule_forensics"}],
        "detectors": {"sbi": {"input_size": 48, "backbone": "efficientnet_b0"}, "capsule": {"pretrained": True}},
        "operations": {"list": [{"name": "clean", "category": "none"}]}})
    plan = build_plan(config, operations_of(config["operations"]), lambda kind, cfg: {"train": 4, "val": 2, "test": 3})
    assert list(plan.models) == ["xception/raw", "sbi_official/raw", "xception_dfb/external", "capsule/external"]
    assert [m.trains for m in plan.models.values()] == [True, False, False, False]
    assert [m.id for m in plan.table1.rows] == list(plan.models)
    sbi = plan.models["sbi_official/raw"].detector_cfg(config["detectors"])
    assert (sbi["input_size"], sbi["backbone"], sbi["mean"], sbi["crop"]["box"]) == (380, "tf_efficientnet_b4", [0.0] * 3, "retinaface")
    assert plan.models["xception_dfb/external"].detector_cfg(config["detectors"])["input_size"] == 299  # the row's own, over the format's
    assert plan.models["capsule/external"].fetch(config["detectors"])[0] == "capsule"  # its VGG19: torchvision's ImageNet weights
    assert plan.models["sbi_official/raw"].fetch(config["detectors"]) is None
    assert {(d, q, s) for d, q, s in plan.face_keys()} == {("ffpp", "raw", s) for s in ("train", "val", "test")}  # xception's


@pytest.mark.parametrize("row, message", [
    ({"method": "sbi", "weights": "W"}, "`weights` .* and `format` .* go together"),
    ({"method": "sbi"}, "models.0': a model the workflow trains needs `quality`"),
    ({"method": "sbi", "weights": "W", "format": "sbi_v2"}, r"models.0.format': unknown weights format 'sbi_v2' \(known: "),
    ({"method": "xception", "weights": "W", "format": "sbi"}, r"format sbi holds weights of detector\(s\) sbi, not 'xception'"),
    ({"method": "sbi", "weights": "W", "format": "sbi", "procedure": "pim"}, "not trained here, so it has no training procedure"),
    ({"method": "capsule", "weights": "W", "format": "capsule_forensics"}, "holds no extractor weights; detectors.capsule.pretrained"),
    ({"method": "sbi", "weights": "nowhere.tar", "format": "sbi"}, "models.0.weights': nowhere.tar does not exist"),
])
def test_bad_weights_rows_name_the_key(tmp_path, row, message):
    from dfrobust.config import validate_config
    from dfrobust.plan import build_plan

    from conftest import operations_of

    (tmp_path / "W").write_bytes(b"")
    row = {**row, "weights": str(tmp_path / row["weights"])} if row.get("weights") == "W" else row
    config = validate_config({"models": [row], "detectors": {"capsule": {"pretrained": False}}})
    with pytest.raises(InputError, match=message):
        build_plan(config, operations_of(config["operations"]), lambda kind, cfg: {"train": 4, "val": 2, "test": 3})


def test_a_file_that_does_not_fit_stops_the_plan_naming_the_key(tmp_path, monkeypatch):
    from dfrobust.config import check_model_weights, validate_config
    from dfrobust.plan import build_plan

    from conftest import operations_of

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    state = randomise(DFBDetector(DFBXception()), 9).state_dict()
    torch.save(state, tmp_path / "good.pth")
    del state["backbone.conv1.weight"]
    torch.save(state, tmp_path / "bad.pth")
    rows = [{"method": "xception", "weights": str(tmp_path / name), "format": "deepfakebench", "name": name[:-4]}
            for name in ("good.pth", "bad.pth")]
    config = validate_config({"models": rows})
    plan = build_plan(config, operations_of(config["operations"]), lambda kind, cfg: {"train": 4, "val": 2, "test": 3})
    with pytest.raises(InputError, match=r"config key 'models.1.weights': .*bad.pth: does not fit detector xception as format "
                                         r"deepfakebench \(nothing loaded\): missing from the file 1: net.conv1.weight"):
        check_model_weights(plan.models.values(), config["detectors"])
    assert len(list((tmp_path / "cache" / "dfrobust" / "weights").glob("*.json"))) == 1  # the good file, remembered


def test_touching_a_weights_file_reruns_only_its_scores_metrics_and_tables(tmp_path):
    """A dry run of config/tiny.yaml with a weights row, every output made up to date
    (empty files, then snakemake --touch), the weights file touched."""
    detector = build_detector("xception", {"pretrained": False, "input_size": 32})
    save_weights(tmp_path / "given.pt", detector, detector.state_dict(), epoch=1, val_auc=0.5)
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    config["models"].append({"method": "xception", "weights": str(tmp_path / "given.pt"), "format": "dfrobust", "name": "given"})
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(config))

    def snakemake(*args):
        proc = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile",
                               str(work / "config.yaml"), "--rerun-triggers", "params", "mtime", "input", *args],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    counts = job_counts(snakemake("-n").stdout)
    assert counts["train"] == 3 and counts["score"] == 4 * 7, counts  # the three trained rows only; 4 models x 7 copies
    for line in snakemake("--summary").stdout.splitlines()[1:]:
        out = work / line.split("\t")[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.touch()
    snakemake("--touch", "--cores", "1")
    (tmp_path / "given.pt").touch()
    proc = snakemake("-n")
    counts = job_counts(proc.stdout)
    # its 7 score files (Table I's 6 copies, the protocols table's c40 copy), their metrics, the tables and
    # Table I's reports (DeLong, figures): no face, copy or train job
    assert counts == {"score": 7, "metrics": 8, "table": 2, "delong": 1, "figures": 1, "all": 1}, counts
    scored = {line.split("model=")[1].split(",")[0] for line in proc.stdout.splitlines() if "wildcards: model=" in line}
    assert scored == {"given"}
