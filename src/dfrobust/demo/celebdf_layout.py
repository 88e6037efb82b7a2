"""The second embedded demo dataset: Celeb-DF v2's layout, built offline from a seed.

    Celeb-real/id0_0000.mp4 ...              celebrity i's videos (one identity, several performances)
    YouTube-real/00000.mp4 ...               other people, never faked
    Celeb-synthesis/id0_id1_0000.mp4 ...     Celeb-real/id0_0000 with celebrity 1's face
    List_of_testing_videos.txt               "<1|0> <folder>/<file>.mp4", 1 = REAL, 0 = fake (Celeb-DF's convention)
    demo_manifest.json                       written last: marks completion

People, motion and camera come from the FF++-layout demo's code
(identities, motion) with the `demo` block's look settings; the
fakes use a manipulation family that demo does not: Celeb-DF's own
synthesis (Li et al., CVPR 2020), a face swap made to hide the traces of
the first DeepFakes (see `celeb_synthesis`):

- high resolution: the donor's face is synthesised in a 256 px aligned
  square (FF++'s Deepfakes: 64 px) and warped back into the frame;
- colour transfer: LAB statistics matched to the target's face, the
  statistics themselves smoothed over time;
- a larger, feathered mask: the face contour up to the forehead (not the
  convex hull of the inner landmarks);
- temporal smoothing: the landmarks the swap is aligned on carry a
  detector's per-frame error and are smoothed by a constant-velocity Kalman
  filter, as Celeb-DF did against flicker; what is left is a slight lag and
  a face that swims a little on the head, not frame-to-frame jitter.

Why this one: it is what Celeb-DF's fakes are, so a detector trained on the
FF++-layout demo meets, cross-dataset, a fake whose tell-tale traces (low
resolution, colour mismatch, hard seams, flicker) were deliberately reduced:
the same situation as FF++ -> Celeb-DF in the papers.

The same seed and config give byte-identical files, whatever the number of
workers: each video draws from its own sub-seed.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
from concurrent.futures import as_completed
from pathlib import Path

import cv2
import numpy as np

from dfrobust.core.config import resolve_block
from dfrobust.core.errors import InputError
from dfrobust.core.io import sha256_file, write_json, write_text
from dfrobust.core.seeding import derive_seed
from dfrobust.demo import warp as W
from dfrobust.demo.ffpp_layout import MANIFEST, MARKER, MIN_FACE_PX, _versions, _worker_pool
from dfrobust.demo.identities import Identity, make_identity
from dfrobust.demo.manipulations import LIPS, Region, closed_mouth, face_mask
from dfrobust.demo.motion import Video, render_video, sample_performance
from dfrobust.media.ffmpeg import ffmpeg_version, find_ffmpeg, write_video

BLOCK = "demo_celebdf"
LOOK = ("identity_variation", "expression", "head_motion", "camera_motion", "camera_margin", "lighting", "noise")
REAL_FOLDERS = ("Celeb-real", "YouTube-real")
FAKE_FOLDER = "Celeb-synthesis"
TEST_LIST = "List_of_testing_videos.txt"
SUMMARY = ("Celeb-DF-style synthesis: donor face warped to the target's Kalman-smoothed landmarks in a high-resolution "
           "aligned square, colour-transferred with temporally smoothed statistics, warped back and blended with a "
           "feathered face-and-forehead mask")


def resolve_config(cfg: dict | None, look: dict | None = None) -> dict:
    """The demo_celebdf block with the schema's defaults (one-line InputError
    naming a bad key), plus the `demo` block's look settings (its defaults
    when `look` is None), plus the checks a schema cannot state."""
    out = resolve_block(BLOCK, cfg)
    looks = resolve_block("demo", {k: v for k, v in (look or {}).items() if k in LOOK})
    low, high = out["face_size"]
    if low > high:
        raise InputError(f"config key '{BLOCK}.face_size': {out['face_size']!r} is not a [low, high] range")
    if low * out["height"] < MIN_FACE_PX:
        raise InputError(f"config key '{BLOCK}.face_size': faces of {low} x height {out['height']} = {low * out['height']:.0f} px "
                         f"are too small for dlib's HOG detector (need >= {MIN_FACE_PX} px)")
    if out["fakes_per_video"] > out["celebrities"] - 1:
        raise InputError(f"config key '{BLOCK}.fakes_per_video': {out['fakes_per_video']} donors per video needs at least "
                         f"{out['fakes_per_video'] + 1} celebrities (have {out['celebrities']})")
    n_real = out["celebrities"] * out["videos_per_celebrity"] + out["youtube_videos"]
    n_fake = out["celebrities"] * out["videos_per_celebrity"] * out["fakes_per_video"]
    for kind, count in (("real", n_real), ("fake", n_fake)):
        if out["test"][kind] > count:
            raise InputError(f"config key '{BLOCK}.test.{kind}': {out['test'][kind]} test videos but only {count} {kind} videos")
    return {**out, **{k: looks[k] for k in LOOK}}


# -- the plan: which videos, which fakes, which are listed -----------------------------


def celebrity_videos(cfg: dict) -> list[tuple[int, str]]:
    """(celebrity, 'id<i>_<NNNN>') of every Celeb-real video."""
    return [(i, f"id{i}_{j:04d}") for i in range(cfg["celebrities"]) for j in range(cfg["videos_per_celebrity"])]


def youtube_videos(cfg: dict) -> list[str]:
    return [f"{k:05d}" for k in range(cfg["youtube_videos"])]


def donors(cfg: dict, seed: int, target: int, name: str) -> list[int]:
    """The celebrities whose faces go onto video `name` of celebrity `target`:
    another photo's people first (the swap then really changes the person)."""
    rng = np.random.default_rng(derive_seed(seed, BLOCK, "donors", name))
    others = [i for i in range(cfg["celebrities"]) if i != target]
    order = rng.permutation(len(others))
    ranked = sorted(range(len(others)), key=lambda k: (others[k] % 2 == target % 2, int(np.flatnonzero(order == k)[0])))
    return [others[k] for k in ranked[: cfg["fakes_per_video"]]]


