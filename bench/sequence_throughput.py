"""Throughput of the two-branch sequence detector: windows per second in
training (forward over F faces, BiLSTM, hypersphere loss, backward, Adam with
the per-block learning rates) and in scoring (the `score_records` path the
score stage runs: windows recovered from face records, resize, normalise,
batched no-grad inference, one score per window).

    python bench/sequence_throughput.py                                # 64 px, F = 10, 4 windows per step
    python bench/sequence_throughput.py --size 224 --batch 8 --device cuda   # the paper's input on a GPU
    python bench/sequence_throughput.py --no-lstm --json out.json

Weights are random (pretrained: false); speed does not depend on them. Wall
time on a shared machine is noisy: the table gives the median and the best
step, and the process CPU time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from dfrobust.detectors import build_data, build_detector
from dfrobust.detectors.inference import pick_device
from dfrobust.media.store import FaceRecord
from dfrobust.training.optim import build_optimizer
from benchutil import sync
from synthetic import synthetic_record


def records(n_videos: int, windows: int, length: int, crop: int, seed: int = 0) -> list[FaceRecord]:
    """Face records holding `windows` complete windows of `length` consecutive frames each."""
    rng = np.random.default_rng(seed)
    out = []
    for v in range(n_videos):
        frames = (np.arange(windows)[:, None] * 50 + np.arange(length)).ravel().astype(np.int64)
        n = len(frames)
        out.append(synthetic_record(f"original/{v:03d}", "original", v % 2,
                                    rng.integers(0, 256, (n, crop, crop, 3), dtype=np.uint8), np.zeros((n, 68, 2)), frames))
    return out


def timed(fn, steps: int, warmup: int, device: torch.device) -> tuple[list[float], float]:
    times = []
    cpu0 = time.process_time()
    for i in range(warmup + steps):
        if i == warmup:
            cpu0 = time.process_time()
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times, time.process_time() - cpu0


def bench(size: int, length: int, batch: int, steps: int, warmup: int, device: torch.device, lstm: bool,
          score_batch: int) -> dict:
    torch.manual_seed(0)
    det = build_detector("two_branch", {"input_size": size, "pretrained": False, "lstm": lstm}).to(device)
    opt = build_optimizer(det.trainable_parameters(), det.cfg["optimizer"])
    x = torch.randint(0, 256, (batch, length, 3, size, size), dtype=torch.uint8)
    y = torch.arange(batch) % 2
    if device.type == "cuda":
        x = x.pin_memory()

    def train_step():
        det.train()
        opt.zero_grad(set_to_none=True)
        inputs = det.preprocess(x)
        loss = det.loss(det(inputs), y.to(inputs.device))
        loss.backward()
        opt.step()

    train_times, train_cpu = timed(train_step, steps, warmup, device)
    # scoring: stored crops at the size the face stage keeps (resized to the input, as the score stage does)
    recs = records(n_videos=max(1, steps), windows=4, length=length, crop=max(size, 64))
    n_windows = sum(len(r.frame_indices) // length for r in recs)
    data = build_data("two_branch", det.cfg)
    score_times, score_cpu = timed(lambda: data.score_records(det, recs, length, score_batch, log=lambda m: None), 1, 1,
                                   device)
    train_median = statistics.median(train_times)
    return {
        "device": str(device), "input_size": size, "frames_per_window": length, "lstm": lstm,
        "train_batch_windows": batch, "train_windows_per_s_median": batch / train_median,
        "train_windows_per_s_best": batch / min(train_times), "train_cpu_s_per_window": train_cpu / (batch * steps),
        "score_windows": n_windows, "score_windows_per_s": n_windows / score_times[0],
        "score_cpu_s_per_window": score_cpu / n_windows, "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="input size in pixels (the paper: 224)")
    parser.add_argument("--frames", type=int, default=10, help="faces per window F (the paper: 10)")
    parser.add_argument("--batch", type=int, default=4, help="windows per training step")
    parser.add_argument("--score-batch", type=int, default=64, help="faces per scoring batch (scoring.batch_size)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-lstm", action="store_true", help="the frame-by-frame ablation")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = bench(args.size, args.frames, args.batch, args.steps, args.warmup, pick_device(args.device), not args.no_lstm,
                   args.score_batch)
    print(f"two_branch {result['device']} {args.size}px F={args.frames} lstm={result['lstm']} "
          f"threads={result['threads']}")
    print(f"  training: {result['train_windows_per_s_median']:.2f} windows/s median "
          f"({result['train_windows_per_s_best']:.2f} best), batch {args.batch}, "
          f"{result['train_cpu_s_per_window']:.3f} CPU s/window")
    print(f"  scoring:  {result['score_windows_per_s']:.2f} windows/s over {result['score_windows']} windows, "
          f"{result['score_cpu_s_per_window']:.3f} CPU s/window")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
