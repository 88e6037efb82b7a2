"""The cross-dataset readers (DFD, Celeb-DF v2, DFDC, DFDC preview) on trees
in each dataset's published layout; the face stage on what those datasets
hold (portrait clips, audio tracks, variable frame rate); and the Celeb-DF
layout demo."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dfrobust.core.errors import InputError
from dfrobust.datasets import READERS, any_present, celebdf, common, dfd, dfdc, dfdc_preview, ffpp

from conftest import REPO, SMALL_PAIRS, grace_hopper, make_ffpp_tree

REALCLIPS = REPO.parent.parent / "shared" / "realclips"  # /work/shared/realclips from a worktree
if not REALCLIPS.is_dir():
    REALCLIPS = REPO.parent / "shared" / "realclips"


def touch(root: Path, rel: str, payload: bytes = b"") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)


# -- trees in each dataset's layout --------------------------------------------------

DFD_REALS = ["01__exit_phone_room", "02__walking_down_street_outside_angry"]
DFD_FAKES = ["01_02__exit_phone_room__YVGY8LOK", "02_01__walking_down_street_outside_angry__9TDCEK1Q", "01_03__hugging_happy__ZYCZ30C0"]


def make_dfd(root: Path, qualities=("raw", "c23", "c40")) -> Path:
    make_ffpp_tree(root, SMALL_PAIRS)  # DFD lives inside an FF++ copy
    for q in qualities:
        for name in DFD_REALS:
            touch(root, f"original_sequences/actors/{q}/videos/{name}.mp4")
        for name in DFD_FAKES:
            touch(root, f"manipulated_sequences/DeepFakeDetection/{q}/videos/{name}.mp4")
    return root


CELEB_TEST = """1 Celeb-real/id0_0000.mp4
1 YouTube-real/00000.mp4
0 Celeb-synthesis/id0_id1_0000.mp4
0 Celeb-synthesis/id1_id0_0000.mp4
"""


def make_celebdf(root: Path, youtube: str = "YouTube-real") -> Path:
    for rel in ("Celeb-real/id0_0000.mp4", "Celeb-real/id0_0001.mp4", "Celeb-real/id1_0000.mp4",
                f"{youtube}/00000.mp4", f"{youtube}/00001.mp4",
                "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id1_id0_0000.mp4", "Celeb-synthesis/id0_id1_0001.mp4",
                "Celeb-synthesis/id1_id0_0001.mp4"):
        touch(root, rel)
    (root / "List_of_testing_videos.txt").write_text(CELEB_TEST)
    return root


DFDC_PARTS = {
    0: {"aaqaifqrwn.mp4": {"label": "REAL", "original": None, "split": "train"},
        "abarnvbtwb.mp4": {"label": "FAKE", "original": "aaqaifqrwn.mp4", "split": "train"},
        "abofeumbvv.mp4": {"label": "FAKE", "original": "aaqaifqrwn.mp4", "split": "train"}},
    1: {"aassnaulhq.mp4": {"label": "REAL", "original": None, "split": "train"},
        "aaqaifqrwn.mp4": {"label": "FAKE", "original": "aassnaulhq.mp4", "split": "train"}},  # same file name as in part 0
}
DFDC_TEST = "filename,label\naabqyygbaa.mp4,1\naacrnhsaru.mp4,0\naafbeziuly.mp4,1\n"


def make_dfdc(root: Path, videos_folder: str = "videos") -> Path:
    for part, meta in DFDC_PARTS.items():
        touch(root, f"dfdc_train_part_{part}/metadata.json", json.dumps(meta).encode())
        for name in meta:
            touch(root, f"dfdc_train_part_{part}/{name}")
    touch(root, "test/labels.csv", DFDC_TEST.encode())
    for name in ("aabqyygbaa", "aacrnhsaru", "aafbeziuly"):
        touch(root, f"test/{videos_folder}/{name}.mp4".replace("/./", "/"))
    return root


DFDCP = {
    "original_videos/643049/643049_A_001.mp4": {"label": "real", "set": "train"},
    "original_videos/643049/643049_B_002.mp4": {"label": "real", "set": "test"},
    "method_A/643049/643049_A/1255229_643049_A_001.mp4": {"label": "fake", "set": "train", "augmentations": {}},
    "method_B/643049/643049_B/1255229_643049_B_002.mp4": {"label": "fake", "set": "test"},
    "method_A/1224068/1224068_C/1224068_1255229_C_003.mp4": {"label": "fake", "set": "test"},
}


def make_dfdc_preview(root: Path) -> Path:
    touch(root, "dataset.json", json.dumps(DFDCP).encode())
    for rel in DFDCP:
        touch(root, rel)
    return root


def ffpp_cfg(root: Path) -> dict:
    return {"root": str(root), "splits_dir": None, "qualities": ["raw", "c23", "c40"], "methods": list(ffpp.METHODS),
            "original_source": "youtube", "on_missing": "error"}


MAKERS = {"ffpp": lambda root: make_ffpp_tree(root, SMALL_PAIRS), "dfd": make_dfd, "celebdf": make_celebdf,
          "dfdc": make_dfdc, "dfdc_preview": make_dfdc_preview}


def cfg_of(kind: str, root: Path, **extra) -> dict:
    return {**(ffpp_cfg(root) if kind == "ffpp" else {"root": str(root), "on_missing": "error"}), **extra}


@pytest.fixture(params=list(MAKERS))
def dataset(request, tmp_path):
    kind = request.param
    root = MAKERS[kind](tmp_path / kind)
    return kind, root, cfg_of(kind, root)


# -- what every reader promises -------------------------------------------------------


def test_registry_names_every_reader():
    assert set(READERS) == {"ffpp", "dfd", "celebdf", "dfdc", "dfdc_preview", "wilddeepfake"}  # wilddeepfake: tests/test_wilddeepfake.py
    for module in READERS.values():
        assert callable(module.build_index) and callable(module.planned_counts) and callable(module.label_files)


def test_index_columns_ids_and_planned_counts_agree(dataset):
    kind, root, cfg = dataset
    module = READERS[kind]
    index, missing = module.build_index(cfg)
    assert list(index.columns) == list(common.COLUMNS)
    assert missing.empty and index["exists"].all()
    assert set(index["label"]) == {0, 1}
    assert (index["label"] == (index["manipulation"] != "original")).all()
    for quality, rows in index.groupby("quality"):
        assert rows["video_id"].is_unique
        counts = module.planned_counts(cfg)
        assert set(counts) == set(common.SPLITS)
        assert counts == {s: int((rows["split"] == s).sum()) for s in common.SPLITS}, (kind, quality)
    if kind != "ffpp":
        assert index["video_id"].str.startswith(f"{kind}/").all()
    assert all(Path(p).is_relative_to(root) for p in index["path"])
    for path in module.label_files(cfg):
        assert Path(path).is_file(), path


def test_ids_never_collide_across_datasets(tmp_path):
    ids = []
    for kind, make in MAKERS.items():
        index, _ = READERS[kind].build_index(cfg_of(kind, make(tmp_path / kind)))
        ids += index.drop_duplicates("video_id")["video_id"].tolist()
    assert len(ids) == len(set(ids))


def test_dfd_videos_labels_and_split(tmp_path):
    root = make_dfd(tmp_path / "ff")
    index, missing = dfd.build_index({"root": str(root)})
    assert missing.empty and len(index) == (2 + 3) * 3
    raw = index[index.quality == "raw"].set_index("video_id")
    assert sorted(raw.index) == sorted([f"dfd/original/{n}" for n in DFD_REALS] + [f"dfd/DeepFakeDetection/{n}" for n in DFD_FAKES])
    assert (raw.loc[[f"dfd/original/{n}" for n in DFD_REALS], "label"] == 0).all()
    fake = raw.loc["dfd/DeepFakeDetection/01_02__exit_phone_room__YVGY8LOK"]
    assert (fake.label, fake.manipulation, fake["name"]) == (1, "DeepFakeDetection", "01_02__exit_phone_room__YVGY8LOK")
    assert fake.path == str(root / "manipulated_sequences/DeepFakeDetection/raw/videos/01_02__exit_phone_room__YVGY8LOK.mp4")
    assert set(index.split) == {"test"}  # no official splits: all in the configured one
    assert dfd.planned_counts({"root": str(root), "split": "val"}) == {"train": 0, "val": 5, "test": 0}
    only = dfd.build_index({"root": str(root), "qualities": ["c23"]})[0]
    assert set(only.quality) == {"c23"} and len(only) == 5


def test_dfd_video_absent_at_one_quality_is_missing_there(tmp_path):
    root = make_dfd(tmp_path / "ff")
    (root / f"original_sequences/actors/c40/videos/{DFD_REALS[0]}.mp4").unlink()
    index, missing = dfd.build_index({"root": str(root)})
    assert missing[["video_id", "quality"]].values.tolist() == [[f"dfd/original/{DFD_REALS[0]}", "c40"]]


def test_dfd_without_videos_is_an_error(tmp_path):
    root = make_ffpp_tree(tmp_path / "ff", SMALL_PAIRS)
    with pytest.raises(InputError, match="no DFD videos found"):
        dfd.build_index({"root": str(root)})
    with pytest.raises(InputError, match="not one of"):
        dfd.build_index({"root": str(root), "split": "testing"})


@pytest.mark.parametrize("youtube", ["YouTube-real", "Youtube-real"])
def test_celebdf_first_column_1_is_real_and_listed_videos_are_test(tmp_path, youtube):
    root = make_celebdf(tmp_path / "cdf", youtube)
    index, missing = celebdf.build_index({"root": str(root)})
    assert missing.empty and set(index.quality) == {"native"}
    rows = index.set_index("video_id")
    # "1 Celeb-real/..." in the list: real, label 0; "0 Celeb-synthesis/...": fake, label 1
    assert rows.loc["celebdf/Celeb-real/id0_0000", ["label", "split", "manipulation"]].tolist() == [0, "test", "original"]
    assert rows.loc["celebdf/YouTube-real/00000", ["label", "split"]].tolist() == [0, "test"]
    assert rows.loc["celebdf/YouTube-real/00000", "path"] == str(root / youtube / "00000.mp4")
    assert rows.loc["celebdf/Celeb-synthesis/id0_id1_0000", ["label", "split", "manipulation"]].tolist() == [1, "test", "Celeb-synthesis"]
    # unlisted videos are train, labelled by folder
    assert rows.loc["celebdf/Celeb-real/id1_0000", ["label", "split"]].tolist() == [0, "train"]
    assert rows.loc["celebdf/Celeb-synthesis/id1_id0_0001", ["label", "split"]].tolist() == [1, "train"]
    test = index[index.split == "test"]
    assert sorted(test.label) == [0, 0, 1, 1]
    assert celebdf.planned_counts({"root": str(root)}) == {"train": 5, "val": 0, "test": 4}
    assert celebdf.planned_counts({"root": str(root), "splits": ["test"]}) == {"train": 0, "val": 0, "test": 4}


def test_celebdf_inverted_list_is_caught(tmp_path):
    root = make_celebdf(tmp_path / "cdf")
    inverted = "".join(f"{1 - int(line[0])}{line[1:]}\n" for line in CELEB_TEST.splitlines())
    (root / "List_of_testing_videos.txt").write_text(inverted)
    with pytest.raises(InputError, match=r"line 1: first column 0 says fake but Celeb-real/id0_0000.mp4 is a real video"):
        celebdf.build_index({"root": str(root)})


def test_celebdf_both_youtube_spellings_is_an_error(tmp_path):
    root = make_celebdf(tmp_path / "cdf")
    touch(root, "Youtube-real/00000.mp4")
    with pytest.raises(InputError, match="both YouTube-real and Youtube-real"):
        celebdf.build_index({"root": str(root)})


def test_dfdc_parts_and_public_test_set(tmp_path):
    root = make_dfdc(tmp_path / "dfdc")
    index, missing = dfdc.build_index({"root": str(root)})
    assert missing.empty and len(index) == 5 + 3
    rows = index.set_index("video_id")
    assert rows.loc["dfdc/dfdc_train_part_0/aaqaifqrwn", ["label", "manipulation", "split"]].tolist() == [0, "original", "train"]
    assert rows.loc["dfdc/dfdc_train_part_1/aaqaifqrwn", ["label", "manipulation"]].tolist() == [1, "DFDC"]  # same name, other part
    assert rows.loc["dfdc/test/aabqyygbaa", ["label", "split"]].tolist() == [1, "test"]  # labels.csv: 1 = fake
    assert rows.loc["dfdc/test/aacrnhsaru", ["label", "manipulation"]].tolist() == [0, "original"]
    assert rows.loc["dfdc/test/aabqyygbaa", "path"] == str(root / "test/videos/aabqyygbaa.mp4")
    assert dfdc.planned_counts({"root": str(root), "parts": [1]}) == {"train": 2, "val": 0, "test": 3}
    assert dfdc.planned_counts({"root": str(root), "test_set": None}) == {"train": 5, "val": 0, "test": 0}
    assert dfdc.planned_counts({"root": str(root), "parts": []}) == {"train": 0, "val": 0, "test": 3}
    assert [p.relative_to(root).as_posix() for p in dfdc.label_files({"root": str(root)})] == [
        "dfdc_train_part_0/metadata.json", "dfdc_train_part_1/metadata.json", "test/labels.csv"]


def test_dfdc_metadata_split_field_is_followed(tmp_path):
    root = make_dfdc(tmp_path / "dfdc")
    meta = {**DFDC_PARTS[1], "aassnaulhq.mp4": {"label": "REAL", "original": None, "split": "val"}}
    (root / "dfdc_train_part_1/metadata.json").write_text(json.dumps(meta))
    index, _ = dfdc.build_index({"root": str(root)})
    assert index.set_index("video_id").loc["dfdc/dfdc_train_part_1/aassnaulhq", "split"] == "val"
    assert dfdc.planned_counts({"root": str(root)}) == {"train": 4, "val": 1, "test": 3}
    assert dfdc.planned_counts({"root": str(root), "splits": ["val", "test"]}) == {"train": 0, "val": 1, "test": 3}


def test_dfdc_test_videos_next_to_labels_csv(tmp_path):
    root = make_dfdc(tmp_path / "dfdc", videos_folder=".")
    index, missing = dfdc.build_index({"root": str(root), "parts": []})
    assert missing.empty and index.set_index("video_id").loc["dfdc/test/aabqyygbaa", "path"] == str(root / "test/aabqyygbaa.mp4")


def test_dfdc_preview_label_and_set_fields(tmp_path):
    root = make_dfdc_preview(tmp_path / "dfdcp")
    index, missing = dfdc_preview.build_index({"root": str(root)})
    assert missing.empty and len(index) == 5
    rows = index.set_index("video_id")
    real = rows.loc["dfdc_preview/original_videos/643049/643049_A_001"]
    assert (real.label, real.manipulation, real.split, real["name"]) == (0, "original", "train", "643049_A_001")
    fake = rows.loc["dfdc_preview/method_B/643049/643049_B/1255229_643049_B_002"]
    assert (fake.label, fake.manipulation, fake.split) == (1, "method_B", "test")
    assert dfdc_preview.planned_counts({"root": str(root)}) == {"train": 2, "val": 0, "test": 3}
    assert dfdc_preview.planned_counts({"root": str(root), "splits": ["test"]}) == {"train": 0, "val": 0, "test": 3}


# -- missing videos -----------------------------------------------------------------

# one listed video deleted, and one whole folder, per dataset: (kind, file, folder, folder's report line)
MISSING = {
    "dfd": ("manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4",
            "original_sequences/actors/raw", "original/raw: 2/2 missing (folder missing"),
    "celebdf": ("Celeb-synthesis/id0_id1_0000.mp4", "YouTube-real", "original/native: 1/1 missing (folder missing"),
    "dfdc": ("dfdc_train_part_0/abarnvbtwb.mp4", "test/videos", "/native: 2/2 missing (folder missing"),
    "dfdc_preview": ("method_B/643049/643049_B/1255229_643049_B_002.mp4", "original_videos", "original/native: 2/2 missing (folder missing"),
}


@pytest.mark.parametrize("kind", list(MISSING))
def test_missing_videos_are_reported_per_folder_error_or_warn(tmp_path, kind):
    import shutil

    root = MAKERS[kind](tmp_path / kind)
    file, folder, folder_line = MISSING[kind]
    (root / file).unlink()
    shutil.rmtree(root / folder)
    index, missing = READERS[kind].build_index(cfg_of(kind, root))
    assert len(missing) >= 2 and not missing["exists"].any()
    assert set(missing["path"]) == set(index.loc[~index["exists"], "path"])
    assert str(root / file) in set(missing["path"])
    report = common.missing_report(index, missing, root)
    assert report.startswith(f"{root}: {len(missing)} of {len(index)} listed videos are missing")
    assert folder_line in report and str(root / folder) in report
    name = Path(file).stem
    assert f"e.g. {name}" in report  # the single missing file is named
    with pytest.raises(InputError, match=f"{len(missing)} of {len(index)} listed videos are missing"):
        common.check_missing(index, missing, cfg_of(kind, root))
    logged = []
    assert common.check_missing(index, missing, cfg_of(kind, root, on_missing="warn"), log=logged.append) == report
    assert logged == ["WARNING: " + report]
    # planned counts still come from the label files: the missing videos are planned
    assert sum(READERS[kind].planned_counts(cfg_of(kind, root)).values()) == index["video_id"].nunique()


def test_ffpp_report_is_unchanged_by_the_shared_one(tmp_path):
    root = make_ffpp_tree(tmp_path / "ff", SMALL_PAIRS, skip={"NeuralTextures/c40", "original_sequences/youtube/raw/videos/000.mp4"})
    index, missing = ffpp.build_index(ffpp_cfg(root))
    report = ffpp.missing_report(index, missing, root)
    assert report.splitlines() == [
        f"{root}: 9 of 120 listed videos are missing",
        f"  NeuralTextures/c40: 8/8 missing (folder missing: {root}/manipulated_sequences/NeuralTextures/c40/videos)",
        f"  original/raw: 1/8 missing (e.g. 000: {root}/original_sequences/youtube/raw/videos)",
    ]
    assert ffpp.planned_counts(ffpp_cfg(root)) == {"train": 20, "val": 10, "test": 10}


def test_videos_no_label_file_lists_are_counted_per_folder(tmp_path):
    root = make_ffpp_tree(tmp_path / "ff", SMALL_PAIRS)
    extra = root / "original_sequences/youtube/raw/videos"
    for name in ("998.mp4", "999.mp4"):
        (extra / name).write_bytes(b"")
    (extra / "notes.txt").write_text("not a video")
    index, _ = ffpp.build_index(ffpp_cfg(root))
    assert common.unlisted_report(index) == [f"{extra}: 2 video(s) listed by no label file, not indexed (e.g. 998.mp4, 999.mp4)"]
    assert any_present("ffpp", ffpp_cfg(root), ("test",), "c23")
    assert not any_present("ffpp", ffpp_cfg(make_ffpp_tree(tmp_path / "empty", SMALL_PAIRS, qualities=())), ("test",), "c23")


def test_missing_root_is_a_one_line_error(tmp_path):
    for kind in READERS:
        with pytest.raises(InputError, match="dataset directory does not exist") as err:
            READERS[kind].build_index(cfg_of(kind, tmp_path / "nowhere"))
        assert "\n" not in str(err.value) and str(tmp_path / "nowhere") in str(err.value)


# -- malformed label files ----------------------------------------------------------

MALFORMED = [
    ("celebdf", "List_of_testing_videos.txt", "1 Celeb-real/id0_0000.mp4 extra\n", "line 1: expected '<1|0>"),
    ("celebdf", "List_of_testing_videos.txt", "real Celeb-real/id0_0000.mp4\n", "line 1: expected '<1|0>"),
    ("celebdf", "List_of_testing_videos.txt", "1 Celeb-real/id0_0000.mp4\n\n1 Celeb-real/id0_0000.mp4\n", "line 3: .* listed twice \\(first on line 1\\)"),
    ("celebdf", "List_of_testing_videos.txt", "1 Elsewhere/id0_0000.mp4\n", "is not a video of"),
    ("celebdf", "List_of_testing_videos.txt", "\n", "the test list is empty"),
    ("dfdc", "dfdc_train_part_0/metadata.json", "{", "not valid JSON"),
    ("dfdc", "dfdc_train_part_0/metadata.json", "[]", "expected a JSON object"),
    ("dfdc", "dfdc_train_part_0/metadata.json", '{"a.mp4": {"label": "real"}}', "a.mp4: expected"),
    ("dfdc", "dfdc_train_part_0/metadata.json", '{"a.mp4": {"label": "REAL"}, "a.mp4": {"label": "FAKE"}}', "'a.mp4' is listed twice"),
    ("dfdc", "dfdc_train_part_0/metadata.json", '{"a.mp4": {"label": "REAL", "split": "holdout"}}', "split 'holdout'"),
    ("dfdc", "dfdc_train_part_0/metadata.json", '{"a.avi": {"label": "REAL"}}', "is not a video file name"),
    ("dfdc", "test/labels.csv", "name,fake\na.mp4,1\n", "expected a header with columns filename,label"),
    ("dfdc", "test/labels.csv", "filename,label\na.mp4,FAKE\n", "line 2: label 'FAKE' is not 0"),
    ("dfdc", "test/labels.csv", "filename,label\na.mp4,1\nb.mp4,0\na.mp4,1\n", "line 4: a.mp4 is listed twice \\(first on line 2\\)"),
    ("dfdc", "test/labels.csv", "filename,label\na.mp4\n", "line 2: expected 2 columns"),
    ("dfdc", "test/labels.csv", "", "expected a header"),
    ("dfdc_preview", "dataset.json", '{"x.mp4": {"label": "fake", "split": "test"}}', "x.mp4: expected"),
    ("dfdc_preview", "dataset.json", '{"x.mp4": {"label": "FAKE", "set": "test"}}', "x.mp4: expected"),
    ("dfdc_preview", "dataset.json", '{"x.mp4": {"label": "fake", "set": "test"}, "x.mp4": {"label": "real", "set": "test"}}', "listed twice"),
    ("dfdc_preview", "dataset.json", '{"../x.mp4": {"label": "fake", "set": "test"}}', "not a video path relative"),
    ("dfdc_preview", "dataset.json", "{}", "lists no videos"),
]


@pytest.mark.parametrize(("kind", "rel", "content", "message"), MALFORMED)
def test_malformed_label_file_is_a_one_line_error_naming_it(tmp_path, kind, rel, content, message):
    root = MAKERS[kind](tmp_path / kind)
    (root / rel).write_text(content)
    for call in (READERS[kind].build_index, READERS[kind].planned_counts):
        with pytest.raises(InputError) as err:
            call(cfg_of(kind, root))
        text = str(err.value)
        assert "\n" not in text and text.startswith(str(root / rel) + ":"), text
        assert re.search(message, text), text


@pytest.mark.parametrize(("kind", "rel"), [("celebdf", "List_of_testing_videos.txt"), ("dfdc", "test/labels.csv"),
                                           ("dfdc", "dfdc_train_part_1/metadata.json"), ("dfdc_preview", "dataset.json")])
def test_absent_label_file_is_named(tmp_path, kind, rel):
    root = MAKERS[kind](tmp_path / kind)
    (root / rel).unlink()
    with pytest.raises(InputError, match="does not exist") as err:
        READERS[kind].build_index(cfg_of(kind, root))
    assert str(err.value).startswith(str(root / rel)) and "\n" not in str(err.value)


def test_bad_reader_settings_name_the_key(tmp_path):
    root = make_dfdc(tmp_path / "dfdc")
    with pytest.raises(InputError, match="'parts'"):
        dfdc.build_index({"root": str(root), "parts": "some"})
    with pytest.raises(InputError, match="'splits'"):
        dfdc.build_index({"root": str(root), "splits": ["testing"]})
    with pytest.raises(InputError, match="no DFDC videos"):
        dfdc.build_index({"root": str(tmp_path), "test_set": None})


# -- the face stage on what these datasets hold --------------------------------------

FACES = dict(detector="dlib_hog", upsample=0, detect_max_side=640, track=True, track_face_px=160, fallback_upsample=1,
             crop_scale=1.3, crop_size=64, frames={"train": 6, "val": 6, "test": 6}, min_faces=1, threads=1, shard_size=4)


def vfr_video_with_audio(path: Path, exe: str) -> Path:
    """A face video whose frames come at irregular times (one in five dropped,
    the rest jittered), muxed after an AAC audio track (stream 0 is audio)."""
    import ffmpeg as graph
    from PIL import Image

    still = path.with_suffix(".png")
    Image.fromarray(grace_hopper()).resize((240, 300)).save(still)
    video = (graph.input(str(still), loop=1, framerate=25, t=2).video
             .filter("pad", 320, 320, 40, 10)
             .filter("settb", "1/1000")
             .filter("setpts", "N/25/TB+0.013*sin(N)/TB")
             .filter("select", "not(eq(mod(n,5),3))"))
    audio = graph.input("sine=frequency=440:duration=2", f="lavfi").audio
    out = graph.output(audio, video, str(path), **{"c:v": "libx264", "c:a": "aac", "fps_mode": "vfr", "enc_time_base:v": "1:1000", "pix_fmt": "yuv420p"})
    subprocess.run(out.overwrite_output().global_args("-hide_banner", "-nostdin", "-loglevel", "error").compile(cmd=exe), check=True)
    return path


def packet_times(path: Path, exe: str) -> np.ndarray:
    """Presentation times (in stream time base) of the first video stream's packets."""
    import ffmpeg as graph

    cmd = graph.input(str(path)).output("-", map="0:v:0", c="copy", f="framecrc").global_args("-hide_banner", "-loglevel", "error").compile(cmd=exe)
    lines = [ln for ln in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines() if ln and not ln.startswith("#")]
    return np.sort([int(ln.split(",")[2]) for ln in lines])


