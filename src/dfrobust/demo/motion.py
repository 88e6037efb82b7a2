"""Original demo videos: an identity filmed by a slowly moving camera.

A video is a *performance* (per-frame expression, head pose, camera and
lighting, all smooth random curves drawn from a seed) rendered on an
identity's portrait. Expressions (blinks, speech, smiles, raised brows) and
head motion move the 68 landmarks; a piecewise-affine warp moves the pixels
with them, fading out on a fixed ring around the head. The camera (pan,
zoom, hand shake) is an affine from canvas to frame, folded into the same
single resampling. Lighting drift and sensor noise come last, as in a camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfrobust.demo import warp as W
from dfrobust.demo.identities import Identity

EXPRESSION = ("blink", "jaw_open", "smile", "brow")
HEAD = ("roll", "dx", "dy", "scale", "yaw")

# rough depth of each landmark towards the camera, in face sizes (a yaw
# turns them by different amounts): outline at the back, nose tip in front
DEPTH = np.array(
    [0.0, 0.02, 0.05, 0.09, 0.14, 0.19, 0.23, 0.26, 0.27, 0.26, 0.23, 0.19, 0.14, 0.09, 0.05, 0.02, 0.0]  # jaw
    + [0.2, 0.25, 0.28, 0.3, 0.3, 0.3, 0.3, 0.28, 0.25, 0.2]  # brows
    + [0.32, 0.38, 0.44, 0.5, 0.36, 0.4, 0.42, 0.4, 0.36]  # nose
    + [0.2, 0.24, 0.24, 0.24, 0.24, 0.24] * 2  # eyes
    + [0.3, 0.34, 0.37, 0.38, 0.37, 0.34, 0.3, 0.33, 0.35, 0.36, 0.35, 0.33]  # outer lips
    + [0.31, 0.35, 0.36, 0.35, 0.31, 0.34, 0.35, 0.34]  # inner lips
)


@dataclass(frozen=True)
class Performance:
    expression: np.ndarray  # (n, 4) see EXPRESSION
    head: np.ndarray  # (n, 5) see HEAD; roll and yaw in degrees, shifts in face sizes
    camera: np.ndarray  # (n, 2, 3) canvas -> frame affine
    lighting: np.ndarray  # (n, 5) gain, red gain, blue gain, x and y light gradient
    noise: float  # sensor noise sigma, 8-bit levels

    @property
    def n_frames(self) -> int:
        return len(self.expression)


@dataclass(frozen=True)
class Video:
    """Frames and their exact landmarks (frame pixels)."""

    identity: Identity
    performance: Performance
    frames: np.ndarray  # (n, H, W, 3) uint8 RGB
    landmarks: np.ndarray  # (n, 68, 2) float32


def smooth_curve(rng: np.random.Generator, t: np.ndarray, amplitude: float, freq: tuple[float, float], terms: int = 3) -> np.ndarray:
    """Sum of a few slow sinusoids with random frequencies and phases."""
    out = np.zeros_like(t)
    for _ in range(terms):
        out += np.sin(2 * np.pi * rng.uniform(*freq) * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.3, 1.0)
    return amplitude * out / terms * 1.6


def blinks(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Eyelid closure in [0, 1]: a blink every 1.5-4 s, about 0.2 s long, the
    first one somewhere in the clip so short clips still blink."""
    out = np.zeros_like(t)
    start = rng.uniform(0.1, 0.75) * t[-1] if len(t) > 1 else 0.0
    while start < t[-1] + 1:
        duration = rng.uniform(0.15, 0.25)
        phase = (t - start) / duration
        closing = np.where((phase >= 0) & (phase <= 1), np.sin(np.pi * np.clip(phase, 0, 1)), 0.0)
        out = np.maximum(out, closing * rng.uniform(0.8, 0.95))
        start += rng.uniform(1.5, 4.0)
    return out


