"""The one table engine (Table I and the declared tables), pairwise DeLong,
figures, and tracing a cell."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from dfrobust.config import validate_config
from dfrobust.core.config import load_schemas, resolve_ref
from dfrobust.core.errors import InputError
from dfrobust.evaluation import delong_videos
from dfrobust.plan import build_plan
from dfrobust.reporting import build_table, ci_table, format_trace, pairwise_delong, read_table, trace_cell, write_table
from dfrobust.reporting import figures
from dfrobust.reporting.tables import by_category, table_latex, table_markdown
from dfrobust.stages.score import evaluate_file

from conftest import operations_of

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# configured order deliberately interleaves categories: c40 must join c23
OPERATIONS = [
    {"name": "clean", "category": "none"},
    {"name": "c23", "category": "compression", "codec": {"crf": 23}},
    {"name": "hflip", "category": "flip", "filter": "hflip"},
    {"name": "c40", "category": "compression", "codec": {"crf": 40}},
    {"name": "res_x2", "category": "resolution", "filter": "scale=iw/2:ih/2"},
]
CATEGORY = {op["name"]: op["category"] for op in OPERATIONS}
AUC = {
    ("xception", "c23"): {"clean": 0.991, "c23": 0.98, "hflip": 0.9899, "c40": 0.805, "res_x2": 0.7},
    ("xception", "c40"): {"clean": 0.95, "c23": 0.94, "hflip": 0.951, "c40": 0.93, "res_x2": 0.9},
    ("capsule", "raw"): {"clean": 0.9, "c23": 0.8, "hflip": 0.9, "c40": 0.6, "res_x2": 0.55556},
}


def make_records(auc=AUC, test_set="ffpp_raw"):
    records = []
    for (method, quality), cells in auc.items():
        for op, value in cells.items():
            records.append({
                "method": method, "train_quality": quality, "test_set": test_set, "operation": op,
                "category": CATEGORY[op], "video_auc": value, "frame_auc": value - 0.01,
                "ci_low": value - 0.01, "ci_high": min(value + 0.01, 1.0), "ci_level": 0.95, "bootstrap": 1000,
            })
    return records


def counts(kind, cfg):
    return {"train": 40, "val": 20, "test": 30}


def table1_spec(**report):
    """Table I as the plan lays it out for models in AUC's order and OPERATIONS."""
    models = [{"method": m, "quality": q} for m, q in AUC]
    config = validate_config({"models": models, "operations": {"list": OPERATIONS}, "report": report})
    plan = build_plan(config, operations_of({"list": OPERATIONS}), counts)
    return plan.table1.spec(config["report"]["decimals"])


def declared_spec(metrics=("video_auc",), average=False, title="Cross tests"):
    rows = [{"method": m, "train_quality": q, "label": None} for m, q in AUC]
    columns = [{"test_set": "ffpp_raw", "operation": op, "label": label, "category": None, "shown": True,
                "averaged": average} for op, label in (("clean", "FF++"), ("c40", "FF++ c40"))]
    return {"name": "cross", "title": title, "note": None, "average": average, "decimals": 2, "metrics": list(metrics),
            "rows": rows, "columns": columns}


def frames_for(seed, shift=0.0, n_real=12, n_fake=24):
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(n_real + n_fake):
        fake = int(v >= n_real)
        manipulation = "Deepfakes" if fake else "original"
        for f in range(3):
            score = float(np.clip(0.4 + 0.25 * fake + shift + rng.normal(0, 0.2), 0, 1))
            rows.append((f"{manipulation}/{v:03d}", manipulation, fake, f, score))
    return pd.DataFrame(rows, columns=["video_id", "manipulation", "label", "frame_index", "score"])


# ---------------------------------------------------------------- Table I

