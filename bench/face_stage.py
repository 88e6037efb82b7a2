"""Benchmark: the face stage against decode-only and against the straightforward way.

The straightforward way (FF++'s own extraction, and DeepfakeBench's): decode
every frame with OpenCV, run dlib's HOG detector with upsampling 1 on each
sampled full-resolution frame, take the largest face, 68 landmarks, 1.3x crop,
one PNG per face. Ours: dfrobust.stages.faces.extract_video (ffmpeg decodes
once and converts only the sampled frames; dlib's own pyramid levels rebuilt
around the previous face, dfrobust.media.faces) + writing the shard. Its boxes
are compared with the straightforward way's (IoU per frame).

All three run in this process pinned to one core, on the same videos, so the
ratios compare like with like. Videos are upscaled to 720 lines, c23, first (--size) to resemble FF++ c23
material (1280x720 for 16:9 sources), looped to --length frames (FF++ clips
are 300-700 frames long; the demo's are a couple of seconds).

--noise-floor also runs the straightforward search on the same frames with
+-1 grey level of random noise (not timed): how often dlib's own box changes
under an invisible change, the agreement no other search can be expected to beat.

    python bench/face_stage.py resources/demo/original_sequences/youtube/raw/videos --n-videos 6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dfrobust.media.detect import DlibHogDetector, LandmarkPredictor, single_level_detector
from dfrobust.core.config import block
from dfrobust.media.faces import FaceFinder, crop_face
from dfrobust.stages.faces import extract_video
from dfrobust.media.geometry import iou, largest
from dfrobust.media.store import write_shard
from dfrobust.media import ffmpeg

FACES_CFG = dict(detector="dlib_hog", upsample=0, detect_max_side=640, track=True, track_face_px=160,
                 fallback_upsample=1, crop_scale=1.3, crop_size=256, frames={"test": 32}, min_faces=1, threads=1)


def upscale(src: Path, dst: Path, size: str, length: int, exe: str) -> None:
    """FF++-like material: `size` lines, c23, `length` frames (the clip looped)."""
    scale = ["-vf", f"scale=-2:{size}"] if size else []
    subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(src), *scale,
                    "-frames:v", str(length),
                    "-c:v", "libx264", "-crf", "23", "-preset", "medium", "-pix_fmt", "yuv420p", str(dst)], check=True)


def decode_only(path: Path, exe: str) -> float:
    start = time.perf_counter()
    subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-threads", "1", "-i", str(path), "-f", "null", "-"], check=True)
    return time.perf_counter() - start


def straightforward(path: Path, n: int, out_dir: Path, detector, landmarks) -> tuple[float, dict[int, np.ndarray]]:
    start = time.perf_counter()
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(ffmpeg.even_sample(total, n).tolist())
    boxes, index = {}, 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if index in wanted:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            found, _ = detector.detect(rgb)
            if len(found):
                box = found[largest(found)]
                crop, _, _ = crop_face(rgb, box, landmarks(rgb, box), 1.3, 256)
                cv2.imwrite(str(out_dir / f"{index:04d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                boxes[index] = box
        index += 1
    cap.release()
    return time.perf_counter() - start, boxes


def noise_floor(path: Path, indices, boxes: dict[int, np.ndarray], detector, seed: int = 0) -> list[float]:
    """IoU of the straightforward box with the straightforward box on the frame plus +-1 noise (0 if lost)."""
    rng = np.random.default_rng(seed)
    ious = []
    for index, frame in zip(indices, ffmpeg.iter_frames(path, indices)):
        if index not in boxes:
            continue
        noisy = np.clip(frame.astype(np.int16) + rng.integers(-1, 2, frame.shape), 0, 255).astype(np.uint8)
        found, _ = detector.detect(noisy)
        ious.append(iou(found[largest(found)], boxes[index]) if len(found) else 0.0)
    return ious


def ours(path: Path, n: int, out_dir: Path, exe: str, finder: FaceFinder) -> tuple[float, dict[int, np.ndarray]]:
    start = time.perf_counter()
    faces = block("faces", {**FACES_CFG, "frames": {"test": n}})
    video = {"video_id": "v", "manipulation": "original", "label": 0, "path": str(path)}
    record, fields = extract_video(video, n, finder, faces, exe)
    write_shard(out_dir / "shard.npz", [record], [{**video, **fields, "status": "ok"}], {})
    return time.perf_counter() - start, dict(zip(record.frame_indices.tolist(), record.boxes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", type=Path, help="folder of .mp4 files (e.g. the demo's raw originals)")
    parser.add_argument("--n-videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", default="720", help="upscale to this height first, keeping the aspect ratio ('' to keep)")
    parser.add_argument("--length", type=int, default=400, help="loop each clip to this many frames (FF++ clips average ~500)")
    parser.add_argument("--no-track", action="store_true", help="full-frame detection in every frame (faces.track: false)")
    parser.add_argument("--noise-floor", action="store_true",
                        help="also: the straightforward boxes vs the same search on the frames plus +-1 noise (not timed)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, inherited by ffmpeg
    cv2.setNumThreads(1)
    exe = ffmpeg.find_ffmpeg()
    sources = sorted(args.videos.glob("*.mp4"))[: args.n_videos]
    if not sources:
        raise SystemExit(f"{args.videos}: no .mp4 files")
    # models are loaded once per job in both ways (the 68-point predictor alone takes ~0.7 s)
    if args.no_track:
        FACES_CFG["track"] = False
    finder = FaceFinder.from_config(block("faces", FACES_CFG))
    single_level_detector()  # the face stage's copy of dlib's detector restricted to one level
    plain_detector, plain_landmarks = DlibHogDetector(upsample=1), LandmarkPredictor()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for src in sources:
            video = src
            if args.size or args.length:
                video = tmp / f"{src.stem}_{args.size}.mp4"
                upscale(src, video, args.size, args.length, exe)
            (tmp / "a").mkdir(exist_ok=True)
            (tmp / "b").mkdir(exist_ok=True)
            t_decode = decode_only(video, exe)
            t_ours, b_ours = ours(video, args.frames, tmp / "a", exe, finder)
            t_plain, b_plain = straightforward(video, args.frames, tmp / "b", plain_detector, plain_landmarks)
            common = sorted(set(b_ours) & set(b_plain))
            ious = [iou(b_ours[i], b_plain[i]) for i in common]
            rows.append({
                "video": src.name, "decode_s": t_decode, "ours_s": t_ours, "straightforward_s": t_plain,
                "faces_ours": len(b_ours), "faces_straightforward": len(b_plain), "ious": ious,
                "min_iou": min(ious) if ious else float("nan"), "frac_iou_gt_0.9": float(np.mean(np.array(ious) > 0.9)) if ious else float("nan"), "mean_iou": float(np.mean(ious)) if ious else float("nan"),
            })
            r = rows[-1]
            floor = ""
            if args.noise_floor:
                indices = ffmpeg.even_sample(ffmpeg.probe(video, exe).n_frames, args.frames)
                r["noise_ious"] = noise_floor(video, indices, b_plain, plain_detector)
                floor = f"  noise floor {100 * np.mean(np.array(r['noise_ious']) > 0.9):.0f}% > 0.9"
            print(f"{r['video']:>14}  decode {t_decode:6.2f}s  ours {t_ours:6.2f}s ({t_ours / t_decode:4.2f}x decode)  "
                  f"straightforward {t_plain:6.2f}s ({t_plain / t_ours:5.1f}x ours)  faces {len(b_ours)}/{len(b_plain)}  "
                  f"IoU mean {r['mean_iou']:.3f} min {r['min_iou']:.3f}, {100 * r['frac_iou_gt_0.9']:.0f}% > 0.9{floor}", flush=True)
    total = {k: sum(r[k] for r in rows) for k in ("decode_s", "ours_s", "straightforward_s", "faces_ours", "faces_straightforward")}
    ious = np.array([v for r in rows for v in r["ious"]])
    summary = {
        "videos": len(rows), "frames_per_video": args.frames, "size": args.size,
        "ours_over_decode": total["ours_s"] / total["decode_s"],
        "straightforward_over_ours": total["straightforward_s"] / total["ours_s"],
        "faces_ours": total["faces_ours"], "faces_straightforward": total["faces_straightforward"],
        "min_iou": float(ious.min()), "mean_iou": float(ious.mean()), "faces_compared": len(ious),
        "frac_iou_gt_0.9": float(np.mean(ious > 0.9)), "rows": rows,
    }
    floor = ""
    if args.noise_floor:
        noisy = np.array([v for r in rows for v in r["noise_ious"]])
        summary["noise_floor_frac_iou_gt_0.9"] = float(np.mean(noisy > 0.9))
        floor = f"   noise floor (straightforward vs itself, +-1 noise): {100 * np.mean(noisy > 0.9):.0f}% > 0.9"
    print(f"\nours / decode-only = {summary['ours_over_decode']:.2f}x (target <= 3)   "
          f"straightforward / ours = {summary['straightforward_over_ours']:.1f}x (target >= 5)   "
          f"faces {summary['faces_ours']} vs {summary['faces_straightforward']}   IoU mean {summary['mean_iou']:.3f}, "
          f"{100 * summary['frac_iou_gt_0.9']:.0f}% of {len(ious)} faces > 0.9, min {summary['min_iou']:.3f}{floor}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
