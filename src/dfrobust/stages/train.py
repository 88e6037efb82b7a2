"""Training (rules/train.smk): one model per (detector, training quality), and
the fetching of pretrained weights before it.

Cluster compute nodes often have no internet. The workflow fetches the
ImageNet weights of every detector with `pretrained: true` in a local rule
(on the login node), so the training jobs find them in the timm / torchvision
cache (HF_HOME, TORCH_HOME) and never download.
"""

from __future__ import annotations

import os
from pathlib import Path

from dfrobust.core.errors import InputError
from dfrobust.core.io import write_json
from dfrobust.core.seeding import derive_seed
from dfrobust.training import train


def train_model(method: str, cfg: dict, train_shards, val_shards, out_dir: str | Path, seed: int,
                key: tuple[str, str], train_on=None, procedure: dict | None = None, compute: dict | None = None) -> dict:
    """Train detector `method` on the given face shards (reals and the fakes of
    `train_on`), with the job's own seed, derived from the master seed and the
    model's key (its name and training set, e.g. ("xception", "c23"))."""
    return train(method, cfg, list(train_shards), list(val_shards), Path(out_dir), derive_seed(seed, "train", *key),
                 manipulations=train_on, procedure=procedure, compute=compute)


def fetch_pretrained(method: str, cfg: dict, marker: str | Path) -> dict:
    """Build the detector with pretrained weights (this downloads them once) and
    write a marker JSON recording where the caches are."""
    from dfrobust.detectors import build_detector

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
