"""Training throughput of the adversarial procedures (blurring adversarial
training and its variants) against plain training, in one run, one detector:
images per second of the whole training step (adversary, generator
updates, detector update), counting each clean face once.

    python bench/bat_throughput.py                                    # xception, 64 px, batch 16, CPU or GPU
    python bench/bat_throughput.py --detector xception --size 299 --batch 32 --json out.json
    python bench/bat_throughput.py --backbone efficientnet_b4 --size 380  # any timm backbone under xception's settings
    python bench/bat_throughput.py --blur-only --size 380 --batch 16  # the blur operator vs the unfold formula

Weights are random (pretrained: false); speed does not depend on them.
Procedures run with their default settings (generator width 64, 3 blocks,
kernel 9) unless --generator-width/--generator-blocks say otherwise. On a
GPU the table also gives the peak memory of each procedure's steps. Wall
time on a shared machine is noisy: the table gives the median and the best step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from dfrobust.detectors import build_detector, resolve_config
from dfrobust.training.blur import gaussian_weights, pixel_blur
from dfrobust.training.optim import build_optimizer
from dfrobust.training.procedures import build_procedure

from benchutil import bench_device, sync

PROCEDURES = ["plain", "grad_aat", "grad_sat", "grad_bat", "gen_bat", "two_gen_bat", "combined_at"]
GENERATORS = ("gen_bat", "two_gen_bat", "combined_at")


def bench(detector: str, settings: dict, procedure: dict, batch: int, steps: int, warmup: int,
          device: torch.device) -> dict:
    torch.manual_seed(0)
    det = build_detector(detector, resolve_config(detector, settings)).to(device).train()
    proc = build_procedure(procedure, det)
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    size = det.input_size
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    y = torch.arange(batch) % 2
    if device.type == "cuda":
        x = x.pin_memory()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        proc.step(opt, x, y, f"bench step {i}")
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    row = {"step_median_s": statistics.median(times), "img_per_s": batch / statistics.median(times),
           "img_per_s_best": batch / min(times)}
    if device.type == "cuda":
        row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def unfold_blur(images: torch.Tensor, inv_sigma: torch.Tensor, k: int) -> torch.Tensor:
    """The same blur written with unfold: every k x k neighbourhood copied (B C k^2 H W values)."""
    r = k // 2
    b, c, h, w = images.shape
    patches = torch.nn.functional.unfold(torch.nn.functional.pad(images, (r,) * 4, mode="reflect"), k)
    return (patches.view(b, c, k * k, h, w) * gaussian_weights(inv_sigma, k).transpose(1, 2)).sum(2)


def bench_blur(size: int, batch: int, k: int, steps: int, device: torch.device) -> list[dict]:
    """Forward + backward (in sigma, as the adversaries need) of both ways of writing the blur."""
    rows = []
    for name, blur in (("pixel_blur", pixel_blur), ("unfold", unfold_blur)):
        torch.manual_seed(0)
        x = torch.rand(batch, 3, size, size, device=device) * 255
        s = torch.rand(batch, 1, size, size, device=device, requires_grad=True)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for i in range(steps + 1):
            sync(device)
            t0 = time.perf_counter()
            blur(x, s, k).sum().backward()
            sync(device)
            if i:
                times.append(time.perf_counter() - t0)
        row = {"blur": name, "ms": 1000 * statistics.median(times)}
        if device.type == "cuda":
            row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        rows.append(row)
        print(f"{name:<12} {row['ms']:>10.1f} ms" + (f" {row['peak_mem_gib']:>8.2f} GiB" if "peak_mem_gib" in row else ""),
              flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", default="xception")
    parser.add_argument("--backbone", default=None, help="another timm backbone under the detector's settings")
    parser.add_argument("--size", type=int, default=64, help="input size in pixels (default 64)")
    parser.add_argument("--batch", type=int, default=16, help="clean faces per step (default 16)")
    parser.add_argument("--procedures", nargs="+", default=PROCEDURES)
    parser.add_argument("--generator-width", type=int, default=None, help="default: the procedures' (64)")
    parser.add_argument("--generator-blocks", type=int, default=None, help="default: the procedures' (3)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--blur-only", action="store_true", help="time the blur operator (k = 9) against the unfold formula")
    args = parser.parse_args(argv)

    device, where = bench_device(args.device, args.threads)
    settings = {"pretrained": False, "input_size": args.size, "batch_size": args.batch}
    if args.backbone:
        settings["backbone"] = args.backbone
    generator = {k: v for k, v in (("generator_width", args.generator_width), ("generator_blocks", args.generator_blocks))
                 if v is not None}
    if args.blur_only:
        print(f"device: {device} ({where}); blur forward + backward, {args.batch} x 3 x {args.size}^2, k = 9", flush=True)
        rows = bench_blur(args.size, args.batch, 9, args.steps, device)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"device": where, "size": args.size, "batch": args.batch, "blur": rows}, fh, indent=2)
        return 0
    print(f"device: {device} ({where}); torch {torch.__version__}; {args.detector}"
          f"{'/' + args.backbone if args.backbone else ''} at {args.size} px, batch {args.batch}", flush=True)
    header = f"{'procedure':<12} {'img/s':>8} {'best':>8} {'x plain':>8}" + (f" {'peak GiB':>9}" if device.type == "cuda" else "")
    print(header + "\n" + "-" * len(header), flush=True)
    results, plain = [], None
    for name in args.procedures:
        procedure = {"name": name, **(generator if name in GENERATORS else {})}
        row = {"procedure": name, **bench(args.detector, settings, procedure, args.batch, args.steps, args.warmup, device)}
        plain = row["img_per_s"] if name == "plain" else plain
        row["relative_to_plain"] = row["img_per_s"] / plain if plain else float("nan")
        results.append(row)
        print(f"{name:<12} {row['img_per_s']:>8.1f} {row['img_per_s_best']:>8.1f} {row['relative_to_plain']:>8.2f}"
              + (f" {row['peak_mem_gib']:>9.1f}" if "peak_mem_gib" in row else ""), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": where, "torch": torch.__version__, "detector": args.detector, "backbone": args.backbone,
                       "size": args.size, "batch": args.batch, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
