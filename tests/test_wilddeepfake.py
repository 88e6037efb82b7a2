"""WildDeepfake (issue 24): a dataset published as face crops, one archive per
source video holding one folder of frame-numbered images per face sequence.
The reader on a fixture in the published layout (with a damaged archive and an
empty sequence); the face stage and the test copies on image sequences."""

from __future__ import annotations

import gzip
import re
import io
import random
import tarfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from dfrobust.core.errors import InputError
from dfrobust.datasets import READERS, common, wilddeepfake
from dfrobust.media import sequence as seq

# -- the fixture: the published layout ------------------------------------------------

#: folder -> archive file -> (compression, {member folder: frame numbers}); None: an empty folder entry
LAYOUT = {
    "real_train": {"0.tar.gz": ("gz", {"0/real/1": [7, 8, 9, 10], "0/real/2": [5, 6]})},
    "real_test": {"0.tar.gz": ("gz", {"0/real/4": [98, 99, 100, 103], "0/real/5": None}),
                  "1.tar.gz": ("plain", {"1/real/9": [1, 2, 3]})},  # plain tar despite its name
    "fake_train": {"0.tar.gz": ("gz", {"0/fake/3": [11, 12]})},
    "fake_test": {"0.tar.gz": ("gz", {"0/fake/6": [1000, 1001, 1003], "0/fake/7": [1, 2]}),
                  "1.tar.gz": ("damaged", {"1/fake/8": [1, 2, 3, 4]})},  # truncated: cannot be read
}
#: what the reader gives: id -> (label, split, manipulation, archive under root, member)
EXPECTED = {
    "wilddeepfake/real_train/0/1": (0, "train", "original", "real_train/0.tar.gz", "0/real/1"),
    "wilddeepfake/real_train/0/2": (0, "train", "original", "real_train/0.tar.gz", "0/real/2"),
    "wilddeepfake/fake_train/0/3": (1, "train", "WildDeepfake", "fake_train/0.tar.gz", "0/fake/3"),
    "wilddeepfake/real_test/0/4": (0, "test", "original", "real_test/0.tar.gz", "0/real/4"),
    "wilddeepfake/real_test/1/9": (0, "test", "original", "real_test/1.tar.gz", "1/real/9"),
    "wilddeepfake/fake_test/0/6": (1, "test", "WildDeepfake", "fake_test/0.tar.gz", "0/fake/6"),
    "wilddeepfake/fake_test/0/7": (1, "test", "WildDeepfake", "fake_test/0.tar.gz", "0/fake/7"),
}


def tiny_png(folder: str, member: str, number: int) -> bytes:
    """A small valid PNG, different for every image."""
    import cv2

    rng = np.random.default_rng(abs(hash((folder, member, number))) % 2**32)
    ok, data = cv2.imencode(".png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    assert ok
    return data.tobytes()


def tar_bytes(files: dict[str, bytes | None], seed: int = 0) -> bytes:
    """A tar of `files` (name -> bytes; None: a folder entry), members in a shuffled order as in the release."""
    names = list(files)
    random.Random(seed).shuffle(names)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.mtime = 1600000000
            if files[name] is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(files[name])
                tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def write_archive(path: Path, files: dict[str, bytes | None], how: str = "gz") -> Path:
    """One archive: gzip ("gz"), plain tar ("plain") or gzip cut to 2/3 of its length ("damaged")."""
    data = tar_bytes(files)
    if how in ("gz", "damaged"):
        data = gzip.compress(data, mtime=0)
    if how == "damaged":
        data = data[: len(data) * 2 // 3]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_wilddeepfake(root: Path, images: Callable[[str, str, int], bytes] = tiny_png,
                      layout: dict = LAYOUT, spelling: Callable[[str], str] = lambda folder: folder) -> Path:
    """A WildDeepfake copy in its published layout (four folders of archives of
    frame-numbered image folders; LAYOUT: one damaged archive, one empty sequence).
    images(folder, member, frame number) -> the image file's bytes."""
    for folder, archives in layout.items():
        for name, (how, members) in archives.items():
            files: dict[str, bytes | None] = {}
            for member, numbers in members.items():
                if numbers is None:
                    files[f"./{member}"] = None
                    continue
                for number in numbers:
                    files[f"./{member}/{number}.png"] = images(folder, member, number)
            write_archive(root / spelling(folder) / name, files, how)
    return root


def cfg_of(root: Path, **extra) -> dict:
    return {"root": str(root), "listing_cache": None, **extra}


@pytest.fixture
def wdf(tmp_path) -> Path:
    return make_wilddeepfake(tmp_path / "deepfake_in_the_wild")


# -- the reader -------------------------------------------------------------------------


def test_registered_with_the_reader_contract(wdf):
    assert READERS["wilddeepfake"] is wilddeepfake
    cfg = cfg_of(wdf)
    index, missing = wilddeepfake.build_index(cfg)
    assert list(index.columns) == [*common.COLUMNS, *common.SEQUENCE_COLUMNS]
    assert missing.empty and index["exists"].all() and set(index["quality"]) == {"native"}
    assert (index["label"] == (index["manipulation"] != "original")).all()
    assert wilddeepfake.planned_counts(cfg) == {s: int((index["split"] == s).sum()) for s in common.SPLITS}
    assert wilddeepfake.planned_counts(cfg) == {"train": 3, "val": 0, "test": 4}
    assert sorted(map(str, wilddeepfake.label_files(cfg))) == sorted(
        str(wdf / f / a) for f, archives in LAYOUT.items() for a in archives)  # every archive, damaged one too
    assert [e.video_id for e in wilddeepfake.videos(cfg)] == index["video_id"].tolist()


def test_labels_splits_ids_paths_and_members(wdf):
    index, _ = wilddeepfake.build_index(cfg_of(wdf, frame_rate=30))
    got = {row.video_id: (row.label, row.split, row.manipulation, Path(row.path).relative_to(wdf).as_posix(), row.member)
           for row in index.itertuples()}
    assert got == EXPECTED
    assert index["video_id"].is_unique
    row = index.set_index("video_id").loc["wilddeepfake/real_test/0/4"]
    assert row["name"] == "0/4" and row.frame_rate == 30.0 and row.missed_face == "whole_image"
    # fixed order: by split, reals first
    assert index["split"].tolist() == ["train"] * 3 + ["test"] * 4
    assert index["label"].tolist() == [0, 0, 1, 0, 0, 1, 1]
    # read back from CSV, every row is a sequence (common.sequence_of)
    back = pd.read_csv(io.StringIO(index.to_csv(index=False)), dtype={"name": str})
    assert common.sequence_of(back.iloc[3].to_dict()) == {"member": "0/real/4", "frame_rate": 30.0, "missed_face": "whole_image"}
    assert common.sequence_of({"video_id": "x", "path": "a.mp4"}) is None
    assert common.sequence_of({"member": float("nan")}) is None


def test_damaged_archive_and_empty_sequence_one_line_each(wdf, capsys):
    cfg = cfg_of(wdf)
    lines = wilddeepfake.skipped(cfg)
    assert len(lines) == 2 and all("\n" not in line for line in lines), lines
    damaged = next(line for line in lines if "cannot be read" in line)
    empty = next(line for line in lines if "has no images" in line)
    assert str(wdf / "fake_test/1.tar.gz") in damaged and "left out" in damaged
    assert str(wdf / "real_test/0.tar.gz") in empty and "0/real/5" in empty
    index, _ = wilddeepfake.build_index(cfg)  # the rest goes on
    assert len(index) == len(EXPECTED)
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("WARNING:")]
    assert warnings == [f"WARNING: {line}" for line in lines]


