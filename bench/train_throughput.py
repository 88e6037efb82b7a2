"""Training throughput of each detector: images per second of the training step
(forward, loss, backward, optimiser; SAM counts its two passes as one step),
and of the detector's own data pipeline (SBI's self-blending, one process).

    python bench/train_throughput.py                        # 64 px, batch 32, device auto
    python bench/train_throughput.py --size 299 --batch 64 --detectors xception
    python bench/train_throughput.py --paper --json out.json   # each detector at its paper input size and batch

Weights are random (pretrained: false, nothing is downloaded); speed does not
depend on them. Wall time on a shared machine is noisy: the table gives the
median and the best step, and CPU-bound runs also the process CPU time.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import numpy as np
import torch

from dfrobust.detectors import FaceData, available_detectors, build_data, build_detector, detector_class
from dfrobust.detectors.tensors import cat_collate
from dfrobust.training import train_step
from dfrobust.training.data import FacePool
from dfrobust.training.optim import build_optimizer
from benchutil import bench_device, sync
from synthetic import synthetic_videos


# Training images/s on a GPU, for the loader workers a detector needs: timm's published training
# benchmark (huggingface/pytorch-image-models, results/benchmark-train-amp-nhwc-pt112-cu113-rtx3090.csv:
# RTX 3090, AMP, channels-last) for each detector's backbone at (about) its paper input size. A data-centre
# GPU (A100, H100, H200) trains faster still, so the worker counts below are lower bounds for it.
GPU_RATES = {
    "xception": ("xception @299", 497.6),
    "sbi": ("tf_efficientnet_b4_ap @380", 242.1),
    "efficientnet_b4": ("tf_efficientnet_b4 @380", 241.8),
    "convnext_base": ("convnext_base @224", 338.7),
    "resnet50": ("resnet50 @224", 1218.0),
    "two_branch": ("densenet121 @224 (per face)", 913.7),
}


def trains_on_windows(name: str) -> bool:
    """A sequence detector (two_branch) trains on windows of faces, not single faces:
    bench/sequence_throughput.py measures it."""
    return detector_class(name).data_class.pool_rows is not FaceData.pool_rows


def synthetic_pool(size: int, n: int) -> FacePool:
    """n faces, half real, half fake, drawn at `size` pixels."""
    videos = max(1, n // 8)
    records = synthetic_videos(videos, 1, frames=8, size=size, seed=0)
    crops = np.concatenate([r.crops for r in records])[:n]
    return FacePool(crops=crops, landmarks=np.concatenate([r.landmarks for r in records])[:n],
                    labels=np.concatenate([[r.label] * r.n_faces for r in records])[:n].astype(np.int64),
                    video_index=np.zeros(len(crops), np.int64), videos=[])


def bench_step(name: str, size: int, batch: int, steps: int, warmup: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    det = build_detector(name, {"input_size": size, "pretrained": False, "batch_size": batch}).to(device).train()
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    y = torch.arange(batch) % 2
    if device.type == "cuda":
        x = x.pin_memory()
    times = []
    cpu0 = time.process_time()
    for i in range(warmup + steps):
        if i == warmup:
            cpu0 = time.process_time()
        sync(device)
        t0 = time.perf_counter()
        train_step(det, opt, x, y, f"bench step {i}")
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu0
    return {
        "step_median_s": statistics.median(times),
        "img_per_s": batch / statistics.median(times),
        "img_per_s_best": batch / min(times),
        "img_per_cpu_s": batch * steps / cpu if cpu > 0 else float("nan"),
        "params_m": sum(p.numel() for p in det.trainable_parameters()) / 1e6,
    }


def bench_data(name: str, size: int, batch: int) -> float:
    """Images per second of the detector's training items (uint8, collated), one process."""
    det = build_data(name, {"input_size": size, "pretrained": False})
    if det.keeps_stored_crops:  # SBI blends from stored crops at the video's resolution: a real face's
        from sbi_samples import stored_crop_pool  # (bench/, beside this script)

        pool = stored_crop_pool(det, 2 * batch)[0]
    else:
        pool = synthetic_pool(size, 2 * batch)
    ds = det.train_dataset(pool, seed=0)
    n_items = max(1, batch // ds.images_per_item)
    t0 = time.perf_counter()
    images, _ = cat_collate([ds[i % len(ds)] for i in range(n_items)])
    return len(images) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detectors", nargs="+", default=None, help="default: every registered detector")
    parser.add_argument("--size", type=int, default=64, help="input size in pixels (default 64)")
    parser.add_argument("--batch", type=int, default=32, help="images per step (default 32)")
    parser.add_argument("--paper", action="store_true", help="each detector at its own default input size and batch")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-data", action="store_true", help="skip the data-pipeline timing")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    device, where = bench_device(args.device, args.threads)
    names = args.detectors or [name for name in available_detectors() if not trains_on_windows(name)]
    print(f"device: {device} ({where}); torch {torch.__version__}", flush=True)
    header = (f"{'detector':<15} {'input':>5} {'batch':>5} {'params(M)':>9} {'img/s':>8} {'best':>8} {'img/CPU-s':>9} "
              f"{'data img/s':>10} {'workers@3090':>12}")
    print(header + "\n" + "-" * len(header), flush=True)
    results = []
    for name in names:
        defaults = detector_class(name).defaults
        size = defaults["input_size"] if args.paper else args.size
        batch = defaults["batch_size"] if args.paper else args.batch
        row = {"detector": name, "input_size": size, "batch": batch, "device": str(device)}
        row.update(bench_step(name, size, batch, args.steps, args.warmup, device))
        row["data_img_per_s"] = float("nan") if args.no_data else bench_data(name, size, batch)
        # loader workers (one core each) that keep up with the cited GPU rate at this input size
        source, rate = GPU_RATES.get(name, (None, float("nan")))
        row["gpu_rate_source"], row["gpu_img_per_s"] = source, rate
        row["workers_for_gpu"] = math.ceil(rate / row["data_img_per_s"]) if rate == rate and row["data_img_per_s"] > 0 else None
        results.append(row)
        workers = "n/a" if row["workers_for_gpu"] is None else str(row["workers_for_gpu"])
        print(f"{name:<15} {size:>5} {batch:>5} {row['params_m']:>9.1f} {row['img_per_s']:>8.1f} "
              f"{row['img_per_s_best']:>8.1f} {row['img_per_cpu_s']:>9.1f} {row['data_img_per_s']:>10.1f} {workers:>12}",
              flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": where, "torch": torch.__version__, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
