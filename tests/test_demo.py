"""The embedded demo dataset: FF++ layout, decodable videos, detectable faces,
fakes that only touch the face, and byte-identical rebuilds from a seed."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfrobust.demo import ffpp_layout as demo
from dfrobust.demo.manipulations import METHODS
from dfrobust.core.config import load_schemas, resolve_ref
from dfrobust.core.errors import InputError
from dfrobust.media.detect import DlibHogDetector
from dfrobust.core.io import sha256_file
from dfrobust.media.ffmpeg import probe, read_frames

TINY = {"pairs": {"train": 2, "val": 1, "test": 1}, "n_frames": 12, "workers": 2}
SMALL = {
    "pairs": {"train": 1, "val": 1, "test": 1},
    "n_frames": 6,
    "qualities": ["raw", "c40"],
    "methods": ["Deepfakes", "FaceSwap"],
}
SCHEMA = Path(__file__).resolve().parents[1] / "src" / "dfrobust" / "core" / "schema" / "demo.yaml"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    manifest = demo.build_demo(root, TINY, seed=3, progress=False)
    return root, manifest


def all_videos(root: Path) -> list[Path]:
    return sorted(root.rglob("*.mp4"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_layout_and_splits(tiny):
    root, manifest = tiny
    splits = {s: json.loads((root / f"{s}.json").read_text()) for s in demo.SPLITS}
    assert {s: len(p) for s, p in splits.items()} == TINY["pairs"]
    ids = [vid for pairs in splits.values() for pair in pairs for vid in pair]
    assert all(isinstance(v, str) and len(v) == 3 and v.isdigit() for v in ids)
    assert len(ids) == len(set(ids)) == 2 * sum(TINY["pairs"].values())  # each id in exactly one pair

    originals = {p.stem for p in (root / "original_sequences/youtube/raw/videos").glob("*.mp4")}
    assert originals == set(ids)
    expected = set()
    for pairs in splits.values():
        for a, b in pairs:
            for quality in ("raw", "c23", "c40"):
                expected |= {f"original_sequences/youtube/{quality}/videos/{v}.mp4" for v in (a, b)}
                for method in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
                    base = f"manipulated_sequences/{method}/{quality}/videos"
                    expected |= {f"{base}/{a}_{b}.mp4", f"{base}/{b}_{a}.mp4"}
                    masks = f"manipulated_sequences/{method}/masks/videos"  # one for every quality, as FF++'s
                    expected |= {f"{masks}/{a}_{b}.mp4", f"{masks}/{b}_{a}.mp4"}
    assert {p.relative_to(root).as_posix() for p in all_videos(root)} == expected
    assert len(expected) == 3 * 8 * 5 + 8 * 4


def test_manifest_lists_every_file_and_is_written_last(tiny):
    root, manifest = tiny
    on_disk = json.loads((root / demo.MANIFEST).read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["seed"] == 3 and on_disk["config"] == demo.resolve_config(TINY)
    assert on_disk["ffmpeg"].startswith("ffmpeg version")
    listed = {f["path"]: f for f in on_disk["files"]}
    assert set(listed) == {p.relative_to(root).as_posix() for p in all_videos(root)} | {"train.json", "val.json", "test.json"}
    for rel, entry in listed.items():
        assert sha256_file(root / rel) == entry["sha256"], rel
    last = (root / demo.MANIFEST).stat().st_mtime_ns
    assert all((root / rel).stat().st_mtime_ns <= last for rel in listed)
    assert len(on_disk["identities"]) == 2 * sum(TINY["pairs"].values())


def test_every_video_decodes_with_configured_size(tiny):
    root, _ = tiny
    cfg = demo.resolve_config(TINY)
    for path in all_videos(root):
        info = probe(path)
        assert (info.n_frames, info.width, info.height, info.codec) == (cfg["n_frames"], cfg["width"], cfg["height"], "h264"), path
    frames = read_frames(all_videos(root)[0])
    assert frames.shape == (cfg["n_frames"], cfg["height"], cfg["width"], 3)


def test_raw_is_lossless_relative_to_c23_and_c40(tiny):
    root, _ = tiny
    fake = sorted((root / "manipulated_sequences/FaceSwap/raw/videos").glob("*.mp4"))[0].name
    for rel in ("original_sequences/youtube/{q}/videos/000.mp4", f"manipulated_sequences/FaceSwap/{{q}}/videos/{fake}"):
        paths = {q: root / rel.format(q=q) for q in ("raw", "c23", "c40")}
        frames = {q: read_frames(p) for q, p in paths.items()}
        p23, p40 = psnr(frames["raw"], frames["c23"]), psnr(frames["raw"], frames["c40"])
        assert p23 > 30 and p23 > p40 + 3, (rel, p23, p40)
        sizes = [paths[q].stat().st_size for q in ("raw", "c23", "c40")]
        assert sizes[0] > 5 * sizes[1] and sizes[1] > sizes[2], (rel, sizes)


def test_faces_detected_by_dlib_hog_without_upsampling(tiny):
    root, _ = tiny
    detector = DlibHogDetector(upsample=0)
    sample = sorted(root.glob("original_sequences/youtube/*/videos/*.mp4"))[::3]
    for method in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
        qualities = ("raw", "c23", "c40")  # masks/videos holds the masks, not faces to detect
        sample += sorted(p for q in qualities for p in root.glob(f"manipulated_sequences/{method}/{q}/videos/*.mp4"))[1::6]
    assert len(sample) == 24
    for path in sample:
        found = np.mean([len(detector.detect(f)[0]) > 0 for f in read_frames(path)])
        assert found >= 0.95, (path, found)


def test_fakes_differ_from_target_only_around_the_face(tiny):
    root, _ = tiny
    detector = DlibHogDetector(upsample=0)
    for method in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
        fake_path = sorted((root / f"manipulated_sequences/{method}/raw/videos").glob("*.mp4"))[0]
        target = fake_path.stem.split("_")[0]
        fake = read_frames(fake_path).astype(np.int16)
        real = read_frames(root / f"original_sequences/youtube/raw/videos/{target}.mp4").astype(np.int16)
        assert fake.shape == real.shape
        diff = np.abs(fake - real).mean(axis=3)
        for i in (0, len(fake) // 2, len(fake) - 1):
            boxes, _ = detector.detect(real[i].astype(np.uint8))
            x0, y0, x1, y1 = boxes[0]
            w, h = x1 - x0, y1 - y0
            face = np.zeros(diff.shape[1:], bool)
            face[max(int(y0 - 0.5 * h), 0) : int(y1 + 0.4 * h), max(int(x0 - 0.4 * w), 0) : int(x1 + 0.4 * w)] = True
            assert diff[i][~face].mean() < 0.5, (method, i, diff[i][~face].mean())
            assert np.percentile(diff[i][face], 99) > 8, (method, i)  # the face did change
            assert (diff[i][~face] > 8).mean() < 0.001, (method, i)


def test_each_fakes_mask_video_marks_the_pixels_its_edit_changed(tiny):
    """FF++'s masks/videos: white where the manipulation changed the target's frame (the face stage
    binarises and cuts them for FFD's map supervision)."""
    from dfrobust.media.masks import binarise

    root, _ = tiny
    for method in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
        fake_path = sorted((root / f"manipulated_sequences/{method}/raw/videos").glob("*.mp4"))[0]
        target = fake_path.stem.split("_")[0]
        mask_path = root / f"manipulated_sequences/{method}/masks/videos/{fake_path.name}"
        assert probe(mask_path).n_frames == probe(fake_path).n_frames
        masks = np.stack([binarise(m) for m in read_frames(mask_path)]) > 0
        diff = np.abs(read_frames(fake_path).astype(np.int16) - read_frames(
            root / f"original_sequences/youtube/raw/videos/{target}.mp4")).max(axis=3)
        assert 0.002 < masks.mean() < 0.5, (method, masks.mean())
        assert (diff[~masks] <= 3).mean() > 0.99 and (diff[masks] > 3).mean() > 0.3, method


def test_same_seed_is_byte_identical_whatever_the_workers(tmp_path):
    one = demo.build_demo(tmp_path / "a", {**SMALL, "workers": 2}, seed=7, progress=False)
    two = demo.build_demo(tmp_path / "b", {**SMALL, "workers": 1}, seed=7, progress=False)
    assert one["files"] == two["files"]  # paths, sizes and hashes
    for entry in one["files"]:
        assert (tmp_path / "a" / entry["path"]).read_bytes() == (tmp_path / "b" / entry["path"]).read_bytes()


@pytest.mark.parametrize("pairs", [{"train": 8, "val": 3, "test": 8}, {"train": 2, "val": 1, "test": 2}])
def test_swaps_pair_people_across_or_within_the_two_photos(pairs):
    """Even ids come from one photo, odd ids from the other: by default every pair crosses the photos
    (a swap changes the person); within_photo pairs look-alikes (one odd total leaves one crossing pair)."""
    for swaps in ("across_photos", "within_photo"):
        splits = demo.make_splits(demo.resolve_config({"pairs": pairs, "swaps": swaps}), 7)
        assert {s: len(p) for s, p in splits.items()} == pairs
        ids = [v for p in splits.values() for pair in p for v in pair]
        assert len(ids) == len(set(ids)) == 2 * sum(pairs.values())
        crossing = sum(int(a) % 2 != int(b) % 2 for p in splits.values() for a, b in p)
        assert crossing == (sum(pairs.values()) if swaps == "across_photos" else sum(pairs.values()) % 2), (swaps, splits)


def test_colour_mismatch_scales_the_casts_and_keeps_the_default_bytes():
    from dfrobust.demo.manipulations import colour_cast

    drawn = np.array([0.95, 1.03, 1.0])
    assert colour_cast(drawn, {"colour_mismatch": 1.0}) is drawn  # the default demo's values, untouched
    np.testing.assert_allclose(colour_cast(drawn, {"colour_mismatch": 0.0}), 1.0)
    np.testing.assert_allclose(colour_cast(drawn, {"colour_mismatch": 2.0}), [0.9, 1.06, 1.0])
    for scale, spread in ((0, (0, 0.01)), (1, (0.02, 1))):
        cfg = demo.resolve_config({**SMALL, "colour_mismatch": scale})
        target, source = demo.render_original("000", cfg, 7), demo.render_original("001", cfg, 7)
        for method in ("Face2Face", "NeuralTextures"):  # a cast tints the edited pixels: channels drift apart
            fake = METHODS[method].apply(target, source, np.random.default_rng(1), cfg)
            changed = np.abs(fake.astype(int) - target.frames).max(axis=-1) > 0
            ratio = fake[changed].mean(axis=0) / target.frames[changed].mean(axis=0)
            assert spread[0] <= np.ptp(ratio) < spread[1], (method, scale, ratio)


def test_other_seed_gives_other_videos_and_splits():
    cfg = demo.resolve_config(SMALL)
    assert demo.make_splits(cfg, 7) != demo.make_splits(cfg, 8)
    for vid in ("000", "001"):
        a, b = demo.render_original(vid, cfg, 7), demo.render_original(vid, cfg, 8)
        assert a.frames.shape == b.frames.shape
        assert np.abs(a.frames.astype(int) - b.frames).mean() > 5
        assert a.identity.description != b.identity.description


def test_rebuild_replaces_stale_videos(tmp_path):
    small = {**SMALL, "n_frames": 4, "qualities": ["raw"], "workers": 1}
    demo.build_demo(tmp_path, {**small, "methods": ["FaceSwap"]}, seed=1, progress=False)
    assert list((tmp_path / "manipulated_sequences/FaceSwap/raw/videos").glob("*.mp4"))
    manifest = demo.build_demo(tmp_path, {**small, "methods": ["Deepfakes"]}, seed=1, progress=False)
    assert not list((tmp_path / "manipulated_sequences/FaceSwap").rglob("*.mp4"))
    assert {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.mp4")} == {
        f["path"] for f in manifest["files"] if f["path"].endswith(".mp4")
    }


def test_refuses_to_overwrite_a_dataset_it_did_not_make(tmp_path):
    video = tmp_path / "original_sequences/youtube/raw/videos/000.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"real FF++ video")
    with pytest.raises(InputError, match="did not make"):
        demo.build_demo(tmp_path, SMALL, seed=1, progress=False)
    assert video.read_bytes() == b"real FF++ video"


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"colour": 1}, "unknown key"),
        ({"width": 321}, "demo.width"),
        ({"height": 120}, "demo.face_size"),
        ({"methods": ["DeepFakes"]}, "demo.methods"),
        ({"qualities": []}, "demo.qualities"),
        ({"n_frames": "48"}, "demo.n_frames"),
        ({"pairs": {"train": 0}}, "demo.pairs.train"),
        ({"pairs": {"tests": 1}}, "demo.pairs"),
        ({"preset": "fastest"}, "demo.preset"),
        ({"noise": [3, 1]}, "demo.noise"),
    ],
)
def test_bad_config_names_the_key(cfg, message):
    with pytest.raises(InputError, match=message):
        demo.resolve_config(cfg)


def test_photo_without_a_face_is_a_clear_error(tmp_path):
    from dfrobust.demo.identities import load_photo

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(InputError, match="no face found"):
        load_photo("wall", blank)
    with pytest.raises(InputError, match="missing or not an image"):
        load_photo("nothing", tmp_path / "nothing.png")


def test_schema_is_the_one_source_of_the_demo_defaults():
    import jsonschema

    schema = load_schemas()[1]["demo"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    defaults = demo.resolve_config({})
    assert set(schema["properties"]) == set(defaults)
    for key, prop in schema["properties"].items():
        prop = resolve_ref(prop, schema)
        assert prop["description"] and "default" in prop, key
        assert prop["default"] == defaults[key], key
    for key, prop in schema["properties"]["pairs"]["properties"].items():
        assert prop["description"] and prop["default"] == defaults["pairs"][key]
    jsonschema.validate(defaults, schema)
    jsonschema.validate(TINY, schema)
    assert set(demo.DEFAULT_METHODS) == {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
