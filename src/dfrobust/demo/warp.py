"""Landmark geometry for the demo dataset: piecewise-affine warps and soft masks.

Every face change in the demo (identity shape, blinks, speech, head motion,
the four manipulations) is a warp that moves dlib's 68 landmarks to new
positions. The landmarks are moved analytically, so the generator always
knows where the face is and never has to detect it again.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from scipy.spatial import Delaunay

JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
LEFT_EYE = np.arange(36, 42)  # the subject's right eye, on the image's left
RIGHT_EYE = np.arange(42, 48)
MOUTH = np.arange(48, 68)

# index of each landmark's mirror image (dlib's 68-point layout)
MIRROR = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # eyes
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)


def mirror_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally flipped image, in the same semantic order."""
    flipped = landmarks.copy()
    flipped[:, 0] = width - 1 - flipped[:, 0]
    return flipped[MIRROR]


def face_size(landmarks: np.ndarray) -> float:
    """Side of a square face box, about what dlib's detector reports."""
    span = landmarks.max(0) - landmarks.min(0)
    return float(max(span[0], span[1]))


def face_centre(landmarks: np.ndarray) -> np.ndarray:
    return (landmarks.max(0) + landmarks.min(0)) / 2.0


def anchor_ring(landmarks: np.ndarray, n: int = 16, scale: tuple[float, float] = (1.05, 1.35)) -> np.ndarray:
    """Fixed points on an ellipse around the head: warps fade out towards them,
    so everything outside the ring (background, body) stays where it is."""
    size = face_size(landmarks)
    centre = face_centre(landmarks) - np.array([0.0, 0.15 * size])
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([np.cos(angle) * scale[0], np.sin(angle) * scale[1]], 1) * size
    return (centre + ring).astype(np.float32)


def triangulate(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles (k, 3) over the points; computed once per face so the
    mesh topology stays fixed while its vertices move."""
    return Delaunay(np.asarray(points, np.float64)).simplices.astype(np.int32)


def _affines(src: np.ndarray, dst: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per triangle, the (3, 2) matrix taking [x, y, 1] in dst to src, and which
    triangles are not degenerate in dst (a closed mouth has zero-area ones)."""
    d = np.concatenate([dst[triangles], np.ones((*triangles.shape, 1))], axis=2)  # (k, 3, 3)
    s = src[triangles].astype(np.float64)  # (k, 3, 2)
    det = np.linalg.det(d)
    ok = np.abs(det) > 0.5  # twice the area in px^2
    mats = np.zeros((len(triangles), 3, 2))
    mats[:, 0, 0] = mats[:, 1, 1] = 1.0  # identity for degenerate ones (never drawn)
    if ok.any():
        mats[ok] = np.linalg.solve(d[ok], s[ok])
    return mats, ok


def warp_maps(
    src: np.ndarray,
    dst: np.ndarray,
    triangles: np.ndarray,
    shape: tuple[int, int],
    fallback: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward maps for cv2.remap: each output pixel inside a dst triangle
    samples the matching point of the src triangle (piecewise affine).

    Pixels outside the mesh follow `fallback`, a (2, 3) affine from output to
    source pixels (identity when None). Returns map_x, map_y and the boolean
    mask of pixels covered by the mesh.
    """
    height, width = shape
    mats, ok = _affines(np.asarray(src, np.float64), np.asarray(dst, np.float64), triangles)
    label = np.zeros((height, width), np.int32)
    scaled = np.round(np.asarray(dst, np.float64) * 16).astype(np.int32)
    for k in np.flatnonzero(ok):
        cv2.fillConvexPoly(label, scaled[triangles[k]], int(k) + 1, lineType=cv2.LINE_8, shift=4)
    ys, xs = _grid(height, width)
    if fallback is None:
        map_x, map_y = xs.copy(), ys.copy()
    else:
        f = np.asarray(fallback, np.float32)
        map_x = f[0, 0] * xs + f[0, 1] * ys + f[0, 2]
        map_y = f[1, 0] * xs + f[1, 1] * ys + f[1, 2]
    inside = label > 0
    if inside.any():
        m = mats[label[inside] - 1].astype(np.float32)  # (p, 3, 2)
        px, py = xs[inside], ys[inside]
        map_x[inside] = px * m[:, 0, 0] + py * m[:, 1, 0] + m[:, 2, 0]
        map_y[inside] = px * m[:, 0, 1] + py * m[:, 1, 1] + m[:, 2, 1]
    return map_x, map_y, inside


@functools.lru_cache(maxsize=4)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys.flags.writeable = xs.flags.writeable = False
    return ys, xs


def box_around(points: np.ndarray, shape: tuple[int, int], margin: float) -> tuple[slice, slice]:
    """Row and column slices of the points' bounding box grown by `margin` px,
    clipped to the image: the only part of a frame an edit needs to touch."""
    height, width = shape
    lo = np.floor(points.min(0) - margin).astype(int)
    hi = np.ceil(points.max(0) + margin).astype(int) + 1
    return slice(max(lo[1], 0), min(hi[1], height)), slice(max(lo[0], 0), min(hi[0], width))


def remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def warp_image(
    image: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    triangles: np.ndarray,
    shape: tuple[int, int] | None = None,
    fallback: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp `image` so that its points `src` move to `dst`; (warped, mesh mask)."""
    map_x, map_y, inside = warp_maps(src, dst, triangles, shape or image.shape[:2], fallback)
    return remap(image, map_x, map_y), inside


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, np.float64)
    return (np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]).astype(np.float32)


