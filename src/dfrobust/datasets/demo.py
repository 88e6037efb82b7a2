"""The embedded demo dataset: FaceForensics++'s layout, built offline from a seed.

A newcomer without FF++ runs the whole pipeline on this. It has the same
folders, file names, split files and compression levels as FF++, so nothing
downstream can tell the two apart:

    original_sequences/youtube/{raw,c23,c40}/videos/000.mp4 ...
    manipulated_sequences/{Deepfakes,Face2Face,FaceSwap,NeuralTextures}/{raw,c23,c40}/videos/000_001.mp4 ...
    train.json, val.json, test.json          [["000", "001"], ...]
    demo_manifest.json                       written last: marks completion

Every original video id is its own identity synthesised from two real photos
(demo_identities), filmed with natural motion (demo_motion); each split pair
[a, b] gives the fakes a_b (target a, source b) and b_a of every method
(demo_manipulations). The same seed and config give byte-identical files.
"""

from __future__ import annotations

import contextlib
import copy
import json
import multiprocessing
import numbers
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from dfrobust.datasets.demo_identities import make_identity, source_photos
from dfrobust.datasets.demo_manipulations import METHODS
from dfrobust.datasets.demo_motion import Video, render_video, sample_performance
from dfrobust.errors import InputError
from dfrobust.io import sha256_file, write_json, write_text
from dfrobust.seeding import derive_seed
from dfrobust.video.ffmpeg import ffmpeg_version, find_ffmpeg, write_video

MANIFEST = "demo_manifest.json"
MARKER = ".dfrobust_demo"  # says the folder's videos are ours to replace
SPLITS = ("train", "val", "test")
CRF = {"raw": 0, "c23": 23, "c40": 40}  # FF++: raw is lossless H.264
RAW_PRESET = "veryfast"  # lossless decodes to the same frames at any preset; this one is 3x faster
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

DEFAULT_METHODS: dict[str, str] = {name: m.summary for name, m in METHODS.items()}

DEFAULTS: dict = {
    "pairs": {"train": 4, "val": 2, "test": 3},
    "n_frames": 48,
    "fps": 24,
    "width": 320,
    "height": 240,
    "face_size": [0.55, 0.65],
    "qualities": ["raw", "c23", "c40"],
    "methods": list(METHODS),
    "preset": "medium",
    "workers": 2,
    "identity_variation": 1.0,
    "expression": 1.0,
    "head_motion": 1.0,
    "camera_motion": 1.0,
    "camera_margin": 0.08,
    "lighting": 1.0,
    "noise": [1.0, 2.5],
    "deepfakes_resolution": 64,
}

MIN_FACE_PX = 90  # dlib's HOG window is 80 px; below that, upsample-0 detection fails


def _fail(key: str, problem: str) -> InputError:
    return InputError(f"demo.{key}: {problem}")


