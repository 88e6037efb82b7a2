"""The run's plan (dfrobust.plan): model names, training sets, test sets, the
jobs tables share, and the errors that name the config key."""

from __future__ import annotations

import pytest

from dfrobust.config import validate_config
from dfrobust.core.errors import InputError
from dfrobust.plan import build_plan

from conftest import operations_of

OPERATIONS = [{"name": "clean", "category": "none"}, {"name": "c40", "category": "compression", "codec": {"crf": 40}},
              {"name": "hflip", "category": "flip", "filter": "hflip"}]


def counts(kind, cfg):
    return {"train": 40, "val": 20, "test": 30}


def plan_of(counts_of=counts, **config):
    config = validate_config({"operations": {"list": OPERATIONS}, **config})
    return build_plan(config, operations_of(config["operations"]), counts_of)


def test_model_names_and_training_sets():
    plan = plan_of(models=[
        {"method": "xception", "quality": "c23"},
        {"method": "xception", "quality": "c23", "train_on": ["NeuralTextures"]},
        {"method": "xception", "quality": ["c40", "raw", "c23"]},
        {"method": "xception", "quality": "raw", "train_on": ["FaceSwap", "Deepfakes"]},
        {"method": "capsule", "quality": "raw", "procedure": "plain"},
        {"method": "sbi", "quality": "raw", "settings": {"input_size": 64}, "name": "sbi64"},
    ])
    assert list(plan.models) == ["xception/c23", "xception/c23-NT", "xception/raw+c23+c40", "xception/raw-DF+FS",
                                 "capsule/raw", "sbi64/raw"]
    assert plan.models["xception/raw-DF+FS"].train_on == ("Deepfakes", "FaceSwap")
    assert plan.models["xception/c23"].train_on == ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
    assert plan.models["sbi64/raw"].detector_cfg(validate_config({})["detectors"])["input_size"] == 64
    assert plan.models["capsule/raw"].procedure_cfg() == {"name": "plain"}


def test_table_one_and_declared_tables_share_scores():
    plan = plan_of(
        test_sets={"ffpp_raw_NT": {"dataset": "ffpp", "quality": "raw", "manipulations": ["NeuralTextures"]},
                   "ffpp_c40": {"dataset": "ffpp", "quality": "c40"}},
        tables={"t": {"columns": ["ffpp_raw", "ffpp_raw_NT", {"test_set": "ffpp_c40", "operation": "hflip"}],
                      "metrics": ["video_auc"]}},
    )
    models = len(plan.table1.rows)
    # Table I: every model on the raw test copy under 3 operations; the table adds only the c40 hflip copy
    assert len(plan.score_keys()) == models * 3 + models
    assert len(plan.cells()) == models * 3 + models * 2  # + the NT subset and the c40 hflip column
    assert ("ffpp", "c40", "test") in plan.face_keys() and ("ffpp", "c23", "test") not in plan.face_keys()
    assert list(plan.tables) == ["table1", "t"] and plan.table_file("t") == "results/tables/t.csv"
    assert plan.table_file("table1") == "results/table1.csv"


def test_pretraining_models_are_trained_but_are_no_tables_row():
    caps = {"pretrained": "results/models/vgg19bn_pool3/raw/weights.pt"}
    plan = plan_of(models=[{"method": "capsule", "quality": "raw"}], detectors={"capsule": caps},
                   pretraining=[{"method": "vgg19bn_pool3", "quality": "raw"}],
                   tables={"t": {"columns": ["ffpp_raw"], "metrics": ["video_auc"]}})
    assert list(plan.models) == ["capsule/raw", "vgg19bn_pool3/raw"]
    assert [m.id for m in plan.table1.rows] == ["capsule/raw"] and [m.id for m in plan.tables["t"].rows] == ["capsule/raw"]
    assert {key[0] for key in plan.score_keys()} == {"capsule/raw"}


