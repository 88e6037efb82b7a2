"""Identities of the demo dataset, synthesised from two real face photos.

The photos ship with installed packages (matplotlib's Grace Hopper portrait,
scikit-image's astronaut Eileen Collins), so the demo needs no download. Each
demo identity is one of them, optionally mirrored, with its face shape warped
(jaw width, face length, eye spacing and size, nose and mouth size, brow
height) and its appearance changed (skin tone, hair colour, background hue,
colour balance, contrast). Every video id gets its own identity, drawn from
a seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dfrobust.demo import warp as W
from dfrobust.core.errors import InputError


def photo_paths() -> dict[str, Path]:
    """The two source photos, located in their packages' data folders."""
    import matplotlib
    import skimage

    return {
        "grace_hopper": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
        "astronaut": Path(skimage.__file__).parent / "data" / "astronaut.png",
    }


@dataclass(frozen=True)
class SourcePhoto:
    name: str
    image: np.ndarray  # RGB uint8
    landmarks: np.ndarray  # (68, 2) float32, image pixels


def load_photo(name: str, path: str | Path, predictor=None) -> SourcePhoto:
    """Read a photo and fit dlib's 68 landmarks on its largest HOG face."""
    from dfrobust.media.detect import DlibHogDetector, LandmarkPredictor
    from dfrobust.media.geometry import largest

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"{path}: demo source photo is missing or not an image")
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    for upsample in (0, 1):
        boxes, _ = DlibHogDetector(upsample=upsample).detect(image)
        if len(boxes):
            break
    else:
        raise InputError(f"{path}: no face found in the demo source photo")
    landmarks = (predictor or LandmarkPredictor())(image, boxes[largest(boxes)])
    return SourcePhoto(name, image, landmarks)


@functools.lru_cache(maxsize=None)
def source_photos() -> tuple[SourcePhoto, ...]:
    """Both photos with landmarks, loaded once per process."""
    from dfrobust.media.detect import LandmarkPredictor

    predictor = LandmarkPredictor()
    return tuple(load_photo(name, path, predictor) for name, path in photo_paths().items())


@dataclass(frozen=True)
class Identity:
    """A neutral portrait on a canvas a little larger than the video frame
    (room for the camera to pan and zoom), with its 68 landmarks."""

    index: int
    canvas: np.ndarray  # (Hc, Wc, 3) uint8 RGB
    landmarks: np.ndarray  # (68, 2) float32, canvas pixels
    anchors: np.ndarray  # fixed ring around the head, canvas pixels
    triangles: np.ndarray  # mesh over landmarks + anchors
    description: dict = field(default_factory=dict)

    @property
    def size(self) -> float:
        return W.face_size(self.landmarks)


def canvas_shape(width: int, height: int, margin: float) -> tuple[int, int]:
    """(height, width) of the canvas the camera moves over."""
    return int(round(height * (1 + 2 * margin))), int(round(width * (1 + 2 * margin)))