def _number(cfg: dict, key: str, kind: type, low: float, high: float, name: str | None = None):
    value, name = cfg[key], name or key
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise _fail(name, f"expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    if not low <= value <= high:
        raise _fail(name, f"{value!r} is outside [{low}, {high}]")
    return kind(value)


def _range(cfg: dict, key: str, low: float, high: float) -> list[float]:
    value = cfg[key]
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise _fail(key, f"expected [low, high], got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not low <= lo <= hi <= high:
        raise _fail(key, f"{value!r}: need {low} <= low <= high <= {high}")
    return [lo, hi]


def _choices(cfg: dict, key: str, allowed) -> list[str]:
    value = cfg[key]
    if not isinstance(value, (list, tuple)) or not value or len(set(value)) != len(value):
        raise _fail(key, f"expected a non-empty list without repeats, got {value!r}")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise _fail(key, f"unknown {unknown} (choose from {list(allowed)})")
    return list(value)


def resolve_config(cfg: dict | None) -> dict:
    """The demo block with defaults filled in, checked key by key (one-line
    InputError naming the key); also what goes into the manifest."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise InputError(f"demo: unknown key(s) {unknown} (known: {sorted(DEFAULTS)})")
    out = copy.deepcopy(DEFAULTS)
    pairs = cfg.pop("pairs", None) or {}
    if not isinstance(pairs, dict) or set(pairs) - set(SPLITS):
        raise _fail("pairs", f"expected a mapping with keys {list(SPLITS)}, got {pairs!r}")
    out["pairs"].update(pairs)
    out.update(cfg)
    out["pairs"] = {s: _number(out["pairs"], s, int, 1, 500, f"pairs.{s}") for s in SPLITS}
    if sum(out["pairs"].values()) > 500:
        raise _fail("pairs", "at most 500 pairs in all (video ids have three digits)")
    for key, kind, low, high in (
        ("n_frames", int, 2, 10_000),
        ("fps", float, 1, 240),
        ("width", int, 64, 4096),
        ("height", int, 64, 4096),
        ("workers", int, 1, 256),
        ("identity_variation", float, 0, 2),
        ("expression", float, 0, 2),
        ("head_motion", float, 0, 3),
        ("camera_motion", float, 0, 3),
        ("camera_margin", float, 0, 0.3),
        ("lighting", float, 0, 3),
        ("deepfakes_resolution", int, 8, 1024),
    ):
        out[key] = _number(out, key, kind, low, high)
    for key in ("width", "height"):
        if out[key] % 2:
            raise _fail(key, f"{out[key]} must be even (yuv420p, like FF++)")
    out["face_size"] = _range(out, "face_size", 0.05, 0.8)
    out["noise"] = _range(out, "noise", 0.0, 50.0)
    if out["face_size"][0] * out["height"] < MIN_FACE_PX:
        raise _fail(
            "face_size",
            f"faces of {out['face_size'][0]} x height {out['height']} = {out['face_size'][0] * out['height']:.0f} px "
            f"are too small for dlib's HOG detector (need >= {MIN_FACE_PX} px)",
        )
    out["qualities"] = _choices(out, "qualities", CRF)
    out["methods"] = _choices(out, "methods", METHODS)
    if out["preset"] not in X264_PRESETS:
        raise _fail("preset", f"unknown x264 preset {out['preset']!r} (choose from {list(X264_PRESETS)})")
    return out


def video_ids(cfg: dict) -> list[str]:
    """'000', '001', ...: two originals per pair."""
    return [f"{i:03d}" for i in range(2 * sum(cfg["pairs"].values()))]


def make_splits(cfg: dict, seed: int) -> dict[str, list[list[str]]]:
    """FF++-style pairs per split, drawn from the seed. Each pair joins one
    identity from each source photo (even and odd ids), so every swap
    changes the person, not just the styling."""
    ids = video_ids(cfg)
    rng = np.random.default_rng(derive_seed(seed, "demo", "splits"))
    evens, odds = rng.permutation(ids[0::2]), rng.permutation(ids[1::2])
    pairs = [sorted([str(a), str(b)]) for a, b in zip(evens, odds)]
    splits, start = {}, 0
    for split in SPLITS:
        count = cfg["pairs"][split]
        splits[split] = pairs[start : start + count]
        start += count
    return splits


def original_path(quality: str, vid: str) -> str:
    return f"original_sequences/youtube/{quality}/videos/{vid}.mp4"


def fake_path(method: str, quality: str, target: str, source: str) -> str:
    return f"manipulated_sequences/{method}/{quality}/videos/{target}_{source}.mp4"


def planned_files(cfg: dict, splits: dict) -> list[str]:
    files = [f"{split}.json" for split in SPLITS]
    for pairs in splits.values():
        for a, b in pairs:
            for target, source in ((a, b), (b, a)):
                files += [original_path(q, target) for q in cfg["qualities"]]
                files += [fake_path(m, q, target, source) for m in cfg["methods"] for q in cfg["qualities"]]
    return sorted(files)


def render_original(vid: str, cfg: dict, seed: int) -> Video:
    """Original video `vid` of a resolved cfg, frames and exact landmarks
    (identity and performance come from their own sub-seeds, so it is the
    same whichever job renders it)."""
    shape = (cfg["height"], cfg["width"])
    identity = make_identity(int(vid), np.random.default_rng(derive_seed(seed, "demo", "identity", vid)), cfg["width"], cfg["height"], cfg)
    rng = np.random.default_rng(derive_seed(seed, "demo", "video", vid))
    return render_video(identity, sample_performance(rng, cfg, shape, identity), shape, rng)


def build_target(job: dict) -> dict:
    """One unit of work: original `target` and its fakes with `source`, each
    encoded at every quality. Returns the files written and the identity."""
    root, cfg, seed, exe = Path(job["root"]), job["cfg"], job["seed"], job["ffmpeg"]
    target, source = job["target"], job["source"]
    written = []

    def encode(frames: np.ndarray, path_of) -> None:
        for quality in cfg["qualities"]:
            preset = RAW_PRESET if quality == "raw" else cfg["preset"]
            write_video(root / path_of(quality), frames, cfg["fps"], CRF[quality], preset=preset, exe=exe)
            written.append(path_of(quality))

    original = render_original(target, cfg, seed)
    encode(original.frames, lambda q: original_path(q, target))
    donor = render_original(source, cfg, seed)
    for method in cfg["methods"]:  # one fake in memory at a time
        rng = np.random.default_rng(derive_seed(seed, "demo", method, f"{target}_{source}"))
        encode(METHODS[method].apply(original, donor, rng, cfg), lambda q: fake_path(method, q, target, source))
    return {"target": target, "files": sorted(written), "identity": original.identity.description}


def _pool_context():
    """fork where there is one: 'spawn' and 'forkserver' re-run the caller's
    main module in every worker, and a Snakemake `script:` has no
    `if __name__ == "__main__"` guard."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _single_threaded_cv2() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already


@contextlib.contextmanager
def _worker_pool(workers: int):
    """A process pool whose workers run OpenCV single-threaded. Under fork the
    setting is made in the parent and inherited (changing it inside a forked
    child can deadlock on the parent's thread pool), then restored."""
    import cv2

    context = _pool_context()
    previous = cv2.getNumThreads()
    forked = context.get_start_method() == "fork"
    if forked:
        source_photos()  # loaded once here, inherited by every worker
        cv2.setNumThreads(1)
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=None if forked else _single_threaded_cv2) as pool:
            yield pool
    finally:
        if forked:
            cv2.setNumThreads(previous)


def _prepare_root(root: Path, planned: list[str]) -> None:
    """Refuse to write into a dataset we did not make; drop our stale videos
    and the old manifest, so an interrupted build never looks complete."""
    marker = root / MARKER
    has_data = any((root / d).exists() for d in ("original_sequences", "manipulated_sequences"))
    if has_data and not marker.exists():
        raise InputError(f"{root}: holds a dataset the demo generator did not make; refusing to overwrite it (use an empty folder)")
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).unlink(missing_ok=True)
    marker.write_text("videos under this folder were generated by dfrobust.datasets.demo and may be replaced\n")
    keep = set(planned)
    for top in ("original_sequences", "manipulated_sequences"):
        for path in sorted((root / top).rglob("*.mp4")) if (root / top).exists() else []:
            if path.relative_to(root).as_posix() not in keep:
                path.unlink()