def plan(cfg: dict, seed: int) -> dict:
    """Every file of the dataset: {relpath: {label, split, kind, ...}} and the test list's lines."""
    videos: dict[str, dict] = {}
    for i, name in celebrity_videos(cfg):
        videos[f"Celeb-real/{name}.mp4"] = {"label": 0, "celebrity": i, "name": name}
        number = name.split("_")[1]
        for donor in donors(cfg, seed, i, name):
            videos[f"{FAKE_FOLDER}/id{i}_id{donor}_{number}.mp4"] = {"label": 1, "target": f"Celeb-real/{name}.mp4", "donor": donor}
    for k, name in enumerate(youtube_videos(cfg)):
        videos[f"YouTube-real/{name}.mp4"] = {"label": 0, "person": cfg["celebrities"] + k, "name": name}
    rng = np.random.default_rng(derive_seed(seed, BLOCK, "test_list"))
    fakes = sorted(v for v, info in videos.items() if info["label"] == 1)
    test_fakes = [fakes[k] for k in rng.permutation(len(fakes))[: cfg["test"]["fake"]]]
    n_real = cfg["test"]["real"]
    youtube = sorted(v for v in videos if v.startswith("YouTube-real/"))
    n_youtube = min(len(youtube), round(n_real * len(youtube) / (len(youtube) + len(celebrity_videos(cfg)))))
    test_reals = [youtube[k] for k in rng.permutation(len(youtube))[:n_youtube]]
    celeb = sorted(v for v in videos if v.startswith("Celeb-real/"))
    targets = list(dict.fromkeys(videos[f]["target"] for f in test_fakes))
    rest = [celeb[k] for k in rng.permutation(len(celeb)) if celeb[k] not in targets]
    test_reals += (targets + rest)[: n_real - n_youtube]
    test = set(test_fakes) | set(test_reals)
    for rel, info in videos.items():
        info["split"] = "test" if rel in test else "train"
    # Celeb-DF's list: reals first, then fakes; first column 1 = real, 0 = fake
    lines = [f"1 {rel}" for rel in sorted(test_reals)] + [f"0 {rel}" for rel in sorted(test_fakes)]
    return {"videos": dict(sorted(videos.items())), "test_list": lines}


# -- rendering -----------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _identity(index: int, seed: int, cfg_json: str) -> Identity:
    cfg = json.loads(cfg_json)
    rng = np.random.default_rng(derive_seed(seed, BLOCK, "identity", index))
    return make_identity(index, rng, cfg["width"], cfg["height"], cfg)


