"""Self-blending (Shiohara & Yamasaki, CVPR 2022) as the authors' code does it
(github.com/mapooon/SelfBlendedImages: src/utils/sbi.py, blend.py, funcs.py):
a pseudo-fake made from one real face by blending a slightly altered copy of
it back into itself.

One training sample, from a stored crop (dfrobust.media.crops) and the
face's boxes and landmarks in frame pixels:

0. the stored crop is resized back to the frame's resolution (its crop box
   side), so every step below works in the video's own pixels as theirs do;
1. horizontal flip with p = 0.5 (image, landmarks with their roles, box);
2. the blending canvas is their `crop_face(margin=True)`: the 68 landmarks'
   box grown by half its width left and right, its height above and 0.4 of
   it below, cut at the frame; pixels of it beyond the stored crop are
   filled by reflection (they reach the network only through the source's
   small shift where the mask is ~0);
3. mask: the convex hull of the landmarks, 81 of them (68 + forehead,
   dfrobust.media.forehead) in 75% of the samples and the 68 in the rest;
   or one of Face X-ray's four hulls (`hull: face_xray`, their optional
   library, detectors/face_xray_hulls.py);
4. the source (or, 50/50, the target) gets their source transforms:
   RGBShift +-20 (p 0.3), HueSaturationValue +-0.3, RandomBrightnessContrast
   +-0.1, then either down-and-up scaling by 2 or 4 (nearest down, bilinear
   up) or Sharpen (alpha 0.2-0.5, lightness 0.5-1);
5. source and mask get the same Affine (shift +-3% x, +-1.5% y, scale
   0.95-1/0.95); the mask alone an ElasticTransform (alpha 50, sigma 7);
6. their get_blend_mask (random resize to 192-256 px, a first blur that
   smooths the outline, a second random Gaussian blur, normalised to 1) times
   a blend ratio from {0.25, 0.5, 0.75, 1, 1, 1}; fake = mask source +
   (1 - mask) target, truncated to uint8; the real is the target;
7. training pairs get one draw of RGBShift +-20, HueSaturationValue +-0.3,
   RandomBrightnessContrast +-0.3 (each p 0.3) and JPEG quality 40-100
   (p 0.5), identical for both images;
8. the final crop is the detector's `crop` around its box (SBI: the
   RetinaFace box, each side extended by U(0.05, 0.2) of the box in
   training, 0.125 for validation and test), cut at the canvas, resized
   bilinearly to the input size.

Every transform is albumentations' (pinned in pyproject.toml) with the
authors' arguments; the random draws come from the sample's own numpy
Generator, so a sample is reproducible from its seed whatever the loader
workers. On the HSV limits: +-0.3 is below one uint8 level; albumentations
then changes hue by at most one level (and 1.0, the authors', also
saturation and value), while the RGB-HSV-RGB round trip itself moves pixels
by a few levels: kept as theirs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from dfrobust.media.crops import CropSpec
from dfrobust.detectors.face_xray_hulls import random_hull
from dfrobust.media.forehead import extend_landmarks
from dfrobust.media.geometry import margin_region

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
CANVAS_MARGINS = (0.5, 0.5, 1.0, 0.4)  # crop_face(margin=True): left, right, top, bottom, of the landmarks' box
HULLS = ("landmarks", "face_xray")

# 68-point (iBUG) landmark order after a horizontal flip, as in SBI's hflip
_FLIP = np.concatenate([
    np.arange(16, -1, -1), np.arange(26, 16, -1), np.arange(27, 31), np.arange(35, 30, -1),
    np.arange(45, 41, -1), np.arange(47, 45, -1), np.arange(39, 35, -1), np.arange(41, 39, -1),
    np.arange(54, 47, -1), np.arange(59, 54, -1), np.arange(64, 59, -1), np.arange(67, 64, -1),
])


# -- the authors' albumentations pipelines ---------------------------------------------------------
class Transforms:
    """SBI's albumentations pipelines, built once (they pickle to loader workers)."""

    def __init__(self):
        import albumentations as A

        down = {"downscale": cv2.INTER_NEAREST, "upscale": cv2.INTER_LINEAR}
        self.source = A.Compose([
            A.Compose([
                A.RGBShift((-20, 20), (-20, 20), (-20, 20), p=0.3),
                A.HueSaturationValue(hue_shift_limit=(-0.3, 0.3), sat_shift_limit=(-0.3, 0.3), val_shift_limit=(-0.3, 0.3), p=1),
                A.RandomBrightnessContrast(brightness_limit=(-0.1, 0.1), contrast_limit=(-0.1, 0.1), p=1),
            ], p=1),
            A.OneOf([
                A.OneOf([  # their RandomDownScale: x2 or x4, nearest down, bilinear up
                    A.Downscale(scale_range=(0.5, 0.5), interpolation_pair=down, p=1),
                    A.Downscale(scale_range=(0.25, 0.25), interpolation_pair=down, p=1),
                ], p=1),
                A.Sharpen(alpha=(0.2, 0.5), lightness=(0.5, 1.0), p=1),
            ], p=1),
        ], p=1)
        self.pair = A.Compose([
            A.RGBShift((-20, 20), (-20, 20), (-20, 20), p=0.3),
            A.HueSaturationValue(hue_shift_limit=(-0.3, 0.3), sat_shift_limit=(-0.3, 0.3), val_shift_limit=(-0.3, 0.3), p=0.3),
            A.RandomBrightnessContrast(brightness_limit=(-0.3, 0.3), contrast_limit=(-0.3, 0.3), p=0.3),
            A.ImageCompression(quality_range=(40, 100), p=0.5),
        ], additional_targets={"image1": "image"}, p=1)
        self.affine = A.Affine(translate_percent={"x": (-0.03, 0.03), "y": (-0.015, 0.015)}, scale=(0.95, 1 / 0.95),
                               fit_output=False, p=1)
        # albumentations 1.0's ElasticTransform (theirs): uniform noise, reflected borders; they keep only
        # its mask (warped by nearest neighbour), so the mask is warped here as the image, by nearest neighbour
        self.elastic = A.ElasticTransform(alpha=50, sigma=7, noise_distribution="uniform", interpolation=cv2.INTER_NEAREST,
                                          border_mode=cv2.BORDER_REFLECT_101, p=1)

    @staticmethod
    def seeded(transform, rng: np.random.Generator):
        """The transform with its random state drawn from `rng` (one shared stream for all its
        children: albumentations' set_random_seed would give each child the same seed)."""
        seed = int(rng.integers(2**63))
        transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
        return transform

    def alter(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.seeded(self.source, rng)(image=img)["image"]

    def warp(self, source: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Their randaffine: the same affine on source and mask, then an elastic warp of the mask."""
        out = self.seeded(self.affine, rng)(image=source, mask=mask)
        return out["image"], self.seeded(self.elastic, rng)(image=out["mask"])["image"]

    def augment_pair(self, fake: np.ndarray, real: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        out = self.seeded(self.pair, rng)(image=fake, image1=real)
        return out["image"], out["image1"]


# -- masks and blending ----------------------------------------------------------------------------
def hull_mask(landmarks: np.ndarray, shape: tuple[int, int], hull: str, rng: np.random.Generator) -> np.ndarray:
    """The initial mask: a uint8 0/1 convex hull of the landmarks (their code without the Face X-ray
    library), or one of Face X-ray's float masks (with it)."""
    lm = np.round(np.asarray(landmarks)).astype(np.int32)
    if hull == "face_xray":
        return random_hull(lm, shape, rng)
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(lm), 1)
    return mask


def blend_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Their get_blend_mask, dtypes included: a uint8 0/1 mask keeps where its first blur rounds
    to 1 (a smoothed outline); a float mask keeps only where the blur stays at its maximum (the
    interior a kernel away from the edge)."""
    h, w = mask.shape[:2]
    size_h, size_w = int(rng.integers(192, 257)), int(rng.integers(192, 257))
    k1, k2 = (int(k) for k in rng.choice(np.arange(5, 26, 2), 2))
    m = cv2.GaussianBlur(cv2.resize(mask, (size_w, size_h)), (k1, k1), 0)
    if m.max() <= 0:
        return np.zeros((h, w), np.float64)
    m = m / m.max()
    m[m < 1] = 0
    m = cv2.GaussianBlur(m, (k2, k2), float(rng.integers(5, 46)))
    return cv2.resize(m / m.max(), (w, h))


def self_blend(img: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, transforms: Transforms | None = None,
               ratios: Sequence[float] = BLEND_RATIOS, hull: str = "landmarks", forehead: float = 0.75
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(real, fake, mask) from one uint8 RGB image and its landmarks (68, or 81 with the forehead)
    in its pixels: their self_blending. `fake` equals `real` wherever `mask` is 0."""
    transforms = transforms or Transforms()
    lm = np.asarray(landmarks)
    if len(lm) > 68 and rng.random() >= forehead:
        lm = lm[:68]
    mask = hull_mask(lm, img.shape[:2], hull, rng)
    source = img.copy()
    if rng.random() < 0.5:
        source = transforms.alter(source, rng)
    else:
        img = transforms.alter(img, rng)
    source, mask = transforms.warp(source, mask, rng)
    mask = blend_mask(mask, rng) * float(ratios[int(rng.integers(len(ratios)))])
    m = mask[..., None]
    fake = (m * source + (1 - m) * img).astype(np.uint8)  # their astype: truncation
    return img, fake, mask


# -- one sample from a stored crop -------------------------------------------------------------------
@dataclass
class StoredFace:
    """A stored crop and its face in frame pixels (the pool keeps these for SBI)."""

    crop: np.ndarray  # (S, S, 3) uint8
    crop_box: np.ndarray  # [x0, y0, x1, y1) of the frame it covers
    landmarks: np.ndarray  # (68, 2) frame pixels
    box: np.ndarray  # the box the detector's crop is around, frame pixels
    frame: tuple[int, int] = (0, 0)  # (width, height); 0: unknown (the stored crop bounds it)

    def canvas(self) -> np.ndarray:
        """The stored crop at the frame's resolution (its crop box side)."""
        side = int(self.crop_box[2] - self.crop_box[0])
        s = self.crop.shape[0]
        if side == s:
            return np.asarray(self.crop)
        return cv2.resize(np.asarray(self.crop), (side, side), interpolation=cv2.INTER_AREA if side < s else cv2.INTER_LINEAR)


def hflip(image: np.ndarray, left: int, landmarks: np.ndarray, box: np.ndarray, width: int):
    """Mirror an image placed at x = `left` of a frame `width` wide, with its landmarks (roles kept:
    the left eye stays 36..41; forehead points reversed) and box, as their hflip (x -> width - x)."""
    lm = np.asarray(landmarks, np.float64)
    flipped = lm[_FLIP] if len(lm) == 68 else np.concatenate([lm[:68][_FLIP], lm[68:][::-1]])
    flipped = flipped.copy()
    flipped[:, 0] = width - flipped[:, 0]
    box = np.array([width - box[2], box[1], width - box[0], box[3]], np.float64)
    return np.ascontiguousarray(image[:, ::-1]), width - left - image.shape[1], flipped, box


def window(image: np.ndarray, origin: tuple[int, int], region: np.ndarray) -> np.ndarray:
    """`region` of the frame ([x0, y0, x1, y1) frame pixels) from an image placed at `origin`;
    what lies beyond the image is filled by reflection."""
    x0, y0, x1, y1 = (int(v) for v in (np.asarray(region) - np.tile(origin, 2)))
    h, w = image.shape[:2]
    pad = [max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w)]
    if any(pad):
        image = cv2.copyMakeBorder(image, *pad, cv2.BORDER_REFLECT_101)
    return np.ascontiguousarray(image[y0 + pad[0]: y1 + pad[0], x0 + pad[2]: x1 + pad[2]])


