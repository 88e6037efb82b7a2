"""Apply operations to whole test videos and crop the faces of the sampled frames.

Every operation sees the entire stream (temporal noise changes with each frame,
inter-frame compression predicts from neighbours), and only then are the frames
the test protocol samples selected. Pixel operations go filter -> select ->
raw RGB pipe, so they add no compression of their own; a codec operation is a
real encode of the whole stream followed by a decode of the sampled frames.

One ffmpeg decode can feed several operations (`split` into one branch per
operation, each to its own pipe). The workflow's default job runs one
operation, so adding an operation adds only its jobs; `distort_video` takes
any number, and `operations.one_decode` runs all of them per shard.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from dfrobust.errors import InputError
from dfrobust.faces.extract import FaceFinder, crop_face
from dfrobust.faces.store import FaceRecord, FaceShard, record_from_faces, write_shard
from dfrobust.io import atomic_path
from dfrobust.runlog import log as default_log
from dfrobust.video import ffmpeg
from dfrobust.video.operations import Operation, OperationError, Transform, geometry, output_size

KEEP_ENCODER = ["-c:v", "libx264rgb", "-crf", "0", "-preset", "medium", "-pix_fmt", "rgb24"]
BITEXACT = ["-map_metadata", "-1", "-bitexact", "-fflags", "+bitexact", "-flags:v", "+bitexact"]

Sink = Callable[[int, np.ndarray], None]


def encoder_args(codec: dict) -> list[str]:
    """ffmpeg output options of a codec operation (single-threaded by default: the
    same input gives the same bytes)."""
    return ["-c:v", codec["encoder"], "-preset", codec["preset"], "-crf", str(codec["crf"]),
            "-pix_fmt", codec["pix_fmt"], "-threads", str(codec.get("threads", 1)), *BITEXACT]


class _PipeReader(threading.Thread):
    """Reads fixed-size RGB frames from one ffmpeg output pipe and hands them on.

    It always drains the pipe, even after its sink failed, so ffmpeg never
    blocks on a full pipe while the other branches wait."""

    def __init__(self, fd: int, size: tuple[int, int], indices: list[int], sink: Sink | None):
        super().__init__(daemon=True)
        self.fd, self.size, self.indices, self.sink = fd, size, indices, sink
        self.frames: list[np.ndarray] = []
        self.count = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        width, height = self.size
        frame_bytes = width * height * 3
        with os.fdopen(self.fd, "rb") as pipe:
            while len(buf := pipe.read(frame_bytes)) == frame_bytes:
                self.count += 1
                if self.error is not None or self.count > len(self.indices):
                    continue
                frame = np.frombuffer(buf, np.uint8).reshape(height, width, 3)
                try:
                    if self.sink is None:
                        self.frames.append(frame)
                    else:
                        self.sink(self.indices[self.count - 1], frame)
                except BaseException as error:  # re-raised by the caller after ffmpeg ends
                    self.error = error


def distort_video(
    path: str | os.PathLike,
    operations: list[Operation],
    indices: dict[str, list[int]],
    width: int,
    height: int,
    exe: str,
    threads: int = 1,
    sinks: dict[str, Sink] | None = None,
    keep: dict[str, str | os.PathLike] | None = None,
) -> dict[str, list[np.ndarray]]:
    """Apply every operation to the whole stream of one video in a single decode.

    indices: operation name -> frame numbers to keep (frame numbers of the source).
    sinks:   operation name -> callable(frame index, frame) given each kept frame as
             it arrives (then the frames are not stored); others are returned.
    keep:    operation name -> where to write the full processed video (lossless
             libx264rgb CRF 0 for pixel operations, the encoded file itself for
             codec operations).
    Returns operation name -> kept frames (RGB uint8) for operations without a sink.
    """
    sinks, keep = sinks or {}, keep or {}
    pixel = [op for op in operations if not op.is_codec]
    codec = [op for op in operations if op.is_codec]
    out: dict[str, list[np.ndarray]] = {}
    if not operations:
        return out
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dfrobust-distort-")))
        encoded = {op.name: stack.enter_context(atomic_path(keep[op.name])) if op.name in keep
                   else workdir / f"{k}.mp4" for k, op in enumerate(codec)}
        kept = {op.name: stack.enter_context(atomic_path(keep[op.name])) for op in pixel if op.name in keep}
        branches = [f"[s{k}]" for k in range(len(operations))]
        graph = [f"[0:v]split={len(operations)}{''.join(branches)}" if len(operations) > 1 else "[0:v]null[s0]"]
        outputs: list[str] = []
        readers: list[tuple[Operation, int, _PipeReader]] = []
        write_ends: list[int] = []
        for k, op in enumerate(operations):
            if op.is_codec:
                outputs += ["-map", f"[s{k}]", "-fps_mode", "passthrough", *encoder_args(op.codec), "-y", str(encoded[op.name])]
                continue
            chain = op.filters()
            size = output_size(op, width, height, exe)
            select = ffmpeg.select_filter(indices[op.name])
            if op.name in kept:
                graph.append(f"[s{k}]{','.join(chain + ['split=2'])}[v{k}][t{k}]")
                graph.append(f"[t{k}]{select}[p{k}]")
                outputs += ["-map", f"[v{k}]", "-fps_mode", "passthrough", *KEEP_ENCODER, *BITEXACT, "-y", str(kept[op.name])]
            else:
                graph.append(f"[s{k}]{','.join(chain + [select])}[p{k}]")
            read_end, write_end = os.pipe()
            write_ends.append(write_end)
            outputs += ["-map", f"[p{k}]", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", f"pipe:{write_end}"]
            readers.append((op, write_end, _PipeReader(read_end, size, list(indices[op.name]), sinks.get(op.name))))
        cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", str(threads), "-i", str(path),
               "-filter_complex", ";".join(graph), *outputs]
        stderr = stack.enter_context(tempfile.TemporaryFile())
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, pass_fds=write_ends)
        except OSError:
            for _, _, reader in readers:
                os.close(reader.fd)
            raise
        finally:
            for fd in write_ends:
                os.close(fd)
        for _, _, reader in readers:
            reader.start()
        for _, _, reader in readers:
            reader.join()
        proc.wait()
        if proc.returncode != 0:
            stderr.seek(0)
            lines = [ln.strip() for ln in stderr.read().decode(errors="replace").splitlines() if ln.strip()]
            names = ", ".join(op.name for op in operations)
            raise InputError(f"{path}: ffmpeg failed applying {names} ({lines[-1] if lines else 'no message'})")
        for op, _, reader in readers:
            if reader.error is not None:
                raise reader.error
            if reader.count != len(indices[op.name]):
                raise InputError(f"{path}: operation {op.name!r} gave {reader.count} of the {len(indices[op.name])} "
                                 f"sampled frames (does its filter change the frame count?)")
            if op.name not in sinks:
                out[op.name] = reader.frames
        for op in codec:
            out.update(_decode_encoded(encoded[op.name], op, indices[op.name], width, height, exe, threads, sinks))
    return out


def _decode_encoded(path, op, indices, width, height, exe, threads, sinks) -> dict[str, list[np.ndarray]]:
    """The sampled frames of a codec operation's encoded stream."""
    info = ffmpeg.VideoInfo(path=str(path), width=width, height=height, fps=25.0, n_frames=-1, codec="h264")
    frames = ffmpeg.iter_frames(path, indices, exe=exe, info=info, threads=threads)
    if op.name in sinks:
        for index, frame in zip(indices, frames):
            sinks[op.name](index, frame)
        return {}
    return {op.name: list(frames)}