def identity(index: int, cfg: dict, seed: int) -> Identity:
    """Person `index` (celebrities first, then the YouTube people), the same in every job."""
    return _identity(index, seed, json.dumps(cfg, sort_keys=True))


def render_real(index: int, name: str, cfg: dict, seed: int) -> Video:
    """Real video `name` of person `index`: its own performance sub-seed."""
    shape = (cfg["height"], cfg["width"])
    person = identity(index, cfg, seed)
    rng = np.random.default_rng(derive_seed(seed, BLOCK, "video", name))
    return render_video(person, sample_performance(rng, cfg, shape, person), shape, rng)


# -- the synthesis --------------------------------------------------------------------


def kalman_smooth(measured: np.ndarray, measurement_sd: float, acceleration_sd: float) -> np.ndarray:
    """Forward constant-velocity Kalman filter over frames, every coordinate
    on its own: (n, ...) -> (n, ...). Causal, like a tracker: it lags."""
    n = len(measured)
    flat = measured.reshape(n, -1).astype(np.float64)
    f = np.array([[1.0, 1.0], [0.0, 1.0]])
    q = acceleration_sd**2 * np.array([[0.25, 0.5], [0.5, 1.0]])
    r = max(measurement_sd, 1e-6) ** 2
    position, velocity = flat[0].copy(), np.zeros(flat.shape[1])
    p = np.array([[r, 0.0], [0.0, r]])
    out = [position.copy()]
    for z in flat[1:]:
        position, velocity = position + velocity, velocity  # predict
        p = f @ p @ f.T + q
        gain = p[:, 0] / (p[0, 0] + r)  # update (the covariance is the same for every coordinate)
        innovation = z - position
        position, velocity = position + gain[0] * innovation, velocity + gain[1] * innovation
        p = p - np.outer(gain, p[0])
        out.append(position.copy())
    return np.stack(out).reshape(measured.shape).astype(np.float32)


def aligned_transform(landmarks: np.ndarray, resolution: int) -> np.ndarray:
    """Similarity (2x3) from frame pixels to the aligned face square: eyes
    level, face centred, 1.7 face sizes across (forehead and chin included)."""
    left, right = landmarks[W.LEFT_EYE].mean(0), landmarks[W.RIGHT_EYE].mean(0)
    angle = math.degrees(math.atan2(float(right[1] - left[1]), float(right[0] - left[0])))
    centre = W.face_centre(landmarks)
    scale = resolution / (1.7 * W.face_size(landmarks))
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
    matrix[:, 2] += resolution / 2.0 - centre
    return matrix


def forehead(landmarks: np.ndarray) -> np.ndarray:
    """Points above the brows, up the forehead (landmarks stop at the brows)."""
    size = W.face_size(landmarks)
    brows = landmarks[W.BROWS]
    centre_x = W.face_centre(landmarks)[0]
    up = brows.copy()
    up[:, 1] -= 0.2 * size
    up[:, 0] = centre_x + (up[:, 0] - centre_x) * 0.95
    return up.astype(np.float32)


