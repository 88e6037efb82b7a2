import json

import pandas as pd
import pytest

from dfrobust.datasets import ffpp
from dfrobust.stages.dataset import write_index
from dfrobust.core.errors import InputError

from conftest import SMALL_PAIRS, make_ffpp_tree


def cfg(root, **kw):
    return {"kind": "ffpp", "root": str(root), "splits_dir": None, "qualities": ["raw", "c23", "c40"],
            "methods": list(ffpp.METHODS), "original_source": "youtube", "on_missing": "error", **kw}


def test_pair_semantics_originals_and_both_fakes_of_every_method():
    videos = ffpp.split_videos([("000", "003")], ffpp.METHODS, "test")
    ids = [v.video_id for v in videos]
    assert ids[:2] == ["original/000", "original/003"]
    for method in ffpp.METHODS:
        assert f"{method}/000_003" in ids and f"{method}/003_000" in ids
    assert len(ids) == len(set(ids)) == 2 + 2 * 4
    assert {v.label for v in videos if v.manipulation == "original"} == {0}
    assert {v.label for v in videos if v.manipulation != "original"} == {1}


def test_paths_follow_the_ffpp_layout():
    real, fake = ffpp.Video("original/000", "original", 0, "000", "test"), ffpp.Video("FaceSwap/000_003", "FaceSwap", 1, "000_003", "test")
    assert real.relpath("c23", "youtube") == "original_sequences/youtube/c23/videos/000.mp4"
    assert fake.relpath("c40", "youtube") == "manipulated_sequences/FaceSwap/c40/videos/000_003.mp4"


def test_index_of_a_complete_tree(ffpp_tree):
    index, missing = ffpp.build_index(cfg(ffpp_tree))
    assert missing.empty
    # 8 originals + 8 fakes x 4 methods, x 3 qualities
    assert len(index) == (8 + 8 * 4) * 3
    assert index["exists"].all()
    test = index[(index.split == "test") & (index.quality == "raw")]
    assert sorted(test[test.manipulation == "original"]["name"]) == ["006", "007"]
    # the same fake name under two methods stays two videos
    assert test["video_id"].is_unique
    assert (test["name"] == "006_007").sum() == 4


def test_missing_quality_folder_and_files_are_reported(tmp_path):
    root = make_ffpp_tree(tmp_path / "ff", SMALL_PAIRS, skip={"NeuralTextures/c40", "original_sequences/youtube/raw/videos/000.mp4"})
    index, missing = ffpp.build_index(cfg(root))
    assert len(missing) == 8 + 1
    report = ffpp.missing_report(index, missing, root)
    assert "NeuralTextures/c40: 8/8 missing (folder missing" in report
    assert "original/raw: 1/8 missing (e.g. 000" in report
    with pytest.raises(InputError, match="9 of 120 listed videos are missing"):
        write_index(cfg(root), tmp_path / "index.csv", tmp_path / "missing.csv")
    assert not (tmp_path / "index.csv").exists()


def test_on_missing_warn_records_and_goes_on(tmp_path):
    root = make_ffpp_tree(tmp_path / "ff", SMALL_PAIRS, skip={"original_sequences/youtube/raw/videos/000.mp4"})
    write_index(cfg(root, on_missing="warn"), tmp_path / "index.csv", tmp_path / "missing.csv")
    missing = pd.read_csv(tmp_path / "missing.csv", dtype={"name": str})
    assert missing["video_id"].tolist() == ["original/000"]
    index = pd.read_csv(tmp_path / "index.csv", dtype={"name": str})
    assert (~index["exists"]).sum() == 1


def test_missing_dataset_directory(tmp_path):
    with pytest.raises(InputError, match="dataset directory does not exist"):
        ffpp.build_index(cfg(tmp_path / "nowhere"))


def test_split_files_from_a_configured_path(tmp_path, ffpp_tree):
    splits = tmp_path / "splits"
    splits.mkdir()
    for split in ffpp.SPLITS:
        (splits / f"{split}.json").write_text((ffpp_tree / f"{split}.json").read_text())
        (ffpp_tree / f"{split}.json").unlink()
    with pytest.raises(InputError, match="split file does not exist"):
        ffpp.build_index(cfg(ffpp_tree))
    index, missing = ffpp.build_index(cfg(ffpp_tree, splits_dir=str(splits)))
    assert missing.empty and len(index) == 120


@pytest.mark.parametrize("content, message", [("{", "not valid JSON"), ('[["000"]]', "list of \\[a, b\\] pairs")])
def test_malformed_split_file(tmp_path, content, message):
    (tmp_path / "train.json").write_text(content)
    with pytest.raises(InputError, match=message):
        ffpp.read_split(tmp_path / "train.json")


def test_video_in_two_splits_is_an_error(tmp_path):
    for split, pairs in {"train": [["000", "001"]], "val": [["001", "002"]], "test": [["003", "004"]]}.items():
        (tmp_path / f"{split}.json").write_text(json.dumps(pairs))
    with pytest.raises(InputError, match="001 is in both"):
        ffpp.read_splits(tmp_path)


def test_official_split_sizes_give_the_paper_counts():
    pairs = [(f"{2 * i:03d}", f"{2 * i + 1:03d}") for i in range(70)]
    videos = ffpp.split_videos(pairs, ffpp.METHODS, "test")
    assert sum(v.label == 0 for v in videos) == 140 and sum(v.label == 1 for v in videos) == 560


def test_shards_partition_the_videos_and_mix_classes():
    videos = ffpp.split_videos([("000", "001"), ("002", "003")], ffpp.METHODS, "train")
    count = ffpp.n_shards(len(videos), 7)
    shards = [ffpp.shard_of(videos, k, 7) for k in range(count)]
    assert sorted(v.video_id for s in shards for v in s) == sorted(v.video_id for v in videos)
    assert all(max(len(s) for s in shards) <= 7 for s in shards)
    assert all({0, 1} <= {v.label for v in s} for s in shards)