def test_a_row_label_belongs_to_its_table_not_to_the_model():
    """One model labelled differently in two tables is one model (trained once); each table's
    spec carries its own label; an unlabelled row has none (Table I: none)."""
    row = {"method": "xception", "quality": "c23", "procedure": "pim"}
    plan = plan_of(tables={"a": {"rows": [{**row, "label": "r = 0.1"}], "columns": ["ffpp_raw"], "metrics": ["video_auc"]},
                           "b": {"rows": [{**row, "label": "1:0"}, {"method": "xception", "quality": "c23"}],
                                 "columns": ["ffpp_raw"], "metrics": ["video_auc"]}})
    assert [m for m in plan.models if m.startswith("xception+pim")] == ["xception+pim/c23"]
    assert [r["label"] for r in plan.tables["a"].spec(2)["rows"]] == ["r = 0.1"]
    assert [r["label"] for r in plan.tables["b"].spec(2)["rows"]] == ["1:0", None]
    assert {r["label"] for r in plan.table1.spec(2)["rows"]} == {None}
    with pytest.raises(InputError, match=r"tables.c.rows.1.label': model xception\+pim/c23 is already a row of this "
                                         r"table, labelled 'r = 0.1'"):
        plan_of(tables={"c": {"rows": [{**row, "label": "r = 0.1"}, {**row, "label": "r = 0.2"}],
                              "columns": ["ffpp_raw"], "metrics": ["video_auc"]}})


@pytest.mark.parametrize("config, message", [
    ({"models": [{"method": "effnet", "quality": "raw"}]}, "models.0': detector 'effnet'"),
    ({"models": [{"method": "xception", "quality": "raw", "train_on": ["DeepFake"]}]}, "models.0.train_on'"),
    ({"models": [{"method": "xception", "quality": "raw", "procedure": "pimm"}]}, "unknown training procedure 'pimm'"),
    ({"models": [{"method": "xception", "quality": "raw", "settings": {"input_size": 64}}]}, "needs a `name`"),
    ({"models": [{"method": "xception", "quality": "raw", "settings": {"inputsize": 64}, "name": "x"}]},
     r"\['inputsize'\] are not settings"),
    ({"test_sets": {"cdf": {"dataset": "celebdf"}}}, "test_sets.cdf.dataset': no dataset 'celebdf'"),
    ({"tables": {"t": {"columns": ["nope"], "metrics": ["video_auc"]}}}, "tables.t.columns.0.test_set': no test set"),
    ({"tables": {"t": {"columns": [{"test_set": "ffpp_raw", "operation": "blur"}], "metrics": ["video_auc"]}}},
     "no operation 'blur'"),
    ({"models": [{"method": "xception", "quality": "raw", "settings": {"epochs": 1}, "name": "x"},
                 {"method": "xception", "quality": "raw", "settings": {"epochs": 2}, "name": "x"}]}, "differs from another"),
    ({"detectors": {"capsule": {"pretrained": "results/models/vgg19bn_pool3/raw/weights.pt"}}},
     r"detectors.capsule.pretrained' \(model capsule/raw\): results/models/vgg19bn_pool3/raw/weights.pt is not the weights.pt "
     "of a planned model; add that model to `pretraining`"),
    ({"detectors": {"capsule": {"pretrained": "results/models/capsule/raw/weights.pt"}}}, "is the model's own weights"),
])
def test_bad_plans_name_the_key(config, message):
    with pytest.raises(InputError, match=message):
        plan_of(**config)


def dfdc_counts(kind, cfg):
    """A DFDC training part: its metadata.json puts every video in train."""
    return {"train": 12, "val": 0, "test": 0} if kind == "dfdc" else counts(kind, cfg)


def test_a_test_set_reads_the_split_it_names(tmp_path):
    part = {"dfdc": {"kind": "dfdc", "root": str(tmp_path), "parts": [0], "test_set": None}}
    table = {"t": {"columns": ["dfdc_part0"], "metrics": ["video_auc"]}}
    with pytest.raises(InputError, match=r"config key 'test_sets.dfdc_part0': test set on dataset 'dfdc' \(dfdc\) reads "
                                         r"split test, where it lists no video \(per split: train 12, val 0, test 0\); "
                                         r"name the split it reads \(`split: train`, or `all`\)"):
        plan_of(dfdc_counts, datasets=part, test_sets={"dfdc_part0": {"dataset": "dfdc"}}, tables=table)
    for split, read in (("train", ("train",)), ("all", ("train",))):  # all: the splits that list videos
        plan = plan_of(dfdc_counts, datasets=part, test_sets={"dfdc_part0": {"dataset": "dfdc", "split": split}},
                       tables=table)
        assert {(d, s) for d, q, s in plan.face_keys() if d == "dfdc"} == {("dfdc", s) for s in read}
        model = plan.table1.rows[0].id
        assert plan.score_file(model, "dfdc_part0", "clean") == f"results/scores/{model}/dfdc/native/{split}/clean.csv"
        assert plan.copy_shards("dfdc", "native", split, "hflip") == [
            f"results/distorted/dfdc/native/train/hflip/shard_{k:03d}.npz" for k in range(plan.shards("dfdc", "train"))]


