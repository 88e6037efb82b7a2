"""Operations: config parsing and sweeps, what each default operation does to
pixels, face-box geometry, and processed copies of a face shard."""

import json

import numpy as np
import pandas as pd
import pytest

from dfrobust.config import validate_config
from dfrobust.core.errors import InputError
from dfrobust.stages.faces import extract_shard
from dfrobust.media.geometry import iou
from dfrobust.media.store import FaceShard, write_shard
from dfrobust.media import ffmpeg
from dfrobust.stages.distort import distort_shard, summarise_distorted
from dfrobust.media.distortion import distort_video
from dfrobust.media.operations import Operation, OperationError, categories, geometry, split_chain

from conftest import operation, operations_of

FACES = dict(detector="dlib_hog", upsample=0, detect_max_side=640, track=True, track_face_px=120, fallback_upsample=1,
             crop_scale=1.3, crop_size=48, frames={"train": 4, "val": 4, "test": 5}, min_faces=1, threads=1, shard_size=4)
INDICES = [3, 4, 9, 15]


@pytest.fixture(scope="module")
def exe():
    return ffmpeg.find_ffmpeg()


@pytest.fixture(scope="module")
def ops():
    return {op.name: op for op in operations_of()}


@pytest.fixture(scope="module")
def copies(face_video, ops, exe):
    """Every default operation on the face video, in one decode; and the clean frames."""
    frames = distort_video(face_video, list(ops.values()), {n: INDICES for n in ops}, 320, 240, exe)
    return {name: np.stack(f) for name, f in frames.items()}


def luma(frames):
    return (frames[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114]).mean()


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / mse)


# --- config ------------------------------------------------------------------------


def test_default_set_is_table_one_plus_clean_in_order(ops):
    assert list(ops) == ["clean", "c23", "c40", "lighten", "darken", "contrast", "noise", "hflip", "vflip",
                         "res_x2", "res_x4", "grayscale", "vintage"]
    assert categories(list(ops.values())) == ["none", "compression", "brightness", "contrast", "noise", "flip",
                                              "resolution", "filter"]
    assert ops["clean"].is_identity and ops["c40"].codec == {
        "encoder": "libx264", "crf": 40, "preset": "medium", "pix_fmt": "yuv420p", "threads": 1}
    assert all(op.faces == "reuse" and not op.keep_videos for op in ops.values())
    assert validate_config({})["operations"]["base_quality"] == "raw"  # Table I's test set (dfrobust.plan)
    assert Operation.from_params(ops["noise"].params()) == ops["noise"]


def test_extra_operations_are_appended_and_block_settings_resolved():
    operations = operations_of({"faces": "redetect", "x264_preset": "slow", "extra": [
        {"name": "blur", "category": "blur", "filter": "gblur=sigma=2", "faces": "reuse"}]})
    assert [op.name for op in operations][-2:] == ["vintage", "blur"]
    assert operations[-1].faces == "reuse" and operations[0].faces == "redetect"
    assert operations[1].codec["preset"] == "slow"


def test_sweeps_expand_into_one_copy_per_level():
    block = {"list": [
        {"name": "noise", "category": "noise", "filter": "noise=alls={level}:allf=t:all_seed=1", "levels": [0, 10, 40]},
        {"name": "crf", "category": "compression", "codec": {"crf": "{level}"}, "levels": [18, 51]},
        {"name": "scale", "category": "resolution", "filter": "scale=trunc(iw*{level}/2)*2:-2", "levels": [1.0, 0.5, 0.125]},
    ]}
    operations = operations_of(block)
    assert [op.name for op in operations] == ["noise@0", "noise@10", "noise@40", "crf@18", "crf@51",
                                              "scale@1", "scale@0.5", "scale@0.125"]
    assert operations[1].filter == "noise=alls=10:allf=t:all_seed=1"
    assert (operations[1].sweep, operations[1].level, operations[1].category) == ("noise", 10, "noise")
    assert operations[4].codec["crf"] == 51 and operations[4].sweep == "crf"
    assert operations[6].filter == "scale=trunc(iw*0.5/2)*2:-2" and operations[6].level == 0.5


