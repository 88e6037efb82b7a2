"""RetinaFace (Deng et al. 2020), ResNet-50 variant, as the retinaface-pytorch
package (ternaus/retinaface) builds it, so that its published weights file
`retinaface_resnet50_2020-07-20` loads unchanged (same module names, strict).

Why a re-implementation: SBI's authors detect faces with that package
(`get_model("resnet50_2020-07-20", max_size=2048)`), but its releases pin
torch 1.9 and albumentations 1.0 and its prediction code imports
iglovikov_helper_functions (which imports jpeg4py at module level); it cannot
be installed beside torch 2 from the project's install files. The network
is small (torchvision's ResNet-50, a 3-level FPN, SSH context modules and
1x1 heads) and its post-processing a few lines, so both live here, on the
installed torch/torchvision/albumentations:

    net = load_retinaface("retinaface_resnet50_2020-07-20.zip")   # or the .pth inside it
    boxes, scores, landmarks = predict(net, rgb_image, max_size=2048)

Pre- and post-processing follow the package's `Model.predict_jsons`: the
image resized so its longer side is `max_size` (albumentations
LongestMaxSize, bilinear), ImageNet normalisation, zero padding (centred) to
a square of `max_size`; anchors 16/32, 64/128, 256/512 at strides 8/16/32;
variances 0.1/0.2; softmax score > threshold (0.7), NMS at IoU 0.4; boxes
and five landmarks (eyes, nose, mouth corners) truncated to integers in
image pixels.
"""

from __future__ import annotations