def test_table1_layout_and_average():
    spec = table1_spec()
    # models grouped by detector in their order, qualities in report.qualities order
    assert [(r["method"], r["train_quality"]) for r in spec["rows"]] == [("xception", "c23"), ("xception", "c40"),
                                                                        ("capsule", "raw")]
    # the reference first (hidden, in _ci.csv only), then the categories grouped in order of first appearance
    assert [(c["category"], c["operation"], c["shown"], c["averaged"]) for c in spec["columns"]] == [
        ("none", "clean", False, False), ("compression", "c23", True, True), ("compression", "c40", True, True),
        ("flip", "hflip", True, True), ("resolution", "res_x2", True, True)]
    table, notes = build_table(make_records(), spec)
    assert not notes and table.shape == (3, 5)
    row = table.loc[("xception", "c23")].to_numpy()
    assert row[1] == pytest.approx(80.5)  # c40
    # average over the processed copies only (the paper's Average has no clean)
    assert row[-1] == pytest.approx((98 + 80.5 + 98.99 + 70) / 4)
    with_ref = build_table(make_records(), table1_spec(include_reference=True, show_reference=True))[0]
    assert with_ref.loc[("xception", "c23")].to_numpy()[-1] == pytest.approx((99.1 + 98 + 80.5 + 98.99 + 70) / 5)
    assert [c["operation"] for c in table1_spec(columns=["hflip", "c23"])["columns"]] == ["clean", "c23", "hflip"]


def test_missing_cell_leaves_the_average_missing():
    records = [r for r in make_records() if not (r["method"] == "capsule" and r["operation"] == "c40")]
    table, _ = build_table(records, table1_spec())
    values = table.loc[("capsule", "raw")].to_numpy()
    assert np.isnan(values[1]) and np.isnan(values[-1])  # no average over a hole
    spec = table1_spec()
    assert "| capsule | raw | 80.00 | – |" in table_markdown(table, {}, spec)
    assert "capsule & raw & 80.00 & -- &" in table_latex(table, {}, spec)
    assert ci_table(records, spec).shape[0] == 14
    with pytest.raises(InputError, match="two metric records"):
        build_table(make_records() + make_records()[:1], spec)


def test_table1_files(tmp_path):
    paths = {k: tmp_path / f"table1{k}" for k in (".csv", ".md", ".tex", "_ci.csv")}
    records = make_records()
    write_table(records, table1_spec(show_reference=True), *paths.values())

    lines = paths[".csv"].read_text().splitlines()
    assert lines[0] == "method,train_quality,clean,c23,c40,hflip,res_x2,average"
    assert lines[1] == "xception,c23,99.10,98.00,80.50,98.99,70.00,86.87"  # (98+80.5+98.99+70)/4 = 86.8725
    assert lines[3].startswith("capsule,raw,90.00,80.00,60.00,90.00,55.56,")
    back = read_table(paths[".csv"])
    assert list(back.columns) == ["clean", "c23", "c40", "hflip", "res_x2", "average"]
    assert back.loc[("xception", "c23"), "c40"] == pytest.approx(80.5)

    md = paths[".md"].read_text()
    assert md.startswith("| Method | Train | none | compression |  | flip | resolution |  |\n")
    assert "| **clean** | **c23** | **c40** | **hflip** | **res_x2** | **Average** |" in md
    assert "| xception | c23 | 99.10 | 98.00 | 80.50 | 98.99 | 70.00 | 86.87 |" in md
    assert md.endswith("Video-level AUC (%). Average: mean over c23, c40, hflip, res_x2 (clean excluded).\n")

    tex = paths[".tex"].read_text()
    for snippet in (r"\toprule", r"\midrule", r"\bottomrule", r"\multicolumn{2}{c}{compression}",
                    r"\cmidrule(lr){4-5}", r"\cmidrule(lr){3-3}", r"res\_x2",
                    r"xception & c23 & 99.10 & 98.00 & 80.50 & 98.99 & 70.00 & 86.87 \\",
                    r"\begin{tabular}{llrrrrrr}"):
        assert snippet in tex, snippet

    ci = pd.read_csv(paths["_ci.csv"])
    assert list(ci.columns) == ["method", "train_quality", "category", "operation", "video_auc",
                                "ci_low", "ci_high", "ci_level", "bootstrap"]
    assert len(ci) == 15
    first = ci.iloc[0]
    assert (first.method, first.operation) == ("xception", "clean")
    assert (first.ci_low, first.video_auc, first.ci_high) == pytest.approx((98.1, 99.1, 100.0))