def test_shipped_sweep_config_expands(tmp_path):
    import yaml

    from conftest import REPO

    extra = yaml.safe_load((REPO / "config" / "sweeps.yaml").read_text())["operations"]
    operations = operations_of(extra)
    sweeps = {op.sweep for op in operations if op.sweep}
    assert len(sweeps) >= 3 and all("@" in op.name for op in operations if op.sweep)


@pytest.mark.parametrize("entry, message", [
    ({"name": "odd", "category": "weather", "filter": "hflip"}, r"category' \('odd'\): 'weather' is not one of"),
    ({"name": "both", "category": "filter", "filter": "hflip", "codec": {"crf": 23}}, r"\('both'\): give exactly one .* got both"),
    ({"name": "neither", "category": "filter"}, r"\('neither'\): give exactly one .* got neither"),
    ({"name": "lv", "category": "noise", "filter": "noise=alls={level}", "levels": []}, r"levels' \('lv'\): \[\] should be non-empty"),
    ({"name": "lv", "category": "noise", "filter": "noise=alls={level}", "levels": ["a"]}, r"levels.0' \('lv'\): 'a' is not of type 'number'"),
    ({"name": "lv", "category": "noise", "filter": "noise=alls={level}", "levels": [1, 1.0]}, r"\('lv'\): levels repeat"),
    ({"name": "lv", "category": "noise", "filter": "noise=alls=3", "levels": [1, 2]}, r"\('lv'\): declares levels but .* \{level\}"),
    ({"name": "lv", "category": "noise", "filter": "noise=alls={level}"}, r"\('lv'\): uses \{level\} but declares no levels"),
    ({"name": "crf", "category": "compression", "codec": {"crf": 80}}, r"\('crf'\): codec crf must be an integer in 0..63"),
    ({"name": "crf", "category": "compression", "codec": {"crf": "{level}"}, "levels": [20.5]}, r"\('crf'\): codec crf must be an integer"),
    ({"name": "graph", "category": "filter", "filter": "split[a][b];[a][b]hstack"}, r"\('graph'\): filter must be one linear chain"),
    ({"name": "ref", "category": "none", "filter": "hflip"}, r"\('ref'\): category 'none'"),
    ({"name": "bad name", "category": "flip", "filter": "hflip"}, r"name' \('bad name'\): 'bad name' does not match"),
])
def test_bad_operation_config_names_the_operation(entry, message):
    with pytest.raises(InputError, match=message):
        operations_of({"list": [{"name": "clean", "category": "none"}, entry]})


def test_duplicate_names_and_schema_types_are_errors():
    with pytest.raises(InputError, match="unique, repeated: hflip"):
        operations_of({"list": [{"name": "hflip", "category": "flip", "filter": "hflip"}] * 2})
    with pytest.raises(InputError, match="operations.extra.0"):
        validate_config({"operations": {"extra": [{"name": "x", "category": "flip", "filtre": "hflip"}]}})


def test_filter_chains_split_like_ffmpeg():
    assert split_chain("scale=iw/2:-2,hflip") == ["scale=iw/2:-2", "hflip"]
    assert split_chain("scale='min(iw,640)':-2, eq=contrast=1.5") == ["scale='min(iw,640)':-2", "eq=contrast=1.5"]
    assert split_chain(r"scale=w=max(iw\,2):h=-2,vflip") == [r"scale=w=max(iw\,2):h=-2", "vflip"]


# --- pixels --------------------------------------------------------------------------


def test_clean_copy_is_the_plain_decode(copies, face_video):
    assert np.array_equal(copies["clean"], ffmpeg.read_frames(face_video, INDICES))


def test_lighten_raises_and_darken_lowers_mean_luma(copies):
    clean = luma(copies["clean"])
    assert luma(copies["lighten"]) > clean + 5
    assert luma(copies["darken"]) < clean - 5


def test_flips_mirror_the_clean_frame(copies):
    assert np.abs(copies["hflip"].astype(int) - copies["clean"][:, :, ::-1].astype(int)).max() <= 1
    assert np.abs(copies["vflip"].astype(int) - copies["clean"][:, ::-1].astype(int)).max() <= 1


