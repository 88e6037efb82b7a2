"""Weights trained elsewhere: the files other projects' code saves, read as they are and
mapped onto this project's detectors, with the preprocessing that code used.

A model row may name such a file instead of being trained:

    {method: sbi, weights: /ckpt/FFraw.tar, format: sbi, name: sbi_official}

Each format is one reader (`@weights_format`): what the authors' code saves (its
wrapper and key names, read from their code: `source`), how its keys map onto the
project's detector, and the detector settings their code used at test time (input
size, normalisation, crop; `settings`, per detector it fits). Colour order is RGB in
every format (SBI and DeepfakeBench convert OpenCV's BGR frames to RGB; PIL reads RGB),
as the project's face crops are.

A file is untrusted input: it is read with `torch.load(weights_only=True)` (or as
safetensors), never unpickled with code, and must fit the detector exactly: every
tensor of the detector present (but `num_batches_tracked`, which old files lack and
eval mode never reads), no tensor left over, every shape equal; otherwise it fails
before anything is scored, naming the file and the first keys that do not fit.

    format             detectors                         what the file is
    dfrobust           any                               this project's weights.pt (its own config)
    state_dict         any                               the detector's own state_dict() (`module.` removed)
    sbi                sbi                               SelfBlendedImages' checkpoint (FFraw.tar, FFc23.tar)
    deepfakebench      xception, efficientnet_b4,        DeepfakeBench's ckpt_best.pth of its xception,
                       capsule                           efficientnetb4 and capsule_net detectors
    capsule_forensics  capsule                           Capsule-Forensics-v2's capsule_<epoch>.pt
                                                         (VGG19 extractor: `pretrained`, torchvision's)
"""

from __future__ import annotations

import math
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from dfrobust.core.errors import InputError

ANY = "*"  # a format that fits every detector
WEIGHTS_FORMAT = "dfrobust-detector/1"  # this project's weights.pt (dfrobust.detectors.inference.save_weights)
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
HALF = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
FF_CROP = {"box": "face", "scale": 1.3, "shape": "square"}  # the nearest to their crops (docs/checkpoints.md)
SHOWN = 5  # keys named in an error


@dataclass(frozen=True)
class WeightsFormat:
    name: str
    summary: str
    source: str  # where the layout and the preprocessing were read
    settings: Mapping[str, dict]  # detector -> settings its rows take over the detector's block (ANY: every detector)
    convert: Callable[[Any, str, Path], tuple[dict, dict]]  # (file contents, detector, path) -> (state dict, info)
    adapt: Mapping[str, Callable[[nn.Module], None]] = field(default_factory=dict)  # detector -> change after building
    supplied: tuple[str, ...] = ()  # key prefixes the file lacks: the detector's `pretrained` weights supply them

    @property
    def lacks(self) -> str:
        """What the file lacks, in words (its `supplied` modules)."""
        return ", ".join(prefix.rstrip(".") for prefix in self.supplied)

    def settings_for(self, method: str, where: str) -> dict:
        if ANY in self.settings:
            return dict(self.settings[ANY])
        if method not in self.settings:
            raise InputError(f"config key '{where}': format {self.name} holds weights of detector(s) "
                             f"{', '.join(self.settings)}, not {method!r}")
        return dict(self.settings[method])


FORMATS: dict[str, WeightsFormat] = {}


def weights_format(name: str, summary: str, source: str, settings: Mapping[str, dict],
                   adapt: Mapping[str, Callable] | None = None, supplied: tuple[str, ...] = ()):
    """Decorator: register a format's converter (the function), with what it fits and implies."""

    def decorate(convert):
        FORMATS[name] = WeightsFormat(name, summary, source, settings, convert, dict(adapt or {}), supplied)
        return convert

    return decorate


def weights_format_of(name: str, where: str = "format") -> WeightsFormat:
    if name not in FORMATS:
        raise InputError(f"config key '{where}': unknown weights format {name!r} (known: {', '.join(FORMATS)})")
    return FORMATS[name]