def polygon_mask(points: np.ndarray, shape: tuple[int, int], hull: bool = True) -> np.ndarray:
    """float32 0/1 mask of the polygon (or convex hull) through the points."""
    mask = np.zeros(shape, np.uint8)
    pts = np.round(np.asarray(points, np.float64) * 16).astype(np.int32)
    if hull:
        pts = cv2.convexHull(pts)
    cv2.fillPoly(mask, [pts.reshape(-1, 2)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(np.float32)


def soft_mask(mask: np.ndarray, grow: float = 0.0, blur: float = 0.0) -> np.ndarray:
    """Grow (>0) or shrink (<0) a 0/1 mask by `grow` px, then feather it with a
    Gaussian of sigma `blur` px. The feathering is what a blend leaves behind."""
    out = mask.astype(np.float32)
    radius = int(round(abs(grow)))
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        out = cv2.dilate(out, kernel) if grow > 0 else cv2.erode(out, kernel)
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    return out


def blend(base: np.ndarray, overlay: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Alpha blend in float; mask in [0, 1], (h, w)."""
    alpha = mask[..., None]
    return base.astype(np.float32) * (1 - alpha) + overlay.astype(np.float32) * alpha


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


LOWER_LIP = np.array([55, 56, 57, 58, 59, 65, 66, 67])
MOUTH_CORNERS = np.array([48, 54, 60, 64])
JAW_DROP = np.array([0, 0, 0, 0, 0.15, 0.35, 0.6, 0.85, 1.0, 0.85, 0.6, 0.35, 0.15, 0, 0, 0, 0])


def open_mouth(landmarks: np.ndarray, drop: float) -> np.ndarray:
    """Landmarks with the jaw dropped by `drop` px: lower lip and chin go
    down, the corners follow a little, the upper lip lifts slightly."""
    pts = np.array(landmarks, np.float64)
    pts[LOWER_LIP, 1] += drop
    pts[MOUTH_CORNERS, 1] += 0.35 * drop
    pts[[61, 62, 63], 1] -= 0.04 * drop
    pts[JAW, 1] += JAW_DROP * drop
    return pts


def mouth_safe_mesh(landmarks: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
    """Triangles for warping a face whose mouth may open: triangulated with
    the mouth open, so no triangle joins the upper and the lower lip (on a
    closed mouth such a triangle has no area and smears the lips)."""
    opened = open_mouth(landmarks, 0.12 * face_size(landmarks))
    return triangulate(opened if extra is None else np.concatenate([opened, extra]))


def paint_mouth_interior(image: np.ndarray, landmarks: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """Paint the gap a dropped jaw opens: the dark oral cavity, and the upper
    teeth where the closed mouth showed none.

    A warp only stretches the lips (or teeth) over the gap; a real open
    mouth shows the cavity. `closed` are the same landmarks without the jaw
    drop: the band between their inner lower lip and the actual one is the
    new gap. float32 in, float32 out.
    """
    drop = float(np.mean(landmarks[[65, 66, 67], 1] - closed[[65, 66, 67], 1]))
    width = float(np.linalg.norm(landmarks[54] - landmarks[48]))
    if drop < 0.02 * width:
        return image
    rows, cols = box_around(np.concatenate([landmarks[48:68], closed[48:68]]), image.shape[:2], 4)
    offset = np.array([cols.start, rows.start], np.float32)
    top = np.concatenate([landmarks[[60]], closed[[67, 66, 65]], landmarks[[64]]]) - offset
    bottom = landmarks[[64, 65, 66, 67, 60]] - offset
    patch = image[rows, cols]
    shape = patch.shape[:2]
    gap = polygon_mask(np.concatenate([top, bottom]), shape, hull=False)
    strength = min(1.0, drop / (0.12 * width))
    cavity = np.full_like(patch, 1.0) * np.array([58, 22, 26], np.float32)
    patch = blend(patch, cavity, soft_mask(gap, blur=0.8) * strength)
    closed_gap = float(np.mean(closed[[65, 66, 67], 1] - closed[[61, 62, 63], 1])) / max(width, 1e-6)
    teeth_strength = strength * 0.75 * float(np.clip(1 - closed_gap / 0.06, 0, 1))
    out = image.copy()
    if teeth_strength > 0:  # upper teeth: the top fifth of the gap
        teeth_low = top + (bottom[::-1] - top) * 0.2
        teeth = polygon_mask(np.concatenate([top, teeth_low[::-1]]), shape, hull=False) * gap
        colour = np.full_like(patch, 1.0) * np.array([222, 205, 178], np.float32)
        patch = blend(patch, colour, soft_mask(teeth, blur=0.7) * teeth_strength)
    out[rows, cols] = patch
    return out


def eye_openness(landmarks: np.ndarray, eye: np.ndarray) -> float:
    """Eye aspect ratio: lid gap over eye width (about 0.3 open, 0 shut)."""
    p = landmarks[eye]
    gap = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
    return float(gap / (2 * max(np.linalg.norm(p[0] - p[3]), 1e-6)))


def paint_closed_eyes(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Draw the dark lash line of a closing eye.

    Warping the upper lid down only stretches skin over the eye; a shut eye
    still shows its lashes (and a face detector looks for that dark line).
    Fades in as the eye aspect ratio drops from 0.15 to 0.05. float32 in and out.
    """
    out = image
    thickness = max(1, int(round(0.018 * face_size(landmarks))))
    for eye in (LEFT_EYE, RIGHT_EYE):
        alpha = float(np.clip((0.15 - eye_openness(landmarks, eye)) / 0.1, 0, 1))
        if alpha <= 0:
            continue
        p = landmarks[eye]
        lid = np.array([p[0], (p[1] + p[5]) / 2, (p[2] + p[4]) / 2, p[3]])
        rows, cols = box_around(lid, image.shape[:2], 3 + thickness)
        local = np.round((lid - [cols.start, rows.start]) * 16).astype(np.int32)
        line = np.zeros((rows.stop - rows.start, cols.stop - cols.start), np.uint8)
        cv2.polylines(line, [local], False, 255, thickness, cv2.LINE_AA, shift=4)
        if out is image:
            out = image.copy()
        lash = np.full(line.shape + (3,), (45, 30, 28), np.float32)
        out[rows, cols] = blend(out[rows, cols], lash, line.astype(np.float32) / 255.0 * 0.85 * alpha)
    return out