def test_resolution_halves_and_quarters_each_side(copies):
    assert copies["res_x2"].shape[1:3] == (120, 160)
    assert copies["res_x4"].shape[1:3] == (60, 80)
    small = copies["res_x2"].astype(np.float64).mean()
    assert small == pytest.approx(copies["clean"].astype(np.float64).mean(), abs=2)


def test_resolution_keeps_even_dimensions(tmp_path, ops, exe):
    video = tmp_path / "odd.mp4"
    ffmpeg.write_video(video, [np.full((250, 330, 3), 120, np.uint8)] * 4, fps=25, crf=18)
    frames = distort_video(video, [ops["res_x4"]], {"res_x4": [1]}, 330, 250, exe)["res_x4"]
    height, width = frames[0].shape[:2]
    assert height % 2 == width % 2 == 0 and abs(width - 330 / 4) <= 2 and abs(height - 250 / 4) <= 2


def test_grayscale_has_equal_channels(copies):
    gray = copies["grayscale"].astype(int)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1 and np.abs(gray[..., 0] - gray[..., 2]).max() <= 1
    assert np.abs(copies["clean"][..., 0].astype(int) - copies["clean"][..., 2]).max() > 20  # the source has colour


def test_contrast_scales_the_luma_around_mid_grey(copies):
    weights = [0.299, 0.587, 0.114]
    clean, contrast = copies["clean"] @ weights, copies["contrast"] @ weights
    unclipped = (clean > 60) & (clean < 190)
    slope = np.polyfit(clean[unclipped], contrast[unclipped], 1)[0]
    assert slope == pytest.approx(1.5, abs=0.15)  # eq=contrast=1.5


def test_noise_changes_every_frame_keeps_the_mean_and_is_reproducible(copies, face_video, ops, exe):
    noise = copies["noise"].astype(np.float64) - copies["clean"].astype(np.float64)
    # frames 3 and 4 are consecutive: a temporal pattern differs between them
    assert np.abs(noise[0] - noise[1]).mean() > 3
    assert np.abs(noise).mean() > 3
    assert abs(copies["noise"].astype(np.float64).mean() - copies["clean"].astype(np.float64).mean()) < 1.5
    again = distort_video(face_video, [ops["noise"]], {"noise": INDICES}, 320, 240, exe)["noise"]
    assert np.array_equal(np.stack(again), copies["noise"])


def test_stronger_compression_has_lower_psnr(copies):
    c23, c40 = psnr(copies["c23"], copies["clean"]), psnr(copies["c40"], copies["clean"])
    assert 25 < c40 < c23 < 60


def test_vintage_changes_the_colour_balance_as_the_preset_defines(tmp_path, ops, exe):
    """curves=preset=vintage: r 0->0.11, 1->0.95; g 0->0, 1->1; b 0->0.22, 1->0.8."""
    frame = np.zeros((64, 128, 3), np.uint8)
    frame[:, 64:] = 255
    video = tmp_path / "bw.mp4"
    ffmpeg.write_video(video, [frame] * 4, fps=25, crf=0)
    out = distort_video(video, [ops["vintage"]], {"vintage": [2]}, 128, 64, exe)["vintage"][0].astype(float)
    black, white = out[16:48, 8:56].mean(axis=(0, 1)), out[16:48, 72:120].mean(axis=(0, 1))
    assert black == pytest.approx([0.11 * 255, 0, 0.22 * 255], abs=6)
    assert white == pytest.approx([0.95 * 255, 255, 0.80 * 255], abs=6)


def test_one_decode_gives_the_same_frames_as_one_job_per_operation(copies, face_video, ops, exe):
    for name in ("c40", "noise", "res_x2", "vintage"):
        alone = distort_video(face_video, [ops[name]], {name: INDICES}, 320, 240, exe)[name]
        assert np.array_equal(np.stack(alone), copies[name]), name


def test_kept_videos_are_the_processed_stream(tmp_path, face_video, ops, exe):
    keep = {"vintage": tmp_path / "vintage.mp4", "c40": tmp_path / "c40.mp4"}
    out = distort_video(face_video, [ops["vintage"], ops["c40"]], {"vintage": INDICES, "c40": INDICES}, 320, 240, exe, keep=keep)
    for name, path in keep.items():
        assert ffmpeg.probe(path, exe).n_frames == 20
        assert np.array_equal(ffmpeg.read_frames(path, INDICES, exe), np.stack(out[name])), name