# --- faces of the processed frames ------------------------------------------------


class CopyFaces:
    """The faces of one video under one operation, collected as frames arrive.

    reuse:    the clean boxes and landmarks carried through the operation's
              geometry (the detector is judged on the same face regions);
    redetect: the face finder runs again on the processed frames.
    """

    def __init__(self, clean: FaceRecord, op: Operation, cfg: dict, transform: Transform | None = None,
                 finder: FaceFinder | None = None, lock: threading.Lock | None = None):
        self.clean, self.op, self.cfg = clean, op, cfg
        self.finder, self.lock = finder, lock or threading.Lock()
        self.found: list[tuple] = []
        self.previous = None
        self.size = None
        self.carried = {}
        if op.faces == "reuse":
            landmarks = clean.landmarks_in_frame()
            for k, index in enumerate(clean.frame_indices):
                self.carried[int(index)] = (transform.box(clean.boxes[k]), transform.points(landmarks[k]))

    def indices(self) -> list[int]:
        """Frames to decode: those with a clean face (reuse) or all sampled (redetect)."""
        source = self.clean.frame_indices if self.op.faces == "reuse" else self.clean.sampled_indices
        return [int(i) for i in source]

    def __call__(self, index: int, frame: np.ndarray) -> None:
        self.size = frame.shape[:2]
        if self.op.faces == "reuse":
            box, landmarks = self.carried[int(index)]
        else:
            with self.lock:  # one dlib detector shared by the reader threads
                box = self.finder.find(frame, self.previous)
                if box is None:
                    return
                landmarks = self.finder.landmarks(frame, box)
            self.previous = box
        crop, cbox, lms = crop_face(frame, box, landmarks, self.cfg["crop_scale"], self.cfg["crop_size"])
        self.found.append((int(index), np.asarray(box, np.float32), cbox, lms, crop))

    def record(self) -> FaceRecord | None:
        if not self.found:
            return None
        return record_from_faces(self.clean.video_id, self.clean.manipulation, self.clean.label, self.found,
                                 self.clean.sampled_indices, self.cfg["crop_size"])


