"""The four FaceForensics++ manipulations, re-created as real face edits.

Each takes the target video (whose frames are edited) and the source video
(whose identity or expression is transferred) and returns new frames. Like
their FF++ namesakes they change only the face region and leave the kind of
traces detectors learn: resampled, re-coloured or re-rendered texture without
the camera's noise, and a blending seam.

- FaceSwap: the source frame's face (the source re-filmed with the target's
  blinks), warped triangle by triangle onto the target's landmarks,
  colour-corrected and Poisson-blended (seamless clone) inside the
  landmarks' convex hull.
- Deepfakes: the source identity rendered in the target's pose and expression
  through a low-resolution bottleneck (down- then up-sampled, as an
  autoencoder's 64 px output), colour-matched and alpha-blended with a soft
  mask.
- Face2Face: the target keeps its face; its eyes, brows and mouth are warped
  to the source's expression, the face re-rendered (smoothed, slightly
  re-lit) and blended back.
- NeuralTextures: only the mouth region follows the source's mouth motion and
  is re-synthesised from a low-frequency texture, then blended back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import cv2
import numpy as np

from dfrobust.demo import warp as W
from dfrobust.demo.motion import Video, frame_landmarks, no_jaw_drop, render_video

FACE_OUTLINE = np.r_[W.JAW, W.BROWS]
LIPS = np.arange(48, 60)


@dataclass(frozen=True)
class Manipulation:
    name: str
    summary: str
    apply: Callable[[Video, Video, np.random.Generator, dict], np.ndarray]


def transfer_colour(image: np.ndarray, reference: np.ndarray, mask: np.ndarray, strength: float, lips: np.ndarray) -> np.ndarray:
    """Reinhard-style transfer on the masked face: lightness gets the
    reference's mean and contrast, colour only its mean, mostly sparing the
    lips (moving them by the full skin-tone difference turns red lips
    grey-blue). uint8 in, float32 out."""
    inside = mask > 0.5
    if inside.sum() < 16:
        return image.astype(np.float32)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    mean, mean_ref = lab[inside].mean(0), ref[inside].mean(0)
    contrast = float(np.clip(ref[inside][:, 0].std() / max(lab[inside][:, 0].std(), 1.0), 0.8, 1.6))
    matched = lab - mean + mean_ref
    matched[..., 0] = (lab[..., 0] - mean[0]) * contrast + mean_ref[0]
    weight = (strength * (1 - 0.7 * lips))[..., None]
    weight = np.concatenate([np.full_like(weight, strength), weight, weight], axis=2)  # lightness everywhere
    return cv2.cvtColor(W.to_uint8(lab + weight * (matched - lab)), cv2.COLOR_LAB2RGB).astype(np.float32)


def colour_cast(drawn: np.ndarray | float, cfg: dict):
    """A drawn re-rendering colour factor (1: no change) with its distance
    from 1 scaled by cfg['colour_mismatch'] (0: no cast, the colour matches
    exactly; 1: the value as drawn, so the default demo keeps its bytes)."""
    scale = float(cfg["colour_mismatch"])
    return drawn if scale == 1 else 1.0 + scale * (drawn - 1.0)


def face_mask(landmarks: np.ndarray, shape: tuple[int, int], points: np.ndarray = FACE_OUTLINE, grow: float = 0.0, blur: float = 0.0) -> np.ndarray:
    """Soft convex-hull mask of some landmarks; grow and blur in face sizes."""
    size = W.face_size(landmarks)
    return W.soft_mask(W.polygon_mask(landmarks[points], shape), grow * size, blur * size)


def closed_mouth(video: Video, index: int, expression: np.ndarray | None = None) -> np.ndarray:
    expr = video.performance.expression[index] if expression is None else expression
    return frame_landmarks(video.identity, video.performance, index, no_jaw_drop(expr))


@dataclass(frozen=True)
class Region:
    """The part of a frame around the face that an edit works on (every mask
    and blur fits inside), and the shift from frame to region pixels."""

    rows: slice
    cols: slice

    @classmethod
    def around(cls, landmarks: np.ndarray, shape: tuple[int, int], margin: float = 0.35) -> "Region":
        return cls(*W.box_around(landmarks, shape, margin * W.face_size(landmarks)))

    @property
    def offset(self) -> np.ndarray:
        return np.array([self.cols.start, self.rows.start], np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.stop - self.rows.start, self.cols.stop - self.cols.start

    def to_frame(self) -> np.ndarray:
        """Affine from region pixels to frame pixels (a warp's fallback)."""
        return np.array([[1, 0, self.cols.start], [0, 1, self.rows.start]], np.float64)

    def paste(self, frame: np.ndarray, patch: np.ndarray) -> np.ndarray:
        out = frame.copy()
        out[self.rows, self.cols] = W.to_uint8(patch)
        return out


def face_swap(target: Video, source: Video, rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """Graphics face swap: Delaunay piecewise-affine warp of the source face
    onto the target landmarks, colour correction, seamless cloning."""
    mesh = W.mouth_safe_mesh(target.identity.landmarks)
    strength = colour_cast(rng.uniform(0.7, 1.0), cfg)
    # the source filmed again with the target's blinks: stretching a shut eye
    # over an open one would smear the lashes into black holes
    expression = source.performance.expression.copy()
    expression[:, 0] = target.performance.expression[:, 0]
    donor = render_video(source.identity, replace(source.performance, expression=expression), target.frames.shape[1:3], rng)
    out = []
    for t, frame in enumerate(target.frames):
        region = Region.around(target.landmarks[t], frame.shape[:2])
        dst = target.landmarks[t] - region.offset
        patch = frame[region.rows, region.cols]
        warped, inside = W.warp_image(donor.frames[t], donor.landmarks[t], dst, mesh, region.shape)
        mask = face_mask(dst, region.shape, grow=-0.02) * inside
        warped = transfer_colour(warped, patch, mask, strength, face_mask(dst, region.shape, LIPS, 0.03, 0.02))
        warped = W.paint_closed_eyes(W.paint_mouth_interior(warped, dst, closed_mouth(target, t) - region.offset), dst)
        out.append(region.paste(frame, seamless_clone(W.to_uint8(warped), patch, mask)))
    return np.stack(out)


def seamless_clone(patch: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson blending of `patch` into `frame` where mask > 0.5, aligned (not
    shifted): OpenCV centres the mask's bounding box on `centre`."""
    binary = (mask > 0.5).astype(np.uint8) * 255
    binary[:2], binary[-2:], binary[:, :2], binary[:, -2:] = 0, 0, 0, 0  # must not touch the border
    x, y, w, h = cv2.boundingRect(binary)
    if w < 4 or h < 4:
        return frame
    centre = (x + w // 2, y + h // 2)
    return cv2.seamlessClone(patch, frame, binary, centre, cv2.NORMAL_CLONE)


def deepfake(target: Video, source: Video, rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """Autoencoder-style swap: source identity in the target's pose and
    expression, through a low-resolution bottleneck, soft-mask blended."""
    identity = source.identity
    mesh = W.mouth_safe_mesh(identity.landmarks)
    resolution = int(cfg["deepfakes_resolution"])
    feather = rng.uniform(0.04, 0.07)
    out = []
    for t, frame in enumerate(target.frames):
        region = Region.around(target.landmarks[t], frame.shape[:2])
        dst = target.landmarks[t] - region.offset
        patch = frame[region.rows, region.cols]
        face, inside = W.warp_image(identity.canvas, identity.landmarks, dst, mesh, region.shape)
        mask = face_mask(dst, region.shape, grow=-0.03) * inside
        face = transfer_colour(face, patch, mask, 1.0, face_mask(dst, region.shape, LIPS, 0.03, 0.02))
        face = W.paint_closed_eyes(W.paint_mouth_interior(face, dst, closed_mouth(target, t) - region.offset), dst)
        face = bottleneck(W.to_uint8(face), dst, resolution)
        soft = W.soft_mask(mask, blur=feather * W.face_size(dst))
        out.append(region.paste(frame, W.blend(patch, face, soft)))
    return np.stack(out)


BOTTLENECK_CROP = 1.4  # side of the autoencoder's face square, in face sizes


def bottleneck(image: np.ndarray, landmarks: np.ndarray, resolution: int) -> np.ndarray:
    """Down-sample the square around the face to `resolution` px and back up:
    the detail an autoencoder's small output cannot carry is gone."""
    height, width = image.shape[:2]
    side = min(int(round(BOTTLENECK_CROP * W.face_size(landmarks))), height, width)
    cx, cy = W.face_centre(landmarks)
    x0 = int(np.clip(round(cx - side / 2), 0, width - side))
    y0 = int(np.clip(round(cy - side / 2), 0, height - side))
    if side <= resolution:
        return image
    crop = image[y0 : y0 + side, x0 : x0 + side]
    small = cv2.resize(crop, (resolution, resolution), interpolation=cv2.INTER_AREA)
    out = image.copy()
    out[y0 : y0 + side, x0 : x0 + side] = cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)
    return out


def reenact(target: Video, t: int, expression: np.ndarray, region: Region) -> tuple[np.ndarray, np.ndarray]:
    """The region of target frame t warped to `expression` (the target's pose
    and camera kept); returns it (float32) and its landmarks in region pixels."""
    src = target.landmarks[t]
    dst = frame_landmarks(target.identity, target.performance, t, expression)
    anchors = W.anchor_ring(src)
    points_src, points_dst = np.concatenate([src, anchors]), np.concatenate([dst, anchors])
    mesh = target.identity.triangles  # the same landmarks + ring, so the same topology
    warped, _ = W.warp_image(target.frames[t], points_src, points_dst - region.offset, mesh, region.shape, region.to_frame())
    dst = dst - region.offset
    closed = closed_mouth(target, t, expression) - region.offset
    return W.paint_closed_eyes(W.paint_mouth_interior(warped.astype(np.float32), dst, closed), dst), dst


def face2face(target: Video, source: Video, rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """Expression transfer: the source's blinks, speech, smile and brows on
    the target face, re-rendered (smoother, re-lit) and blended back."""
    gain = colour_cast(rng.uniform(0.95, 1.05, 3), cfg).astype(np.float32)
    smooth = rng.uniform(0.6, 1.0)
    out = []
    for t, frame in enumerate(target.frames):
        region = Region.around(target.landmarks[t], frame.shape[:2])
        warped, dst = reenact(target, t, source.performance.expression[t], region)
        rendered = cv2.GaussianBlur(warped, (0, 0), smooth) * gain
        mask = face_mask(dst, region.shape, grow=-0.03, blur=0.04)
        out.append(region.paste(frame, W.blend(frame[region.rows, region.cols], rendered, mask)))
    return np.stack(out)


MOUTH_REGION = np.r_[np.arange(3, 14), np.arange(31, 36), np.arange(48, 60)]


def neural_textures(target: Video, source: Video, rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """Mouth re-rendering: the target's mouth follows the source's jaw and
    smile; the region is re-synthesised from a low-frequency texture."""
    factor = rng.uniform(3.0, 4.0)
    tint = colour_cast(rng.uniform(0.96, 1.04, 3), cfg).astype(np.float32)
    out = []
    for t, frame in enumerate(target.frames):
        region = Region.around(target.landmarks[t], frame.shape[:2])
        expression = target.performance.expression[t].copy()
        expression[[1, 2]] = source.performance.expression[t][[1, 2]]  # jaw open, smile
        warped, dst = reenact(target, t, expression, region)
        small = cv2.resize(warped, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
        texture = cv2.resize(small, region.shape[::-1], interpolation=cv2.INTER_CUBIC) * tint
        mask = face_mask(dst, region.shape, MOUTH_REGION, grow=0.0, blur=0.03)
        out.append(region.paste(frame, W.blend(frame[region.rows, region.cols], texture, mask)))
    return np.stack(out)


METHODS: dict[str, Manipulation] = {
    m.name: m
    for m in (
        Manipulation("Deepfakes", "source identity in the target's pose and expression through a low-resolution autoencoder-like bottleneck, colour-matched, soft-mask blended", deepfake),
        Manipulation("Face2Face", "target face warped to the source's expression (eyes, brows, mouth), re-rendered smoother and re-lit, blended back", face2face),
        Manipulation("FaceSwap", "source face warped onto the target's landmarks (Delaunay piecewise affine), colour-corrected, seamless-cloned in the convex hull", face_swap),
        Manipulation("NeuralTextures", "mouth region follows the source's mouth motion and is re-synthesised from a low-frequency texture, blended back", neural_textures),
    )
}