def test_faces_of_a_variable_frame_rate_video_with_an_audio_track(tmp_path):
    from dfrobust.core.tools import find_ffmpeg
    from dfrobust.media import ffmpeg
    from dfrobust.stages.faces import extract_shard

    exe = find_ffmpeg()
    path = vfr_video_with_audio(tmp_path / "vfr.mp4", exe)
    streams = subprocess.run([exe, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    assert re.search(r"Stream #0:0.*Audio: aac", streams) and re.search(r"Stream #0:1.*Video: h264", streams)
    steps = np.diff(packet_times(path, exe))
    assert len(set(steps.tolist())) > 2 and steps.max() > 1.5 * steps.min()  # really variable
    info = ffmpeg.probe(path, exe)
    assert (info.width, info.height, info.n_frames) == (320, 320, 40)
    every = ffmpeg.read_frames(path, exe=exe)
    assert len(every) == 40  # decoded frames = packets: none duplicated or dropped to a constant rate
    picked = ffmpeg.even_sample(40, 6)
    assert np.array_equal(np.stack(list(ffmpeg.iter_frames(path, picked, exe=exe))), every[picked])
    records, rows = extract_shard([dict(video_id="celebdf/YouTube-real/vfr", manipulation="original", label=0, path=str(path))],
                                  "test", FACES, exe, progress=False)
    assert rows[0]["status"] == "ok" and rows[0]["n_found"] == 6, rows
    assert records[0].frame_indices.tolist() == picked.tolist() and records[0].crops.shape == (6, 64, 64, 3)


def test_faces_of_a_video_stored_sideways_with_a_rotation_matrix(tmp_path):
    """Phone videos shot upright are often stored sideways with a display
    rotation; ffmpeg's decoder turns them upright, so the probed size must be
    the displayed one (the coded size garbled every frame before)."""
    import ffmpeg as graph

    from conftest import moving_face_frames
    from dfrobust.core.tools import find_ffmpeg
    from dfrobust.media import ffmpeg
    from dfrobust.stages.faces import extract_shard

    exe = find_ffmpeg()
    upright = moving_face_frames(12, size=(240, 320))  # portrait, 240 wide
    ffmpeg.write_video(tmp_path / "upright.mp4", upright, fps=25, crf=0, preset="veryfast")
    ffmpeg.write_video(tmp_path / "stored.mp4", [np.ascontiguousarray(np.rot90(f, -1)) for f in upright], fps=25, crf=0,
                       preset="veryfast")
    rotated = tmp_path / "rotated.mp4"
    remux = graph.input(str(tmp_path / "stored.mp4"), display_rotation=90).output(str(rotated), c="copy")
    subprocess.run(remux.global_args("-hide_banner", "-nostdin", "-loglevel", "error").compile(cmd=exe), check=True)
    assert "rotation of" in subprocess.run([exe, "-hide_banner", "-i", str(rotated)], capture_output=True, text=True).stderr
    info = ffmpeg.probe(rotated, exe)
    assert (info.width, info.height, info.n_frames) == (240, 320, 12)
    got, want = (ffmpeg.read_frames(p, [3, 7], exe=exe).astype(int) for p in (rotated, tmp_path / "upright.mp4"))
    assert np.abs(got - want).mean() < 2  # upright (only yuv420p's chroma sites differ)
    records, rows = extract_shard([dict(video_id="dfdc/x/rotated", manipulation="original", label=0, path=str(rotated))],
                                  "test", FACES, exe, progress=False)
    assert rows[0]["status"] == "ok" and rows[0]["n_found"] == 6 and (rows[0]["width"], rows[0]["height"]) == (240, 320), rows


@pytest.mark.skipif(not (REALCLIPS / "dfdc_fake_brtujopkby.mp4").is_file(),
                    reason=f"real clips not available ({REALCLIPS} absent: a fresh clone has none)")
def test_faces_of_a_real_portrait_dfdc_clip_with_audio():
    from dfrobust.core.tools import find_ffmpeg
    from dfrobust.stages.faces import extract_shard

    path = REALCLIPS / "dfdc_fake_brtujopkby.mp4"
    records, rows = extract_shard([dict(video_id="dfdc/dfdc_train_part_0/brtujopkby", manipulation="DFDC", label=1, path=str(path))],
                                  "test", FACES, find_ffmpeg(), progress=False)
    row = rows[0]
    assert (row["status"], row["width"], row["height"], row["n_frames"]) == ("ok", 1080, 1920, 300), row
    assert row["n_found"] >= 5, row
    faces = records[0]
    # the face is in the upper middle of the portrait frame, and every crop is square and inside it
    centre = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
    assert ((centre[:, 0] > 300) & (centre[:, 0] < 800) & (centre[:, 1] > 300) & (centre[:, 1] < 1200)).all(), faces.boxes
    side = faces.crop_boxes[:, 2:] - faces.crop_boxes[:, :2]
    assert (side[:, 0] == side[:, 1]).all() and (faces.crop_boxes[:, 2] <= 1080).all() and (faces.crop_boxes[:, 3] <= 1920).all()


# -- the Celeb-DF layout demo --------------------------------------------------------

CDF_TINY = {"celebrities": 3, "videos_per_celebrity": 1, "youtube_videos": 2, "fakes_per_video": 1,
            "test": {"real": 3, "fake": 2}, "n_frames": 12, "workers": 2,
            "crf": 0, "face_size": [0.4, 0.45]}  # lossless and room around the face: edits can be checked exactly


@pytest.fixture(scope="module")
def cdf_demo(tmp_path_factory):
    from dfrobust.demo.celebdf_layout import build_demo_celebdf

    root = tmp_path_factory.mktemp("cdf_demo")
    return root, build_demo_celebdf(root, CDF_TINY, seed=3, progress=False)


def test_celebdf_demo_layout_and_test_list(cdf_demo):
    root, manifest = cdf_demo
    videos = {p.relative_to(root).as_posix() for p in root.rglob("*.mp4")}
    assert videos == {"Celeb-real/id0_0000.mp4", "Celeb-real/id1_0000.mp4", "Celeb-real/id2_0000.mp4",
                      "YouTube-real/00000.mp4", "YouTube-real/00001.mp4"} | {
        f"Celeb-synthesis/id{t}_id{manifest['videos'][f'Celeb-synthesis/id{t}_id{d}_0000.mp4']['donor']}_0000.mp4"
        for t in range(3) for d in range(3) if f"Celeb-synthesis/id{t}_id{d}_0000.mp4" in manifest["videos"]}
    assert sum(v.startswith("Celeb-synthesis/") for v in videos) == 3
    for rel, info in manifest["videos"].items():
        if info["label"] == 1:
            target, donor = re.match(r"Celeb-synthesis/id(\d+)_id(\d+)_(\d{4})\.mp4", rel).group(1, 2)
            assert target != donor and info["target"] == f"Celeb-real/id{target}_{rel[-8:-4]}.mp4"
    lines = (root / "List_of_testing_videos.txt").read_text().splitlines()
    assert lines == manifest["test_list"]
    assert sum(ln.startswith("1 ") for ln in lines) == 3 and sum(ln.startswith("0 ") for ln in lines) == 2
    # Celeb-DF's convention: 1 = real (Celeb-real, YouTube-real), 0 = fake (Celeb-synthesis)
    assert all(ln.split()[1].startswith(("Celeb-real/", "YouTube-real/")) for ln in lines if ln.startswith("1 "))
    assert all(ln.split()[1].startswith("Celeb-synthesis/") for ln in lines if ln.startswith("0 "))
    # the reader reads it: listed = test with our labels, the others train, nothing missing
    index, missing = celebdf.build_index({"root": str(root)})
    assert missing.empty and len(index) == len(videos)
    test = index[index.split == "test"]
    assert sorted(test.label) == [0, 0, 0, 1, 1]
    assert (index.label == index.manipulation.eq("Celeb-synthesis")).all()
    assert celebdf.planned_counts({"root": str(root)}) == {"train": 3, "val": 0, "test": 5}


def test_celebdf_demo_manifest_lists_every_file_and_is_written_last(cdf_demo):
    from dfrobust.core.io import sha256_file
    from dfrobust.demo import celebdf_layout as demo_celebdf

    root, manifest = cdf_demo
    on_disk = json.loads((root / demo_celebdf.MANIFEST).read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["seed"] == 3 and on_disk["config"] == demo_celebdf.resolve_config(CDF_TINY)
    listed = {f["path"]: f for f in on_disk["files"]}
    assert set(listed) == {p.relative_to(root).as_posix() for p in root.rglob("*.mp4")} | {"List_of_testing_videos.txt"}
    for rel, entry in listed.items():
        assert sha256_file(root / rel) == entry["sha256"], rel
    last = (root / demo_celebdf.MANIFEST).stat().st_mtime_ns
    assert all((root / rel).stat().st_mtime_ns <= last for rel in listed)
    assert set(on_disk["identities"]) == {"id0", "id1", "id2", "YouTube-real/00000", "YouTube-real/00001"}


def test_celebdf_demo_videos_decode_and_faces_are_found_by_dlib_hog(cdf_demo):
    from dfrobust.media.detect import DlibHogDetector
    from dfrobust.media.ffmpeg import probe, read_frames

    root, manifest = cdf_demo
    detector = DlibHogDetector(upsample=0)
    for path in sorted(root.rglob("*.mp4")):
        info = probe(path)
        assert (info.n_frames, info.width, info.height, info.codec, info.fps) == (12, 320, 240, "h264", 30.0), path
        found = np.mean([len(detector.detect(f)[0]) > 0 for f in read_frames(path)])
        assert found >= 0.95, (path, found)


def test_celebdf_demo_fakes_change_the_face_only(cdf_demo):
    from dfrobust.media.detect import DlibHogDetector
    from dfrobust.media.ffmpeg import read_frames

    root, manifest = cdf_demo
    detector = DlibHogDetector(upsample=0)
    for rel, info in manifest["videos"].items():
        if info["label"] != 1:
            continue
        fake = read_frames(root / rel).astype(np.int16)
        real = read_frames(root / info["target"]).astype(np.int16)
        diff = np.abs(fake - real).mean(axis=3)
        for i in (0, len(fake) - 1):
            x0, y0, x1, y1 = detector.detect(real[i].astype(np.uint8))[0][0]
            w, h = x1 - x0, y1 - y0
            face = np.zeros(diff.shape[1:], bool)
            face[max(int(y0 - 0.6 * h), 0): int(y1 + 0.35 * h), max(int(x0 - 0.4 * w), 0): int(x1 + 0.4 * w)] = True
            assert np.percentile(diff[i][face], 99) > 15, (rel, i)  # another person's face
            assert (~face).sum() > 0.05 * face.size, (rel, i)  # (the faces are large: the rest is a frame's edges)
            assert diff[i][~face].mean() < 0.5, (rel, i, diff[i][~face].mean())
            assert ((diff[i] > 8) & ~face).sum() < 0.001 * face.size, (rel, i)


def test_celebdf_demo_same_seed_same_bytes_whatever_the_workers(tmp_path):
    from dfrobust.demo.celebdf_layout import build_demo_celebdf, plan, resolve_config

    small = {"celebrities": 2, "videos_per_celebrity": 1, "youtube_videos": 1, "test": {"real": 1, "fake": 1}, "n_frames": 6}
    one = build_demo_celebdf(tmp_path / "a", {**small, "workers": 2}, seed=7, progress=False)
    two = build_demo_celebdf(tmp_path / "b", {**small, "workers": 1}, seed=7, progress=False)
    assert one["files"] == two["files"] and len(one["files"]) == 2 + 2 + 1 + 1  # reals, fakes, YouTube, list
    for entry in one["files"]:
        assert (tmp_path / "a" / entry["path"]).read_bytes() == (tmp_path / "b" / entry["path"]).read_bytes()
    cfg = resolve_config({**CDF_TINY, "celebrities": 6, "videos_per_celebrity": 2})
    assert plan(cfg, 7) == plan(cfg, 7) and plan(cfg, 7)["test_list"] != plan(cfg, 8)["test_list"]


def test_kalman_smoothing_removes_jitter_and_follows_motion():
    from dfrobust.demo.celebdf_layout import kalman_smooth

    rng = np.random.default_rng(0)
    t = np.arange(200, dtype=np.float64)
    truth = np.stack([np.stack([3 * np.sin(t / 15), 0.2 * t], 1)] * 68, 1)  # (200, 68, 2)
    measured = truth + rng.normal(0, 1.0, truth.shape)
    smooth = kalman_smooth(measured, 1.0, 0.05)
    assert smooth.shape == truth.shape
    error_in, error_out = np.abs(measured - truth)[20:].mean(), np.abs(smooth - truth)[20:].mean()
    assert error_out < 0.6 * error_in
    assert np.abs(np.diff(smooth, 2, axis=0)).mean() < 0.3 * np.abs(np.diff(measured, 2, axis=0)).mean()  # no flicker


def test_celebdf_demo_refuses_a_dataset_it_did_not_make(tmp_path):
    from dfrobust.demo.celebdf_layout import build_demo_celebdf

    make_celebdf(tmp_path)
    with pytest.raises(InputError, match="did not make"):
        build_demo_celebdf(tmp_path, CDF_TINY, seed=1, progress=False)
    assert (tmp_path / "List_of_testing_videos.txt").read_text() == CELEB_TEST


@pytest.mark.parametrize(("cfg", "message"), [
    ({"colour": 1}, "unknown key"),
    ({"celebrities": 1}, "demo_celebdf.celebrities"),
    ({"fakes_per_video": 4}, "demo_celebdf.fakes_per_video"),
    ({"test": {"fake": 9}}, "demo_celebdf.test.fake"),
    ({"height": 120}, "demo_celebdf.face_size"),
    ({"width": 321}, "demo_celebdf.width"),
])
def test_celebdf_demo_bad_config_names_the_key(cfg, message):
    from dfrobust.demo.celebdf_layout import resolve_config

    with pytest.raises(InputError, match=message):
        resolve_config(cfg)


def test_celebdf_demo_schema_is_the_one_source_of_its_defaults():
    import jsonschema

    from dfrobust.core.config import load_schemas, resolve_ref
    from dfrobust.demo import celebdf_layout as demo_celebdf

    schema = load_schemas()[1]["demo_celebdf"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    defaults = demo_celebdf.resolve_config({})
    assert set(schema["properties"]) | set(demo_celebdf.LOOK) == set(defaults) == set(demo_celebdf.DEFAULTS)
    for key, prop in schema["properties"].items():
        prop = resolve_ref(prop, schema)
        assert prop["description"] and "default" in prop and prop["default"] == defaults[key], key
    assert demo_celebdf.resolve_config({}, look={"noise": [0, 0]})["noise"] == [0, 0]  # the look is the demo block's
    # the default size is the brief's: 6 real + 6 fake test videos, 48 frames of 320x240
    assert (defaults["test"], defaults["n_frames"], defaults["width"], defaults["height"]) == ({"real": 6, "fake": 6}, 48, 320, 240)