def test_index_stage_logs_them_and_writes_the_index(wdf, tmp_path, capsys):
    from dfrobust.stages.dataset import write_index

    write_index({"kind": "wilddeepfake", **cfg_of(wdf)}, tmp_path / "index.csv", tmp_path / "missing.csv")
    out = capsys.readouterr().out
    assert out.count("WARNING:") == 2
    index = pd.read_csv(tmp_path / "index.csv", dtype={"name": str})
    assert sorted(index["video_id"]) == sorted(EXPECTED)


def test_folder_spellings_and_splits(tmp_path):
    spaced = make_wilddeepfake(tmp_path / "spaced", spelling=lambda f: f.replace("_", " "))
    index, _ = wilddeepfake.build_index(cfg_of(spaced))
    assert sorted(index["video_id"]) == sorted(EXPECTED)  # ids spelled with "_" whatever the copy
    assert (spaced / "real test/0.tar.gz").as_posix() in index["path"].tolist()
    both = make_wilddeepfake(tmp_path / "both")
    (both / "real test").mkdir()
    with pytest.raises(InputError, match="holds both") as err:
        wilddeepfake.build_index(cfg_of(both))
    assert "\n" not in str(err.value)
    only_test = make_wilddeepfake(tmp_path / "test_only", layout={k: v for k, v in LAYOUT.items() if k.endswith("test")})
    assert wilddeepfake.planned_counts(cfg_of(only_test, splits=["test"])) == {"train": 0, "val": 0, "test": 4}
    with pytest.raises(InputError, match=r"real_train/ .*does not exist.*'splits'") as err:
        wilddeepfake.planned_counts(cfg_of(only_test))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("key, value, match", [("frame_rate", 0, "frame_rate"), ("frame_rate", "fast", "frame_rate"),
                                               ("missed_face", "maybe", "missed_face")])
def test_bad_settings_are_one_line_errors(wdf, key, value, match):
    with pytest.raises(InputError, match=match):
        wilddeepfake.planned_counts(cfg_of(wdf, **{key: value}))