def blend_face(face: StoredFace, rng: np.random.Generator, spec: CropSpec, size: int, transforms: Transforms,
               train: bool, ratios: Sequence[float] = BLEND_RATIOS, hull: str = "landmarks",
               forehead: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """(real, fake) at size x size for one stored face: steps 0-8 of the module docstring
    (training: flip, jitter, pair augmentation; validation: none of them)."""
    image = face.canvas()
    left, top = int(face.crop_box[0]), int(face.crop_box[1])
    lm, box = np.rint(np.asarray(face.landmarks, np.float64)), np.asarray(face.box, np.float64)
    width, height = (int(v) for v in face.frame)
    if train and rng.random() < 0.5:
        image, left, lm, box = hflip(image, left, lm, box, width or 2 * left + image.shape[1])
    bounds = np.array([0, 0, width, height]) if width and height else None
    region = margin_region([*lm.min(axis=0), *lm.max(axis=0)], CANVAS_MARGINS, bounds)
    img = window(image, (left, top), region)
    offset = region[:2].astype(np.float64)
    lm81 = np.rint(extend_landmarks(lm)) - offset
    box = box - np.tile(offset, 2)
    real, fake, _ = self_blend(img, lm81, rng, transforms, ratios, hull, forehead)
    if train:
        fake, real = transforms.augment_pair(fake, real, rng)
    x0, y0, x1, y1 = spec.region(box, np.array([0, 0, img.shape[1], img.shape[0]]), rng if train else None)
    out = [cv2.resize(np.ascontiguousarray(a[y0:y1, x0:x1]), (size, size), interpolation=cv2.INTER_LINEAR) for a in (real, fake)]
    return out[0], out[1]


def face_for_scoring(face: StoredFace, spec: CropSpec, size: int) -> np.ndarray:
    """The test face: the detector's fixed crop around its box, from the stored crop at the frame's
    resolution, resized bilinearly (their inference: crop_face(phase='test') on the frame, cv2.resize)."""
    image = face.canvas()
    left, top = int(face.crop_box[0]), int(face.crop_box[1])
    bounds = np.array([left, top, left + image.shape[1], top + image.shape[0]])
    region = spec.region(np.asarray(face.box, np.float64), bounds)
    return cv2.resize(window(image, (left, top), region), (size, size), interpolation=cv2.INTER_LINEAR)


def landmarks_usable(landmarks: np.ndarray, size: int, min_area: float = 0.01) -> bool:
    """Finite landmarks whose hull covers at least `min_area` of the crop."""
    if landmarks.shape != (68, 2) or not np.isfinite(landmarks).all():
        return False
    area = cv2.contourArea(cv2.convexHull(landmarks.astype(np.float32)))
    return area >= min_area * size * size
