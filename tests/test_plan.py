"""The run's plan (dfrobust.plan): model names, training sets, test sets, the
jobs tables share, and the errors that name the config key."""

from __future__ import annotations

import pytest

from dfrobust.config import validate_config
from dfrobust.core.errors import InputError
from dfrobust.plan import build_plan

OPERATIONS = ["clean", "c40", "hflip"]


def counts(kind, cfg):
    return {"train": 40, "val": 20, "test": 30}


def plan_of(**config):
    return build_plan(validate_config(config), OPERATIONS, counts)


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
    models = len(plan.table1_models)
    # Table I: every model on the raw test copy under 3 operations; the table adds only the c40 hflip copy
    assert len(plan.score_keys()) == models * 3 + models
    assert len(plan.metric_keys()) == models * 3 + models * 2  # + the NT subset and the c40 hflip column
    assert ("ffpp", "c40", "test") in plan.face_keys() and ("ffpp", "c23", "test") not in plan.face_keys()


def test_pretraining_models_are_trained_but_are_no_tables_row():
    caps = {"pretrained": "results/models/vgg19bn_pool3/raw/weights.pt"}
    plan = plan_of(models=[{"method": "capsule", "quality": "raw"}], detectors={"capsule": caps},
                   pretraining=[{"method": "vgg19bn_pool3", "quality": "raw"}],
                   tables={"t": {"columns": ["ffpp_raw"], "metrics": ["video_auc"]}})
    assert list(plan.models) == ["capsule/raw", "vgg19bn_pool3/raw"]
    assert [m.id for m in plan.table1_models] == ["capsule/raw"] and [m.id for m in plan.tables["t"].rows] == ["capsule/raw"]
    assert {key[0] for key in plan.score_keys()} == {"capsule/raw"}


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