def speech(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Jaw opening in [0, 1]: syllables at 3-6 Hz inside phrases, with pauses."""
    syllables = np.abs(np.sin(np.pi * rng.uniform(3, 6) * t + rng.uniform(0, np.pi)))
    phrases = np.clip(0.6 + smooth_curve(rng, t, 0.8, (0.3, 0.8), 2), 0, 1)
    return np.clip(syllables * phrases * rng.uniform(0.5, 1.0), 0, 1)


def sample_performance(rng: np.random.Generator, cfg: dict, frame_shape: tuple[int, int], identity: Identity) -> Performance:
    """Draw one video's motion, scaled by the cfg's realism knobs."""
    n, fps = int(cfg["n_frames"]), float(cfg["fps"])
    height, width = frame_shape
    t = np.arange(n) / fps
    expr_k, head_k, cam_k, light_k = (float(cfg[k]) for k in ("expression", "head_motion", "camera_motion", "lighting"))
    expression = np.stack(
        [
            blinks(rng, t) * min(expr_k, 1.0),
            speech(rng, t) * expr_k,
            np.clip(rng.uniform(0.0, 0.5) + smooth_curve(rng, t, 0.4, (0.1, 0.4), 2), 0, 1) * expr_k,
            smooth_curve(rng, t, 0.6, (0.2, 0.6), 2) * expr_k,
        ],
        axis=1,
    )
    head = np.stack(
        [
            smooth_curve(rng, t, 3.0 * head_k, (0.2, 0.7)),  # roll, degrees
            smooth_curve(rng, t, 0.025 * head_k, (0.2, 0.6)),  # dx, face sizes
            smooth_curve(rng, t, 0.015 * head_k, (0.2, 0.6)),  # dy
            smooth_curve(rng, t, 0.025 * head_k, (0.1, 0.4)),  # scale - 1
            smooth_curve(rng, t, 6.0 * head_k, (0.15, 0.5)),  # yaw, degrees
        ],
        axis=1,
    )
    ch, cw = identity.canvas.shape[:2]
    room_x, room_y = (cw - width) / 2.0, (ch - height) / 2.0
    pan_x = smooth_curve(rng, t, 0.5 * room_x * cam_k, (0.05, 0.25), 2) + smooth_curve(rng, t, 0.4 * cam_k, (1.0, 3.0))
    pan_y = smooth_curve(rng, t, 0.5 * room_y * cam_k, (0.05, 0.25), 2) + smooth_curve(rng, t, 0.4 * cam_k, (1.0, 3.0))
    zoom_to = rng.uniform(-0.05, 0.08) * cam_k
    zoom = 1 + zoom_to * np.clip(t / max(t[-1], 1e-6), 0, 1) ** 1.5
    camera = np.zeros((n, 2, 3))
    camera[:, 0, 0] = camera[:, 1, 1] = zoom
    camera[:, 0, 2] = width / 2.0 - zoom * (cw / 2.0 + pan_x)
    camera[:, 1, 2] = height / 2.0 - zoom * (ch / 2.0 + pan_y)
    lighting = np.stack(
        [
            1 + rng.uniform(-0.04, 0.04) * light_k + smooth_curve(rng, t, 0.04 * light_k, (0.1, 0.5), 2),
            1 + smooth_curve(rng, t, 0.025 * light_k, (0.05, 0.3), 2),
            1 + smooth_curve(rng, t, 0.025 * light_k, (0.05, 0.3), 2),
            rng.uniform(-0.08, 0.08) * light_k + smooth_curve(rng, t, 0.04 * light_k, (0.1, 0.4), 2),
            rng.uniform(-0.05, 0.05) * light_k + smooth_curve(rng, t, 0.02 * light_k, (0.1, 0.4), 2),
        ],
        axis=1,
    )
    lo, hi = cfg["noise"]
    return Performance(expression, head, camera, lighting, float(rng.uniform(lo, hi)))


def pose_landmarks(identity: Identity, expression: np.ndarray, head: np.ndarray) -> np.ndarray:
    """The identity's landmarks (canvas pixels) with one frame's expression
    and head pose: the analytic face model every video and fake shares."""
    blink, jaw_open, smile, brow = expression
    roll, dx, dy, scale, yaw = head
    pts = identity.landmarks.astype(np.float64).copy()
    size = identity.size
    # blink: upper lids come down to the lower lids, which rise a little
    for upper, lower in (([37, 38], [41, 40]), ([43, 44], [47, 46])):
        gap = pts[lower] - pts[upper]
        pts[upper] += blink * 0.85 * gap
        pts[lower] -= blink * 0.1 * gap
    # speech: the lower lip and the chin drop, the corners follow a little
    pts = W.open_mouth(pts, jaw_open * 0.14 * size)
    # smile: the corners move out and up
    mouth_centre = pts[W.MOUTH].mean(0)
    for corner, weight in ((48, 1.0), (54, 1.0), (60, 0.8), (64, 0.8), (49, 0.4), (53, 0.4), (59, 0.4), (55, 0.4)):
        side = np.sign(pts[corner, 0] - mouth_centre[0])
        pts[corner] += weight * smile * size * np.array([0.035 * side, -0.025])
    # brows up (positive) or down
    pts[W.BROWS, 1] -= brow * 0.035 * size
    # yaw: a weak-perspective turn about the vertical axis; points in front
    # (nose tip) slide the most, the face outline narrows
    centre_x = W.face_centre(pts)[0]
    angle = np.deg2rad(yaw)
    pts[:, 0] = centre_x + (pts[:, 0] - centre_x) * np.cos(angle) + DEPTH * size * np.sin(angle)
    # rigid head motion about the face centre
    centre = W.face_centre(identity.landmarks)
    angle = np.deg2rad(roll)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * (1 + scale)
    pts = (pts - centre) @ rot.T + centre + np.array([dx, dy]) * size
    return pts.astype(np.float32)


def frame_landmarks(identity: Identity, performance: Performance, index: int, expression: np.ndarray | None = None) -> np.ndarray:
    """Frame-pixel landmarks of frame `index` (optionally with another expression)."""
    expr = performance.expression[index] if expression is None else expression
    canvas_pts = pose_landmarks(identity, expr, performance.head[index])
    return W.apply_affine(performance.camera[index], canvas_pts)


def no_jaw_drop(expression: np.ndarray) -> np.ndarray:
    """The same expression with the mouth closed (for painting the gap)."""
    out = np.array(expression, np.float64)
    out[1] = 0.0
    return out


def render_frame(identity: Identity, performance: Performance, index: int, frame_shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One frame (uint8 RGB) and its landmarks (frame pixels)."""
    height, width = frame_shape
    camera = performance.camera[index]
    posed = pose_landmarks(identity, performance.expression[index], performance.head[index])
    src = np.concatenate([identity.landmarks, identity.anchors])
    dst = W.apply_affine(camera, np.concatenate([posed, identity.anchors]))
    # one resampling: mesh inside the ring, the inverse camera outside
    image, _ = W.warp_image(identity.canvas, src, dst, identity.triangles, (height, width), W.invert_affine(camera))
    landmarks = dst[:68]
    closed = frame_landmarks(identity, performance, index, no_jaw_drop(performance.expression[index]))
    image = W.paint_mouth_interior(image.astype(np.float32), landmarks, closed)
    image = W.paint_closed_eyes(image, landmarks)
    image = light(image, performance.lighting[index])
    image += rng.standard_normal(image.shape, dtype=np.float32) * performance.noise
    image += rng.standard_normal(image.shape[:2] + (1,), dtype=np.float32) * (0.5 * performance.noise)  # luma grain
    return W.to_uint8(image), landmarks


def light(image: np.ndarray, lighting: np.ndarray) -> np.ndarray:
    """Global gain, white balance drift and a soft directional light gradient."""
    gain, red, blue, grad_x, grad_y = lighting
    height, width = image.shape[:2]
    xs = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :]
    ys = (np.arange(height, dtype=np.float32) / height - 0.5)[:, None]
    field = gain * (1 + grad_x * xs + grad_y * ys)
    return image * field[..., None] * np.array([red, 1.0, blue], np.float32)


def render_video(identity: Identity, performance: Performance, frame_shape: tuple[int, int], rng: np.random.Generator) -> Video:
    frames, landmarks = zip(*(render_frame(identity, performance, i, frame_shape, rng) for i in range(performance.n_frames)))
    return Video(identity, performance, np.stack(frames), np.stack(landmarks))