def test_a_training_set_without_videos_stops_the_plan():
    with pytest.raises(InputError, match=r"config key 'dataset': the models' val set on dataset 'ffpp' .* reads split val, "
                                         r"where it lists no video \(per split: train 40, val 0, test 30\)"):
        plan_of(lambda kind, cfg: {"train": 40, "val": 0, "test": 30})


def test_fetch_is_planned_from_each_models_own_settings():
    config = {"models": [{"method": "xception", "quality": "raw"},
                         {"method": "xception", "quality": "raw", "name": "x_scratch", "settings": {"pretrained": False}},
                         {"method": "sbi", "quality": "raw", "name": "sbi_convnext",
                          "settings": {"backbone": "convnext_base", "input_size": 224}}],
              "detectors": {"xception": {"pretrained": True}, "sbi": {"pretrained": True}}}
    plan = plan_of(**config)
    detectors = validate_config(config)["detectors"]
    assert plan.models["xception/raw"].fetch(detectors) == ("xception", detectors["xception"])  # one fetch for its rows
    assert plan.models["x_scratch/raw"].fetch(detectors) is None  # its own pretrained: false waits for nothing
    name, block = plan.models["sbi_convnext/raw"].fetch(detectors)  # another backbone: its own fetch
    assert name == "sbi.convnext_base" and block["backbone"] == "convnext_base" and block["input_size"] == 380


def test_a_test_set_whose_listed_videos_are_all_absent_stops_the_plan(tmp_path):
    part = {"dfdc": {"kind": "dfdc", "root": str(tmp_path), "parts": [0], "test_set": None}}
    config = validate_config({"operations": {"list": OPERATIONS}, "datasets": part,
                              "test_sets": {"dfdc_part0": {"dataset": "dfdc", "split": "train"}},
                              "tables": {"t": {"columns": ["dfdc_part0"], "metrics": ["video_auc"]}}})
    asked = []

    def present(kind, cfg, splits, quality):
        asked.append((kind, splits, quality))
        return kind != "dfdc"

    with pytest.raises(InputError, match=rf"test_sets.dfdc_part0': test set on dataset 'dfdc' \(dfdc\) reads split "
                                         rf"train: none of its 12 listed videos is on disk at quality native under {tmp_path}"):
        build_plan(config, operations_of(config["operations"]), dfdc_counts, present)
    assert ("dfdc", ("train",), "native") in asked


def test_a_test_set_may_pool_qualities():
    plan = plan_of(test_sets={"ffpp_all": {"dataset": "ffpp", "quality": ["raw", "c23", "c40"]}},
                   tables={"t": {"columns": ["ffpp_all"], "metrics": ["video_auc"]}})
    model = plan.table1.rows[0].id
    assert plan.score_files(model, "ffpp_all", "clean") == [
        f"results/scores/{model}/ffpp/{q}/test/clean.csv" for q in ("raw", "c23", "c40")]
    assert {("ffpp", q, "test") for q in ("raw", "c23", "c40")} <= plan.face_keys()
    assert plan.metrics_cell("ffpp_all", "clean")["quality"] == "raw+c23+c40"
    with pytest.raises(InputError, match="test_sets.x.quality': 'c50' is not a quality of ffpp"):
        plan_of(test_sets={"x": {"dataset": "ffpp", "quality": ["raw", "c50"]}})


def test_face_jobs_keep_masks_only_where_a_model_reads_them():
    """Manipulation masks (FFD's map supervision) cost a mask-video decode per fake: the training
    dataset's train and val faces keep them only when a planned model's detector reads them."""
    from dfrobust.workflow import prepare

    _, plan, _ = prepare({})  # the demo: no detector reads masks
    assert not plan.reads_masks and not plan.keeps_masks("ffpp", "train")
    _, plan, _ = prepare({"models": [{"method": "ffd", "quality": "raw"}]})
    assert plan.keeps_masks("ffpp", "train") and plan.keeps_masks("ffpp", "val")
    assert not plan.keeps_masks("ffpp", "test")