def test_a_filter_that_changes_the_frame_count_is_reported(face_video, exe):
    op = operation("half_rate", "filter", filter="fps=12.5")
    with pytest.raises(InputError, match="gave .* of the 4 sampled frames"):
        distort_video(face_video, [op], {"half_rate": INDICES}, 320, 240, exe)


# --- geometry ------------------------------------------------------------------------


@pytest.mark.parametrize("chain", ["hflip", "vflip", "transpose=clock", "transpose=dir=cclock", "transpose=0",
                                   "hflip,transpose=clock_flip", "scale=iw/2:ih/2,vflip"])
def test_geometry_sends_each_pixel_where_the_filter_puts_it(tmp_path, exe, chain):
    rng = np.random.default_rng(0)
    frame = np.kron(rng.integers(0, 256, (6, 8, 3)), np.ones((20, 20, 1))).astype(np.uint8)  # 160x120, 20 px blocks
    video = tmp_path / "blocks.mp4"
    ffmpeg.write_video(video, [frame] * 3, fps=25, crf=0)
    op = operation("g", "flip", filter=chain)
    out = distort_video(video, [op], {"g": [1]}, 160, 120, exe)["g"][0]
    transform = geometry(op, 160, 120, exe)
    assert transform.size == (out.shape[1], out.shape[0])
    for x, y in [(10, 10), (150, 30), (70, 110), (30, 90)]:  # block centres
        tx, ty = transform.points(np.array([[x, y]], np.float32))[0]
        assert np.abs(out[int(ty), int(tx)].astype(int) - frame[y, x]).max() <= 12, (x, y, tx, ty)


@pytest.mark.parametrize("chain", ["crop=100:80", "pad=400:300", "rotate=0.3"])
def test_unknown_geometry_asks_for_redetection(exe, chain):
    op = operation("moved", "filter", filter=chain)
    with pytest.raises(OperationError, match="'moved'.*faces: redetect"):
        geometry(op, 320, 240, exe)


def test_unknown_filter_is_a_clear_error(exe):
    with pytest.raises(OperationError, match="'typo'.*ffmpeg cannot run it"):
        geometry(operation("typo", "filter", filter="hflipp"), 320, 240, exe)


# --- processed copies of a face shard -----------------------------------------------------


@pytest.fixture(scope="module")
def clean_shard(tmp_path_factory, face_video):
    tmp = tmp_path_factory.mktemp("clean")
    blank = tmp / "blank.mp4"
    ffmpeg.write_video(blank, [np.full((120, 160, 3), 100, np.uint8)] * 10, fps=25, crf=18)
    videos = [
        dict(video_id="original/000", manipulation="original", label=0, path=str(face_video)),
        dict(video_id="Deepfakes/000_001", manipulation="Deepfakes", label=1, path=str(blank)),
        dict(video_id="FaceSwap/000_001", manipulation="FaceSwap", label=1, path=str(face_video)),
    ]
    records, rows = extract_shard(videos, "test", FACES, ffmpeg.find_ffmpeg(), progress=False)
    write_shard(tmp / "shard_000.npz", records, rows, {"quality": "raw", "split": "test", "shard": 0})
    index = pd.DataFrame([{**v, "quality": "raw", "split": "test", "exists": True} for v in videos])
    index.to_csv(tmp / "index.csv", index=False)
    return tmp


def _copies(clean_shard, names, mode, ops, tmp_path):
    chosen = [Operation.from_params({**ops[n].params(), "faces": mode}) for n in names]
    outs = [tmp_path / mode / n / "shard_000.npz" for n in names]
    distort_shard(clean_shard / "shard_000.npz", clean_shard / "index.csv", [op.params() for op in chosen], FACES, None,
                  outs, progress=False, log=lambda *a: None)
    return {n: out for n, out in zip(names, outs)}


