"""Trained detectors: the weights.pt a training run writes, and loading it back
for scoring (eval mode, its own preprocessing, nothing downloaded); and weights
trained elsewhere, in their authors' formats (dfrobust.detectors.formats),
loaded the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from dfrobust.core.config import deep_update
from dfrobust.detectors.base import Detector
from dfrobust.detectors.formats import (ANY, FORMATS, WEIGHTS_FORMAT, describe_mismatch, fit_state, mismatch, read_checkpoint,
                                        weights_format_of)
from dfrobust.detectors.registry import available_detectors, build_detector, resolve_config
from dfrobust.core.errors import InputError
from dfrobust.core.io import atomic_path


def pick_device(device: str | None = None) -> torch.device:
    """None or "auto": CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def save_weights(path: str | Path, detector: Detector, state_dict: dict, epoch: int, val_auc: float) -> None:
    """weights.pt: the selected model plus what is needed to rebuild it, nothing else."""
    blob = {
        "format": WEIGHTS_FORMAT,
        "method": detector.name,
        "config": detector.cfg,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "epoch": int(epoch),
        "val_auc": float(val_auc),
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_trained(model_dir: str | Path, device: str | None = None) -> Detector:
    """The detector saved in `model_dir`/weights.pt (or that file), in eval mode.

    It is rebuilt from its saved config with `pretrained: false` (nothing is
    downloaded) and carries its own preprocessing (input size, mean/std).
    `detector.trained` holds the selected epoch and its validation AUC.
    """
    path = Path(model_dir)
    if path.is_dir():
        path = path / "weights.pt"
    if not path.is_file():
        raise InputError(f"{path}: trained model weights do not exist")
    blob = read_checkpoint(path)
    if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
        raise InputError(f"{path}: not a dfrobust weights file (format {WEIGHTS_FORMAT})")
    return load_weights(path, blob["method"], "dfrobust", {}, device=device, blob=blob)


def load_weights(path: str | Path, method: str, fmt: str, cfg: Mapping[str, Any], settings: Mapping | None = None,
                 device: str | None = None, blob: Any = None) -> Detector:
    """Detector `method` with the weights of `path`, a file in format `fmt`, in eval mode.

    `cfg` is the detector's config block (partial: the class's defaults fill it), with the
    format's settings (input size, normalisation, crop...) and then the model's own
    `settings` laid over it; for format `dfrobust` the file's saved config takes the
    block's place. The file must fit the detector exactly
    (dfrobust.detectors.formats.fit_state): nothing is loaded otherwise.
    `detector.trained` says what was loaded (path, format, epoch where the file has one).
    """
    detector, state, info = _fitted(Path(path), method, fmt, cfg, settings, blob, meta=False)
    detector.load_state_dict(state, strict=True)
    detector.trained = {"epoch": info.get("epoch"), "val_auc": info.get("val_auc"), "path": str(path), "format": fmt}
    return detector.to(pick_device(device)).eval()


def check_weights(path: str | Path, method: str, fmt: str, cfg: Mapping[str, Any], settings: Mapping | None = None) -> dict:
    """Whether `path` fits detector `method` as format `fmt` (what load_weights would load), without
    building the network's weights (a detector on the meta device): an InputError naming the file
    and the first keys that do not fit, else a summary (tensors, the detector's input size)."""
    detector, state, info = _fitted(Path(path), method, fmt, cfg, settings, None, meta=True)
    return {"tensors": len(state), "input_size": detector.input_size, "epoch": info.get("epoch")}


def _fitted(path: Path, method: str, fmt: str, cfg: Mapping[str, Any], settings: Mapping | None, blob: Any,
            meta: bool) -> tuple[Detector, dict, dict]:
    """(detector built for the file, its state dict from the file, what the file says)."""
    form = weights_format_of(fmt)
    if blob is None:
        blob = read_checkpoint(path)
    state, info = form.convert(blob, method, path)
    base = info["config"] if fmt == "dfrobust" else deep_update(dict(cfg), form.settings_for(method, "format"))
    cfg = resolve_config(method, deep_update(base, dict(settings or {})))
    if form.supplied and cfg["pretrained"] is False:
        raise InputError(f"{path}: format {fmt} holds no {form.lacks} weights; detectors.{method}.pretrained "
                         "must supply them (true: the ImageNet weights the authors used, or a local file)")
    if not form.supplied or meta:
        cfg["pretrained"] = False  # the file holds every weight (or only keys and shapes are checked): nothing downloaded
    if meta:
        with torch.device("meta"):
            detector = build_detector(method, cfg)
    else:
        detector = build_detector(method, cfg)
    if method in form.adapt:
        form.adapt[method](detector)
    state = fit_state(detector.state_dict(), state, path, fmt, method, info.get("names"), form.supplied, values=not meta)
    return detector, state, info


def inspect_file(path: str | Path, method: str | None = None, fmt: str | None = None) -> dict:
    """What a weights file is: how it reads (refused if it needs code), and, for every format and
    detector (or those named), whether it fits, else which keys do not. Fitting candidates
    first, then the others by how many keys do not fit. Detectors are built on the meta
    device (no weights), with their default settings and the format's."""
    path = Path(path)
    blob = read_checkpoint(path)
    found = {"file": str(path), "holds": _holds(blob), "candidates": []}
    for form in FORMATS.values():
        if fmt and form.name != fmt:
            continue
        methods = available_detectors() if ANY in form.settings else list(form.settings)
        if form.name == "dfrobust" and isinstance(blob, Mapping) and blob.get("format") == WEIGHTS_FORMAT:
            methods = [blob["method"]]  # the file says whose weights it holds
        elif ANY in form.settings:
            try:  # one line for a file that is not this format's at all
                form.convert(blob, methods[0], path)
            except InputError as err:
                methods = []
                if not method:
                    found["candidates"].append({"format": form.name, "method": ANY, "fits": False, "wrong": None,
                                                "problem": str(err).split(": ", 1)[-1]})
        for name in methods:
            if method and name != method:
                continue
            entry = {"format": form.name, "method": name}
            try:
                state, info = form.convert(blob, name, path)
                cfg = info["config"] if form.name == "dfrobust" else deep_update(resolve_config(name, {}),
                                                                                 form.settings_for(name, "format"))
                with torch.device("meta"):
                    detector = build_detector(name, {**cfg, "pretrained": False})
                if name in form.adapt:
                    form.adapt[name](detector)
                problems = mismatch(detector.state_dict(), state, info.get("names") or {}, form.supplied)
            except InputError as err:  # not this format's wrapper, or not this detector's file
                entry.update(fits=False, wrong=None, problem=str(err).split(": ", 1)[-1])
                found["candidates"].append(entry)
                continue
            wrong = sum(map(len, problems.values()))
            entry.update(fits=wrong == 0, wrong=wrong, tensors=len(state), epoch=info.get("epoch"),
                         problem=describe_mismatch(problems) or None,
                         settings={k: v for k, v in cfg.items() if k in ("input_size", "mean", "std", "crop", "backbone")})
            found["candidates"].append(entry)
    found["candidates"].sort(key=lambda c: (not c["fits"], c["wrong"] is None, c["wrong"] or 0))
    return found


def _holds(blob: Any) -> str:
    if isinstance(blob, Mapping):
        n = sum(isinstance(v, torch.Tensor) for v in blob.values())
        inner = {k: sum(isinstance(t, torch.Tensor) for t in v.values()) for k, v in blob.items() if isinstance(v, Mapping)}
        more = "".join(f", {n_} tensors under {k!r}" for k, n_ in inner.items() if n_)
        keys = list(blob)[:6]
        return f"a dict of {len(blob)} entries ({n} tensors{more}; keys {keys}{', ...' if len(blob) > 6 else ''})"
    return f"a {type(blob).__name__}"
