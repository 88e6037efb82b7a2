"""Fetch a detector's ImageNet weights into the local cache, once, before training.

Cluster compute nodes often have no internet. The workflow runs this as a
local rule (on the login node) for every detector with `pretrained: true`, so
that the training jobs find the weights in the timm / torchvision cache
(HF_HOME, TORCH_HOME) and never download.
"""

from __future__ import annotations

import os
from pathlib import Path

from dfrobust.errors import InputError
from dfrobust.io import write_json


def fetch_pretrained(method: str, cfg: dict, marker: str | Path) -> dict:
    """Build the detector with pretrained weights (this downloads them once) and
    write a marker JSON recording where the caches are."""
    from dfrobust.detectors.registry import build_detector

    if cfg.get("pretrained") is not True:
        raise InputError(f"detectors.{method}.pretrained is {cfg.get('pretrained')!r}: nothing to fetch")
    try:
        build_detector(method, cfg)
    except Exception as err:  # noqa: BLE001 - network and hub errors come in many types
        raise InputError(
            f"detectors.{method}: could not fetch the pretrained weights ({type(err).__name__}: {err}); run this rule "
            "where the internet is reachable (a login node), or set pretrained to a local weights file"
        ) from err
    info = {
        "method": method, "backbone": cfg.get("backbone"),
        "hf_home": os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface")),
        "torch_home": os.environ.get("TORCH_HOME", str(Path.home() / ".cache" / "torch")),
    }
    write_json(marker, info)
    return info