import math
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dfrobust.core.errors import InputError

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _conv_bn(inp: int, oup: int, stride: int = 1, leaky: float = 0.0, relu: bool = True, kernel: int = 3) -> nn.Sequential:
    layers = [nn.Conv2d(inp, oup, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(oup)]
    if relu:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return nn.Sequential(*layers)


class SSH(nn.Module):
    """Single-stage headless context module: 3x3, 5x5 and 7x7 receptive fields concatenated."""

    def __init__(self, channels: int):
        super().__init__()
        leaky = 0.1 if channels <= 64 else 0.0
        self.conv3X3 = _conv_bn(channels, channels // 2, relu=False)
        self.conv5X5_1 = _conv_bn(channels, channels // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn(channels // 4, channels // 4, relu=False)
        self.conv7X7_2 = _conv_bn(channels // 4, channels // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn(channels // 4, channels // 4, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5 = self.conv5X5_1(x)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(c5), self.conv7x7_3(self.conv7X7_2(c5))], dim=1))


class FPN(nn.Module):
    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        leaky = 0.1 if channels <= 64 else 0.0
        self.output1 = _conv_bn(in_channels[0], channels, leaky=leaky, kernel=1)
        self.output2 = _conv_bn(in_channels[1], channels, leaky=leaky, kernel=1)
        self.output3 = _conv_bn(in_channels[2], channels, leaky=leaky, kernel=1)
        self.merge1 = _conv_bn(channels, channels, leaky=leaky)
        self.merge2 = _conv_bn(channels, channels, leaky=leaky)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return [o1, o2, o3]


class _Head(nn.Module):
    def __init__(self, channels: int, outputs: int, anchors: int = 2):
        super().__init__()
        self.outputs = outputs
        self.conv1x1 = nn.Conv2d(channels, anchors * outputs, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.outputs)


class RetinaFace(nn.Module):
    """ResNet-50 body (layers 2-4), FPN and SSH with 256 channels; per level, 2 anchors
    with class (2), box (4) and landmark (10) heads. Module names as retinaface-pytorch's."""

    def __init__(self, channels: int = 256):
        super().__init__()
        from torchvision.models import resnet50
        from torchvision.models._utils import IntermediateLayerGetter

        self.body = IntermediateLayerGetter(resnet50(weights=None), {"layer2": 1, "layer3": 2, "layer4": 3})
        self.fpn = FPN([512, 1024, 2048], channels)
        self.ssh1, self.ssh2, self.ssh3 = SSH(channels), SSH(channels), SSH(channels)
        self.ClassHead = nn.ModuleList([_Head(channels, 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(channels, 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(channels, 10) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fpn = self.fpn(list(self.body(x).values()))
        features = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        boxes = torch.cat([head(f) for head, f in zip(self.BboxHead, features)], dim=1)
        classes = torch.cat([head(f) for head, f in zip(self.ClassHead, features)], dim=1)
        landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features)], dim=1)
        return boxes, classes, landmarks


def priors(height: int, width: int) -> torch.Tensor:
    """Anchors (cx, cy, w, h) in pixels of a height x width input, in the heads' order."""
    out = []
    for sizes, step in zip(MIN_SIZES, STEPS):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy, cx = torch.meshgrid((torch.arange(rows) + 0.5) * step, (torch.arange(cols) + 0.5) * step, indexing="ij")
        level = [torch.stack([cx, cy, torch.full_like(cx, s), torch.full_like(cx, s)], dim=-1) for s in sizes]
        out.append(torch.stack(level, dim=2).reshape(-1, 4))  # (row, col, anchor) order
    return torch.cat(out).float()


def decode(loc: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Box regressions -> [x0, y0, x1, y1] in pixels."""
    centre = anchors[:, :2] + loc[:, :2] * VARIANCES[0] * anchors[:, 2:]
    size = anchors[:, 2:] * torch.exp(loc[:, 2:] * VARIANCES[1])
    return torch.cat([centre - size / 2, centre + size / 2], dim=1)


def decode_landmarks(pre: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Landmark regressions -> (n, 5, 2) points in pixels."""
    pts = pre.view(-1, 5, 2)
    return anchors[:, None, :2] + pts * VARIANCES[0] * anchors[:, None, 2:]


def load_retinaface(weights: str | Path, device: str | torch.device = "cpu", where: str = "faces.retinaface.weights") -> RetinaFace:
    """The network with the published state dict: the release's .zip (one .pth inside) or the .pth itself."""
    path = Path(weights) if weights else None
    if path is None or not path.is_file():
        raise InputError(f"config key '{where}': weights file {weights!r} does not exist")
    try:
        state = _read_state(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user problem
        raise InputError(f"{path}: cannot read RetinaFace weights ({err})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    net = RetinaFace()
    try:
        net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    except (RuntimeError, AttributeError) as err:
        raise InputError(f"{path}: not retinaface_resnet50_2020-07-20 weights ({str(err).splitlines()[0]})") from err
    return net.to(device).eval()


def _read_state(path: Path) -> dict:
    """torch.load, unwrapping the release's zip (a plain zip holding one .pth, not torch's own zip format)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            inner = [n for n in names if n.endswith((".pth", ".pt"))]
            if len(inner) == 1 and not any(n.endswith("data.pkl") for n in names):
                with tempfile.TemporaryDirectory() as tmp:
                    return torch.load(zf.extract(inner[0], tmp), map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=True)


@torch.no_grad()
def predict(net: RetinaFace, image: np.ndarray, max_size: int | None = 2048, score_threshold: float = 0.7,
            nms_threshold: float = 0.4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces in an RGB uint8 image: boxes (k, 4) int [x0, y0, x1, y1], scores (k,), landmarks (k, 5, 2) int,
    best score first. `max_size` None runs at the image's own size (padded to a multiple of 32)."""
    import albumentations as A
    from torchvision.ops import nms

    height, width = image.shape[:2]
    if max_size:
        resized = A.LongestMaxSize(max_size=max_size, p=1)(image=image)["image"]
        side_h = side_w = max_size
        coeff = max(height, width) / max_size
    else:
        resized = image
        side_h, side_w = -(-height // 32) * 32, -(-width // 32) * 32
        coeff = 1.0
    x = (resized.astype(np.float32) / 255 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    pad_y, pad_x = side_h - x.shape[0], side_w - x.shape[1]
    top, left = pad_y // 2, pad_x // 2
    x = np.pad(x, ((top, pad_y - top), (left, pad_x - left), (0, 0)))
    device = next(net.parameters()).device
    loc, conf, land = net(torch.from_numpy(x).permute(2, 0, 1)[None].to(device))
    anchors = priors(side_h, side_w).to(device)
    scores = F.softmax(conf[0], dim=-1)[:, 1]
    keep = torch.where(scores > score_threshold)[0]
    keep = keep[scores[keep].argsort(descending=True)]
    boxes, points, scores = decode(loc[0][keep], anchors[keep]), decode_landmarks(land[0][keep], anchors[keep]), scores[keep]
    kept = nms(boxes, scores, nms_threshold)
    # as the package: integer boxes in the padded image, unpadded, scaled back and truncated
    boxes = boxes[kept].int().cpu().numpy().astype(np.float64)
    points, scores = points[kept].cpu().numpy(), scores[kept].cpu().numpy().astype(np.float32)
    boxes -= [left, top, left, top]
    points -= [left, top]
    boxes, points = (boxes * coeff).astype(np.int64), (points * coeff).astype(np.int64)
    valid = (np.clip(boxes[:, 0], 0, width - 1) < width - 1) & (np.clip(boxes[:, 1], 0, height - 1) < height - 1)
    return boxes[valid].reshape(-1, 4), scores[valid], points[valid].reshape(-1, 5, 2)
