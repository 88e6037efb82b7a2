"""checkpoint.pt: everything a killed training job needs to continue as if it
had never stopped (model, optimiser, scheduler, the RNG states of python,
numpy and torch, the epoch, the best model so far, the log rows, and the
training procedure's own state, e.g. an adversarial generator).

A checkpoint is only resumed when its fingerprint (method, resolved
config, seed, and the content of the face shards' summaries) matches the
current run; otherwise training starts over rather than mixing settings.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from dfrobust.core.io import atomic_path

FORMAT = "dfrobust-checkpoint/1"


def fingerprint(method: str, cfg: dict, seed: int, train_shards: Sequence[Path], val_shards: Sequence[Path],
                procedure: dict | None = None) -> str:
    """Identity of a training run: settings (the procedure's too) plus data (shard summaries and sizes)."""
    digest = hashlib.sha256()
    settings = {"method": method, "config": cfg, "seed": seed}
    if procedure and procedure["name"] != "plain":
        settings["procedure"] = procedure
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for split, shards in (("train", train_shards), ("val", val_shards)):
        for path in shards:
            path = Path(path)
            digest.update(f"{split}:{path.name}:{path.stat().st_size}:".encode())
            digest.update(path.with_suffix(".json").read_bytes())
    return digest.hexdigest()


def rng_state() -> dict[str, Any]:
    """States of every global generator, as plain lists and tensors (loadable with weights_only)."""
    np_state = np.random.get_state()
    state = {
        "python": _to_lists(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_to_tuples(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, *, fingerprint: str, epoch: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler, best: dict, rows: list[dict],
                    procedure: dict | None = None) -> None:
    """Write atomically: a kill during the write leaves the previous checkpoint."""
    blob = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "best": best,
        "rows": rows,
        "procedure": procedure or {},
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_checkpoint(path: str | Path, expected_fingerprint: str) -> tuple[dict | None, str]:
    """(checkpoint, why) - checkpoint is None when there is none to resume."""
    path = Path(path)
    if not path.is_file():
        return None, "no checkpoint"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - an unreadable checkpoint means start over
        return None, f"{path} unreadable ({err}); starting over"
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        return None, f"{path} is not a dfrobust checkpoint; starting over"
    if blob["fingerprint"] != expected_fingerprint:
        return None, f"{path} belongs to other settings or data; starting over"
    return blob, f"resuming from {path} after epoch {blob['epoch']}"


def restore(blob: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler) -> None:
    """Put model, optimiser, scheduler and RNGs back where the checkpoint left them."""
    model.load_state_dict(blob["model"])
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    set_rng_state(blob["rng"])


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, tuple) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x