def place_photo(photo: SourcePhoto, shape: tuple[int, int], size: float, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale and shift the photo so its face has `size` px at `centre` of the
    canvas; borders that fall outside the photo are mirrored (a few percent)."""
    height, width = shape
    scale = size / W.face_size(photo.landmarks)
    if scale < 1:  # area averaging: no aliasing
        resized = cv2.resize(photo.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    else:  # enlarged photos (the astronaut's face is 88 px) get a camera-like sharpening
        resized = sharpen(cv2.resize(photo.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), 0.6 * scale, 1.0)
    real_scale = np.array([resized.shape[1] / photo.image.shape[1], resized.shape[0] / photo.image.shape[0]])
    landmarks = photo.landmarks * real_scale
    shift = centre - W.face_centre(landmarks)
    matrix = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    canvas = cv2.warpAffine(resized, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return canvas, (landmarks + shift).astype(np.float32)


def sharpen(image: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    """Unsharp mask: image + amount x (image - blurred)."""
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.addWeighted(image, 1 + amount, blurred, -amount, 0)


def min_face_size(photo: SourcePhoto, shape: tuple[int, int], centre: np.ndarray, max_mirror: float = 0.1) -> float:
    """Smallest face size at which the photo covers all but `max_mirror` of
    the canvas on every side (more mirrored border would show doubled bodies)."""
    height, width = shape
    ph, pw = photo.image.shape[:2]
    fc = W.face_centre(photo.landmarks)
    fs = W.face_size(photo.landmarks)
    keep_w, keep_h = width * (1 - max_mirror), height * (1 - max_mirror)
    needs = [
        (centre[0] - width * max_mirror) / max(fc[0], 1),
        (keep_w - centre[0]) / max(pw - fc[0], 1),
        (centre[1] - height * max_mirror) / max(fc[1], 1),
        (keep_h - centre[1]) / max(ph - fc[1], 1),
    ]
    return float(max(needs) * fs)


def reshape_face(landmarks: np.ndarray, rng: np.random.Generator, amount: float) -> tuple[np.ndarray, dict]:
    """New landmark positions for a different face shape, and the draws."""
    size = W.face_size(landmarks)
    centre = W.face_centre(landmarks)
    p = {
        "jaw_width": rng.uniform(-0.08, 0.08) * amount,
        "face_length": rng.uniform(-0.04, 0.05) * amount,
        "eye_spacing": rng.uniform(-0.025, 0.025) * amount,
        "eye_size": rng.uniform(-0.12, 0.12) * amount,
        "nose_width": rng.uniform(-0.15, 0.15) * amount,
        "mouth_size": rng.uniform(-0.12, 0.12) * amount,
        "brow_height": rng.uniform(-0.02, 0.02) * amount,
    }
    out = landmarks.astype(np.float64).copy()
    jaw = W.JAW
    out[jaw, 0] = centre[0] + (out[jaw, 0] - centre[0]) * (1 + p["jaw_width"])
    chin_weight = np.array([0, 0, 0, 0, 0.2, 0.5, 0.8, 1, 1, 1, 0.8, 0.5, 0.2, 0, 0, 0, 0])
    out[jaw, 1] += chin_weight * p["face_length"] * size
    for eye, brow, side in ((W.LEFT_EYE, np.arange(17, 22), -1), (W.RIGHT_EYE, np.arange(22, 27), 1)):
        eye_centre = out[eye].mean(0)
        out[eye] = eye_centre + (out[eye] - eye_centre) * (1 + p["eye_size"])
        out[np.r_[eye, brow], 0] += side * p["eye_spacing"] * size
        out[brow, 1] -= p["brow_height"] * size
    nostrils = np.arange(31, 36)
    nose_centre = out[nostrils].mean(0)
    out[nostrils, 0] = nose_centre[0] + (out[nostrils, 0] - nose_centre[0]) * (1 + p["nose_width"])
    mouth_centre = out[W.MOUTH].mean(0)
    out[W.MOUTH] = mouth_centre + (out[W.MOUTH] - mouth_centre) * (1 + p["mouth_size"])
    return out.astype(np.float32), p


def _lab_shift(image: np.ndarray, mask: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Add `shift` (L, a, b in 8-bit OpenCV units) where mask is 1."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab += mask[..., None] * shift.astype(np.float32)
    return cv2.cvtColor(W.to_uint8(lab), cv2.COLOR_LAB2RGB)


def recolour(canvas: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, amount: float) -> tuple[np.ndarray, dict]:
    """Skin tone, hair colour, background hue and global colour balance."""
    shape = canvas.shape[:2]
    size = W.face_size(landmarks)
    p = {
        "skin": rng.uniform([-10, -4, -6], [8, 6, 10]) * amount,
        "hair": rng.uniform([-30, -6, -12], [15, 8, 12]) * amount,
        "background_hue": float(rng.uniform(-40, 40) * amount),
        "background_saturation": float(1 + rng.uniform(-0.3, 0.2) * amount),
        "gains": rng.uniform(0.94, 1.06, 3) ** amount,
        "contrast": float(1 + rng.uniform(-0.1, 0.1) * amount),
        "gamma": float(1 + rng.uniform(-0.1, 0.1) * amount),
    }
    lab = cv2.cvtColor(canvas, cv2.COLOR_RGB2LAB).astype(np.float32)
    face = W.polygon_mask(landmarks[np.r_[W.JAW, W.BROWS]], shape)
    # skin: pixels whose chroma is close to the face's median chroma
    ref = np.median(lab[face > 0][:, 1:], axis=0)
    distance = np.linalg.norm(lab[..., 1:] - ref, axis=2)
    skin = np.exp(-0.5 * (distance / 7.0) ** 2)
    out = _lab_shift(canvas, skin, p["skin"])
    # hair (or headwear): an ellipse over the forehead, minus the skin
    centre = W.face_centre(landmarks)
    head = np.zeros(shape, np.uint8)
    cv2.ellipse(head, (int(centre[0]), int(centre[1] - 0.35 * size)), (int(0.75 * size), int(0.6 * size)), 0, 0, 360, 1, -1)
    head[int(landmarks[W.BROWS, 1].min()) :] = 0
    hair = W.soft_mask(head.astype(np.float32), blur=0.06 * size) * (1 - skin)
    out = _lab_shift(out, hair, p["hair"])
    # background and clothes: rotate the hue away from the head
    person = np.zeros(shape, np.uint8)
    cv2.ellipse(person, (int(centre[0]), int(centre[1] - 0.1 * size)), (int(0.95 * size), int(1.15 * size)), 0, 0, 360, 1, -1)
    away = 1 - W.soft_mask(person.astype(np.float32), blur=0.12 * size)
    hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + p["background_hue"] / 2.0) % 180  # OpenCV hue is degrees / 2
    hsv[..., 1] = np.clip(hsv[..., 1] * p["background_saturation"], 0, 255)
    shifted = cv2.cvtColor(W.to_uint8(hsv), cv2.COLOR_HSV2RGB)
    out = W.blend(out, shifted, away * (1 - skin))
    # global colour balance, contrast and gamma
    out = out / 255.0 * p["gains"]
    out = np.clip((out - 0.5) * p["contrast"] + 0.5, 0, 1) ** p["gamma"]
    return W.to_uint8(out * 255.0), {k: np.round(v, 4).tolist() for k, v in p.items()}


MIN_SCORE = 1.1  # dlib HOG score the neutral portrait must reach...
MIN_SCORE_COMPRESSED = 0.9  # ...and after heavy JPEG compression (a stand-in for c40)
MAX_DRAWS = 25


@functools.lru_cache(maxsize=1)
def _detector():
    from dfrobust.media.detect import DlibHogDetector

    return DlibHogDetector(upsample=0)


def _score(image: np.ndarray) -> float:
    _, scores = _detector().detect(image)
    return float(scores.max()) if len(scores) else -1.0


def detection_margin(canvas: np.ndarray, width: int, height: int) -> float:
    """How far the frame-sized centre of the canvas clears both dlib HOG
    thresholds (no upsampling): >= 0 when the face is found with room to spare,
    sharp and JPEG-compressed at quality 12."""
    ch, cw = canvas.shape[:2]
    y0, x0 = (ch - height) // 2, (cw - width) // 2
    frame = np.ascontiguousarray(canvas[y0 : y0 + height, x0 : x0 + width])
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 12])
    compressed = cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)
    return min(_score(frame) - MIN_SCORE, _score(compressed) - MIN_SCORE_COMPRESSED)


def make_identity(index: int, rng: np.random.Generator, width: int, height: int, cfg: dict) -> Identity:
    """Identity `index`: photo index % 2, mirrored on alternate pairs, shape and
    appearance drawn from `rng` (scaled by cfg['identity_variation']).

    Draws whose neutral face dlib's HOG detector does not find with a margin,
    sharp and compressed, are redrawn (the best of MAX_DRAWS is kept): like
    FF++, which kept only videos with trackable frontal faces, this leaves
    room for motion, manipulation and c40 compression to eat into.
    """
    best = None
    for _ in range(MAX_DRAWS):
        identity = _draw_identity(index, rng, width, height, cfg)
        margin = detection_margin(identity.canvas, width, height)
        if best is None or margin > best[0]:
            best = (margin, identity)
        if margin >= 0:
            break
    margin, identity = best
    identity.description["detection_margin"] = round(margin, 3)
    return identity


def _draw_identity(index: int, rng: np.random.Generator, width: int, height: int, cfg: dict) -> Identity:
    photos = source_photos()
    photo = photos[index % len(photos)]
    mirrored = (index // len(photos)) % 2 == 1
    amount = float(cfg["identity_variation"])
    shape = canvas_shape(width, height, cfg["camera_margin"])
    ch, cw = shape
    centre = np.array([cw / 2 + rng.uniform(-0.08, 0.08) * width, ch / 2 - rng.uniform(0.0, 0.08) * height])
    lo, hi = cfg["face_size"]
    size = rng.uniform(lo, hi) * height
    photo_centre = centre.copy()
    if mirrored:  # placed before mirroring: mirror the horizontal position too
        photo_centre[0] = cw - 1 - centre[0]
    size = max(size, min_face_size(photo, shape, photo_centre))
    canvas, landmarks = place_photo(photo, shape, size, photo_centre)
    if mirrored:
        canvas = np.ascontiguousarray(canvas[:, ::-1])
        landmarks = W.mirror_landmarks(landmarks, cw)
    reshaped, shape_params = reshape_face(landmarks, rng, amount)
    anchors = W.anchor_ring(landmarks)
    mesh = W.mouth_safe_mesh(landmarks, anchors)
    canvas, _ = W.warp_image(canvas, np.concatenate([landmarks, anchors]), np.concatenate([reshaped, anchors]), mesh)
    canvas, colour_params = recolour(canvas, reshaped, rng, amount)
    anchors = W.anchor_ring(reshaped)
    description = {
        "photo": photo.name,
        "mirrored": mirrored,
        "face_size_px": round(W.face_size(reshaped), 1),
        "shape": {k: round(float(v), 4) for k, v in shape_params.items()},
        "appearance": colour_params,
    }
    return Identity(index, canvas, reshaped, anchors, W.mouth_safe_mesh(reshaped, anchors), description)
