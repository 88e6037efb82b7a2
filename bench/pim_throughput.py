"""Training throughput of PIM (and DualFlat) against plain training of the same
backbone, in one run: images per second of the whole step (forward, backward,
optimiser). PIM runs two forward-backward passes a step, DualFlat three, so
the expected ratios to plain are about 2x and 3x.

    python bench/pim_throughput.py                                   # convnext_base, 64 px, batch 16, device auto
    python bench/pim_throughput.py --detector resnet50 --size 224 --batch 32
    python bench/pim_throughput.py --paper --device cuda --json out.json   # the detector's own input size and batch

The procedures' steps alternate (plain, pim, dualflat, plain, ...) so load
from other jobs on a shared machine falls on all of them alike; the table
gives the median step, and on CPU also images per process-CPU-second (what
the step costs, whatever else runs). Weights are random (pretrained: false):
speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from dfrobust.detectors import build_detector, detector_class
from dfrobust.training.optim import build_optimizer
from dfrobust.training.procedures import build_procedure

from benchutil import bench_device, sync


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", default="convnext_base")
    parser.add_argument("--procedures", nargs="+", default=["plain", "pim", "dualflat"])
    parser.add_argument("--size", type=int, default=64, help="input size in pixels (default 64)")
    parser.add_argument("--batch", type=int, default=16, help="images per step (default 16)")
    parser.add_argument("--paper", action="store_true", help="the detector's own input size and batch")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per procedure")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    device, where = bench_device(args.device, args.threads)
    defaults = detector_class(args.detector).defaults
    size = defaults["input_size"] if args.paper else args.size
    batch = defaults["batch_size"] if args.paper else args.batch
    print(f"{args.detector} at {size} px, batch {batch}; device: {device} ({where}); torch {torch.__version__}", flush=True)

    # DualFlat's default is the paper's best (1:0, PIM's two passes): time its three-pass form
    settings = {"dualflat": {"alpha": 0.5, "beta": 0.5}}
    runs = {}
    for name in args.procedures:
        torch.manual_seed(0)
        det = build_detector(args.detector, {"input_size": size, "pretrained": False, "batch_size": batch}).to(device).train()
        opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
        runs[name] = {"step": build_procedure({"name": name, **settings.get(name, {})}, det), "opt": opt, "times": [],
                      "cpu": 0.0}
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    y = torch.arange(batch) % 2
    for i in range(args.warmup + args.steps):
        for name, run in runs.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            run["step"].step(run["opt"], x, y, f"bench step {i}")
            sync(device)
            if i >= args.warmup:
                run["times"].append(time.perf_counter() - t0)
                run["cpu"] += time.process_time() - c0

    header = f"{'procedure':<10} {'img/s':>8} {'best':>8} {'img/CPU-s':>9} {'time vs plain':>13}"
    print(header + "\n" + "-" * len(header))
    results = []
    base = statistics.median(runs[args.procedures[0]]["times"])
    for name, run in runs.items():
        median = statistics.median(run["times"])
        row = {"procedure": name, "detector": args.detector, "input_size": size, "batch": batch, "device": str(device),
               "img_per_s": batch / median, "img_per_s_best": batch / min(run["times"]),
               "img_per_cpu_s": batch * args.steps / run["cpu"] if device.type == "cpu" else float("nan"),
               "time_ratio": median / base}
        results.append(row)
        print(f"{name:<10} {row['img_per_s']:>8.1f} {row['img_per_s_best']:>8.1f} {row['img_per_cpu_s']:>9.1f} "
              f"{row['time_ratio']:>12.2f}x", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": where, "torch": torch.__version__, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
