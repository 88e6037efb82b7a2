"""Train one detector on face shards, choose its epoch on the validation split.

    train("xception", cfg, train_shards, val_shards, out_dir, seed)

writes to out_dir, each file atomically:
    weights.pt     the model of the epoch the detector's `selection` rule keeps: the best
                   validation AUC, or the latest of the five best (SBI's code)
    hparams.json   resolved hyper-parameters, seed, device, library versions, data counts
    log.csv        one row per epoch (rewritten after every epoch)
    curve.png      losses and validation AUC per epoch
    checkpoint.pt  rewritten after every epoch; a restarted run resumes from it and
                   ends with the same weights as an uninterrupted one

The test split is never an argument: selection cannot see it.
Note for the workflow: Snakemake deletes a job's declared outputs before
running it, so checkpoint.pt must not be a declared output (nor the model
directory as a whole) for a restarted job to find it.
"""

from __future__ import annotations

import math
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader
from tqdm import tqdm

from dfrobust.detectors.base import Detector
from dfrobust.detectors.data import FaceData
from dfrobust.detectors.inference import pick_device, save_weights
from dfrobust.detectors.registry import build_data, build_detector, resolve_config
from dfrobust.detectors.tensors import cat_collate, split_batch
from dfrobust.core.errors import InputError
from dfrobust.core.io import write_json
from dfrobust.core.seeding import derive_seed, seed_everything
from dfrobust.training.checkpoint import fingerprint, load_checkpoint, restore, save_checkpoint
from dfrobust.training.data import build_pool, stored_size
from dfrobust.training.logbook import plot_curve, write_log
from dfrobust.training.optim import build_optimizer, build_scheduler, steps_on_val_loss
from dfrobust.training.procedures import TrainingDiverged, build_procedure
from dfrobust.training.procedures.base import Plain


PROGRESS_EVERY_S = 300


def train_step(detector: Detector, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               labels: torch.Tensor, where: str = "") -> float:
    """One plain optimiser step on a batch of uint8 faces; returns the batch loss."""
    return Plain({}, detector).step(optimizer, images, labels, where)


def selects(rule: str, aucs: Sequence[float], best_auc: float) -> bool:
    """Whether the epoch just validated (the last of `aucs`, one per epoch so far) becomes the kept model.

    best_val_auc: its AUC beats every earlier one. latest_of_top5: it enters the five best
    checkpoints as SBI's code keeps them (the first five epochs, then any epoch whose AUC is
    at least the lowest of the five kept, which it replaces); the latest epoch to enter is
    the latest of the final five, the one the authors evaluate.
    """
    if rule == "latest_of_top5":
        kept: list[float] = []
        for auc in aucs[:-1]:
            if len(kept) < 5:
                kept.append(auc)
            elif auc >= min(kept):
                kept[kept.index(min(kept))] = auc
        return len(kept) < 5 or aucs[-1] >= min(kept)
    return aucs[-1] > best_auc


def loader_workers(device: torch.device) -> int:
    """Data-loader processes by default: none on a CPU (the cores train); on a GPU the
    job's CPU threads but one (torch's thread count, which the train rule sets to
    resources.gpu.cpus_per_gpu), the main process feeding the GPU."""
    return max(0, torch.get_num_threads() - 1) if device.type == "cuda" else 0


def evaluate(detector: Detector, loader: DataLoader) -> tuple[float, np.ndarray, np.ndarray]:
    """(mean loss, fake probabilities, labels) over a loader, in eval mode."""
    detector.eval()
    total, probs, labels = 0.0, [], []
    with torch.inference_mode(), detector.autocast():
        for batch in loader:
            images, y, extras = split_batch(batch)
            x = detector.preprocess(images)
            y = y.to(x.device)
            out = detector(x)
            with detector.batch_extras(extras):
                total += float(detector.loss(out, y)) * len(y)
            probs.append(detector.proba(out).float().cpu().numpy())
            labels.append(y.cpu().numpy())
    probs_all, labels_all = np.concatenate(probs), np.concatenate(labels)
    return total / len(labels_all), probs_all, labels_all


