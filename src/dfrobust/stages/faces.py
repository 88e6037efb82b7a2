"""The face stage (rules/faces.smk): the faces of one shard of videos, and the
summary of all shards.

For every video, N frames are sampled evenly (or, with faces.windows, windows
of consecutive frames: dfrobust.media.windows); ffmpeg decodes the video once
and converts only those frames; the largest face of each is found, given 68
landmarks and cropped (dfrobust.media.faces). With RetinaFace weights
configured (faces.retinaface.weights) each face also gets its RetinaFace box
from the same decoded frame, and the stored crop holds both boxes' margins,
so detectors cropping around either (SBI: RetinaFace; Xception, Capsule:
dlib) read the same shards.

A row of an image-sequence dataset (WildDeepfake: its index row has a
`member`, dfrobust.datasets.common.sequence_of) is read as a video: its
archive is unpacked once per job into scratch space (media.sequence.SequenceCache),
its frames are sampled evenly by frame number, and decoded by the same ffmpeg
chain. Its images are face crops already: with the dataset's `missed_face:
whole_image`, an image where no face is found keeps the whole image as its
face (box [0, 0, W, H], landmarks NaN), counted in the summary's
`n_whole_image` with its frame positions (`whole_image_frames`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from dfrobust.core.config import block
from dfrobust.core.errors import ConfigError, InputError
from dfrobust.core.runlog import log
from dfrobust.core.settings import Settings
from dfrobust.datasets.common import sequence_of
from dfrobust.datasets.ffpp import n_shards
from dfrobust.media import ffmpeg, windows
from dfrobust.media.detect import make_box_finder
from dfrobust.media.faces import FaceFinder, face_of, faces_from_frames
from dfrobust.media.sequence import ImageSequence, SequenceCache
from dfrobust.media.framestore import FrameWriter, write_empty
from dfrobust.media.masks import attach_masks
from dfrobust.media.store import FaceRecord, record_from_faces, write_shard
from dfrobust.stages.shards import process_videos, summarise

SUMMARY_COLUMNS = ("dataset", "quality", "split", "shard", "video_id", "manipulation", "label", "status", "n_sampled", "n_found",
                   "n_missed", "message", "path", "member", "n_whole_image")
NO_LANDMARKS = np.full((68, 2), np.nan, np.float32)  # a whole-image face: no landmarks were found


def shard_rows(index_csv: str | Path, quality: str, split: str, shard: int, planned_shards: int, shard_size: int) -> list[dict]:
    """The index rows of one shard, in the same interleaved order the plan used."""
    index = pd.read_csv(index_csv, dtype={"name": str, "member": str})
    rows = index[(index["quality"] == quality) & (index["split"] == split)].to_dict("records")
    count = n_shards(len(rows), shard_size)
    if count != planned_shards:
        raise InputError(
            f"{index_csv}: {split} has {len(rows)} videos at {quality} = {count} shards, but the workflow planned "
            f"{planned_shards} (the dataset changed after the plan; rerun snakemake)"
        )
    return rows[shard::count]


def stored_crop(faces: Settings) -> tuple[float, int]:
    """(crop_scale, crop_size) of the faces block; the workflow computes them from the detectors
    (dfrobust.media.crops.resolve_faces) when the config leaves them out."""
    scale, size = faces.crop_scale, faces.crop_size
    if scale is None or size is None:
        raise ConfigError("faces.crop_scale / faces.crop_size are not set: the workflow computes them from the "
                          "configured detectors (dfrobust.media.crops.resolve_faces); set both to run the face stage alone")
    return float(scale), int(size)


def extract_video(video: dict, n_samples: int, finder: FaceFinder, faces: Settings, exe: str, boxer=None,
                  window: tuple[int, int] | None = None, frames: FrameWriter | None = None,
                  source: ImageSequence | None = None, masks: bool = False) -> tuple[FaceRecord, dict]:
    """Faces of one video and its summary fields. Raises InputError for an unreadable video.

    boxer: the second face detector whose boxes are stored too (SBI's RetinaFace), or None.
    window: (length, step) to sample windows holding at least n_samples frames
    (field n_windows: 0 for a video shorter than one window); None: single frames.
    frames: where the same decode also stores the sampled frames losslessly (the test
    copies' per-frame operations start from them: dfrobust.media.framestore), or None.
    source: the row's image sequence, unpacked (SequenceCache), read in place of a video
    file: frames sampled evenly by frame number, positions stored as frame indices.
    masks: whether the faces also get their cut of the video's manipulation mask video, where
    the index names one (dfrobust.media.masks; training and validation splits).
    """
    start = time.perf_counter()
    path = video["path"] if source is None else source
    if source is None and not Path(path).is_file():
        raise InputError(f"{path}: video file does not exist")
    info = ffmpeg.probe(path, exe)
    if window:
        indices = windows.sample_windows(info.n_frames, windows.window_count(n_samples, window[0]), *window)
    elif source is not None:
        indices = source.sample(n_samples)
    else:
        indices = ffmpeg.even_sample(info.n_frames, n_samples)
    target = frames.target(video["video_id"], info.pix_fmt) if frames is not None else None
    decoded = ffmpeg.iter_frames(path, indices, exe=exe, info=info, threads=faces.threads, store=target)
    scale, size = stored_crop(faces)
    sequence = sequence_of(video) if source is not None else None
    whole = sequence is not None and sequence["missed_face"] == "whole_image"
    kept: dict[int, np.ndarray] = {}
    found = faces_from_frames(remembered(decoded, indices, kept) if whole else decoded, indices, finder, scale, size, boxer)
    for _ in decoded:  # run ffmpeg to its end (the stored frames' file is complete, its exit status checked)
        pass
    whole_frames = []
    if whole:
        found, whole_frames = with_whole_images(found, kept, scale, size)
    if target is not None:
        frames.add(video["video_id"], target[0], info.pix_fmt, target[1], indices)
    record = record_from_faces(video["video_id"], video["manipulation"], int(video["label"]), found, indices, size)
    fields = {"path": str(video["path"]), "width": info.width, "height": info.height, "fps": info.fps, "n_frames": info.n_frames,
              "seconds": round(time.perf_counter() - start, 3)}
    if sequence is not None:
        fields.update(member=sequence["member"], frame_rate=sequence["frame_rate"], missed_face=sequence["missed_face"],
                      n_whole_image=len(whole_frames),
                      whole_image_frames=whole_frames,
                      frame_numbers=[int(source.numbers[i]) for i in record.frame_indices])
    if window:
        fields["n_windows"] = len(indices) // window[0]
    if masks:
        attach_masks(record, video, fields, exe, faces.threads)
    return record, fields


def remembered(decoded, indices, kept: dict[int, np.ndarray]):
    """The decoded frames, passed on, each also kept by its frame index (a sequence's few small images)."""
    for index, frame in zip(indices, decoded):
        kept[int(index)] = frame
        yield frame


def with_whole_images(found: list, kept: dict[int, np.ndarray], scale: float, size: int) -> tuple[list, list[int]]:
    """The faces found, plus the whole image as the face of each kept frame without one (missed_face:
    whole_image): box [0, 0, W, H], landmarks NaN, no RetinaFace box; the crop is cut as any face's
    (the square of the box, clamped to the image). Returns (faces in frame order, the whole images' indices)."""
    have = {int(face[0]) for face in found}
    extra = []
    for index, frame in kept.items():
        if index in have:
            continue
        h, w = frame.shape[:2]
        extra.append(face_of(frame, index, np.array([0, 0, w, h], np.float32), NO_LANDMARKS, scale, size))
    return sorted(found + extra, key=lambda face: int(face[0])), sorted(int(face[0]) for face in extra)


def extract_shard(videos: list[dict], split: str, cfg: dict | Settings, exe: str, log=print, progress: bool = True,
                  frames: FrameWriter | None = None, scratch: str | Path | None = None, masks: bool = False):
    """Faces of every video of a shard: (records kept, summary rows of all videos).

    `videos` rows have video_id, manipulation, label, path, exists (an index's
    rows; an image sequence's also its sequence columns); `cfg` is the faces
    block; `frames` collects their sampled frames (see extract_video);
    `scratch` is where sequences are unpacked (default: $TMPDIR); `masks`: the
    faces also keep their manipulation masks (a planned model reads them).
    """
    faces = block("faces", cfg)
    stored_crop(faces)
    finder = FaceFinder.from_config(faces)
    boxer = make_box_finder(faces, finder.detector)
    n_samples = faces.frames[split]
    window = windows.settings(faces, split)
    videos = [{**v, "label": int(v["label"]), "status": "ok"} for v in videos]
    sequences = [sequence_of(v) for v in videos]
    seq_of = {id(v): s for v, s in zip(videos, sequences)}

    def work(video: dict) -> dict:
        with cache.source(video, seq_of[id(video)]) as source:
            return {split: extract_video(video, n_samples, finder, faces, exe, boxer, window, frames,
                                         source=source if isinstance(source, ImageSequence) else None, masks=masks)}

    with SequenceCache(videos, sequences, scratch) as cache:
        done = process_videos(videos, [split], work, faces.min_faces, log, desc=f"faces {split}", progress=progress)
    for row in done[split][1]:
        if row.get("n_whole_image"):
            log(f"{row['video_id']}: no face found in {row['n_whole_image']} of {row['n_sampled']} sampled images; "
                f"kept whole (missed_face: whole_image)")
        if row.get("mask_note"):
            log(f"MASK {row['video_id']}: {row['mask_note']}; its fake faces have no map target")
    if window:
        for row in done[split][1]:
            if row.get("n_windows") == 0:
                log(f"SHORT {row['video_id']}: {row['n_frames']} frames, shorter than one window of {window[0]} frames "
                    f"{window[1]} apart ({windows.span(*window)} frames); kept as one short window of {row['n_sampled']}")
    return done[split]


def run_face_shard(index_csv, quality, split, shard, planned_shards, cfg, ffmpeg_path, out_npz, provenance=None,
                   dataset: str | None = None, out_frames: str | Path | None = None, store_frames: bool = False,
                   masks: bool = False):
    """Extract the faces of one shard of a dataset's index and write it (npz + json summary).

    out_frames: the archive of the shard's sampled frames (dfrobust.media.framestore),
    filled when `store_frames` (the test copies of this dataset and quality have
    per-frame operations), else written empty. masks: the faces keep their cut of
    the videos' manipulation masks (the plan asks for them where a model reads them)."""
    exe = ffmpeg.find_ffmpeg(ffmpeg_path)
    faces = block("faces", cfg)
    rows = shard_rows(index_csv, quality, split, int(shard), int(planned_shards), faces.shard_size)
    log(f"shard {shard} of {dataset or ''} {quality}/{split}: {len(rows)} videos, {cfg['frames'][split]} frames each, {ffmpeg.ffmpeg_version(exe)}")
    writer = FrameWriter(exe, Path(out_frames).parent) if out_frames is not None and store_frames else None
    try:
        records, summary = extract_shard(rows, split, faces, exe, log=log, frames=writer, masks=masks)
        if writer is not None:
            writer.write(out_frames)
            log(f"wrote {out_frames}: sampled frames of {len(writer.videos)} videos")
        elif out_frames is not None:
            write_empty(out_frames)
    finally:
        if writer is not None:
            writer.close()
    meta = {"dataset": dataset, "quality": quality, "split": split, "shard": int(shard), "faces_config": faces.to_dict(),
            "ffmpeg": ffmpeg.ffmpeg_version(exe), "provenance": provenance or {}}
    write_shard(out_npz, records, summary, meta)
    ok = sum(r["status"] == "ok" for r in summary)
    log(f"wrote {out_npz}: {ok}/{len(summary)} videos with faces")


def summarise_shards(shard_jsons: list[str | Path], out_csv: str | Path) -> pd.DataFrame:
    """One row per video over all shards: found/missed frame counts and status."""
    return summarise(shard_jsons, out_csv, SUMMARY_COLUMNS)