def test_paper_layout_leaves_the_reference_column_out(tmp_path):
    write_table(make_records(), table1_spec(), *(tmp_path / f"t{ext}" for ext in (".csv", ".md", ".tex", "_ci.csv")))
    flat = pd.read_csv(tmp_path / "t.csv")
    assert list(flat.columns) == ["method", "train_quality", "c23", "c40", "hflip", "res_x2", "average"]
    assert flat.loc[0, "average"] == pytest.approx(86.87, abs=0.006)


# ---------------------------------------------------------------- declared tables

def test_declared_table_with_several_metrics_and_an_average(tmp_path):
    spec = declared_spec(metrics=("video_auc", "frame_auc"), average=True)
    paths = [tmp_path / f"cross{ext}" for ext in (".csv", ".md", ".tex", "_ci.csv")]
    write_table(make_records(), spec, *paths)
    header = paths[0].read_text().splitlines()[0]
    assert header == ("method,train_quality,FF++ AUC,FF++ frame AUC,FF++ c40 AUC,FF++ c40 frame AUC,"
                      "average AUC,average frame AUC")
    table = read_table(paths[0])
    assert table.loc[("xception", "c23"), "average AUC"] == pytest.approx((99.1 + 80.5) / 2, abs=0.006)
    assert table.loc[("xception", "c23"), "average frame AUC"] == pytest.approx((98.1 + 79.5) / 2, abs=0.006)
    md = paths[1].read_text()
    assert md.startswith("**Cross tests**\n\n| Method | Train | FF++ |  | FF++ c40 |  | Average |  |\n")
    assert "|  |  | AUC | frame AUC | AUC | frame AUC | AUC | frame AUC |" in md
    assert md.endswith("AUC, frame AUC in percent. Average: mean over FF++, FF++ c40.\n")
    tex = paths[2].read_text()
    assert r"\multicolumn{2}{c}{Average}" in tex and tex.startswith("% Cross tests\n")
    assert list(pd.read_csv(paths[3]).columns)[:5] == ["method", "train_quality", "column", "test_set", "operation"]


def test_row_labels_replace_the_model_name_in_md_and_tex_and_are_a_csv_column(tmp_path):
    """A row's `label` (the paper's, e.g. "r = 0.05") is what .md and .tex print; the .csv and
    _ci.csv keep the model's name and add the label; an unlabelled row shows its name."""
    spec = declared_spec()
    spec["rows"][0]["label"] = "r = 0.05"
    spec["rows"][2]["label"] = "1:0, α = 1"
    paths = [tmp_path / f"cross{ext}" for ext in (".csv", ".md", ".tex", "_ci.csv")]
    write_table(make_records(), spec, *paths)
    lines = paths[0].read_text().splitlines()
    assert lines[0] == "method,train_quality,label,FF++,FF++ c40"
    assert lines[1:] == ["xception,c23,r = 0.05,99.10,80.50", "xception,c40,,95.00,93.00", 'capsule,raw,"1:0, α = 1",90.00,60.00']
    assert read_table(paths[0]).loc[("capsule", "raw"), "FF++"] == pytest.approx(90.0)
    md = paths[1].read_text()
    assert "| r = 0.05 | c23 | 99.10 | 80.50 |\n| xception | c40 |" in md and "| 1:0, α = 1 | raw |" in md
    assert r"r = 0.05 & c23 & 99.10 & 80.50 \\" in paths[2].read_text()
    ci = pd.read_csv(paths[3], keep_default_na=False)
    assert list(ci.columns[:4]) == ["method", "train_quality", "label", "column"]
    assert list(ci.label) == ["r = 0.05", "r = 0.05", "", "", "1:0, α = 1", "1:0, α = 1"]


