"""The embedded demo dataset: FaceForensics++'s layout, built offline from a seed.

A newcomer without FF++ runs the whole pipeline on this. It has the same
folders, file names, split files and compression levels as FF++, so nothing
downstream can tell the two apart:

    original_sequences/youtube/{raw,c23,c40}/videos/000.mp4 ...
    manipulated_sequences/{Deepfakes,Face2Face,FaceSwap,NeuralTextures}/{raw,c23,c40}/videos/000_001.mp4 ...
    manipulated_sequences/{Deepfakes,Face2Face,FaceSwap,NeuralTextures}/masks/videos/000_001.mp4 ...
    train.json, val.json, test.json          [["000", "001"], ...]
    demo_manifest.json                       written last: marks completion

Every original video id is its own identity synthesised from two real photos
(identities), filmed with natural motion (motion); each split pair
[a, b] gives the fakes a_b (target a, source b) and b_a of every method
(manipulations). The same seed and config give byte-identical files.

Like FF++, every fake has a manipulation-mask video (masks/videos): white
where the fake's frame differs from its target's, i.e. the pixels the edit
changed, encoded losslessly (FF++'s own masks are lossy H.264; the face
stage binarises either).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import numbers
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from dfrobust.datasets.ffpp import CRF, SPLITS
from dfrobust.demo.identities import make_identity, source_photos
from dfrobust.demo.manipulations import METHODS
from dfrobust.demo.motion import Video, render_video, sample_performance
from dfrobust.core.config import resolve_block
from dfrobust.core.errors import InputError
from dfrobust.core.io import sha256_file, write_json, write_text
from dfrobust.core.seeding import derive_seed
from dfrobust.media.ffmpeg import ffmpeg_version, find_ffmpeg, write_video

MANIFEST = "demo_manifest.json"
MARKER = ".dfrobust_demo"  # says the folder's videos are ours to replace
RAW_PRESET = "veryfast"  # lossless decodes to the same frames at any preset; this one is 3x faster

DEFAULT_METHODS: dict[str, str] = {name: m.summary for name, m in METHODS.items()}

MIN_FACE_PX = 90  # dlib's HOG window is 80 px; below that, upsample-0 detection fails
MAX_PAIRS = 500  # video ids have three digits


def resolve_config(cfg: dict | None) -> dict:
    """The demo block with the schema's defaults filled in and validated
    (src/dfrobust/core/schema/demo.yaml: one-line InputError naming the key), plus the
    checks a schema cannot state; also what goes into the manifest."""
    out = resolve_block("demo", cfg)
    if sum(out["pairs"].values()) > MAX_PAIRS:
        raise InputError(f"config key 'demo.pairs': at most {MAX_PAIRS} pairs in all (video ids have three digits)")
    for key in ("face_size", "noise"):
        low, high = out[key]
        if low > high:
            raise InputError(f"config key 'demo.{key}': {out[key]!r} is not a [low, high] range")
    if out["face_size"][0] * out["height"] < MIN_FACE_PX:
        raise InputError(
            f"config key 'demo.face_size': faces of {out['face_size'][0]} x height {out['height']} = "
            f"{out['face_size'][0] * out['height']:.0f} px are too small for dlib's HOG detector (need >= {MIN_FACE_PX} px)"
        )
    return out


def video_ids(cfg: dict) -> list[str]:
    """'000', '001', ...: two originals per pair."""
    return [f"{i:03d}" for i in range(2 * sum(cfg["pairs"].values()))]


def make_splits(cfg: dict, seed: int) -> dict[str, list[list[str]]]:
    """FF++-style pairs per split, drawn from the seed. By default each pair
    joins one identity from each source photo (even and odd ids), so every
    swap changes the person, not just the styling; `swaps: within_photo`
    pairs identities of the same photo (look-alikes), so a swap leaves no
    identity cue, only the edit's texture."""
    ids = video_ids(cfg)
    rng = np.random.default_rng(derive_seed(seed, "demo", "splits"))
    evens, odds = rng.permutation(ids[0::2]), rng.permutation(ids[1::2])
    if cfg["swaps"] == "within_photo":
        firsts, seconds = [], []
        for group in (evens, odds):
            firsts += list(group[0 : len(group) - 1 : 2])
            seconds += list(group[1::2])
        if len(evens) % 2:  # one identity of each photo left over: they pair with each other
            firsts.append(evens[-1])
            seconds.append(odds[-1])
        order = rng.permutation(len(firsts))  # mix the two photos' pairs across the splits
        evens, odds = [firsts[i] for i in order], [seconds[i] for i in order]
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


def mask_path(method: str, target: str, source: str) -> str:
    return f"manipulated_sequences/{method}/masks/videos/{target}_{source}.mp4"


def changed_pixels(fake: np.ndarray, original: np.ndarray) -> np.ndarray:
    """(n, h, w, 3) uint8 mask frames: 255 where any channel of the fake differs from the original."""
    changed = np.any(np.asarray(fake) != np.asarray(original), axis=-1)
    return np.repeat(np.where(changed, 255, 0).astype(np.uint8)[..., None], 3, axis=-1)


def planned_files(cfg: dict, splits: dict) -> list[str]:
    files = [f"{split}.json" for split in SPLITS]
    for pairs in splits.values():
        for a, b in pairs:
            for target, source in ((a, b), (b, a)):
                files += [original_path(q, target) for q in cfg["qualities"]]
                files += [fake_path(m, q, target, source) for m in cfg["methods"] for q in cfg["qualities"]]
                files += [mask_path(m, target, source) for m in cfg["methods"]]
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
        fake = METHODS[method].apply(original, donor, rng, cfg)
        encode(fake, lambda q: fake_path(method, q, target, source))
        write_video(root / mask_path(method, target, source), changed_pixels(fake, original.frames), cfg["fps"], 0,
                    preset=RAW_PRESET, exe=exe)
        written.append(mask_path(method, target, source))
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
    marker.write_text("videos under this folder were generated by dfrobust.demo.ffpp_layout and may be replaced\n")
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