def test_rejected_sequences_one_line_each(tmp_path):
    layout = {"real_test": {"0.tar.gz": ("gz", {"0/real/1": [1, 2]})}, "fake_test": {}}
    root = make_wilddeepfake(tmp_path / "w", layout=layout)
    write_archive(root / "fake_test/5.tar", {"./5/fake/1/x.png": b"a", "./5/fake/1/2.png": b"b",
                                             "./5/fake/2/07.png": b"a", "./5/fake/2/7.png": b"b",
                                             "./5/fake/3/1.png": b"a", "./5/fake/3/2.jpg": b"b",
                                             "./5/fake/4/1.png": b"a", "./5/fake/4/notes.txt": b"ignored",
                                             "./5/fake/4/._2.png": b"macOS metadata, ignored"}, "plain")
    cfg = cfg_of(root, splits=["test"])
    lines = wilddeepfake.skipped(cfg)
    assert len(lines) == 3 and all("\n" not in line for line in lines)
    assert any("5/fake/1" in line and "x.png is not named by a frame number" in line for line in lines)
    assert any("5/fake/2" in line and "frame 7 is given twice" in line for line in lines)
    assert any("5/fake/3" in line and "2 types" in line for line in lines)
    assert sorted(e.video_id for e in wilddeepfake.videos(cfg)) == ["wilddeepfake/fake_test/5/4", "wilddeepfake/real_test/0/1"]


def test_a_sequence_labelled_against_its_folder_stops_the_run(tmp_path):
    layout = {"real_test": {"0.tar.gz": ("gz", {"0/real/1": [1, 2]})},
              "fake_test": {"3.tar.gz": ("gz", {"3/real/17": [1, 2]})}}
    root = make_wilddeepfake(tmp_path / "w", layout=layout)
    with pytest.raises(InputError, match=r"3\.tar\.gz: sequence 3/real/17 is in fake_test/ \(fake\) but its path says real"):
        wilddeepfake.build_index(cfg_of(root, splits=["test"]))


def test_listing_cache_reopens_only_changed_archives(wdf, tmp_path, monkeypatch):
    import os

    cfg = cfg_of(wdf, listing_cache=str(tmp_path / "listings"))
    first = wilddeepfake.planned_counts(cfg)
    cached = wilddeepfake.cache_file(cfg)
    assert cached.is_file() and cached.parent == tmp_path / "listings"
    opened = []
    real_open = tarfile.open
    monkeypatch.setattr(tarfile, "open", lambda path, *a, **k: opened.append(Path(path)) or real_open(path, *a, **k))
    assert wilddeepfake.planned_counts(cfg) == first and opened == []  # no archive opened
    touched = wdf / "real_train/0.tar.gz"
    os.utime(touched, ns=(1, 1))
    assert wilddeepfake.planned_counts(cfg) == first and opened == [touched]
    cached.write_text("{not json")  # a damaged cache is rebuilt
    assert wilddeepfake.planned_counts(cfg) == first
    none = cfg_of(wdf, listing_cache=None)
    assert wilddeepfake.cache_file(none) is None


def test_list_archive_reads_gzip_and_plain_tar_whatever_the_name(wdf):
    gz = seq.list_archive(wdf / "real_test/0.tar.gz")
    assert gz.error is None and gz.sequences == {"0/real/4": 4} and gz.empty == ("0/real/5",)
    plain = seq.list_archive(wdf / "real_test/1.tar.gz")
    assert plain.error is None and plain.sequences == {"1/real/9": 3}
    damaged = seq.list_archive(wdf / "fake_test/1.tar.gz")
    assert damaged.error and "\n" not in damaged.error and not damaged.sequences
    assert seq.ArchiveListing.from_json(gz.to_json()) == gz


def test_ids_never_collide_with_the_other_readers(wdf, tmp_path):
    from test_datasets import MAKERS, cfg_of as other_cfg

    ids = wilddeepfake.build_index(cfg_of(wdf))[0]["video_id"].tolist()
    for kind, make in MAKERS.items():
        ids += READERS[kind].build_index(other_cfg(kind, make(tmp_path / kind)))[0].drop_duplicates("video_id")["video_id"].tolist()
    assert len(ids) == len(set(ids))


# -- sampling by frame number -------------------------------------------------------------


def test_sample_by_number_is_even_sample_without_gaps():
    from dfrobust.media.ffmpeg import even_sample

    for m in (1, 2, 5, 17, 64, 161, 299):
        for n in (1, 3, 5, 32, 100):
            for offset in (0, 1, 898):
                got = seq.sample_by_number(np.arange(m) + offset, n)
                assert np.array_equal(got, even_sample(m, n)), (m, n, offset)


def test_sample_by_number_with_gaps():
    rng = np.random.default_rng(0)
    for _ in range(300):
        m = int(rng.integers(1, 80))
        numbers = np.sort(rng.choice(1000, m, replace=False))
        n = int(rng.integers(1, 40))
        got = seq.sample_by_number(numbers, n)
        assert len(got) == min(m, n) and (np.diff(got) > 0).all() and got[0] >= 0 and got[-1] < m
    assert seq.sample_by_number([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100], 2).tolist() == [9, 10]  # targets 25, 75 on the timeline: images 9 and 100
    assert seq.sample_by_number(list(range(10)) + list(range(100, 110)), 4).tolist() == [9, 10, 11, 12]  # pinned: a rule change is deliberate
    assert seq.sample_by_number([5, 6, 7], 10).tolist() == [0, 1, 2]


