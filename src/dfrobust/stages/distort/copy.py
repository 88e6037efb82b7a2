"""The test copies (rules/distort.smk): one clean test shard under one operation
(or under every operation, with operations.one_decode), and their summary.

Codecs, and filters that need the whole stream, run on the whole stream of
each video (dfrobust.media.distortion); per-frame operations (Operation.scope:
curves, eq, flips, scaling, grayscale, and noise, which needs only each frame's
number) run on the sampled clean frames the face stage stored
(dfrobust.media.framestore) and give the same frames bit for bit, without
decoding the video again. The faces are cropped from the frames the test
protocol sampled, with the clean video's boxes carried through the operation's
geometry (reuse) or found again (redetect).

An image sequence (a WildDeepfake row: dfrobust.datasets.common.sequence_of)
is a stream like a video's: a whole-stream operation reads it through the
image2 demuxer at the sequence's frame rate (its archive unpacked once per
job, media.sequence.SequenceCache), so compression is an x264 encode of the
sequence at that rate; per-frame operations start from its stored sampled
images as for a video. Under redetect, an image without a face found keeps
the whole image as its face when the dataset says missed_face: whole_image.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from dfrobust.core.config import block
from dfrobust.core.runlog import log as default_log
from dfrobust.core.settings import Settings
from dfrobust.datasets.common import sequence_of
from dfrobust.media import ffmpeg
from dfrobust.media.distortion import distort_stored, distort_video
from dfrobust.media.framestore import FrameStore
from dfrobust.media.detect import make_box_finder
from dfrobust.media.faces import FaceFinder, face_of
from dfrobust.stages.faces import NO_LANDMARKS
from dfrobust.media.operations import Operation, Transform, geometry
from dfrobust.media.sequence import SequenceCache
from dfrobust.media.store import FaceRecord, FaceShard, record_from_faces, write_shard
from dfrobust.stages.shards import process_videos, summarise

SUMMARY_COLUMNS = ("dataset", "quality", "operation", "category", "sweep", "level", "shard", "video_id", "manipulation", "label",
                   "status", "n_sampled", "n_found", "n_missed", "message", "n_whole_image")


class CopyFaces:
    """The faces of one video under one operation, collected as frames arrive.

    reuse:    the clean boxes (RetinaFace's too) and landmarks carried through the
              operation's geometry (the detector is judged on the same face regions);
    redetect: the face finder (and `boxer`, RetinaFace's boxes) runs again on the processed frames;
              with `whole_image` (an image sequence of face crops, missed_face: whole_image),
              a frame without a face found keeps the whole frame as its face, as the face stage does.
    `whole` counts the whole-image faces (carried ones: the clean faces' `whole_frames`).
    """

    def __init__(self, clean: FaceRecord, op: Operation, faces: Settings, transform: Transform | None = None,
                 finder: FaceFinder | None = None, lock: threading.Lock | None = None, boxer=None,
                 whole_image: bool = False, whole_frames: tuple[int, ...] = ()):
        self.clean, self.op, self.faces = clean, op, faces
        self.finder, self.lock, self.boxer = finder, lock or threading.Lock(), boxer
        self.whole_image = whole_image
        self.whole = sum(int(i) in set(whole_frames) for i in clean.frame_indices) if op.faces == "reuse" else 0
        self.found: list[tuple] = []
        self.previous = None
        self.size = None
        self.carried = {}
        if op.faces == "reuse":
            landmarks = clean.landmarks_in_frame()
            for k, index in enumerate(clean.frame_indices):
                self.carried[int(index)] = (transform.box(clean.boxes[k]), transform.points(landmarks[k]),
                                            transform.box(clean.retina_boxes[k]))

    def indices(self) -> list[int]:
        """Frames to decode: those with a clean face (reuse) or all sampled (redetect)."""
        source = self.clean.frame_indices if self.op.faces == "reuse" else self.clean.sampled_indices
        return [int(i) for i in source]

    def __call__(self, index: int, frame: np.ndarray) -> None:
        self.size = frame.shape[:2]
        if self.op.faces == "reuse":
            box, landmarks, retina = self.carried[int(index)]
        else:
            with self.lock:  # one dlib detector shared by the reader threads
                box = self.finder.find(frame, self.previous)
                if box is None:
                    if self.whole_image:
                        h, w = frame.shape[:2]
                        self.whole += 1
                        self.found.append(face_of(frame, index, np.array([0, 0, w, h], np.float32), NO_LANDMARKS,
                                                  self.faces.crop_scale, self.faces.crop_size))
                    return
                landmarks = self.finder.landmarks(frame, box)
                retina = self.boxer(frame, box, landmarks) if self.boxer is not None else None
            self.previous = box
        self.found.append(face_of(frame, index, box, landmarks, self.faces.crop_scale, self.faces.crop_size, retina))

    def record(self) -> FaceRecord:
        return record_from_faces(self.clean.video_id, self.clean.manipulation, self.clean.label, self.found,
                                 self.clean.sampled_indices, self.faces.crop_size)


# --- one shard --------------------------------------------------------------------


def base_videos(index_csv: str | Path, quality: str, split: str) -> dict[str, str]:
    """video_id -> path of the videos of a split at a quality (those a clean shard holds)."""
    return {video_id: row["path"] for video_id, row in base_rows(index_csv, quality, split).items()}


def base_rows(index_csv: str | Path, quality: str, split: str) -> dict[str, dict]:
    """video_id -> index row of the videos of a split at a quality (an image sequence's with its sequence columns)."""
    index = pd.read_csv(index_csv, dtype={"name": str, "member": str})
    rows = index[(index["quality"] == quality) & (index["split"] == split)]
    return {row["video_id"]: row for row in rows.to_dict("records")}


def distort_shard(
    clean_npz: str | Path,
    index_csv: str | Path,
    operations: list[dict],
    cfg: dict | Settings,
    ffmpeg_path: str | None,
    out_npzs: list[str | Path],
    videos_dirs: list[str | Path | None] | None = None,
    provenance: dict | None = None,
    log: Callable = default_log,
    progress: bool = True,
    frames: str | Path | None = None,
    scratch: str | Path | None = None,
) -> None:
    """Write the distorted copy of one clean test shard for each operation.

    `operations` are resolved operation dicts (Operation.params()), `out_npzs`
    the shard path of each, `videos_dirs` where each keeps its processed
    videos (operations with keep_videos; a declared output of the job). The
    operations that take the whole stream share one decode per video. A video excluded from the clean
    faces stays excluded (same status); a video that fails under the
    operations is reported and the others go on. `scratch`: where image
    sequences are unpacked for whole-stream operations (default: $TMPDIR).
    """
    ops = [Operation.from_params(p) for p in operations]
    faces = block("faces", cfg)
    videos_dirs = videos_dirs or [None] * len(ops)
    if len(out_npzs) != len(ops) or len(videos_dirs) != len(ops):
        raise ValueError("one output shard (and videos folder) per operation")
    for op, folder in zip(ops, videos_dirs):
        if op.keep_videos and not folder:
            raise ValueError(f"operation {op.name!r} keeps its videos but was given no folder for them")
    exe = ffmpeg.find_ffmpeg(ffmpeg_path)
    clean = FaceShard(clean_npz)
    index_rows = base_rows(index_csv, clean.summary["quality"], clean.summary["split"])
    finder = FaceFinder.from_config(faces) if any(op.faces == "redetect" for op in ops) else None
    boxer = make_box_finder(faces, finder.detector) if finder is not None else None
    lock = threading.Lock()
    keep_dirs = {op.name: Path(folder) for op, folder in zip(ops, videos_dirs) if op.keep_videos}
    store = FrameStore(frames) if frames is not None else None
    from_store = [op for op in ops if op.from_stored_frames] if store else []
    log(f"{clean_npz}: {len(clean.summary['videos'])} videos x {len(ops)} operation(s) "
        f"[{', '.join(op.name for op in ops)}], {ffmpeg.ffmpeg_version(exe)}")

    def work(video: dict) -> dict[str, tuple[FaceRecord, dict]]:
        start = time.perf_counter()
        record = clean.read(video["video_id"])
        sequence = sequences[id(video)]
        if video.get("width") and video.get("height"):
            width, height = int(video["width"]), int(video["height"])
        else:
            with cache.source(video, sequence) as source:
                info = ffmpeg.probe(source, exe)
            width, height = info.width, info.height
        whole_image = sequence is not None and sequence["missed_face"] == "whole_image"
        whole_frames = tuple(video.get("whole_image_frames") or ())
        collectors = {}
        for op in ops:
            transform = geometry(op, width, height, exe) if op.faces == "reuse" else None
            collectors[op.name] = CopyFaces(record, op, faces, transform, finder, lock, boxer, whole_image, whole_frames)
        keep = {name: folder / f"{video['video_id']}.mp4" for name, folder in keep_dirs.items()}
        stored = from_store if video["video_id"] in (store or ()) else []
        streamed = [op for op in ops if op not in stored]
        threads = faces.threads
        if streamed:
            with cache.source(video, sequence) as source:
                distort_video(source, streamed, {op.name: collectors[op.name].indices() for op in streamed}, width,
                              height, exe, threads=threads, sinks=collectors, keep=keep)
        if stored:
            with store.extracted(video["video_id"]) as path:
                for op in stored:
                    distort_stored(path, op, store.indices(video["video_id"]), collectors[op.name].indices(), width,
                                   height, exe, threads=threads, sink=collectors[op.name])
        seconds = round((time.perf_counter() - start) / len(ops), 3)
        results = {}
        for op in ops:
            height_out, width_out = collectors[op.name].size or (None, None)
            fields = {"width": width_out, "height": height_out, "seconds": seconds,
                      "video": str(keep[op.name]) if op.name in keep else None,
                      "frames_from": "stored frames" if op in stored else "video"}
            if sequence is not None:
                fields.update(member=sequence["member"], n_whole_image=collectors[op.name].whole)
            results[op.name] = (collectors[op.name].record(), fields)
        return results

    videos = []
    for meta in clean.summary["videos"]:
        row = index_rows.get(meta["video_id"]) or {"path": meta.get("path")}
        video = {**meta, **{k: row[k] for k in ("path", "member", "frame_rate", "missed_face") if k in row}}
        if meta.get("status") == "ok" and meta["video_id"] not in clean.video_ids:
            video["status"] = "error"
        videos.append(video)
    sequences = {id(video): sequence_of(video) for video in videos}
    by_name = {op.name: op for op in ops}
    with SequenceCache(videos, [sequences[id(v)] for v in videos], scratch) as cache:
        done = process_videos(videos, list(by_name), work, faces.min_faces, log, desc="distort",
                              context=lambda name: f" after {name} (faces: {by_name[name].faces})", progress=progress)
    for op, out, folder in zip(ops, out_npzs, videos_dirs):
        records, rows = done[op.name]
        rows = [{"operation": op.name, "category": op.category, "sweep": op.sweep, "level": op.level, **row} for row in rows]
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
        meta = {"operation": op.params(), "dataset": clean.summary.get("dataset"), "quality": clean.summary["quality"],
                "split": clean.summary["split"],
                "shard": clean.summary.get("shard"), "source": str(clean_npz), "faces_config": faces.to_dict(),
                "ffmpeg": ffmpeg.ffmpeg_version(exe), "provenance": provenance or {}}
        write_shard(out, records, rows, meta)
        ok = sum(r["status"] == "ok" for r in rows)
        log(f"wrote {out}: {ok}/{len(rows)} videos with faces under {op.name}")


def summarise_distorted(shard_jsons: list[str | Path], out_csv: str | Path, out_operations: str | Path) -> pd.DataFrame:
    """One row per (operation, video) over all distorted shards, and the list of
    operations in config order with their metadata (for tables and sweep plots)."""
    import json

    from dfrobust.core.io import atomic_path

    operations = {}
    for path in shard_jsons:
        op = json.loads(Path(path).read_text())["operation"]
        operations.setdefault(op["name"], {
            "operation": op["name"], "category": op["category"], "sweep": op["sweep"], "level": op["level"],
            "filter": op["filter"], "codec": json.dumps(op["codec"], sort_keys=True) if op["codec"] else None,
            "faces": op["faces"],
        })
    with atomic_path(out_operations) as tmp:
        pd.DataFrame(list(operations.values())).to_csv(tmp, index=False)
    return summarise(shard_jsons, out_csv, SUMMARY_COLUMNS)
