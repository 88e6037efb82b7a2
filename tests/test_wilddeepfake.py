"""WildDeepfake (issue 24): a dataset published as face crops, one archive per
source video holding one folder of frame-numbered images per face sequence.
The reader on a fixture in the published layout (with a damaged archive and an
empty sequence); the face stage and the test copies on image sequences."""

from __future__ import annotations

import gzip
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
    ok, data = cv2.imencode(".png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
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
    assert resolve_block("datasets", {"wdf": block}) == {"wdf": block}
    for bad, match in (({"missed_face": "maybe"}, "missed_face"), ({"frame_rate": 0}, "frame_rate"), ({"frobble": 1}, "frobble")):
        with pytest.raises(InputError, match=match):
            resolve_block("datasets", {"wdf": {**block, **bad}})
