"""Per-frame operations on the stored sampled frames (dfrobust.media.framestore,
distortion.distort_stored) give the whole-stream path's frames bit for bit, for
every default operation that takes that path."""

import subprocess

import numpy as np
import pandas as pd
import pytest

from dfrobust.media import ffmpeg, framestore
from dfrobust.media.distortion import distort_stored, distort_video
from dfrobust.media.operations import Operation
from dfrobust.media.store import FaceShard, write_shard
from dfrobust.stages.distort import distort_shard
from dfrobust.stages.faces import extract_shard

from conftest import moving_face_frames, operation, operations_of

DEFAULTS = operations_of()
FROM_FRAMES = [op for op in DEFAULTS if op.from_stored_frames]


@pytest.fixture(scope="module")
def exe():
    return ffmpeg.find_ffmpeg()


def test_default_operations_scope():
    scopes = {op.name: op.scope for op in DEFAULTS}
    assert scopes == {"clean": "stream", "c23": "stream", "c40": "stream", "noise": "position",
                      **{n: "frame" for n in ("lighten", "darken", "contrast", "hflip", "vflip", "res_x2", "res_x4",
                                              "grayscale", "vintage")}}
    assert len(FROM_FRAMES) == 10


@pytest.mark.parametrize("chain, scope", [("tmix=frames=3", "stream"), ("hflip,tmix=frames=3", "stream"),
                                          ("eq=brightness='0.1*sin(t)':eval=frame", "stream"),
                                          ("scale=iw/2:ih/2,noise=alls=5:allf=t", "position"),
                                          ("gblur=sigma=2,vflip", "frame")])
def test_scope_of_a_chain(chain, scope):
    op = operation("x", "filter", filter=chain)
    assert op.scope == scope
    assert op.from_stored_frames == (scope != "stream")
    assert not operation("x", "filter", filter=chain, keep_videos=True).from_stored_frames


def test_lossless_encoder_keeps_the_pixel_format(exe):
    assert framestore.lossless_encoder("yuv420p", exe) == "utvideo"
    assert framestore.lossless_encoder("no_such_format", exe) is None
    assert framestore.lossless_encoder(None, exe) is None


def _encode(exe, src, out, *options):
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-y", *options[:options.index("--")], "-i", str(src),
           *options[options.index("--") + 1:], str(out)]
    subprocess.run(cmd, check=True)
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory, exe):
    """Small lossless videos: yuv420p with odd-ish dimensions; yuv444p tagged BT.709
    (the RGB conversion reads the tag); the first one with a 90 degree rotation, and
    in full-range yuvj420p (phone videos)."""
    tmp = tmp_path_factory.mktemp("framestore")
    odd = tmp / "odd420.mp4"
    ffmpeg.write_video(odd, moving_face_frames(40, (202, 114), shift=3), fps=25, crf=0)
    full = _encode(exe, odd, tmp / "full444.mp4", "--", "-c:v", "libx264", "-crf", "0", "-pix_fmt", "yuv444p",
                   "-colorspace", "bt709", "-threads", "1")
    rotated = _encode(exe, odd, tmp / "rotated.mp4", "-display_rotation", "90", "--", "-c", "copy")
    jpeg = _encode(exe, odd, tmp / "jpeg420.mp4", "--", "-c:v", "libx264", "-crf", "0", "-pix_fmt", "yuvj420p",
                   "-threads", "1")
    return {"odd420": odd, "full444": full, "rotated": rotated, "jpeg420": jpeg}


def _store(exe, path, indices, tmp):
    """The sampled frames stored as the face stage does it; also the RGB frames that decode gave."""
    info = ffmpeg.probe(path, exe)
    writer = framestore.FrameWriter(exe)
    target = writer.target("v", info.pix_fmt)
    assert target is not None
    rgb = list(ffmpeg.iter_frames(path, indices, exe, info, store=target))
    writer.add("v", target[0], info.pix_fmt, target[1], indices)
    writer.write(tmp / "frames.zip")
    return info, rgb, framestore.FrameStore(tmp / "frames.zip")