def test_clean_copy_reproduces_the_clean_faces(clean_shard, ops, tmp_path):
    out = _copies(clean_shard, ["clean"], "reuse", ops, tmp_path)["clean"]
    clean, copy = FaceShard(clean_shard / "shard_000.npz"), FaceShard(out)
    assert copy.video_ids == clean.video_ids == ["original/000", "FaceSwap/000_001"]
    for video_id in clean.video_ids:
        a, b = clean.read(video_id), copy.read(video_id)
        assert np.array_equal(a.crops, b.crops) and np.array_equal(a.frame_indices, b.frame_indices)
        assert np.allclose(a.landmarks, b.landmarks, atol=1e-3) and np.array_equal(a.sampled_indices, b.sampled_indices)
    excluded = {v["video_id"]: v for v in copy.summary["videos"]}["Deepfakes/000_001"]
    assert excluded["status"] == "no_face" and excluded["message"].startswith("clean faces:")
    assert copy.summary["operation"]["name"] == "clean" and copy.summary["shard"] == 0


def test_reused_boxes_match_a_redetection_after_flips_and_rescaling(clean_shard, ops, tmp_path):
    """dlib's HOG boxes come in pyramid steps of 6/5: a redetection may land one
    step bigger or smaller than the clean box (IoU ~0.68 whatever the geometry),
    so positions are compared where both boxes are on the same step."""
    names = ["hflip", "vflip", "res_x2"]
    reused = _copies(clean_shard, names, "reuse", ops, tmp_path)
    redetected = _copies(clean_shard, names, "redetect", ops, tmp_path)
    compared = set()
    for name in names:
        a = FaceShard(reused[name]).read("original/000")
        assert a.crops.shape == (5, 48, 48, 3)
        redo = FaceShard(redetected[name])
        if "original/000" not in redo.video_ids:
            continue
        b = redo.read("original/000")
        for index, box in zip(b.frame_indices, b.boxes):
            ours = a.boxes[list(a.frame_indices).index(index)]
            ratio = (box[2] - box[0]) / (ours[2] - ours[0])
            assert 5 / 6 - 0.05 < ratio < 6 / 5 + 0.05, (name, index, ours, box)
            if abs(ratio - 1) < 0.05:
                assert iou(ours, box) > 0.8, (name, index, ours, box)
                compared.add(name)
    assert compared == {"hflip", "res_x2"}  # dlib finds no upside-down face after vflip
    # the crops of a reused hflip copy are the mirrored clean crops
    clean = FaceShard(clean_shard / "shard_000.npz").read("original/000")
    flipped = FaceShard(reused["hflip"]).read("original/000")
    assert np.abs(flipped.crops[:, :, ::-1].astype(int) - clean.crops.astype(int)).mean() < 3


def test_redetection_misses_are_recorded(clean_shard, ops, tmp_path):
    out = _copies(clean_shard, ["vflip"], "redetect", ops, tmp_path)["vflip"]
    row = {v["video_id"]: v for v in json.loads(out.with_suffix(".json").read_text())["videos"]}["original/000"]
    assert row["n_sampled"] == 5 and row["n_found"] + row["n_missed"] == 5
    assert row["n_missed"] > 0 and row["operation"] == "vflip" and row["category"] == "flip"
    if row["n_found"] == 0:
        assert row["status"] == "no_face" and "after vflip" in row["message"]


def test_summary_lists_every_operation_and_video(clean_shard, ops, tmp_path):
    outs = _copies(clean_shard, ["clean", "hflip", "res_x4"], "reuse", ops, tmp_path)
    jsons = [p.with_suffix(".json") for p in outs.values()]
    table = summarise_distorted(jsons, tmp_path / "summary.csv", tmp_path / "operations.csv")
    assert len(table) == 9 and set(table["operation"]) == {"clean", "hflip", "res_x4"}
    listed = pd.read_csv(tmp_path / "operations.csv")
    assert listed["operation"].tolist() == ["clean", "hflip", "res_x4"]
    assert listed["category"].tolist() == ["none", "flip", "resolution"]


def test_operation_figure_draws_every_operation(clean_shard, ops, tmp_path):
    from PIL import Image

    from dfrobust.stages.distort import operations_figure

    out = operations_figure(clean_shard / "shard_000.npz", clean_shard / "index.csv",
                            [op.params() for op in ops.values()], None, tmp_path / "ops.png")
    width, height = Image.open(out).size
    assert width > 1000 and height > 500