# --- one shard --------------------------------------------------------------------


def base_videos(index_csv: str | Path, quality: str) -> dict[str, str]:
    """video_id -> path of the test videos at the base quality."""
    index = pd.read_csv(index_csv, dtype={"name": str})
    rows = index[(index["quality"] == quality) & (index["split"] == "test")]
    return dict(zip(rows["video_id"], rows["path"]))


def _row(op: Operation, base: dict, **values) -> dict:
    return {**base, "operation": op.name, "category": op.category, "sweep": op.sweep, "level": op.level, **values}


def distort_shard(
    clean_npz: str | Path,
    index_csv: str | Path,
    operations: list[dict],
    cfg: dict,
    ffmpeg_path: str | None,
    out_npzs: list[str | Path],
    videos_dir: str | Path = "results/distorted_videos",
    provenance: dict | None = None,
    log: Callable = default_log,
    progress: bool = True,
) -> None:
    """Write the distorted copy of one clean test shard for each operation.

    `operations` are resolved operation dicts (Operation.params()), `out_npzs`
    the shard path of each. All operations share one decode per video. A video
    excluded from the clean faces stays excluded (same status); a video that
    fails under the operations is reported and the others go on.
    """
    from tqdm import tqdm

    ops = [Operation.from_params(p) for p in operations]
    if len(out_npzs) != len(ops):
        raise ValueError("one output shard per operation")
    exe = ffmpeg.find_ffmpeg(ffmpeg_path)
    clean = FaceShard(clean_npz)
    qualities = {op.base_quality for op in ops}
    if clean.summary.get("quality") not in qualities or clean.summary.get("split") != "test":
        raise InputError(f"{clean_npz}: is {clean.summary.get('quality')}/{clean.summary.get('split')} faces, "
                         f"expected the test split at base quality {sorted(qualities)}")
    paths = base_videos(index_csv, clean.summary["quality"])
    finder = FaceFinder.from_config(cfg) if any(op.faces == "redetect" for op in ops) else None
    lock = threading.Lock()
    records = {op.name: [] for op in ops}
    rows = {op.name: [] for op in ops}
    log(f"{clean_npz}: {len(clean.summary['videos'])} videos x {len(ops)} operation(s) "
        f"[{', '.join(op.name for op in ops)}], {ffmpeg.ffmpeg_version(exe)}")
    for meta in tqdm(clean.summary["videos"], desc="distort", unit="video", disable=not progress):
        base = {k: meta.get(k) for k in ("video_id", "manipulation", "label")}
        base["path"] = paths.get(meta["video_id"], meta.get("path"))
        if meta.get("status") != "ok" or meta["video_id"] not in clean.video_ids:
            for op in ops:
                rows[op.name].append(_row(op, base, status=meta.get("status", "error"), message=f"clean faces: {meta.get('message', '')}",
                                          n_sampled=meta.get("n_sampled", 0), n_found=0, n_missed=meta.get("n_sampled", 0)))
            continue
        start = time.perf_counter()
        record = clean.read(meta["video_id"])
        try:
            if meta.get("width") and meta.get("height"):
                width, height = int(meta["width"]), int(meta["height"])
            else:
                info = ffmpeg.probe(base["path"], exe)
                width, height = info.width, info.height
            collectors = {}
            for op in ops:
                transform = geometry(op, width, height, exe) if op.faces == "reuse" else None
                collectors[op.name] = CopyFaces(record, op, cfg, transform, finder, lock)
            keep = {op.name: Path(videos_dir) / op.name / f"{meta['video_id']}.mp4" for op in ops if op.keep_videos}
            distort_video(base["path"], ops, {n: c.indices() for n, c in collectors.items()}, width, height, exe,
                          threads=cfg.get("threads", 1), sinks=collectors, keep=keep)
        except OperationError:
            raise  # a config problem, the same for every video
        except InputError as err:
            log(f"EXCLUDED {meta['video_id']}: {err}")
            for op in ops:
                rows[op.name].append(_row(op, base, status="error", message=str(err), n_sampled=len(record.sampled_indices), n_found=0,
                                          n_missed=len(record.sampled_indices)))
            continue
        seconds = round((time.perf_counter() - start) / len(ops), 3)
        for op in ops:
            faces = collectors[op.name]
            found = faces.record()
            n_found = 0 if found is None else found.n_faces
            n_sampled = len(record.sampled_indices)
            status, message = "ok", ""
            if n_found < cfg.get("min_faces", 1):
                status = "no_face"
                message = f"{base['path']}: face found in {n_found} of {n_sampled} sampled frames after {op.name} (faces: {op.faces})"
                log(f"EXCLUDED {meta['video_id']} under {op.name}: {message}")
            elif found is not None and n_found < n_sampled and op.faces == "redetect":
                log(f"{meta['video_id']} under {op.name}: no face in {n_sampled - n_found} of {n_sampled} frames")
            if status == "ok":
                records[op.name].append(found)
            height_out, width_out = faces.size or (None, None)
            rows[op.name].append(_row(op, base, status=status, message=message, n_sampled=n_sampled, n_found=n_found,
                                      n_missed=n_sampled - n_found, width=width_out, height=height_out, seconds=seconds,
                                      video=str(keep[op.name]) if op.name in keep else None))
    for op, out in zip(ops, out_npzs):
        meta = {"operation": op.params(), "quality": clean.summary["quality"], "split": "test",
                "shard": clean.summary.get("shard"), "source": str(clean_npz), "faces_config": cfg,
                "ffmpeg": ffmpeg.ffmpeg_version(exe), "provenance": provenance or {}}
        write_shard(out, records[op.name], rows[op.name], meta)
        ok = sum(r["status"] == "ok" for r in rows[op.name])
        log(f"wrote {out}: {ok}/{len(rows[op.name])} videos with faces under {op.name}")


SUMMARY_COLUMNS = ("operation", "category", "sweep", "level", "shard", "video_id", "manipulation", "label",
                   "status", "n_sampled", "n_found", "n_missed", "message")


def summarise_distorted(shard_jsons: list[str | Path], out_csv: str | Path, out_operations: str | Path) -> pd.DataFrame:
    """One row per (operation, video) over all distorted shards, and the list of
    operations in config order with their metadata (for tables and sweep plots)."""
    import json

    rows, operations = [], {}
    for path in shard_jsons:
        shard = json.loads(Path(path).read_text())
        op = shard["operation"]
        operations.setdefault(op["name"], {
            "operation": op["name"], "category": op["category"], "sweep": op["sweep"], "level": op["level"],
            "filter": op["filter"], "codec": json.dumps(op["codec"], sort_keys=True) if op["codec"] else None,
            "faces": op["faces"], "base_quality": op["base_quality"],
        })
        for video in shard["videos"]:
            rows.append({"shard": shard["shard"], **{k: video.get(k) for k in SUMMARY_COLUMNS if k != "shard"}})
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_operations) as tmp:
        pd.DataFrame(list(operations.values())).to_csv(tmp, index=False)
    return table
