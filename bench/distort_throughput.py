"""How much one decode feeding every operation saves over one job per operation.

The workflow's default job is (operation, shard), so each operation decodes
every test video again; `distort_video` with many operations splits a single
decode into one branch per operation. This times both on the same synthetic
raw-like videos (lossless H.264, a face photo panning) and prints the ratio,
for all default operations and for the pixel operations alone (compression
copies need their own encode/decode round trip either way).

    python bench/distort_throughput.py                   # 3 videos, 640x360, 250 frames
    python bench/distort_throughput.py --width 1280 --height 720 --json out.json

With --clip, it times instead the test copies of one real clip against the two
x264 encodes the compression columns cannot avoid: the clip is first made
lossless (libx264 -crf 0, its own pixel format unless --pix-fmt; not timed),
then the default operations run one job's way each (one ffmpeg per operation)
by the whole-stream path (every operation on the video) and by the default
path (per-frame operations on the sampled frames the face stage stores; the
store's extra cost, measured as the face decode with and without it, counted
in), against `ffmpeg -i lossless -c:v libx264 -crf 23|40 -preset medium -threads 1`:

    python bench/distort_throughput.py --clip /work/shared/realclips/ffpp_c23_original_634.mp4
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

from conftest import moving_face_frames, operations_of  # noqa: E402

from dfrobust.media import ffmpeg  # noqa: E402
from dfrobust.media import framestore  # noqa: E402
from dfrobust.media.distortion import distort_stored, distort_video  # noqa: E402
from dfrobust.media.operations import chain_output_size  # noqa: E402


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


def cpu_all() -> float:
    """CPU seconds of this process and its finished children (ffmpeg, and the Python
    reading its pipes: both are what a job costs)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                resource.getrusage(resource.RUSAGE_CHILDREN)))


def cpu_of(work) -> float:
    start = cpu_all()
    work()
    return cpu_all() - start


def lossless_copy(clip: Path, folder: Path, exe: str, pix_fmt: str | None) -> Path:
    """The clip re-encoded losslessly (raw-like, as FF++'s raw videos), audio dropped."""
    import subprocess

    out = folder / "lossless.mp4"
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-y", "-i", str(clip), "-an", "-c:v", "libx264", "-crf", "0",
           "-preset", "veryfast", *(["-pix_fmt", pix_fmt] if pix_fmt else []), str(out)]
    subprocess.run(cmd, check=True)
    return out


def reference_encode(path: Path, crf: int, out: Path, exe: str) -> None:
    """The encode a compression column cannot avoid: x264 preset medium, one thread (decode, one thread, included)."""
    import subprocess

    import ffmpeg as ffmpeg_graph

    graph = ffmpeg_graph.input(str(path), threads=1).video.output(
        str(out), **ffmpeg.encoder_options("libx264", crf, "medium", "yuv420p", 1))
    subprocess.run(ffmpeg.command(graph.overwrite_output(), exe), check=True)


def clip_bench(args, exe: str) -> dict:
    operations = operations_of()
    copies = [op for op in operations if not op.is_identity]  # clean is scored on the clean faces: no copy
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = lossless_copy(args.clip, tmp, exe, args.pix_fmt)
        info = ffmpeg.probe(path, exe)
        indices = ffmpeg.even_sample(info.n_frames, args.samples).tolist()
        for op in operations:
            chain_output_size(tuple(op.filters()), info.width, info.height, exe)
        framestore.encoder_formats(framestore.ENCODERS[0], exe)
        reference = {f"x264_crf{crf}": cpu_of(lambda crf=crf: reference_encode(path, crf, tmp / f"ref{crf}.mp4", exe))
                     for crf in (23, 40)}
        # the face stage's decode of the sampled frames, without and with the store (its extra cost is the store's)
        plain = cpu_of(lambda: list(ffmpeg.iter_frames(path, indices, exe, info)))
        writer = framestore.FrameWriter(exe)
        target = writer.target("clip", info.pix_fmt)
        if target is None:
            raise SystemExit(f"{path}: no lossless encoder here takes {info.pix_fmt}")

        def store():
            list(ffmpeg.iter_frames(path, indices, exe, info, store=target))
            writer.add("clip", target[0], info.pix_fmt, target[1], indices)
            writer.write(tmp / "frames.zip")

        with_store = cpu_of(store)
        frames = framestore.FrameStore(tmp / "frames.zip")
        old, new = {}, {}
        for op in operations:
            old[op.name] = cpu_of(lambda op=op: distort_video(path, [op], {op.name: indices}, info.width, info.height, exe))
        for op in copies:
            if op.from_stored_frames:
                def run(op=op):
                    with frames.extracted("clip") as stored:
                        distort_stored(stored, op, frames.indices("clip"), indices, info.width, info.height, exe)
            else:
                def run(op=op):
                    distort_video(path, [op], {op.name: indices}, info.width, info.height, exe)
            new[op.name] = cpu_of(run)
    ref = sum(reference.values())
    store_cost = max(with_store - plain, 0.0)
    old_total, old_copies = sum(old.values()), sum(old[op.name] for op in copies)
    new_total = sum(new.values()) + store_cost
    results = {"clip": str(args.clip), "pix_fmt": info.pix_fmt, "size": f"{info.width}x{info.height}",
               "frames": info.n_frames, "samples": args.samples, "reference_cpu_s": {k: round(v, 2) for k, v in reference.items()},
               "face_decode_cpu_s": round(plain, 2), "face_decode_with_store_cpu_s": round(with_store, 2),
               "old_cpu_s": {k: round(v, 2) for k, v in old.items()}, "new_cpu_s": {k: round(v, 2) for k, v in new.items()},
               "old_total_cpu_s": round(old_total, 2), "old_copies_cpu_s": round(old_copies, 2),
               "new_total_cpu_s": round(new_total, 2), "reference_total_cpu_s": round(ref, 2),
               "ratio_old": round(old_total / ref, 2), "ratio_old_copies": round(old_copies / ref, 2),
               "ratio_new": round(new_total / ref, 2)}
    print(f"{args.clip.name} made lossless: {info.width}x{info.height} {info.pix_fmt}, {info.n_frames} frames, "
          f"{args.samples} sampled; CPU seconds (ffmpeg + Python)")
    print(f"{'operation':>10} {'old':>7} {'new':>7}  new path")
    for op in operations:
        way = "stored frames" if op.from_stored_frames else ("no copy" if op.is_identity else "whole stream")
        print(f"{op.name:>10} {old[op.name]:7.2f} {new.get(op.name, 0.0):7.2f}  {way}")
    print(f"{'store':>10} {'':>7} {store_cost:7.2f}  face decode {plain:.2f} s -> {with_store:.2f} s with the store")
    print("reference x264 encodes: " + ", ".join(f"{k} {v:.2f} s" for k, v in reference.items()) + f" = {ref:.2f} s")
    print(f"old path: {old_total:.2f} s for all {len(operations)} operations ({old_total / ref:.2f}x), "
          f"{old_copies:.2f} s for the {len(copies)} copies ({old_copies / ref:.2f}x)")
    print(f"new path: {new_total:.2f} s for the {len(copies)} copies and the store ({new_total / ref:.2f}x)")
    return results


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
    parser.add_argument("--clip", type=Path, help="time the test copies of this real clip (made lossless first) "
                        "against the two reference x264 encodes, old path and new")
    parser.add_argument("--pix-fmt", help="pixel format of the lossless copy (default: the clip's own)")
    args = parser.parse_args(argv)
    exe = ffmpeg.find_ffmpeg()
    if args.clip:
        results = clip_bench(args, exe)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        return results
    operations = operations_of()
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
