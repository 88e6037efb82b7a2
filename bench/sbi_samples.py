"""How fast are SBI's samples made the authors' way, and RetinaFace's boxes on a CPU?

    python bench/sbi_samples.py [--face 200] [--frame 854x480] [--items 64]

1. A face of `--face` px (the Grace Hopper photo) in a frame of `--frame`
   px is stored as the workflow would store it with SBI configured (1.4x
   the box, 484 px); SelfBlendFaces then makes training and validation
   pairs at 380 px (canvas at the frame's resolution, the authors'
   albumentations pipelines) and the test face (view_faces): items/s on one
   core, i.e. what one loader worker gives.
2. RetinaFace (random weights, the published architecture) finds the box of
   that face: on a window of 3x the face at the authors' 2048-px scale and at
   the frame's own scale, seconds per frame on the CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch


def stored_crop_pool(data, items: int, face: int = 200, width: int = 854, height: int = 480):
    """A pool of `items` stored crops of one real face (the Grace Hopper photo, its face `face` px wide
    in a width x height frame), stored as the workflow stores them (1.4x, 484 px) and viewed by `data` (a
    detector's FaceData):
    what a detector that cuts its faces from stored crops (SBI) trains on. Returns (pool, record, frame,
    box, landmarks)."""
    from dfrobust.demo.identities import source_photos
    from dfrobust.media.detect import DlibHogDetector, LandmarkPredictor
    from dfrobust.media.faces import face_of
    from dfrobust.media.store import record_from_faces
    from dfrobust.training.data import FacePool

    photo = source_photos()[0]
    boxes, _ = DlibHogDetector(1).detect(photo.image)
    scale = face / (boxes[0][2] - boxes[0][0])
    image = cv2.resize(photo.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((height, width, 3), 90, np.uint8)
    h, w = min(height, image.shape[0]), min(width, image.shape[1])
    x0 = (width - w) // 2
    frame[:h, x0:x0 + w] = image[:h, :w]
    box = DlibHogDetector(1).detect(frame)[0][0]
    landmarks = LandmarkPredictor()(frame, box)
    retina = box + np.array([0.05, -0.3, -0.05, 0.05]) * (box[2] - box[0])
    faces = [face_of(frame, i, box, landmarks, 1.4, 484, retina) for i in range(items)]
    record = record_from_faces("original/000", "original", 0, faces, np.arange(items), 484)
    record.meta.update(width=width, height=height)
    parts = data.pool_view(record, np.arange(items))
    pool = FacePool(crops=parts[0], landmarks=parts[1], labels=np.zeros(items, np.int64),
                    video_index=np.zeros(items, np.int64), geometry=parts[2])
    return pool, record, frame, box, landmarks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--face", type=int, default=200, help="face box side in frame pixels")
    parser.add_argument("--frame", default="854x480", help="frame WxH")
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--no-retinaface", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from dfrobust.detectors import build_data

    width, height = (int(v) for v in args.frame.split("x"))
    data = build_data("sbi", {"pretrained": False})
    pool, record, frame, box, landmarks = stored_crop_pool(data, args.items, args.face, width, height)
    print(f"face {args.face} px in {width}x{height}: stored crop {int(record.crop_boxes[0][2] - record.crop_boxes[0][0])} px "
          f"of frame -> 484 px; SBI input {data.input_size}")
    for train in (True, False):
        ds = data.train_dataset(pool, 0) if train else data.val_dataset(pool, 0)
        start = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        seconds = time.perf_counter() - start
        print(f"  {'training' if train else 'validation'} pairs: {len(ds) / seconds:.1f} pairs/s "
              f"({1000 * seconds / len(ds):.1f} ms each, one core)")
    start = time.perf_counter()
    data.view_faces(record)
    print(f"  test faces: {args.items / (time.perf_counter() - start):.1f} faces/s")

    if args.no_retinaface:
        return
    from dfrobust.core.config import block
    from dfrobust.media.detect import RetinaFaceBoxes
    from dfrobust.media.retinaface import RetinaFace

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "retinaface_resnet50_2020-07-20.pth"
        torch.save(RetinaFace().state_dict(), weights)
        for max_size in (2048, max(width, height)):
            retina = {"weights": str(weights), "max_size": max_size, "window": 3.0, "device": "cpu"}
            boxer = RetinaFaceBoxes(block("faces", {"retinaface": retina}).retinaface)
            boxer(frame, box, landmarks)  # warm-up
            start = time.perf_counter()
            boxer(frame, box, landmarks)
            print(f"RetinaFace box, window 3x the face, max_size {max_size}: {time.perf_counter() - start:.2f} s per frame (2 threads)")


if __name__ == "__main__":
    main()
