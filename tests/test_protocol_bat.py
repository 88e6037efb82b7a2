"""config/protocols/bat.yaml (Wang, Guo & Zuo, "Deepfake Forensics via an Adversarial Game",
TIP 2022), overlaid on config/ffpp.yaml, dry-run against fixture trees in each dataset's
published layout: the group target builds every table, each table's rows and columns are the
paper's (transcribed below), the NT protocol trains on NeuralTextures only, and the plan holds
exactly the train, face, score, metrics and table jobs the tables need (counts with their reasons)."""

from __future__ import annotations

import pytest

from conftest import job_counts
from protocols import dry_run, layout, overlay, protocol_plan, trees  # noqa: F401 (a fixture)

# -- the paper's tables, transcribed ---------------------------------------------------------
# Row labels as the paper prints them -> this project's model names. The paper's PDF could not be
# read from the project's tools (docs/reproducing/bat.md, "Sources"): the tables' structure is
# issue 26's reading of it (rows, columns, metrics); row order within a table follows the paper's
# order of the variants (Sec. III: AAT, SAT, BAT; gradient, then generator based).
VARIANTS = {"Baseline": "", "Grad-AAT": "+grad_aat", "Grad-SAT": "+grad_sat", "Grad-BAT": "+grad_bat",
            "Gen-BAT": "+gen_bat", "Two-Gen-BAT": "+two_gen_bat", "Combined AT": "+combined_at"}
AUGMENTATION = {"Baseline": "", "Gaussian noise": "_noise", "Gaussian blur": "_blur", "JPEG": "_jpeg",
                "Two-Gen-BAT": "+two_gen_bat", "Combined AT": "+combined_at"}
KERNELS = {3: "+two_gen_bat_k3", 5: "+two_gen_bat_k5", 7: "+two_gen_bat_k7", 9: "+two_gen_bat"}
NT_COLUMNS = ["NT", "DF", "F2F", "FS", "DFD", "Celeb-DF"]  # Table I: NT -> NT/DF/F2F/FS/DFD/Celeb-DF
QUALITY_COLUMNS = ["Raw", "C23", "C40"]  # tested on NT at each quality
QUALITIES = ["raw", "c23", "c40"]  # trained on NT at each quality (the rows' train_quality)


def rows(detector: str, suffixes, qualities=("c23",)) -> list[str]:
    """Model ids "<detector>_bat<suffix>/<quality>-NT", quality-major (the paper's Raw->*, C23->*, C40->* blocks)."""
    return [f"{detector}_bat{suffix}/{q}-NT" for q in qualities for suffix in suffixes]


def by_variant(detector: str, suffixes, qualities) -> list[str]:
    """Variant-major: each variant's three training qualities together."""
    return [f"{detector}_bat{suffix}/{q}-NT" for suffix in suffixes for q in qualities]


PAPER = {
    # I: NT -> NT/DF/F2F/FS/DFD/Celeb-DF, 7 variants, AUC and ACC
    "bat_table1_nt": (rows("efficientnet_b4", VARIANTS.values()), NT_COLUMNS),
    # II: cross-quality, trained and tested on NT only, 7 variants (c23 -> c23/c40 etc.)
    "bat_table2_cross_quality": (by_variant("efficientnet_b4", VARIANTS.values(), QUALITIES), QUALITY_COLUMNS),
    # III: all qualities pooled, NT, one pooled AUC/ACC
    "bat_table3_pooled": ([f"efficientnet_b4_bat{s}/raw+c23+c40-NT" for s in VARIANTS.values()], ["All"]),
    # IV: adversarial vs traditional augmentation, incl. Combined AT
    "bat_table4_augmentation": (rows("efficientnet_b4", AUGMENTATION.values()), NT_COLUMNS),
    # V: Raw->*, C23->*, C40->* blocks, NT
    "bat_table5_augmentation_quality": (rows("efficientnet_b4", AUGMENTATION.values(), QUALITIES), QUALITY_COLUMNS),
    # VI: BAT on other detectors (Stehouwer et al., Zhao et al.), trained on FF++ of all qualities and
    # manipulations: both detectors plain and with Two-Gen-BAT; FF++, DFD, Celeb-DF
    "bat_table6_detectors": (["ffd/raw+c23+c40", "ffd+two_gen_bat/raw+c23+c40", "multi_attention/raw+c23+c40",
                              "multi_attention+two_gen_bat/raw+c23+c40"], ["FF++", "DFD", "Celeb-DF"]),
    # VIII-XI: Tables I, II, IV and V with Xception
    "bat_table8_xception_nt": (rows("xception", VARIANTS.values()), NT_COLUMNS),
    "bat_table9_xception_cross_quality": (by_variant("xception", VARIANTS.values(), QUALITIES), QUALITY_COLUMNS),
    "bat_table10_xception_augmentation": (rows("xception", AUGMENTATION.values()), NT_COLUMNS),
    "bat_table11_xception_augmentation_quality": (rows("xception", AUGMENTATION.values(), QUALITIES), QUALITY_COLUMNS),
    # XV-XVI: Two-Gen-BAT with blur kernel 3/5/7/9, configured as Tables I and II
    "bat_table15_kernel_nt": (rows("efficientnet_b4", KERNELS.values()), NT_COLUMNS),
    "bat_table16_kernel_cross_quality": (by_variant("efficientnet_b4", KERNELS.values(), QUALITIES), QUALITY_COLUMNS),
}
METRICS = ["frame_auc", "frame_accuracy"]  # AUC and ACC, frame level (the authors' eval.py)