def test_schema_takes_the_kind_and_its_keys():
    from dfrobust.core.config import resolve_block

    block = {"kind": "wilddeepfake", "root": "/data/deepfake_in_the_wild", "frame_rate": 30, "missed_face": "skip",
             "listing_cache": None, "splits": ["test"]}
    # frames: the one key with a schema default, as every kind has it (null: faces.frames)
    assert resolve_block("datasets", {"wdf": block}) == {"wdf": {**block, "frames": None}}
    for bad, match in (({"missed_face": "maybe"}, "missed_face"), ({"frame_rate": 0}, "frame_rate"), ({"frobble": 1}, "frobble")):
        with pytest.raises(InputError, match=match):
            resolve_block("datasets", {"wdf": {**block, **bad}})



# -- media: a sequence read as a video ------------------------------------------------------

import subprocess  # noqa: E402

import cv2  # noqa: E402

from dfrobust.media import ffmpeg  # noqa: E402

from conftest import grace_hopper, operation  # noqa: E402


@pytest.fixture(scope="module")
def exe():
    return ffmpeg.find_ffmpeg()


def png_rgb(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_extract_sequences_orders_by_frame_number_in_one_pass(wdf, tmp_path, monkeypatch):
    opened = []
    real_open = tarfile.open
    monkeypatch.setattr(tarfile, "open", lambda path, *a, **k: opened.append(Path(path)) or real_open(path, *a, **k))
    got = seq.extract_sequences(wdf / "fake_test/0.tar.gz", ["0/fake/6", "0/fake/7", "0/fake/99"], tmp_path / "x", 25)
    assert opened == [wdf / "fake_test/0.tar.gz"]  # two sequences (and one absent) from one pass
    six = got["0/fake/6"]
    assert six.numbers == (1000, 1001, 1003) and six.size == (16, 16) and str(six) == f"{wdf / 'fake_test/0.tar.gz'}:0/fake/6"
    assert sorted(p.name for p in six.folder.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    for k, number in enumerate(six.numbers):
        assert (six.folder / f"{k:06d}.png").read_bytes() == tiny_png("fake_test", "0/fake/6", number)
    assert isinstance(got["0/fake/99"], InputError) and "not in the archive" in str(got["0/fake/99"])
    real = seq.extract_sequences(wdf / "real_test/0.tar.gz", ["0/real/4"], tmp_path / "y", 25)["0/real/4"]
    assert real.numbers == (98, 99, 100, 103)  # not text order (100 < 98 as text)
    damaged = seq.extract_sequences(wdf / "fake_test/1.tar.gz", ["1/fake/8"], tmp_path / "z", 25)["1/fake/8"]
    assert isinstance(damaged, InputError) and "cannot be read" in str(damaged) and "\n" not in str(damaged)


def test_extract_sequences_refuses_mixed_sizes_and_never_writes_outside(tmp_path):
    import cv2

    def png(w, h):
        return cv2.imencode(".png", np.zeros((h, w, 3), np.uint8))[1].tobytes()

    archive = write_archive(tmp_path / "a.tar.gz", {"./0/fake/1/1.png": png(32, 32), "./0/fake/1/2.png": png(32, 32),
                                                    "./0/fake/1/3.png": png(40, 32), "./0/fake/1/../../../../x/1.png": png(32, 32)})
    out = tmp_path / "out"
    got = seq.extract_sequences(archive, ["0/fake/1", "x"], out, 25)
    assert isinstance(got["0/fake/1"], InputError)
    assert str(got["0/fake/1"]) == f"{archive}:0/fake/1: images of 2 sizes (32x32 x2, 40x32 x1); ffmpeg would rescale them to the first's"
    assert not (tmp_path / "x").exists() and all(p.is_relative_to(out) for p in out.rglob("*"))
    assert seq.image_size(png(40, 32)) == (40, 32)
    assert seq.image_size(cv2.imencode(".jpg", np.zeros((30, 50, 3), np.uint8))[1].tobytes()) == (50, 30)


def test_probe_and_decode_a_sequence_as_a_video(wdf, tmp_path, exe):
    sequence = seq.extract_sequences(wdf / "real_test/0.tar.gz", ["0/real/4"], tmp_path, 30)["0/real/4"]
    info = ffmpeg.probe(sequence, exe)
    assert (info.width, info.height, info.n_frames, info.fps, info.pix_fmt) == (16, 16, 4, 30.0, "rgb24")
    frames = ffmpeg.read_frames(sequence, [1, 3], exe, info)
    for frame, number in zip(frames, (99, 103)):
        assert np.array_equal(frame, png_rgb(tiny_png("real_test", "0/real/4", number)))


def test_sequence_cache_unpacks_each_archive_once_and_cleans_up(wdf, tmp_path):
    index, _ = wilddeepfake.build_index(cfg_of(wdf, splits=["test"]))
    rows = index.to_dict("records") + [{"video_id": "v", "path": str(tmp_path / "v.mp4")}]
    sequences = [common.sequence_of(r) for r in rows]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with seq.SequenceCache(rows, sequences, scratch) as cache:
        for row, sequence in zip(rows, sequences):
            with cache.source(row, sequence) as source:
                if sequence is None:
                    assert source == str(tmp_path / "v.mp4")
                else:
                    assert isinstance(source, seq.ImageSequence) and source.folder.is_dir()
                    assert source.frame_rate == 25.0 and str(source).endswith(f":{sequence['member']}")
        assert cache.unpacked == 3  # real_test/0, real_test/1, fake_test/0
    assert list(scratch.iterdir()) == []
    with pytest.raises(RuntimeError, match="boom"):
        with seq.SequenceCache(rows, sequences, scratch) as cache:
            with cache.source(rows[0], sequences[0]):
                raise RuntimeError("boom")
    assert list(scratch.iterdir()) == []


# -- the face stage on a sequence ------------------------------------------------------------

FACES = dict(detector="dlib_hog", upsample=0, detect_max_side=640, track=True, track_face_px=120, fallback_upsample=1,
             crop_scale=1.3, crop_size=64, frames={"train": 4, "val": 4, "test": 5}, min_faces=1, threads=1, shard_size=4)
GREY = ("0/fake/3", 4)  # the image of this sequence and frame number is flat grey: no face


def face_image(number: int, member: str = "") -> np.ndarray:
    """A 224x224 face crop (Grace Hopper, 1.3x her face box), a little different for every frame number."""
    if (member, number) == GREY:
        return np.full((224, 224, 3), 128, np.uint8)
    image = grace_hopper()[111:354, 152:395]
    shift = number % 5
    crop = cv2.resize(image[shift: shift + 235, shift: shift + 235], (224, 224), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(number).integers(-3, 4, crop.shape)
    return np.clip(crop.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def face_png(folder: str, member: str, number: int) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(face_image(number, member), cv2.COLOR_RGB2BGR))[1].tobytes()


FACE_NUMBERS = list(range(95, 107))  # no gaps (even_sample's positions), across 99 -> 100
FACE_LAYOUT = {"real_test": {"0.tar.gz": ("gz", {"0/real/2": [3, 4, 7, 9, 15, 16, 30, 31, 32]})},
               "fake_test": {"0.tar.gz": ("gz", {"0/fake/1": FACE_NUMBERS, "0/fake/3": [1, 2, 3, 4, 5, 6, 7]})}}


@pytest.fixture(scope="module")
def faces_wdf(tmp_path_factory):
    root = make_wilddeepfake(tmp_path_factory.mktemp("wdf") / "deepfake_in_the_wild", face_png, FACE_LAYOUT)
    return root


def index_rows(root: Path, **extra) -> list[dict]:
    index, _ = wilddeepfake.build_index(cfg_of(root, splits=["test"], **extra))
    return pd.read_csv(io.StringIO(index.to_csv(index=False)), dtype={"name": str, "member": str}).to_dict("records")


def lossless_video(path: Path, frames: list[np.ndarray], exe: str) -> Path:
    h, w = frames[0].shape[:2]
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25",
           "-i", "-", "-c:v", "ffv1", "-pix_fmt", "bgr0", str(path)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
    return path


def test_faces_of_a_sequence_equal_those_of_a_lossless_video(faces_wdf, tmp_path, exe):
    from dfrobust.stages.faces import extract_shard

    rows = [r for r in index_rows(faces_wdf) if r["member"] == "0/fake/1"]
    records, summary = extract_shard(rows, "test", FACES, exe, progress=False, scratch=tmp_path)
    video = lossless_video(tmp_path / "same.mkv", [face_image(n) for n in FACE_NUMBERS], exe)
    assert np.array_equal(ffmpeg.read_frames(video, [3], exe)[0], face_image(98))  # lossless indeed
    video_records, _ = extract_shard([{"video_id": "v", "manipulation": "WildDeepfake", "label": 1, "path": str(video)}],
                                     "test", FACES, exe, progress=False)
    a, b = records[0], video_records[0]
    assert a.n_faces == 5 and summary[0]["status"] == "ok"
    for name in ("crops", "boxes", "crop_boxes", "landmarks", "frame_indices", "sampled_indices"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    row = summary[0]
    assert row["frame_numbers"] == [FACE_NUMBERS[i] for i in a.frame_indices]
    assert (row["member"], row["fps"], row["n_frames"], row["n_whole_image"]) == ("0/fake/1", 25.0, 12, 0)
    assert row["path"] == str(faces_wdf / "fake_test/0.tar.gz")


def test_frames_are_sampled_by_frame_number(faces_wdf, tmp_path, exe):
    from dfrobust.stages.faces import extract_shard

    rows = [r for r in index_rows(faces_wdf) if r["member"] == "0/real/2"]
    records, summary = extract_shard(rows, "test", {**FACES, "frames": {"train": 4, "val": 4, "test": 3}}, exe,
                                     progress=False, scratch=tmp_path)
    numbers = [3, 4, 7, 9, 15, 16, 30, 31, 32]
    expected = seq.sample_by_number(numbers, 3)
    # frame numbers 3..32 in thirds: targets 8, 18, 28 -> images 7 (a tie with 9: the lower), 16, 30
    assert records[0].sampled_indices.tolist() == expected.tolist() == [2, 5, 6]
    assert ffmpeg.even_sample(len(numbers), 3).tolist() == [1, 4, 7]  # by position it would be other images
    assert summary[0]["frame_numbers"] == [numbers[i] for i in records[0].frame_indices]


@pytest.mark.parametrize("missed", ["whole_image", "skip"])
def test_an_image_without_a_face_is_kept_whole_or_skipped(faces_wdf, tmp_path, exe, missed):
    from dfrobust.stages.faces import extract_shard

    rows = [r for r in index_rows(faces_wdf, missed_face=missed) if r["member"] == "0/fake/3"]
    logged = []
    records, summary = extract_shard(rows, "test", {**FACES, "frames": {"train": 4, "val": 4, "test": 7}}, exe,
                                     log=logged.append, progress=False, scratch=tmp_path)
    row, record = summary[0], records[0]
    assert row["status"] == "ok" and row["n_sampled"] == 7
    if missed == "skip":
        assert row["n_missed"] == 1 and row["n_whole_image"] == 0 and 3 not in record.frame_indices
        return
    assert row["n_missed"] == 0 and row["n_whole_image"] == 1 and row["whole_image_frames"] == [3]
    k = record.frame_indices.tolist().index(3)
    assert record.frame_indices.tolist() == list(range(7))
    assert np.array_equal(record.crops[k], cv2.resize(face_image(4, "0/fake/3"), (64, 64), interpolation=cv2.INTER_AREA))
    assert record.boxes[k].tolist() == [0, 0, 224, 224] and record.crop_boxes[k].tolist() == [0, 0, 224, 224]
    assert np.isnan(record.landmarks[k]).all() and not np.isnan(np.delete(record.landmarks, k, 0)).any()
    assert any("wilddeepfake/fake_test/0/3: no face found in 1 of 7 sampled images; kept whole (missed_face: whole_image)" == line
               for line in logged)


def test_face_shard_unpacks_an_archive_once_and_leaves_no_scratch(faces_wdf, tmp_path, exe, monkeypatch):
    from dfrobust.stages.faces import extract_shard

    rows = [r for r in index_rows(faces_wdf) if r["path"].endswith("fake_test/0.tar.gz")]
    assert len(rows) == 2
    opened = []
    real_open = tarfile.open
    monkeypatch.setattr(tarfile, "open", lambda path, *a, **k: opened.append(Path(path)) or real_open(path, *a, **k))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    extract_shard(rows, "test", FACES, exe, progress=False)
    assert opened == [faces_wdf / "fake_test/0.tar.gz"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith("dfrobust-sequences-")] == []


def test_a_sequence_that_cannot_be_read_is_excluded_in_one_line(tmp_path, exe):
    from dfrobust.stages.faces import extract_shard

    def images(folder, member, number):
        if member == "0/fake/2" and number == 2:
            return face_png(folder, member, number)[:200]  # a truncated PNG: ffmpeg cannot decode it
        if member == "0/fake/3" and number == 2:
            return cv2.imencode(".png", np.zeros((100, 120, 3), np.uint8))[1].tobytes()  # another size
        return face_png(folder, member, number)

    layout = {"real_test": {"0.tar.gz": ("gz", {"0/real/1": [1, 2, 3]})},
              "fake_test": {"0.tar.gz": ("gz", {"0/fake/2": [1, 2, 3], "0/fake/3": [1, 2, 3]})}}
    root = make_wilddeepfake(tmp_path / "w", images, layout)
    logged = []
    _, summary = extract_shard(index_rows(root), "test", FACES, exe, log=logged.append, progress=False, scratch=tmp_path)
    status = {row["video_id"]: row for row in summary}
    assert status["wilddeepfake/real_test/0/1"]["status"] == "ok"
    for video_id, words in (("wilddeepfake/fake_test/0/2", "0/fake/2"), ("wilddeepfake/fake_test/0/3", "2 sizes")):
        assert status[video_id]["status"] == "error" and words in status[video_id]["message"]
        assert "\n" not in status[video_id]["message"]
    assert sum(line.startswith("EXCLUDED") for line in logged) == 2


# -- the test copies of a sequence -----------------------------------------------------------


def clean_shard(root: Path, member: str, folder: Path, exe: str, **index_extra) -> tuple[Path, Path, Path]:
    """The face stage on one sequence, as the workflow leaves it: (clean shard, its stored frames, index.csv)."""
    from dfrobust.media.framestore import FrameWriter
    from dfrobust.media.store import write_shard
    from dfrobust.stages.faces import extract_shard

    folder.mkdir(parents=True, exist_ok=True)
    index, _ = wilddeepfake.build_index(cfg_of(root, splits=["test"], **index_extra))
    index = index[index["member"] == member]
    index.to_csv(folder / "index.csv", index=False)
    rows = pd.read_csv(folder / "index.csv", dtype={"name": str, "member": str}).to_dict("records")
    writer = FrameWriter(exe)
    records, summary = extract_shard(rows, "test", FACES, exe, progress=False, frames=writer, scratch=folder)
    writer.write(folder / "shard_000.frames.zip")
    write_shard(folder / "shard_000.npz", records, summary, {"dataset": "wdf", "quality": "native", "split": "test", "shard": 0})
    return folder / "shard_000.npz", folder / "shard_000.frames.zip", folder / "index.csv"


def by_hand(image: Path, chain: str, exe: str) -> np.ndarray:
    """One (square) image through a filter chain, alone (ffmpeg, raw RGB out)."""
    out = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-i", str(image), "-vf", chain, "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    side = int(round((len(out) // 3) ** 0.5))
    return np.frombuffer(out, np.uint8).reshape(side, side, 3)


def carried_crops(clean, op, frames: dict[int, np.ndarray], exe: str) -> np.ndarray:
    """The clean faces' boxes carried through the operation's geometry, cut from given frames (as CopyFaces does)."""
    from dfrobust.media.faces import face_of
    from dfrobust.media.operations import geometry

    transform = geometry(op, 224, 224, exe)
    landmarks = clean.landmarks_in_frame()
    return np.stack([face_of(frames[int(i)], int(i), transform.box(clean.boxes[k]), transform.points(landmarks[k]), 1.3, 64,
                             transform.box(clean.retina_boxes[k]))[4] for k, i in enumerate(clean.frame_indices)])


@pytest.mark.parametrize("chain", ["eq=brightness=0.1:contrast=1.2", "hflip,scale=iw/2:ih/2"])
def test_copy_of_a_sequence_under_a_per_frame_operation_equals_it_on_each_image(faces_wdf, tmp_path, exe, chain):
    from dfrobust.media.store import FaceShard
    from dfrobust.stages.distort import distort_shard

    npz, frames_zip, index_csv = clean_shard(faces_wdf, "0/fake/1", tmp_path / "clean", exe)
    clean = FaceShard(npz).read("wilddeepfake/fake_test/0/1")
    op = operation("op", "filter", filter=chain)
    assert op.scope == "frame"
    images = {}
    for k, number in enumerate(FACE_NUMBERS):
        path = tmp_path / "images" / f"{number}.png"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(face_png("fake_test", "0/fake/1", number))
        images[k] = by_hand(path, chain, exe)
    expected = carried_crops(clean, op, images, exe)
    for way, frames in (("stored frames", frames_zip), ("video", None)):  # from the stored images, and from the stream
        out = tmp_path / way / "shard_000.npz"
        distort_shard(npz, index_csv, [op.params()], FACES, None, [out], progress=False, log=lambda *a: None, frames=frames,
                      scratch=tmp_path)
        copy = FaceShard(out)
        assert copy.summary["videos"][0]["frames_from"] == way and copy.summary["videos"][0]["member"] == "0/fake/1"
        got = copy.read("wilddeepfake/fake_test/0/1")
        assert np.array_equal(got.frame_indices, clean.frame_indices) and np.array_equal(got.crops, expected), way


def hand_encode(images: list[bytes], folder: Path, out: Path, rate: str, exe: str, crf: int = 30, preset: str = "veryfast") -> bytes:
    """The images, in frame-number order, encoded with x264 by a plain ffmpeg command line."""
    folder.mkdir(parents=True)
    for k, data in enumerate(images):
        (folder / f"{k:06d}.png").write_bytes(data)
    subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-framerate", rate, "-i", str(folder / "%06d.png"),
                    "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p", "-threads", "1",
                    "-map_metadata", "-1", "-bitexact", "-fflags", "+bitexact", "-flags:v", "+bitexact", str(out)], check=True)
    return out.read_bytes()


@pytest.mark.parametrize("frame_rate", [25, 30])
def test_copy_of_a_sequence_under_compression_equals_a_hand_made_x264_encode(faces_wdf, tmp_path, exe, frame_rate):
    from dfrobust.media.store import FaceShard
    from dfrobust.stages.distort import distort_shard

    extra = {} if frame_rate == 25 else {"frame_rate": frame_rate}  # 25: the default
    npz, frames_zip, index_csv = clean_shard(faces_wdf, "0/fake/1", tmp_path / "clean", exe, **extra)
    op = operation("x264", "compression", codec={"crf": 30, "preset": "veryfast"}, keep_videos=True)
    assert (op.codec["encoder"], op.codec["pix_fmt"], op.codec["threads"]) == ("libx264", "yuv420p", 1)
    out, kept_dir = tmp_path / "copy" / "shard_000.npz", tmp_path / "kept"
    distort_shard(npz, index_csv, [op.params()], FACES, None, [out], videos_dirs=[kept_dir], progress=False,
                  log=lambda *a: None, frames=frames_zip, scratch=tmp_path)
    kept = kept_dir / "wilddeepfake/fake_test/0/1.mp4"
    images = [face_png("fake_test", "0/fake/1", n) for n in FACE_NUMBERS]
    assert kept.read_bytes() == hand_encode(images, tmp_path / "hand", tmp_path / "hand.mp4", str(frame_rate), exe)
    info = ffmpeg.probe(kept, exe)
    assert (info.fps, info.n_frames, info.codec) == (float(frame_rate), len(FACE_NUMBERS), "h264")
    if frame_rate == 30:  # the rate is part of the encode: 25 fps gives other bytes
        assert kept.read_bytes() != hand_encode(images, tmp_path / "hand25", tmp_path / "hand25.mp4", "25", exe)
    clean = FaceShard(npz).read("wilddeepfake/fake_test/0/1")
    decoded = dict(zip(clean.frame_indices.tolist(), ffmpeg.read_frames(kept, clean.frame_indices, exe)))
    copy = FaceShard(out).read("wilddeepfake/fake_test/0/1")
    assert np.array_equal(copy.crops, carried_crops(clean, op, decoded, exe))


# -- the workflow: a WDF test set planned like any other -----------------------------------------


def wdf_overlay(root: Path) -> dict:
    """A minimal overlay on config/ffpp.yaml: a WildDeepfake dataset, its test set, and a
    table whose columns are WDF clean and WDF under a Table I operation (c40)."""
    return {"datasets": {"wdf": {"kind": "wilddeepfake", "root": str(root)}},
            "test_sets": {"wdf": {"dataset": "wdf", "split": "test"}},
            "tables": {"wdf_table": {"title": "WildDeepfake", "rows": [{"method": "xception", "quality": "c23"}],
                                     "columns": [{"test_set": "wdf", "label": "WDF"},
                                                 {"test_set": "wdf", "operation": "c40", "label": "WDF c40"}],
                                     "metrics": ["frame_auc", "video_auc"]}}}


def test_dry_run_plans_the_index_face_copy_score_and_metrics_jobs_of_a_wdf_column(wdf, tmp_path):
    import yaml

    from conftest import REPO, SMALL_PAIRS, job_counts, make_ffpp_tree
    from protocols import SNAKEMAKE

    ffpp = make_ffpp_tree(tmp_path / "ffpp", SMALL_PAIRS)
    work = tmp_path / "work"
    work.mkdir()
    (work / "overlay.yaml").write_text(yaml.safe_dump({"dataset": {"root": str(ffpp)}, **wdf_overlay(wdf)}))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(work), "-n", "--configfile",
           str(REPO / "config" / "ffpp.yaml"), str(work / "overlay.yaml"), "--", "results/tables/wdf_table.csv"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    # 4 readable test sequences, faces.shard_size of ffpp.yaml -> ceil(4 / shard_size) face shards of wdf
    from dfrobust.datasets.ffpp import n_shards

    shard_size = yaml.safe_load((REPO / "config" / "ffpp.yaml").read_text())["faces"]["shard_size"]
    wdf_faces = n_shards(4, shard_size)
    assert re.findall(r"results/faces/wdf/native/test/shard_\d+\.npz", proc.stdout), proc.stdout[-3000:]
    assert len(set(re.findall(r"results/faces/wdf/native/test/shard_\d+\.npz", proc.stdout))) == wdf_faces
    # FF++ and WDF indexed; FF++ c23 train and val faces for the one model, WDF's test faces; one copy per
    # WDF shard under c40; a score and metrics per column
    expected = {"dataset_index": 2, "train": 1, "extract_faces": 2 + wdf_faces, "distort_copy": wdf_faces,
                "score": 2, "metrics": 2, "table": 1}
    assert {rule: counts.get(rule, 0) for rule in expected} == expected, counts
    assert "results/datasets/wdf/index.csv" in proc.stdout
    # planning listed the archives once, into the default listing cache (relative to the working directory)
    assert list((work / "resources" / "listings").glob("wilddeepfake-*.json"))


def test_copy_redetect_keeps_whole_images_and_excludes_a_sequence_that_fails(faces_wdf, tmp_path, exe):
    import shutil

    from dfrobust.media.store import FaceShard
    from dfrobust.stages.distort import distort_shard

    root = tmp_path / "copy_of_wdf"
    shutil.copytree(faces_wdf, root)
    npz, frames_zip, index_csv = clean_shard(root, "0/fake/3", tmp_path / "clean", exe)
    flip = operation("hflip", "flip", filter="hflip", faces="redetect")
    out = tmp_path / "flip" / "shard_000.npz"
    distort_shard(npz, index_csv, [flip.params()], FACES, None, [out], progress=False, log=lambda *a: None,
                  frames=frames_zip, scratch=tmp_path)
    row = FaceShard(out).summary["videos"][0]
    assert row["status"] == "ok" and row["n_whole_image"] == 1 and row["n_found"] == row["n_sampled"]
    got = FaceShard(out).read("wilddeepfake/fake_test/0/3")
    k = got.frame_indices.tolist().index(3)
    assert got.boxes[k].tolist() == [0, 0, 224, 224] and np.isnan(got.landmarks[k]).all()
    # the archive goes bad after the face stage: a whole-stream copy of it is excluded, in one line
    archive = root / "fake_test/0.tar.gz"
    archive.write_bytes(archive.read_bytes()[:300])
    codec = operation("x264", "compression", codec={"crf": 30, "preset": "veryfast"})
    logged = []
    distort_shard(npz, index_csv, [codec.params()], FACES, None, [tmp_path / "x264" / "shard_000.npz"], progress=False,
                  log=logged.append, frames=frames_zip, scratch=tmp_path)
    row = FaceShard(tmp_path / "x264" / "shard_000.npz").summary["videos"][0]
    assert row["status"] == "error" and "cannot be read" in row["message"] and "\n" not in row["message"]
    assert [line for line in logged if line.startswith("EXCLUDED")] == [f"EXCLUDED wilddeepfake/fake_test/0/3: {row['message']}"]

