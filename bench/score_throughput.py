"""Benchmark: the scoring stage against the bare model forward pass on the same batches.

Scoring (dfrobust.stages.score.score_faces) reads face shards from disk
(zlib-compressed npz), resizes crops to the detector's input, normalises,
runs the network without gradients and builds the per-frame table. The
baseline runs only `detector.predict_proba` on the same batches, already
resized and normalised in memory. Overhead = scoring time / forward time - 1
(target: under 15%). Device auto (CUDA when available).

    python bench/score_throughput.py --detector xception --input-size 299 --crop-size 320 --faces 2048
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dfrobust.detectors.tensors import resize_crops, to_tensor
from dfrobust.detectors.inference import pick_device
from dfrobust.detectors.registry import build_detector
from dfrobust.stages.score import score_faces
from dfrobust.media.store import write_shard
from benchutil import sync
from synthetic import synthetic_record


def make_shards(folder: Path, n_faces: int, crop: int, per_video: int = 32, per_shard: int = 25) -> list[Path]:
    rng = np.random.default_rng(0)
    videos = []
    for v in range(max(1, n_faces // per_video)):
        crops = rng.integers(0, 256, (per_video, crop, crop, 3), dtype=np.uint8)
        videos.append(synthetic_record(f"original/{v:03d}", "original", v % 2, crops, np.zeros((per_video, 68, 2)),
                                       np.arange(per_video)))
    paths = []
    for k in range(0, len(videos), per_shard):
        path = folder / f"shard_{k // per_shard:03d}.npz"
        chunk = videos[k:k + per_shard]
        write_shard(path, chunk, [{"video_id": r.video_id, "manipulation": r.manipulation, "label": r.label,
                                   "status": "ok"} for r in chunk], {})
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", default="xception")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--crop-size", type=int, default=64)
    parser.add_argument("--faces", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    device = pick_device(None)
    detector = build_detector(args.detector, {"pretrained": False, "input_size": args.input_size}).to(device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        shards = make_shards(Path(tmp), args.faces, args.crop_size)
        from dfrobust.media.store import iter_faces

        crops = np.concatenate([r.crops for r in iter_faces(shards)])
        batches = [detector.preprocess(to_tensor(resize_crops(crops[i:i + args.batch], args.input_size)).to(device))
                   for i in range(0, len(crops), args.batch)]
        score_faces(detector, shards[:1], args.batch)  # warm-up (allocations, cudnn)
        forward, scoring = [], []
        for _ in range(args.repeats):
            sync(device)
            start = time.perf_counter()
            with torch.inference_mode():
                for x in batches:
                    detector.predict_proba(x).float().cpu()
            sync(device)
            forward.append(time.perf_counter() - start)
            start = time.perf_counter()
            table = score_faces(detector, shards, args.batch)
            sync(device)
            scoring.append(time.perf_counter() - start)
        assert len(table) == len(crops)
    f, s = min(forward), min(scoring)
    print(f"{args.detector} on {device}: {len(crops)} faces, crops {args.crop_size}px -> input {args.input_size}px, "
          f"batch {args.batch}")
    print(f"  bare forward {len(crops) / f:8.1f} faces/s   scoring {len(crops) / s:8.1f} faces/s   "
          f"overhead {100 * (s / f - 1):.1f}% (target < 15%)")


if __name__ == "__main__":
    main()