def describe() -> dict[str, dict]:
    """The formats as plain data, for planning without importing the detectors
    (dfrobust.config caches it beside the generated schemas)."""
    return {f.name: {"summary": f.summary, "source": f.source, "settings": {m: dict(s) for m, s in f.settings.items()},
                     "supplied": list(f.supplied), "lacks": f.lacks} for f in FORMATS.values()}


# -- reading a file safely ----------------------------------------------------------------------
def read_checkpoint(path: str | Path) -> Any:
    """What a checkpoint file holds, read without running any of its code: torch.load with
    weights_only=True (tensors, dicts, lists, numbers, strings), or safetensors."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: weights file does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same user problem
            raise InputError(f"{path}: not a readable safetensors file ({_first_line(err)})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise InputError(refusal(path, err)) from None
    except Exception as err:  # noqa: BLE001
        raise InputError(f"{path}: not a PyTorch checkpoint, or a truncated one ({type(err).__name__}: "
                         f"{_first_line(err) or 'the file ends early'})") from None


def refusal(path: Path, err: Exception) -> str:
    """Why torch's weights-only reader refused a file, and how to convert it (never: load it with code)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = next((line for line in lines if "GLOBAL" in line), None) or next(
        (line for line in lines if line.startswith("Unsupported")), lines[-1] if lines else type(err).__name__)
    return (f"{path}: refused: it is not plain tensors that torch.load(weights_only=True) can read ({reason}); a weights "
            "file from elsewhere is never unpickled with code. If it is a pickled model or holds other Python objects, "
            "convert it where you trust its source: torch.save(<the model>.state_dict(), 'weights.pth') (or its "
            "{'model': state_dict, ...} dict without the other objects), then name the new file")


def _first_line(err: Exception) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), "")


def tensors(value: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    """A mapping of names to tensors (`module.` prefixes of DataParallel removed), or an error."""
    if not isinstance(value, Mapping) or not value:
        raise InputError(f"{path}: not {what}: expected a mapping of names to tensors, got {_kind(value)}")
    bad = [k for k, v in value.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputError(f"{path}: not {what}: expected a mapping of names to tensors; {bad[:SHOWN]} hold "
                         f"{_kind(value[bad[0]])} (a checkpoint with more than weights? `dfrobust inspect-weights {path}`)")
    return {k.removeprefix("module."): v for k, v in value.items()}


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"a dict with keys {list(value)[:SHOWN]}"
    return f"a {type(value).__name__}"


# -- fitting a state dict to a detector -----------------------------------------------------------
def fit_state(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], path: Path, fmt: str, method: str,
              names: Mapping[str, str] | None = None, supplied: tuple[str, ...] = (), values: bool = True
              ) -> dict[str, torch.Tensor]:
    """`state` checked against the detector's `own` state dict: the same keys (those under
    `supplied` come from the detector, and a missing `num_batches_tracked` from it too), the
    same shapes, and (`values`) finite floating values, cast to float32. `names` maps a
    converted key back to the file's, for the message. Raises an InputError naming the first
    keys that do not fit."""
    names = names or {}
    problems = mismatch(own, state, names, supplied)
    if any(problems.values()):
        raise InputError(f"{path}: does not fit detector {method} as format {fmt} (nothing loaded): "
                         f"{describe_mismatch(problems)} (`dfrobust inspect-weights {path}` says what it fits)")
    out = {}
    for key, value in state.items():
        if value.is_floating_point() and values:
            value = value.float()
            if not torch.isfinite(value).all():
                raise InputError(f"{path}: tensor {names.get(key, key)} holds NaN or infinite values")
        out[key] = value
    for key, value in own.items():
        if key not in out:  # supplied by the detector's `pretrained`, or a num_batches_tracked
            out[key] = value
    return out


def mismatch(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], names: Mapping[str, str],
             supplied: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """The keys that do not fit: the detector's missing from the file, the file's not in the
    detector (named as in the file), and those whose shapes differ."""
    return {
        "missing from the file": [k for k in own if k not in state and not k.startswith(supplied)
                                  and not k.endswith("num_batches_tracked")],
        "not in the detector": [names.get(k, k) for k in state if k not in own],
        "shape differs": [f"{names.get(k, k)} {tuple(v.shape)} (detector: {k} {tuple(own[k].shape)})"
                          for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)],
    }