def train(method: str, cfg: dict | None, train_shards: Sequence[str | Path], val_shards: Sequence[str | Path],
          out_dir: str | Path, seed: int, device: str | None = None, log: Callable[[str], None] = print,
          num_workers: int | None = None, procedure: dict | None = None, manipulations=None,
          compute: dict | None = None) -> dict:
    """Train `method` with its config block `cfg`; see the module docstring for outputs.

    procedure: the training procedure and its settings ({"name": "pim", ...};
    None: plain), see dfrobust.training.procedures.
    manipulations: train and select only on the reals and these manipulations'
    fakes (None: every video of the shards).
    compute: the `compute` config block (precision, channels_last; None: float32).

    num_workers: data-loader processes; None: 0 on CPU (the cores train);
    on a GPU, the job's CPU threads but one (torch's thread count, which the
    train rule sets to its threads = resources.gpu.cpus_per_gpu), the main
    process feeding the GPU: SBI's blending would starve it otherwise. Every
    sample draws from its own seeded generator, so the result does not
    depend on it.
    Returns a summary: selected_epoch, best_val_auc, epochs, resumed_after.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_shards, val_shards = [Path(p) for p in train_shards], [Path(p) for p in val_shards]
    for path in train_shards + val_shards:
        if not path.is_file() or not path.with_suffix(".json").is_file():
            raise InputError(f"{path}: face shard (or its .json) does not exist")
    resolved = resolve_config(method, cfg)
    epochs, batch = int(resolved["epochs"]), int(resolved["batch_size"])
    if epochs < 1 or batch < 2:
        raise InputError(f"config key 'detectors.{method}': epochs must be >= 1 and batch_size >= 2")
    dev = pick_device(device)
    if num_workers is None:
        num_workers = loader_workers(dev)
    loader_kw = {"collate_fn": cat_collate, "num_workers": num_workers, "pin_memory": dev.type == "cuda"}

    seed_everything(seed)
    detector = build_detector(method, resolved).to(dev).set_compute(compute)
    data = build_data(method, resolved)
    if detector.weights_report:
        log(f"{method}: {detector.weights_report}")
    steps = build_procedure(procedure, detector)
    optimizer = build_optimizer(detector.trainable_parameters(), resolved["optimizer"], f"detectors.{method}.optimizer")
    scheduler = build_scheduler(optimizer, resolved["lr_schedule"], epochs, f"detectors.{method}.lr_schedule")
    fp = fingerprint(method, resolved, seed, train_shards, val_shards, {"name": steps.name, **steps.cfg})
    blob, why = load_checkpoint(out_dir / "checkpoint.pt", fp)
    if blob is not None or (out_dir / "checkpoint.pt").exists():
        log(f"{method}: {why}")

    with tempfile.TemporaryDirectory(prefix="dfrobust-train-") as tmp:
        def side(shards):  # the pool keeps the detector's faces, or the stored crops it cuts them from per sample
            return stored_size(shards) if data.keeps_stored_crops else data.input_size

        masks = data.pool_masks if data.needs_masks else None  # each face's manipulation mask (FFD)
        train_pool = build_pool(train_shards, int(resolved["frames_per_video"]), side(train_shards), data.train_labels, tmp,
                                "train", log, manipulations, view=data.pool_view, pick=data.pool_rows, masks=masks)
        val_pool = build_pool(val_shards, int(resolved["val_frames_per_video"]), side(val_shards), data.val_labels, tmp,
                              "val", log, manipulations, view=data.pool_view, pick=data.pool_rows, masks=masks)
        if len(data.val_labels) > 1 and len(np.unique(val_pool.labels)) < 2:
            raise InputError(f"validation faces have one class only ({', '.join(map(str, val_shards))}): no AUC to select on")
        val_ds = data.val_dataset(val_pool, derive_seed(seed, "val"))
        val_loader = DataLoader(val_ds, batch_size=max(1, batch // val_ds.images_per_item), shuffle=False, **loader_kw)
        first = data.train_dataset(train_pool, seed)
        for note in getattr(first, "notes", ()):
            log(note)
        unusable = getattr(first, "n_unusable", 0)
        if unusable:
            log(f"{method}: {unusable} training faces without usable landmarks (or RetinaFace box) are left out")

        start, best, rows = 0, {"epoch": 0, "val_auc": -math.inf, "state_dict": None}, []
        if blob is not None:
            restore(blob, detector, optimizer, scheduler)
            steps.load_state_dict(blob["procedure"])
            start, best, rows = blob["epoch"], blob["best"], blob["rows"]
        else:
            data.prepare(detector, train_pool)
        for epoch in range(start + 1, epochs + 1):
            row = _run_epoch(detector, data, steps, optimizer, scheduler, train_pool, val_loader, epoch, epochs, seed,
                             batch, loader_kw, log)
            row["resumed"] = int(epoch == start + 1 and start > 0)
            rows.append(row)
            if selects(resolved["selection"], [r["val_auc"] for r in rows], best["val_auc"]):
                best = {"epoch": epoch, "val_auc": row["val_auc"],
                        "state_dict": {k: v.detach().cpu().clone() for k, v in detector.state_dict().items()}}
            save_checkpoint(out_dir / "checkpoint.pt", fingerprint=fp, epoch=epoch, model=detector,
                            optimizer=optimizer, scheduler=scheduler, best=best, rows=rows, procedure=steps.state_dict())
            write_log(out_dir / "log.csv", rows)
            log(f"{method} epoch {epoch}/{epochs}: train_loss={row['train_loss']:.4f} val_loss={row['val_loss']:.4f} "
                f"val_auc={row['val_auc']:.4f} lr={row['lr']:.3g} ({row['seconds']:.1f} s, {row['images_per_s']:.1f} img/s)"
                + (" [resumed]" if row["resumed"] else ""))
        summaries = {"train": train_pool.summary(), "val": val_pool.summary()}
    resumed_after = [r["epoch"] - 1 for r in rows if r["resumed"]]

    save_weights(out_dir / "weights.pt", detector, best["state_dict"], best["epoch"], best["val_auc"])
    write_log(out_dir / "log.csv", rows)
    plot_curve(out_dir / "curve.png", rows, best["epoch"], f"{method} ({out_dir.name})")
    summary = {"selected_epoch": best["epoch"], "best_val_auc": best["val_auc"], "selection": resolved["selection"],
               "epochs": epochs, "resumed_after": resumed_after}
    summary["procedure"] = {"name": steps.name, **steps.cfg}
    write_json(out_dir / "hparams.json", _hparams(method, resolved, seed, dev, num_workers, train_shards, val_shards, summaries, summary))
    log(f"{method}: selected epoch {best['epoch']} (validation AUC {best['val_auc']:.4f}) -> {out_dir / 'weights.pt'}")
    return summary


def _run_epoch(detector: Detector, data: FaceData, steps, optimizer, scheduler, pool, val_loader, epoch, epochs, seed,
               batch, loader_kw, log) -> dict:
    t0 = time.perf_counter()
    detector.train()
    detector.start_epoch(epoch)
    ds = data.train_dataset(pool, derive_seed(seed, "train", epoch))
    items = min(max(1, batch // ds.images_per_item), len(ds))
    if items * ds.images_per_item < 2:
        raise InputError(f"{detector.name}: too few training faces for a batch ({len(ds)} items)")
    loader = DataLoader(ds, batch_size=items, shuffle=False, drop_last=True, **loader_kw)
    lr = float(optimizer.param_groups[0]["lr"])
    losses, n_images, last_report = [], 0, t0
    for step, batch in enumerate(tqdm(loader, desc=f"{detector.name} epoch {epoch}/{epochs}",
                                      disable=None, leave=False, mininterval=10), start=1):
        images, labels, extras = split_batch(batch)
        # every pass of the procedure's step (backward included: bf16 keeps float32's range); the items'
        # extras (FFD's masks) reach the detector's loss aside, so no procedure needs to know of them
        with detector.autocast(), detector.batch_extras(extras):
            losses.append(steps.step(optimizer, images, labels, f"epoch {epoch}, step {step}"))
        n_images += len(labels)
        if time.perf_counter() - last_report > PROGRESS_EVERY_S:  # logs are not terminals: no tqdm there
            last_report = time.perf_counter()
            log(f"{detector.name} epoch {epoch}/{epochs}: step {step}/{len(loader)}, "
                f"loss {np.mean(losses[-50:]):.4f}, {n_images / (last_report - t0):.1f} img/s")
    train_seconds = time.perf_counter() - t0
    if not steps_on_val_loss(scheduler):
        scheduler.step()
    val_loss, probs, labels = evaluate(detector, val_loader)
    if not np.isfinite(probs).all() or not math.isfinite(val_loss):
        raise TrainingDiverged(f"{detector.name}: non-finite validation output after epoch {epoch}")
    if steps_on_val_loss(scheduler):
        scheduler.step(val_loss)
    return {
        "epoch": epoch,
        "train_loss": float(np.mean(losses)),
        "val_loss": val_loss,
        "val_auc": float(roc_auc_score(labels, probs)),
        "lr": lr,
        "seconds": time.perf_counter() - t0,
        "images_per_s": n_images / train_seconds if train_seconds > 0 else float("nan"),
    }


def _hparams(method, resolved, seed, dev, num_workers, train_shards, val_shards, data, summary) -> dict:
    from dfrobust.core.provenance import code_version, library_versions

    return {
        "method": method,
        "config": resolved,
        "seed": seed,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "num_workers": num_workers,
        "versions": {"python": platform.python_version(), "dfrobust": code_version(), **library_versions()},
        "train_shards": [str(p) for p in train_shards],
        "val_shards": [str(p) for p in val_shards],
        "data": data,
        **summary,
    }