# Models (EfficientNet-B4): Table I 7; Table II 21, of which c23 is Table I's (14 new); Table III 7;
# Table IV's noise, blur, JPEG at c23 (3; its other rows are Table I's); Table V's three at raw and
# c40 (6; the rest are II's and IV's); Table XV's k = 3, 5, 7 at c23 (3; k = 9 is Table I's);
# Table XVI's k = 3, 5, 7 at raw and c40 (6): 7 + 14 + 7 + 3 + 6 + 3 + 6 = 46.
# Xception: Tables VIII, IX, X, XI as I, II, IV, V: 7 + 14 + 3 + 6 = 30. Table VI: FFD and
# multi-attention, each plain and with Two-Gen-BAT, on all of FF++ (4). In all 80.
# Faces: FF++ raw, c23, c40 x train/val/test (9); DFD and Celeb-DF test (2).
# Scores (one file per model and (dataset, quality) copy): the c23-NT models (EfficientNet
# 7 + 3 + 3, Xception 7 + 3) are scored on FF++ c23 (NT, DF, F2F, FS share it) + DFD + Celeb-DF and
# also on raw and c40 (Tables II, V, IX, XI, XVI): 5 copies x 23 = 115; the raw- and c40-NT models
# (EfficientNet 14 + 6 + 6, Xception 14 + 6 = 46) on raw, c23, c40: 3 x 46 = 138; the pooled models
# (7) on raw, c23, c40 (the pooled test set's three copies): 21; Table VI's 4 on FF++ raw, c23, c40
# (pooled) + DFD + Celeb-DF: 20. 115 + 138 + 21 + 20 = 294.
# Metrics (one per model and column): c23-NT models 6 columns + 3 quality columns (NT c23 is
# two columns with one label set, ffpp_c23_NT, so one file): 23 x (6 + 2) = 184; raw/c40 46 x 3 = 138;
# pooled 7 x 1 = 7; Table VI 4 x 3 = 12. 184 + 138 + 7 + 12 = 341.
# ImageNet weights: one download per detector (efficientnet_b4, xception, ffd, multi_attention).
EXPECTED = {"train": 80, "extract_faces": 11, "score": 294, "metrics": 341, "table": len(PAPER),
            "dataset_index": 3, "fetch_pretrained": 4}
NT_TABLES = [name for name in PAPER if name != "bat_table6_detectors"]  # Table VI trains on all of FF++


@pytest.fixture(scope="module")
def plan(trees):  # noqa: F811
    return protocol_plan("bat", trees)


@pytest.mark.parametrize("table", sorted(PAPER))
def test_each_table_has_the_papers_rows_and_columns(plan, table):
    expected_rows, expected_columns = PAPER[table]
    assert layout(plan, table) == (expected_rows, expected_columns)
    assert plan.tables[table].metrics == METRICS
    assert plan.tables[table].group == "bat"


#: what the .md and .tex print for a row: the variant or augmentation (the keys above), the kernel size
#: (Tables XV-XVI), or the detector's authors (Table VI); the Train column gives the training quality
ROW_LABELS = {suffix: label for label, suffix in {**VARIANTS, **AUGMENTATION}.items()}
KERNEL_LABELS = {suffix: f"k = {k}" for k, suffix in KERNELS.items()}
AUTHORS = {"ffd": "Stehouwer et al.", "multi_attention": "Zhao et al."}


@pytest.mark.parametrize("table", sorted(PAPER))
def test_rows_carry_the_papers_labels(plan, table):
    for row, model in zip(plan.tables[table].spec(2)["rows"], plan.tables[table].rows):
        if table == "bat_table6_detectors":
            expected = AUTHORS[model.method] + (" + Two-Gen-BAT" if model.procedure_cfg()["name"] == "two_gen_bat" else "")
        else:
            expected = (KERNEL_LABELS if "kernel" in table else ROW_LABELS)[model.name.split("_bat", 1)[1]]
        assert row["label"] == expected, model.id


