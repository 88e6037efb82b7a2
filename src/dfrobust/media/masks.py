"""Manipulation masks: a dataset's per-video mask video, cut like the faces.

FaceForensics++ publishes, for every manipulated video of Deepfakes,
Face2Face, FaceSwap and NeuralTextures (none for FaceShifter),
manipulated_sequences/<method>/masks/videos/<name>.mp4: a video of the
manipulated video's size and length whose white pixels are the ones the
method changed. The face stage (dfrobust.stages.faces) keeps, for each face of
a training or validation video, the part of the mask frame under the face's
stored crop: the same frame, the same crop box, the same resize.

The mask videos are H.264, so their black and white ring at the edges: a
mask frame is binarised at `THRESHOLD` (its brightest channel) before it is
cut and resized, and the stored crop's mask is soft (0..255) only where the
resize averages both sides of an edge.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dfrobust.media import ffmpeg

THRESHOLD = 128  # grey level from which a pixel of a mask video counts as manipulated
MASK_SPLITS = ("train", "val")  # the splits whose faces keep masks: what detectors train and select on


def binarise(frame: np.ndarray) -> np.ndarray:
    """(h, w) uint8 0/255: a mask frame's pixels whose brightest channel reaches THRESHOLD."""
    frame = np.asarray(frame)
    grey = frame.max(axis=2) if frame.ndim == 3 else frame
    return np.where(grey >= THRESHOLD, 255, 0).astype(np.uint8)


def cut_mask(frame_mask: np.ndarray, crop_box: np.ndarray, size: int) -> np.ndarray:
    """(size, size) uint8: the part of a binary frame mask under a stored crop box (frame pixels,
    [x0, y0, x1, y1), inside the frame, as dfrobust.media.faces.crop_face makes them), resized
    as the face crop is (area when shrinking, bilinear when enlarging)."""
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    region = frame_mask[y0:y1, x0:x1]
    side = x1 - x0
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interp)


def face_masks(mask_path: str | Path, frame_indices: np.ndarray, crop_boxes: np.ndarray, size: int,
               n_frames: int, width: int, height: int, exe: str, threads: int = 1) -> tuple[np.ndarray | None, str]:
    """(masks (n, size, size) uint8, "") of the faces at `frame_indices` with `crop_boxes`, from the
    mask video at `mask_path`; or (None, why) when the mask video does not match the face video
    (n_frames, width x height) or cannot be read: that video's faces are then mask-unknown."""
    frame_indices = np.asarray(frame_indices, np.int64)
    if not len(frame_indices):
        return np.zeros((0, size, size), np.uint8), ""
    try:
        info = ffmpeg.probe(mask_path, exe)
    except Exception as err:  # noqa: BLE001 - any unreadable mask video leaves the masks unknown
        return None, f"mask video {mask_path} unreadable ({err})"
    if (info.width, info.height) != (int(width), int(height)) or info.n_frames != int(n_frames):
        return None, (f"mask video {mask_path} is {info.width}x{info.height}, {info.n_frames} frames; the video "
                      f"{width}x{height}, {n_frames} frames")
    unique, where = np.unique(frame_indices, return_inverse=True)
    out = np.empty((len(frame_indices), size, size), np.uint8)
    try:
        for k, frame in enumerate(ffmpeg.iter_frames(mask_path, unique, exe=exe, info=info, threads=threads)):
            binary = binarise(frame)
            for i in np.flatnonzero(where == k):
                out[i] = cut_mask(binary, crop_boxes[i], size)
    except Exception as err:  # noqa: BLE001 - a truncated mask video: masks unknown, the faces stay
        return None, f"mask video {mask_path}: {err}"
    return out, ""


def attach_masks(record, video: dict, fields: dict, exe: str, threads: int = 1) -> None:
    """The face stage's hook: `record.masks` from the video's mask video (the index row's
    `mask_path`, when it names an existing file), and the summary fields "masks" ("yes",
    "none": the dataset has no mask for it, "unknown": a mask video that does not fit, whose
    reason is "mask_note")."""
    path = video.get("mask_path")
    if not isinstance(path, str) or not path or not Path(path).is_file():
        fields["masks"] = "none"
        return
    masks, why = face_masks(path, record.frame_indices, record.crop_boxes, record.crops.shape[1], fields["n_frames"],
                            fields["width"], fields["height"], exe, threads)
    record.masks = masks
    fields["masks"] = "yes" if masks is not None else "unknown"
    if why:
        fields["mask_note"] = why