@pytest.mark.parametrize("kind", ["odd420", "full444", "rotated", "jpeg420"])
def test_every_default_operation_bit_identical_on_stored_frames(videos, kind, exe, tmp_path):
    path = videos[kind]
    indices = ffmpeg.even_sample(40, 7).tolist()
    info, rgb, store = _store(exe, path, indices, tmp_path)
    if kind == "rotated":
        assert (info.width, info.height) == (114, 202)
    assert info.pix_fmt == {"full444": "yuv444p", "jpeg420": "yuvj420p"}.get(kind, "yuv420p")
    # storing the frames in the same decode leaves the face stage's frames as they were
    assert np.array_equal(np.stack(rgb), ffmpeg.read_frames(path, indices, exe, info))
    wanted = [indices[1], indices[2], indices[5]]  # reuse: only the frames with a face
    with store.extracted("v") as stored:
        for op in FROM_FRAMES:
            for frames in (wanted, indices):
                old = distort_video(path, [op], {op.name: frames}, info.width, info.height, exe)[op.name]
                new = distort_stored(stored, op, store.indices("v"), frames, info.width, info.height, exe)
                assert len(new) == len(frames) and all(np.array_equal(a, b) for a, b in zip(old, new)), (kind, op.name)
    # windows of consecutive frames (faces.windows), through the noise's frame numbering
    if kind == "odd420":
        windowed = [4, 5, 6, 7, 20, 21, 22, 23]
        _, _, store = _store(exe, path, windowed, tmp_path / "windows")
        noise = next(op for op in FROM_FRAMES if op.name == "noise")
        with store.extracted("v") as stored:
            new = distort_stored(stored, noise, windowed, windowed[1:], info.width, info.height, exe)
        old = distort_video(path, [noise], {"noise": windowed[1:]}, info.width, info.height, exe)["noise"]
        assert all(np.array_equal(a, b) for a, b in zip(old, new)) and len(new) == 7
    # the comparison can fail: the noise of another frame number differs
    noise = next(op for op in FROM_FRAMES if op.name == "noise")
    with store.extracted("v") as stored:
        shifted = distort_stored(stored, noise, [i + 1 for i in indices], [indices[2] + 1], info.width, info.height, exe)
    old = distort_video(path, [noise], {"noise": [indices[2]]}, info.width, info.height, exe)["noise"]
    assert not np.array_equal(shifted[0], old[0])


def test_full_range_jpeg_formats_are_stored_as_their_yuv_twins_tagged_full(exe):
    assert framestore.lossless_encoder("yuvj420p", exe) == "utvideo"
    options = framestore.store_options("utvideo", "yuvj420p")
    assert options["pix_fmt"] == "yuv420p" and options["color_range"] == "pc"
    assert "color_range" not in framestore.store_options("utvideo", "yuv420p")


def test_whole_stream_operations_are_refused(videos, exe, tmp_path):
    _, _, store = _store(exe, videos["odd420"], [1, 5], tmp_path)
    codec = next(op for op in DEFAULTS if op.is_codec)
    with store.extracted("v") as stored, pytest.raises(ValueError, match="whole stream"):
        distort_stored(stored, codec, [1, 5], [1], 202, 114, exe)


FACES = dict(detector="dlib_hog", upsample=0, detect_max_side=640, track=True, track_face_px=120, fallback_upsample=1,
             crop_scale=1.3, crop_size=48, frames={"train": 4, "val": 4, "test": 5}, min_faces=1, threads=1, shard_size=4)


@pytest.mark.parametrize("mode", ["reuse", "redetect"])
def test_test_copy_shards_identical_with_and_without_stored_frames(face_video, exe, tmp_path, mode):
    blank = tmp_path / "blank.mp4"
    ffmpeg.write_video(blank, [np.full((120, 160, 3), 100, np.uint8)] * 10, fps=25, crf=18)
    videos = [dict(video_id="original/000", manipulation="original", label=0, path=str(face_video)),
              dict(video_id="Deepfakes/000_001", manipulation="Deepfakes", label=1, path=str(blank))]
    writer = framestore.FrameWriter(exe)
    records, rows = extract_shard(videos, "test", FACES, exe, progress=False, frames=writer)
    writer.write(tmp_path / "shard_000.frames.zip")
    write_shard(tmp_path / "shard_000.npz", records, rows, {"quality": "raw", "split": "test", "shard": 0})
    pd.DataFrame([{**v, "quality": "raw", "split": "test", "exists": True} for v in videos]).to_csv(
        tmp_path / "index.csv", index=False)
    ops = [Operation.from_params({**op.params(), "faces": mode}) for op in DEFAULTS if not op.is_identity]
    if mode == "redetect":
        ops = [op for op in ops if op.name in ("noise", "hflip", "res_x2", "grayscale")]
    shards = {}
    for way, frames in (("stream", None), ("stored", tmp_path / "shard_000.frames.zip")):
        outs = [tmp_path / way / op.name / "shard_000.npz" for op in ops]
        distort_shard(tmp_path / "shard_000.npz", tmp_path / "index.csv", [op.params() for op in ops], FACES, None,
                      outs, progress=False, log=lambda *a: None, frames=frames)
        shards[way] = outs
    for op, a, b in zip(ops, shards["stream"], shards["stored"]):
        old, new = FaceShard(a), FaceShard(b)
        assert old.video_ids == new.video_ids == ["original/000"], op.name
        x, y = old.read("original/000"), new.read("original/000")
        assert len(x.crops) > 0 and np.array_equal(x.crops, y.crops), op.name
        assert np.array_equal(x.frame_indices, y.frame_indices) and np.array_equal(x.boxes, y.boxes), op.name
        ways = {v["video_id"]: v.get("frames_from") for v in new.summary["videos"]}
        assert ways["original/000"] == ("stored frames" if op.from_stored_frames else "video"), op.name