def test_the_bat_group_is_every_table_of_the_paper(plan):
    assert sorted(plan.groups()["bat"]) == sorted(PAPER)
    # Tables VII and XII-XIV (ImageNet classifiers) and the appendix are not deepfake detection: no target
    assert not any(name.startswith(("bat_table7", "bat_table12", "bat_table13", "bat_table14")) for name in plan.tables)


def test_the_nt_protocol_trains_on_neuraltextures_only(plan):
    models = {m.id: m for name in NT_TABLES for m in plan.tables[name].rows}
    assert models and all(m.train_on == ("NeuralTextures",) for m in models.values())
    assert all(m.trainset.endswith("-NT") for m in models.values())


def test_table6_trains_other_detectors_on_all_of_ffpp_with_their_own_settings(plan):
    rows = plan.tables["bat_table6_detectors"].rows
    assert all(m.qualities == ("raw", "c23", "c40") and len(m.train_on) == 4 for m in rows)
    assert all(m.settings == () for m in rows)  # the detector's own settings: rows differ by the procedure only
    assert [m.procedure_cfg()["name"] for m in rows] == ["plain", "two_gen_bat"] * 2
    ffpp = plan.test_sets["ffpp_all"]
    assert ffpp.qualities == ("raw", "c23", "c40") and ffpp.manipulations is None


def test_every_row_trains_with_the_papers_settings(plan):
    """RAdam lr 5e-4 wd 5e-4, x0.1 every 10 epochs for the 30 epochs the schedule implies, batch 32,
    270 faces per training video; EfficientNet at the authors' 256 px, Xception at its 299."""
    for name in NT_TABLES:
        for model in plan.tables[name].rows:
            s = model.detector_cfg(plan_detectors(plan))
            assert s["optimizer"]["name"] == "radam" and s["optimizer"]["lr"] == 5e-4, model.id
            assert s["optimizer"]["weight_decay"] == 5e-4, model.id
            assert s["lr_schedule"] == {**s["lr_schedule"], "name": "step", "step_epochs": 10, "gamma": 0.1}, model.id
            assert (s["epochs"], s["batch_size"], s["frames_per_video"]) == (30, 32, 270), model.id
            assert s["input_size"] == {"efficientnet_b4": 256, "xception": 299}[model.method], model.id


def plan_detectors(plan) -> dict:
    """The detectors block of the protocol's config (what Model.detector_cfg layers a row's settings on)."""
    from dfrobust.detectors import resolve_config

    return {method: resolve_config(method, {}) for method in ("efficientnet_b4", "xception")}


def test_rows_differ_from_their_baseline_by_procedure_or_augmentation_only(plan):
    baseline = {}
    for name in NT_TABLES:
        for model in plan.tables[name].rows:
            settings = dict(model.settings)
            settings.pop("augment", None)
            baseline.setdefault((model.method, model.trainset), settings)
            assert settings == baseline[(model.method, model.trainset)], model.id


def test_kernel_rows_vary_the_two_gen_bat_kernel_only(plan):
    rows = plan.tables["bat_table15_kernel_nt"].rows
    procedures = [m.procedure_cfg() for m in rows]
    assert [p["kernel_size"] for p in procedures] == [3, 5, 7, 9]
    assert all({**p, "kernel_size": 9} == procedures[-1] for p in procedures)
    # k = 9 is the default: Table I's Two-Gen-BAT model is the k = 9 row
    assert rows[-1] in plan.tables["bat_table1_nt"].rows


def test_the_faces_are_the_papers_270_per_training_video_and_10_per_dfd_video(plan):
    """Sec. IV: 270 frames extracted per training video, 10 per DFD (test) video (evenly spaced here)."""
    assert overlay("bat")["faces"]["frames"] == {"train": 270}
    faces = {"frames": {"train": 270, "val": 32, "test": 32}}
    assert plan.datasets["dfd"].faces(faces)["frames"] == {"train": 10, "val": 10, "test": 10}
    assert plan.datasets["ffpp"].faces(faces) == faces and plan.datasets["celebdf"].faces(faces) == faces


def test_pooled_and_quality_test_sets_are_neuraltextures_only(plan):
    assert plan.test_sets["ffpp_all_NT"].qualities == ("raw", "c23", "c40")
    for name in ("ffpp_raw_NT", "ffpp_c23_NT", "ffpp_c40_NT", "ffpp_all_NT"):
        assert plan.test_sets[name].manipulations == ("NeuralTextures",), name


def test_protocol_plans_exactly_its_tables_jobs(trees, tmp_path):  # noqa: F811
    proc = dry_run("bat", trees, tmp_path, "bat")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    assert {rule: counts.get(rule, 0) for rule in EXPECTED} == EXPECTED, counts
    # clean copies only: no processed test copy is made for these tables
    assert "distort_copy" not in counts