def lab_stats(image: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """(mean L, a, b, sd L) of the pixels inside a mask, float32 RGB/uint8 in."""
    lab = cv2.cvtColor(W.to_uint8(image), cv2.COLOR_RGB2LAB).astype(np.float32)[inside]
    return np.r_[lab.mean(0), max(float(lab[:, 0].std()), 1.0)]


def transfer_colour(face: np.ndarray, own: np.ndarray, target: np.ndarray, lips: np.ndarray, strength: float) -> np.ndarray:
    """Reinhard-style transfer with given statistics: lightness gets the
    target's mean and contrast, colour its mean (the lips mostly spared)."""
    lab = cv2.cvtColor(W.to_uint8(face), cv2.COLOR_RGB2LAB).astype(np.float32)
    matched = lab - own[:3] + target[:3]
    matched[..., 0] = (lab[..., 0] - own[0]) * float(np.clip(target[3] / own[3], 0.8, 1.6)) + target[0]
    chroma = (strength * (1 - 0.7 * lips))[..., None]
    weight = np.concatenate([np.full_like(chroma, strength), chroma, chroma], axis=2)
    return cv2.cvtColor(W.to_uint8(lab + weight * (matched - lab)), cv2.COLOR_LAB2RGB).astype(np.float32)


def celeb_synthesis(target: Video, donor: Identity, rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """Celeb-DF's face swap of `donor` onto `target`'s frames (module docstring)."""
    resolution = int(cfg["synthesis_resolution"])
    size = float(np.mean([W.face_size(lm) for lm in target.landmarks]))
    jitter = cfg["landmark_jitter"] * size
    measured = target.landmarks + rng.normal(0.0, jitter, target.landmarks.shape).astype(np.float32)
    tracked = kalman_smooth(measured, jitter, cfg["kalman_acceleration"] * size)
    strength = rng.uniform(0.85, 1.0)
    src_points = np.concatenate([donor.landmarks, forehead(donor.landmarks)])
    mesh = W.mouth_safe_mesh(donor.landmarks, forehead(donor.landmarks))
    contour = np.r_[W.JAW, 68 + np.arange(len(W.BROWS))]  # jaw line and forehead: the mask's outline
    square = (resolution, resolution)
    smoothing = float(cfg["colour_smoothing"])
    own_stats = target_stats = None
    out = []
    for t, frame in enumerate(target.frames):
        landmarks = tracked[t]
        matrix = aligned_transform(landmarks, resolution)
        dst = W.apply_affine(matrix, np.concatenate([landmarks, forehead(landmarks)]))
        face, inside = W.warp_image(donor.canvas, src_points, dst, mesh, square)
        reference = cv2.warpAffine(frame, matrix, square, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        mask = W.soft_mask(W.polygon_mask(dst[contour], square), grow=-0.03 * resolution / 1.7) * inside
        core = mask > 0.5
        if core.sum() >= 16:
            own_now, target_now = lab_stats(face, core), lab_stats(reference.astype(np.float32), core)
            own_stats = own_now if own_stats is None else smoothing * own_stats + (1 - smoothing) * own_now
            target_stats = target_now if target_stats is None else smoothing * target_stats + (1 - smoothing) * target_now
            lips = face_mask(dst[:68], square, LIPS, 0.03, 0.02)
            face = transfer_colour(face, own_stats, target_stats, lips, strength)
        # the target's expression: its mouth gap and closing eyes, at the tracked positions (painted after
        # the colour transfer, which would turn a dark mouth grey)
        closed = W.apply_affine(matrix, closed_mouth(target, t) + (landmarks - target.landmarks[t]))
        face = W.paint_closed_eyes(W.paint_mouth_interior(face.astype(np.float32), dst[:68], closed), dst[:68])
        soft = W.soft_mask(mask, blur=cfg["mask_feather"] * resolution / 1.7)
        # back into the frame: only the region around the true face is touched
        region = Region.around(target.landmarks[t], frame.shape[:2], margin=0.5)
        to_region = matrix.copy()
        to_region[:, 2] += matrix[:, :2] @ region.offset  # region pixels -> aligned square
        back = cv2.warpAffine(W.to_uint8(face), to_region, region.shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(soft, to_region, region.shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out.append(region.paste(frame, W.blend(frame[region.rows, region.cols], back, alpha)))
    return np.stack(out)


# -- building ------------------------------------------------------------------------


def build_unit(job: dict) -> dict:
    """One unit of work: a Celeb-real video and its fakes, or a YouTube-real video."""
    root, cfg, seed, exe = Path(job["root"]), job["cfg"], job["seed"], job["ffmpeg"]
    written = []

    def encode(frames: np.ndarray, rel: str) -> None:
        write_video(root / rel, frames, cfg["fps"], cfg["crf"], preset=cfg["preset"], exe=exe)
        written.append(rel)

    real = render_real(job["person"], job["name"], cfg, seed)
    encode(real.frames, job["rel"])
    for rel, donor in job["fakes"]:
        rng = np.random.default_rng(derive_seed(seed, BLOCK, "synthesis", rel))
        encode(celeb_synthesis(real, identity(donor, cfg, seed), rng, cfg), rel)
    return {"person": job["person"], "identity": real.identity.description, "files": written}


def _prepare_root(root: Path, planned: list[str]) -> None:
    """Refuse to write into a dataset we did not make; drop our stale videos
    and the old manifest, so an interrupted build never looks complete."""
    folders = (*REAL_FOLDERS, "Youtube-real", FAKE_FOLDER)
    has_data = any((root / d).exists() for d in folders) or (root / TEST_LIST).exists()
    if has_data and not (root / MARKER).exists():
        raise InputError(f"{root}: holds a dataset the demo generator did not make; refusing to overwrite it (use an empty folder)")
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).unlink(missing_ok=True)
    (root / MARKER).write_text("videos under this folder were generated by dfrobust.demo.celebdf_layout and may be replaced\n")
    keep = set(planned)
    for folder in folders:
        for path in sorted((root / folder).glob("*.mp4")) if (root / folder).is_dir() else []:
            if path.relative_to(root).as_posix() not in keep:
                path.unlink()


def build_demo_celebdf(root: str | Path, cfg: dict | None, seed: int, ffmpeg: str | None = None, look: dict | None = None,
                       progress: bool = True) -> dict:
    """Write the Celeb-DF-layout demo under `root`; returns the manifest (written last).

    `cfg` is the demo_celebdf block, `look` the `demo` block (its people,
    motion, camera and lighting settings are used; defaults when None).
    """
    from tqdm import tqdm

    cfg = resolve_config(cfg, look)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InputError(f"demo seed: expected an integer, got {seed!r}")
    seed = int(seed)
    root = Path(root)
    exe = find_ffmpeg(ffmpeg)
    version = ffmpeg_version(exe)
    layout = plan(cfg, seed)
    planned = sorted([*layout["videos"], TEST_LIST])
    _prepare_root(root, planned)
    write_text(root / TEST_LIST, "\n".join(layout["test_list"]) + "\n")

    base = {"root": str(root), "cfg": cfg, "seed": seed, "ffmpeg": exe}
    jobs = []
    for i, name in celebrity_videos(cfg):
        rel = f"Celeb-real/{name}.mp4"
        fakes = [(f, info["donor"]) for f, info in layout["videos"].items() if info.get("target") == rel]
        jobs.append({**base, "person": i, "name": name, "rel": rel, "fakes": fakes})
    for k, name in enumerate(youtube_videos(cfg)):
        jobs.append({**base, "person": cfg["celebrities"] + k, "name": name, "rel": f"YouTube-real/{name}.mp4", "fakes": []})
    identities = {}
    with tqdm(total=len(layout["videos"]), desc="demo_celebdf videos", unit="video", disable=not progress) as bar:
        if cfg["workers"] == 1:
            for job in jobs:
                result = build_unit(job)
                identities[result["person"]] = result["identity"]
                bar.update(len(result["files"]))
        else:
            with _worker_pool(min(cfg["workers"], len(jobs))) as pool:
                futures = [pool.submit(build_unit, job) for job in jobs]
                try:
                    for future in as_completed(futures):
                        result = future.result()
                        identities[result["person"]] = result["identity"]
                        bar.update(len(result["files"]))
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise

    names = {i: f"id{i}" for i in range(cfg["celebrities"])}
    names.update({cfg["celebrities"] + k: f"YouTube-real/{n}" for k, n in enumerate(youtube_videos(cfg))})
    manifest = {
        "dataset": "dfrobust embedded demo (Celeb-DF v2 layout)",
        "seed": seed,
        "config": cfg,
        "ffmpeg": version,
        "libraries": _versions(),
        "manipulation": {FAKE_FOLDER: SUMMARY},
        "identities": {names[i]: identities[i] for i in sorted(identities)},
        "videos": layout["videos"],
        "test_list": layout["test_list"],
        "files": [{"path": rel, "bytes": (root / rel).stat().st_size, "sha256": sha256_file(root / rel)} for rel in planned],
    }
    write_json(root / MANIFEST, manifest)
    return manifest


DEFAULTS: dict = resolve_config({})


def planned_counts(cfg: dict | None) -> dict[str, int]:
    """Videos per split the build will list (a dry run plans before the build)."""
    cfg = resolve_config(cfg)
    n_real = cfg["celebrities"] * cfg["videos_per_celebrity"] + cfg["youtube_videos"]
    n_fake = cfg["celebrities"] * cfg["videos_per_celebrity"] * cfg["fakes_per_video"]
    test = cfg["test"]["real"] + cfg["test"]["fake"]
    return {"train": n_real + n_fake - test, "val": 0, "test": test}