def describe_mismatch(problems: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{label} {len(keys)}: {', '.join(keys[:SHOWN])}{', ...' if len(keys) > SHOWN else ''}"
                     for label, keys in problems.items() if keys)


# -- efficientnet-pytorch (lukemelas/EfficientNet-PyTorch 0.7.1) -> timm names ---------------------
# efficientnet_pytorch/model.py: MBConvBlock's attributes; timm/models/_efficientnet_blocks.py:
# DepthwiseSeparableConv (blocks without expansion: the first stage) and InvertedResidual.
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
              "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_BLOCK = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def efficientnet_pytorch_names(state: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """efficientnet-pytorch key -> timm key. Its `_blocks` is one flat list; timm's `blocks` a
    list of stages: a new stage starts where a block's output width changes (every EfficientNet
    stage has its own width). Keys neither knows are left as they are (reported as not fitting)."""
    widths = {int(m[1]): v.shape[0] for k, v in state.items() if (m := _BLOCK.match(k)) and m[2] == "_project_conv"}
    place, stage, index, last = {}, -1, 0, None
    for block in sorted(widths):
        if widths[block] != last:
            stage, index, last = stage + 1, 0, widths[block]
        place[block], index = (stage, index), index + 1
    expands = {int(m[1]) for k in state if (m := _BLOCK.match(k)) and m[2] == "_expand_conv"}
    out = {}
    for key in state:
        m = _BLOCK.match(key)
        if m and int(m[1]) in place and m[2] in (_INVERTED if int(m[1]) in expands else _SEPARABLE):
            stage, index = place[int(m[1])]
            names = _INVERTED if int(m[1]) in expands else _SEPARABLE
            out[key] = f"blocks.{stage}.{index}.{names[m[2]]}.{m[3]}"
        elif not m and key.split(".", 1)[0] in _TOP:
            module, leaf = key.split(".", 1)
            out[key] = f"{_TOP[module]}.{leaf}"
        else:
            out[key] = key
    return out


class FixedPadConv2d(nn.Conv2d):
    """A convolution with fixed zero padding (left, right, top, bottom) whatever its input size:
    efficientnet-pytorch's Conv2dStaticSamePadding, whose "same" padding is computed once, for the
    network's nominal image size. Its parameters keep the names of the convolution it replaces."""

    def __init__(self, conv: nn.Conv2d, pad: tuple[int, int, int, int]):
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, conv.dilation, conv.groups,
                         conv.bias is not None, device=conv.weight.device)
        self.pad = tuple(int(p) for p in pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


def _static_same(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """efficientnet-pytorch's padding (before, after) for an input `size` (utils.Conv2dStaticSamePadding)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def efficientnet_pytorch_padding(net: nn.Module, image_size: int, stem_padded: bool) -> None:
    """Give a timm TF-style EfficientNet the padding of an efficientnet-pytorch one built for
    `image_size` (B4: 380): every strided convolution (timm pads those for the actual input) gets
    the fixed padding efficientnet-pytorch computed; the stem none when `stem_padded` is false
    (DeepfakeBench replaces it by a plain unpadded convolution). Stride-1 convolutions pad
    symmetrically in both. Exact at any input size (not only image_size)."""
    size = image_size
    stem = net.conv_stem
    pad = _static_same(size, stem.kernel_size[0], stem.stride[0]) if stem_padded else (0, 0)
    net.conv_stem = FixedPadConv2d(stem, (*pad, *pad))
    size = math.ceil(size / stem.stride[0])
    for stage in net.blocks:
        for block in stage:
            conv = block.conv_dw
            if conv.stride[0] > 1:
                pad = _static_same(size, conv.kernel_size[0], conv.stride[0])
                block.conv_dw = FixedPadConv2d(conv, (*pad, *pad))
            size = math.ceil(size / conv.stride[0])


# -- the formats ------------------------------------------------------------------------------------
@weights_format("dfrobust", "this project's weights.pt (what training writes; `pretrained` reads it too)",
                "dfrobust.detectors.inference.save_weights", {ANY: {}})
def _dfrobust(blob: Any, method: str, path: Path) -> tuple[dict, dict]:
    if not isinstance(blob, Mapping) or blob.get("format") != WEIGHTS_FORMAT:
        raise InputError(f"{path}: not a dfrobust weights file (format {WEIGHTS_FORMAT}); got {_kind(blob)}")
    if blob["method"] != method:
        raise InputError(f"{path}: the weights of detector {blob['method']!r}, not {method!r}")
    info = {"epoch": blob["epoch"], "val_auc": blob["val_auc"], "config": dict(blob["config"])}
    return tensors(blob["state_dict"], path, "a dfrobust state dict"), info


@weights_format("state_dict", "the detector's own state_dict(), saved by torch.save or as safetensors",
                "torch.nn.Module.state_dict", {ANY: {"pretrained": False}})
def _state_dict(blob: Any, method: str, path: Path) -> tuple[dict, dict]:
    return tensors(blob, path, "a state dict"), {}


SBI_SETTINGS = {"pretrained": False, "backbone": "tf_efficientnet_b4", "input_size": 380, "mean": [0.0, 0.0, 0.0],
                "std": [1.0, 1.0, 1.0], "crop": {"box": "retinaface", "scale": 1.25, "shape": "box"}}


@weights_format(
    "sbi", "SelfBlendedImages' checkpoint: {'model': Detector.state_dict(), 'optimizer': ..., 'epoch': ...}; "
           "their Detector's `net` is efficientnet-pytorch's EfficientNet-B4 (AdvProp), 2 classes",
    "mapooon/SelfBlendedImages src/train_sbi.py (torch.save), src/model.py (Detector), src/inference/preprocess.py "
    "(RetinaFace box + 1/8 of its width and height on each side, 380x380 bilinear, RGB, x/255)",
    {"sbi": SBI_SETTINGS},
    adapt={"sbi": lambda det: efficientnet_pytorch_padding(det.net, 380, stem_padded=True)})
def _sbi(blob: Any, method: str, path: Path) -> tuple[dict, dict]:
    if not isinstance(blob, Mapping) or not isinstance(blob.get("model"), Mapping):
        raise InputError(f"{path}: not a SelfBlendedImages checkpoint: expected a dict with a 'model' state dict "
                         f"(their train_sbi.py saves {{'model', 'optimizer', 'epoch'}}), got {_kind(blob)}")
    state = tensors(blob["model"], path, "an SBI 'model' state dict")
    inner = efficientnet_pytorch_names({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    names = {k: (f"net.{inner[k.removeprefix('net.')]}" if k.startswith("net.") else k) for k in state}
    epoch = blob.get("epoch")
    return ({names[k]: v for k, v in state.items()},
            {"epoch": epoch if isinstance(epoch, int) else None, "names": {v: k for k, v in names.items()}})


DFB_SETTINGS = {"pretrained": False, "input_size": 256, **HALF, "crop": FF_CROP}
DFB_SOURCE = ("SCLBD/DeepfakeBench training/trainer/trainer.py (save_ckpt: torch.save(model.state_dict())), "
              "training/networks/xception.py, efficientnetb4.py, training/detectors/capsule_net_detector.py, "
              "training/config/detector/{xception,efficientnetb4,capsule_net}.yaml (resolution 256, mean = std = 0.5), "
              "training/dataset/abstract_dataset.py (RGB)")


def _dfb_xception(state: dict) -> dict[str, str]:
    """DeepfakeBench Xception (FaceForensics++'s, as timm's legacy_xception) -> the project's:
    the classifier `last_linear` (`last_linear.1` with dropout) is timm's `fc`; `adjust_channel`
    is used only in their 'adjust_channel' mode, whose classifier takes 512 channels (a shape that
    does not fit), so it is dropped."""
    out = {}
    for key in state:
        if key.startswith("backbone.adjust_channel."):
            continue
        inner = key.removeprefix("backbone.")
        inner = re.sub(r"^last_linear\.(1\.)?", "fc.", inner)
        out[key] = f"net.{inner}" if key.startswith("backbone.") else key
    return out


def _dfb_efficientnet(state: dict) -> dict[str, str]:
    """DeepfakeBench EfficientNet-B4: `backbone.efficientnet.` (efficientnet-pytorch names, no `_fc`)
    and `backbone.last_layer` (the classifier) -> timm's names under `net.`."""
    inner = {k.removeprefix("backbone.efficientnet."): v for k, v in state.items() if k.startswith("backbone.efficientnet.")}
    names = efficientnet_pytorch_names(inner)
    out = {}
    for key in state:
        if key.startswith("backbone.efficientnet."):
            out[key] = "net." + names[key.removeprefix("backbone.efficientnet.")]
        elif key.startswith("backbone.last_layer."):
            out[key] = "net.classifier." + key.removeprefix("backbone.last_layer.")
        else:
            out[key] = key
    return out


def _capsule_names(prefix_vgg: str | None) -> Callable[[dict], dict[str, str]]:
    """Capsule-Forensics' names (DeepfakeBench keeps them) -> the project's capsule:
    fea_ext -> primary, routing_stats.route_weights -> routing.weights, and (DeepfakeBench) the
    VGG19 layers vgg_ext.vgg_1 -> extractor."""

    def names(state: dict) -> dict[str, str]:
        out = {}
        for key in state:
            if key.startswith("fea_ext."):
                out[key] = "primary." + key.removeprefix("fea_ext.")
            elif key == "routing_stats.route_weights":
                out[key] = "routing.weights"
            elif prefix_vgg and key.startswith(prefix_vgg):
                out[key] = "extractor." + key.removeprefix(prefix_vgg)
            else:
                out[key] = key
        return out

    return names


_DFB_NAMES = {"xception": _dfb_xception, "efficientnet_b4": _dfb_efficientnet, "capsule": _capsule_names("vgg_ext.vgg_1.")}


@weights_format(
    "deepfakebench", "DeepfakeBench's ckpt_best.pth: the detector's bare state_dict() (DataParallel's `module.` removed)",
    DFB_SOURCE,
    {"xception": DFB_SETTINGS, "efficientnet_b4": {**DFB_SETTINGS, "backbone": "tf_efficientnet_b4"}, "capsule": DFB_SETTINGS},
    adapt={"efficientnet_b4": lambda det: efficientnet_pytorch_padding(det.net, 380, stem_padded=False)})
def _deepfakebench(blob: Any, method: str, path: Path) -> tuple[dict, dict]:
    if isinstance(blob, Mapping) and isinstance(blob.get("state_dict"), Mapping):
        blob = blob["state_dict"]  # some versions wrap it ({'state_dict', 'R', 'c'} for their SVDD models)
    state = tensors(blob, path, "a DeepfakeBench state dict")
    names = _DFB_NAMES[method](state)
    return {names[k]: v for k, v in state.items() if k in names}, {"names": {v: k for k, v in names.items()}}


@weights_format(
    "capsule_forensics", "Capsule-Forensics-v2's capsule_<epoch>.pt: CapsuleNet.state_dict() (primary capsules and "
                         "routing; the VGG19 extractor is torchvision's ImageNet one, not in the file)",
    "nii-yamagishilab/Capsule-Forensics-v2 model_big.py (CapsuleNet, VggExtractor: vgg19 features[0:19]), "
    "train_binary_ffpp.py (torch.save(capnet.state_dict())), test_vid_binary_ffpp.py (Resize((300, 300)), ImageNet "
    "mean/std, PIL RGB)",
    {"capsule": {"input_size": 300, **IMAGENET, "crop": FF_CROP}},
    supplied=("extractor.",))
def _capsule_forensics(blob: Any, method: str, path: Path) -> tuple[dict, dict]:
    state = tensors(blob, path, "a Capsule-Forensics state dict")
    names = _capsule_names(None)(state)
    return {names[k]: v for k, v in state.items()}, {"names": {v: k for k, v in names.items()}}
