"""How much one decode feeding every operation saves over one job per operation.

The workflow's default job is (operation, shard), so each operation decodes
every test video again; `distort_video` with many operations splits a single
decode into one branch per operation. This times both on the same synthetic
raw-like videos (lossless H.264, a face photo panning) and prints the ratio,
for all default operations and for the pixel operations alone (compression
copies need their own encode/decode round trip either way).

    python bench/distort_throughput.py                   # 3 videos, 640x360, 250 frames
    python bench/distort_throughput.py --width 1280 --height 720 --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import moving_face_frames  # noqa: E402

from dfrobust.config import validate_config  # noqa: E402
from dfrobust.media import ffmpeg  # noqa: E402
from dfrobust.media.distortion import distort_video  # noqa: E402
from dfrobust.media.operations import chain_output_size, expand_operations  # noqa: E402


def make_videos(folder: Path, count: int, width: int, height: int, frames: int) -> list[Path]:
    paths = []
    for k in range(count):
        path = folder / f"video_{k}.mp4"
        ffmpeg.write_video(path, moving_face_frames(frames, (width, height), shift=1 + k), fps=25, crf=0)
        paths.append(path)
    return paths


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_it(paths, operations, samples, width, height, exe, one_decode: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the ffmpeg processes): CPU time is what a
    cluster bills and does not depend on how busy the machine is."""
    indices = {op.name: ffmpeg.even_sample(ffmpeg.probe(paths[0], exe).n_frames, samples).tolist() for op in operations}
    start, cpu = time.perf_counter(), cpu_of_children()
    for path in paths:
        if one_decode:
            distort_video(path, operations, indices, width, height, exe)
        else:
            for op in operations:
                distort_video(path, [op], {op.name: indices[op.name]}, width, height, exe)
    return time.perf_counter() - start, cpu_of_children() - cpu


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--samples", type=int, default=32, help="frames kept per video (the test protocol's 32)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    exe = ffmpeg.find_ffmpeg()
    operations = expand_operations(validate_config({})["operations"])
    pixel = [op for op in operations if not op.is_codec]
    for op in operations:  # measure frame sizes once, outside the timings
        chain_output_size(tuple(op.filters()), args.width, args.height, exe)
    results = {"ffmpeg": ffmpeg.ffmpeg_version(exe), **vars(args), "json": None}
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_videos(Path(tmp), args.videos, args.width, args.height, args.frames)
        for label, ops in (("all", operations), ("pixel", pixel)):
            (per_op, per_op_cpu) = time_it(paths, ops, args.samples, args.width, args.height, exe, one_decode=False)
            (shared, shared_cpu) = time_it(paths, ops, args.samples, args.width, args.height, exe, one_decode=True)
            results[label] = {"operations": len(ops), "per_operation_s": round(per_op, 2), "one_decode_s": round(shared, 2),
                              "per_operation_cpu_s": round(per_op_cpu, 2), "one_decode_cpu_s": round(shared_cpu, 2),
                              "ratio_wall": round(per_op / shared, 2), "ratio_cpu": round(per_op_cpu / shared_cpu, 2)}
            print(f"{label:>5}: {len(ops):2d} operations x {args.videos} videos ({args.width}x{args.height}, {args.frames} frames): "
                  f"one job per operation {per_op:6.2f} s wall / {per_op_cpu:6.2f} s CPU, "
                  f"one decode {shared:6.2f} s wall / {shared_cpu:6.2f} s CPU; "
                  f"ratio {per_op / shared:.2f} wall, {per_op_cpu / shared_cpu:.2f} CPU")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


if __name__ == "__main__":
    main()