def _versions() -> dict[str, str]:
    """Libraries whose versions can change the bytes of the videos."""
    import importlib.metadata as md

    out = {}
    for name in ("dfrobust", "numpy", "scipy", "opencv-python-headless", "dlib-bin", "matplotlib", "scikit-image"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def build_demo(root: str | Path, cfg: dict | None, seed: int, ffmpeg: str | None = None, progress: bool = True) -> dict:
    """Write the demo dataset under `root`; returns the manifest (written last).

    Work is split by target video (its original plus its fakes, every
    quality) over `cfg['workers']` processes; each unit draws everything from
    sub-seeds of `seed`, so the files do not depend on the worker count.
    """
    from tqdm import tqdm

    cfg = resolve_config(cfg)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InputError(f"demo seed: expected an integer, got {seed!r}")
    seed = int(seed)
    root = Path(root)
    exe = find_ffmpeg(ffmpeg)
    version = ffmpeg_version(exe)
    splits = make_splits(cfg, seed)
    planned = planned_files(cfg, splits)
    _prepare_root(root, planned)
    for split in SPLITS:
        write_text(root / f"{split}.json", json.dumps(splits[split]) + "\n")

    jobs = [
        {"root": str(root), "cfg": cfg, "seed": seed, "ffmpeg": exe, "target": t, "source": s}
        for split in SPLITS
        for a, b in splits[split]
        for t, s in ((a, b), (b, a))
    ]
    per_job = 1 + len(cfg["methods"])
    identities = {}
    if cfg["workers"] == 1:
        with tqdm(total=len(jobs) * per_job, desc="demo videos", unit="video", disable=not progress) as bar:
            for job in jobs:
                result = build_target(job)
                identities[result["target"]] = result["identity"]
                bar.update(per_job)
    else:
        with _worker_pool(min(cfg["workers"], len(jobs))) as pool:
            futures = [pool.submit(build_target, job) for job in jobs]  # workers start before tqdm's thread
            try:
                with tqdm(total=len(jobs) * per_job, desc="demo videos", unit="video", disable=not progress) as bar:
                    for future in as_completed(futures):
                        result = future.result()
                        identities[result["target"]] = result["identity"]
                        bar.update(per_job)
            except BaseException:
                for future in futures:  # fail fast: drop the jobs not started yet
                    future.cancel()
                raise

    manifest = {
        "dataset": "dfrobust embedded demo (FaceForensics++ layout)",
        "seed": seed,
        "config": cfg,
        "ffmpeg": version,
        "libraries": _versions(),
        "splits": splits,
        "methods": {m: DEFAULT_METHODS[m] for m in cfg["methods"]},
        "identities": dict(sorted(identities.items())),
        "files": [{"path": rel, "bytes": (root / rel).stat().st_size, "sha256": sha256_file(root / rel)} for rel in planned],
    }
    write_json(root / MANIFEST, manifest)
    return manifest