def test_declared_table_with_one_metric_has_one_header_row():
    spec = declared_spec()
    table, notes = build_table(make_records(), spec)
    md = table_markdown(table, notes, spec)
    assert "| Method | Train | FF++ | FF++ c40 |\n|:--|:--|--:|--:|\n| xception | c23 | 99.10 | 80.50 |" in md
    assert md.endswith("AUC in percent.\n")
    with pytest.raises(InputError, match="'tauc_1pct' is not in the metrics"):
        build_table(make_records(), declared_spec(metrics=("tauc_1pct",)))


def test_a_cell_with_no_video_scored_says_na_with_its_reason(tmp_path):
    records = make_records()
    reason = "no real or fake video scored: 6 of 6 videos excluded (no_face 6)"
    for r in records:
        if (r["method"], r["train_quality"], r["operation"]) == ("capsule", "raw", "c40"):
            for key in ("video_auc", "frame_auc", "ci_low", "ci_high", "ci_level", "bootstrap"):
                del r[key]
            r.update(status="no_video_scored", reason=reason)
    spec = declared_spec(average=True)
    paths = [tmp_path / f"cross{ext}" for ext in (".csv", ".md", ".tex", "_ci.csv")]
    write_table(records, spec, *paths)
    assert paths[0].read_text().splitlines()[3] == "capsule,raw,90.00,n/a,"  # the average over it is missing
    md = paths[1].read_text()
    assert "| capsule | raw | 90.00 | n/a* | – |" in md and md.endswith(f"\n* {reason}\n")
    assert "n/a$^*$" in paths[2].read_text() and f"% * {reason}" in paths[2].read_text()
    ci = pd.read_csv(paths[3])
    assert ci["note"].dropna().tolist() == [reason]
    assert np.isnan(read_table(paths[0]).loc[("capsule", "raw"), "FF++ c40"])


def test_report_schema_defaults():
    schema = load_schemas()[1]["report"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    properties = {k: resolve_ref(v, schema) for k, v in schema["properties"].items()}
    for key, spec in properties.items():
        assert "default" in spec and "description" in spec, key
    defaults = {k: v["default"] for k, v in properties.items()}
    assert defaults["reference"] == "clean" and defaults["include_reference"] is False
    assert defaults["decimals"] == 2
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(defaults)
    assert not validator.is_valid({"decimals": "two"})


# ---------------------------------------------------------------- DeLong table

def test_pairwise_delong_table():
    scores = {
        ("xception", "c23", "clean"): frames_for(0),
        ("capsule", "c23", "clean"): frames_for(0).assign(score=lambda d: (d.score * 0.5 + 0.2)),
        ("sbi", "c23", "clean"): frames_for(1),
        ("xception", "c23", "c40"): frames_for(2),
        ("capsule", "c23", "c40"): frames_for(3),
    }
    table = pairwise_delong(scores)
    assert len(table) == 3 + 1
    assert table["p"].between(0, 1).all()
    same = table[(table.model_a == "xception/c23") & (table.model_b == "capsule/c23") & (table.operation == "clean")]
    assert same.p.iloc[0] == pytest.approx(1.0)  # an affine transform of the same scores
    row = table[(table.operation == "c40")].iloc[0]
    expected = delong_videos(frames_for(2), frames_for(3))
    assert (row.auc_a, row.auc_b, row.z, row.p) == pytest.approx(tuple(expected))
    assert row.n_videos == 36


# ---------------------------------------------------------------- figures

def assert_png(path):
    path = Path(path)
    assert path.is_file() and path.stat().st_size > 2000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_figures_are_written(tmp_path):
    spec = table1_spec(show_reference=True)
    table = by_category(build_table(make_records(), spec)[0])
    assert list(table.columns)[0] == ("none", "clean") and list(table.columns)[-1] == ("summary", "average")
    assert_png(figures.heatmap(table, tmp_path / "heatmap.png", dpi=60, decimals=2, cmap="RdYlGn"))
    assert_png(figures.auc_drop_bars(table, tmp_path / "drop.png", reference="clean", dpi=60))
    scores = {("xception", "c23", op): frames_for(i, shift=-0.05 * i) for i, op in enumerate(["clean", "c23", "c40"])}
    scores[("capsule", "raw", "clean")] = frames_for(9)
    paths = {("xception", "c23"): tmp_path / "roc_x.png", ("capsule", "raw"): tmp_path / "roc_c.png"}
    written = figures.roc_figures(scores, paths, operations=["clean", "c23", "c40"], dpi=60)
    assert sorted(p.name for p in written) == ["roc_c.png", "roc_x.png"]
    for p in written:
        assert_png(p)


def test_severity_figure(tmp_path):
    records = []
    for method in ("xception", "capsule"):
        for level in (5, 10, 20):
            records.append({"method": method, "train_quality": "c23", "operation": f"noise_{level}",
                            "sweep": "noise", "level": level, "video_auc": 0.9 - level / 100,
                            "ci_low": 0.85 - level / 100, "ci_high": 0.95 - level / 100})
        for level in ("x2", "x4"):
            records.append({"method": method, "train_quality": "c23", "operation": f"res_{level}",
                            "sweep": "resolution", "level": level, "video_auc": 0.8})
    records.append({"method": "xception", "train_quality": "c23", "operation": "clean", "video_auc": 0.99})
    assert_png(figures.severity_figure(records, tmp_path / "severity.png", dpi=60))
    assert_png(figures.severity_figure(records[-1:], tmp_path / "none.png", dpi=60))


# ---------------------------------------------------------------- trace

def test_trace_cell(tmp_path):
    from dfrobust.cli import metrics_path

    results = tmp_path / "results"
    for i, op in enumerate(["clean", "c40"]):
        scores = results / "scores" / "xception" / "c23" / "ffpp" / "raw" / "test" / f"{op}.csv"
        scores.parent.mkdir(parents=True, exist_ok=True)
        frames_for(i, shift=-0.1 * i).to_csv(scores, index=False)
        evaluate_file(scores, results / "metrics" / "xception" / "c23" / "ffpp_raw" / f"{op}.json",
                      {"bootstrap": 50, "seed": 1}, {"method": "xception", "train_quality": "c23", "test_set": "ffpp_raw",
                                                       "operation": op, "category": CATEGORY[op]})
    spec = {**table1_spec(), "rows": [{"method": "xception", "train_quality": "c23", "label": None}]}
    spec["columns"] = [c for c in spec["columns"] if c["operation"] in ("clean", "c40")]
    records = [__import__("json").loads(p.read_text()) for p in sorted((results / "metrics").rglob("*.json"))]
    write_table(records, spec, *(results / f"table1{ext}" for ext in (".csv", ".md", ".tex", "_ci.csv")))

    path = metrics_path(results, "xception", "c23", "c40", None)
    assert str(path).endswith("metrics/xception/c23/ffpp_raw/c40.json")
    trace = trace_cell(path, results / "table1.csv")
    assert trace["video_auc"] == pytest.approx(next(r["video_auc"] for r in records if r["operation"] == "c40"))
    assert trace["table1"]["matches"] is True
    assert trace["seed"] == 1 and {k: trace["config"][k] for k in ("bootstrap", "seed")} == {"bootstrap": 50, "seed": 1}
    assert trace["code_version"]
    assert [e["status"] for e in trace["inputs"]] == ["ok"]  # the score file, once
    assert trace["inputs"][0]["path"].endswith("scores/xception/c23/ffpp/raw/test/c40.csv")
    text = format_trace(trace)
    assert "xception / c23 / c40" in text and "[ok]" in text and "(matches)" in text

    # a score file edited after the metrics were computed is flagged
    scores = results / "scores" / "xception" / "c23" / "ffpp" / "raw" / "test" / "c40.csv"
    scores.write_text(scores.read_text().replace("Deepfakes/035", "Deepfakes/036", 1))
    assert trace_cell(path)["inputs"][0]["status"] == "changed"
    shutil.rmtree(results / "scores")
    assert trace_cell(path)["inputs"][0]["status"] == "missing"

    with pytest.raises(InputError, match="computed for xception/c23: ffpp_raw/c40, ffpp_raw/clean"):
        metrics_path(results, "xception", "c23", "vintage", None)
