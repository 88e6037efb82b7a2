"""Table I layout and writers, pairwise DeLong, figures, and tracing a cell."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema

from dfrobust.core.config import load_schemas, resolve_ref
import numpy as np
import pandas as pd
import pytest
import yaml

from dfrobust.core.errors import InputError
from dfrobust.evaluation import delong_videos
from dfrobust.stages.score import evaluate_file
from dfrobust.reporting import (
    build_ci_table,
    build_table1,
    format_trace,
    load_records,
    operation_order,
    pairwise_delong,
    read_table1,
    score_files,
    table1_latex,
    table1_markdown,
    trace_cell,
    write_table1,
)
from dfrobust.reporting import figures

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# configured order deliberately interleaves categories: c40 must join c23
OPERATIONS = {
    "clean": {"category": "reference"},
    "c23": {"category": "compression"},
    "hflip": {"category": "flip"},
    "c40": {"category": "compression"},
    "res_x2": {"category": "resolution"},
}
AUC = {
    ("xception", "c23"): {"clean": 0.991, "c23": 0.98, "hflip": 0.9899, "c40": 0.805, "res_x2": 0.7},
    ("xception", "c40"): {"clean": 0.95, "c23": 0.94, "hflip": 0.951, "c40": 0.93, "res_x2": 0.9},
    ("capsule", "raw"): {"clean": 0.9, "c23": 0.8, "hflip": 0.9, "c40": 0.6, "res_x2": 0.55556},
}


def make_records(auc=AUC):
    records = []
    for (method, quality), cells in auc.items():
        for op, value in cells.items():
            records.append({
                "method": method, "train_quality": quality, "operation": op,
                "category": OPERATIONS[op]["category"], "video_auc": value,
                "ci_low": value - 0.01, "ci_high": min(value + 0.01, 1.0), "ci_level": 0.95, "bootstrap": 1000,
            })
    return records


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

def test_table_layout_and_average():
    table = build_table1(make_records(), OPERATIONS)
    assert list(table.index) == [("xception", "c23"), ("xception", "c40"), ("capsule", "raw")]
    assert list(table.columns) == [
        ("reference", "clean"), ("compression", "c23"), ("compression", "c40"),
        ("flip", "hflip"), ("resolution", "res_x2"), ("summary", "average"),
    ]
    row = table.loc[("xception", "c23")]
    assert row[("compression", "c40")] == pytest.approx(80.5)
    # average over the processed copies only (the paper's Average has no clean)
    assert row[("summary", "average")] == pytest.approx((98 + 80.5 + 98.99 + 70) / 4)
    with_ref = build_table1(make_records(), OPERATIONS, include_reference=True)
    assert with_ref.loc[("xception", "c23"), ("summary", "average")] == pytest.approx(
        (99.1 + 98 + 80.5 + 98.99 + 70) / 5)
    ordered = build_table1(make_records(), OPERATIONS, methods=["capsule", "xception"])
    assert list(ordered.index)[0] == ("capsule", "raw")


def test_missing_cell_and_unknown_operation():
    records = [r for r in make_records() if not (r["method"] == "capsule" and r["operation"] == "c40")]
    records.append({**records[0], "operation": "not_configured", "video_auc": 0.1})
    table = build_table1(records, OPERATIONS)
    assert ("x", "not_configured") not in table.columns and len(table.columns) == 6
    assert np.isnan(table.loc[("capsule", "raw"), ("compression", "c40")])
    assert np.isnan(table.loc[("capsule", "raw"), ("summary", "average")])  # no average over a hole
    with pytest.raises(InputError, match="two metric records"):
        build_table1(make_records() + make_records()[:1], OPERATIONS)


def test_column_subset_keeps_reference_first():
    table = build_table1(make_records(), OPERATIONS, columns=["hflip", "c23"])
    assert [op for _, op in table.columns] == ["clean", "c23", "hflip", "average"]


def test_operation_order_accepts_config_shapes():
    expected = [("clean", "reference"), ("c23", "compression")]
    assert operation_order({"clean": {"category": "reference"}, "c23": {"category": "compression"}}) == expected
    assert operation_order({"clean": "reference", "c23": "compression"}) == expected
    assert operation_order([{"name": "clean", "category": "reference"}, {"name": "c23", "category": "compression"}]) == expected
    assert operation_order([("clean", "reference"), ("c23", "compression")]) == expected


def test_written_files(tmp_path):
    paths = {k: tmp_path / f"table1.{k}" for k in ("csv", "md", "tex")}
    ci_path = tmp_path / "table1_ci.csv"
    records = make_records()
    write_table1(records, OPERATIONS, ci_csv=ci_path, config={"decimals": 2, "show_reference": True}, **paths)

    lines = paths["csv"].read_text().splitlines()
    assert lines[0] == "method,train_quality,clean,c23,c40,hflip,res_x2,average"
    assert lines[1] == "xception,c23,99.10,98.00,80.50,98.99,70.00,86.87"  # (98+80.5+98.99+70)/4 = 86.8725
    assert lines[3].startswith("capsule,raw,90.00,80.00,60.00,90.00,55.56,")
    flat = pd.read_csv(paths["csv"])
    assert list(flat.columns) == ["method", "train_quality", "clean", "c23", "c40", "hflip", "res_x2", "average"]
    assert flat.loc[0, "c40"] == pytest.approx(80.5)
    back = read_table1(paths["csv"])
    expected = build_table1(records, OPERATIONS)
    np.testing.assert_allclose(back.to_numpy(), expected.to_numpy(), atol=0.005)
    assert list(back.columns) == [op for _, op in expected.columns]

    md = paths["md"].read_text()
    assert "| Method | Train | reference | compression |  | flip | resolution |  |" in md
    assert "| **clean** | **c23** | **c40** | **hflip** | **res_x2** | **Average** |" in md
    assert "| xception | c23 | 99.10 | 98.00 | 80.50 | 98.99 | 70.00 | 86.87 |" in md
    assert "Average: mean over c23, c40, hflip, res_x2 (clean excluded)." in md

    tex = paths["tex"].read_text()
    for snippet in (r"\toprule", r"\midrule", r"\bottomrule", r"\multicolumn{2}{c}{compression}",
                    r"\cmidrule(lr){4-5}", r"\cmidrule(lr){3-3}", r"res\_x2",
                    r"xception & c23 & 99.10 & 98.00 & 80.50 & 98.99 & 70.00 & 86.87 \\",
                    r"\begin{tabular}{llrrrrrr}"):
        assert snippet in tex, snippet

    ci = pd.read_csv(ci_path)
    assert list(ci.columns) == ["method", "train_quality", "category", "operation", "video_auc",
                                "ci_low", "ci_high", "ci_level", "bootstrap"]
    assert len(ci) == 15
    first = ci.iloc[0]
    assert (first.method, first.operation) == ("xception", "clean")
    assert (first.ci_low, first.video_auc, first.ci_high) == pytest.approx((98.1, 99.1, 100.0))


def test_paper_layout_leaves_the_reference_column_out(tmp_path):
    write_table1(make_records(), OPERATIONS, csv=tmp_path / "t.csv", config={})
    flat = pd.read_csv(tmp_path / "t.csv")
    assert list(flat.columns) == ["method", "train_quality", "c23", "c40", "hflip", "res_x2", "average"]
    assert flat.loc[0, "average"] == pytest.approx(86.87, abs=0.006)


def test_markdown_and_latex_show_missing_cells():
    records = [r for r in make_records() if not (r["method"] == "capsule" and r["operation"] == "c40")]
    table = build_table1(records, OPERATIONS)
    assert "| capsule | raw | 90.00 | 80.00 | – |" in table1_markdown(table)
    assert "capsule & raw & 90.00 & 80.00 & -- &" in table1_latex(table)
    assert build_ci_table(records, OPERATIONS).shape[0] == 14


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
    table = build_table1(make_records(), OPERATIONS)
    assert_png(figures.heatmap(table, tmp_path / "heatmap.png", dpi=60))
    assert_png(figures.auc_drop_bars(table, tmp_path / "drop.png", dpi=60))
    scores = {("xception", "c23", op): frames_for(i, shift=-0.05 * i) for i, op in enumerate(["clean", "c23", "c40"])}
    scores[("capsule", "raw", "clean")] = frames_for(9)
    paths = figures.roc_figures(scores, tmp_path / "roc", operations=["clean", "c23", "c40"], dpi=60)
    assert sorted(p.name for p in paths) == ["roc_capsule_raw.png", "roc_xception_c23.png"]
    for p in paths:
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
    results = tmp_path / "results"
    ops = {"clean": {"category": "reference"}, "c40": {"category": "compression"}}
    for i, op in enumerate(ops):
        scores = results / "scores" / "xception" / "c23" / f"{op}.csv"
        scores.parent.mkdir(parents=True, exist_ok=True)
        frames_for(i, shift=-0.1 * i).to_csv(scores, index=False)
        evaluate_file(scores, results / "metrics" / "xception" / "c23" / "ffpp_raw" / f"{op}.json",
                      {"bootstrap": 50, "seed": 1}, {"method": "xception", "train_quality": "c23",
                                                       "operation": op, "category": ops[op]["category"]})
    records = load_records(results)
    assert len(records) == 2
    write_table1(records, ops, csv=results / "table1.csv")
    assert set(score_files((results / "scores").rglob("*.csv"))) == {
        ("xception", "c23", "clean"), ("xception", "c23", "c40")}

    trace = trace_cell(results, "xception", "c23", "c40")
    assert trace["metrics_file"].endswith("metrics/xception/c23/ffpp_raw/c40.json")
    assert trace["video_auc"] == pytest.approx(records[0]["video_auc"] if records[0]["operation"] == "c40"
                                               else records[1]["video_auc"])
    assert trace["table1"]["matches"] is True
    assert trace["seed"] == 1 and trace["config"] == {"bootstrap": 50, "seed": 1}
    assert trace["code_version"]
    assert [e["status"] for e in trace["inputs"]] == ["ok"]
    assert trace["inputs"][0]["path"].endswith("scores/xception/c23/c40.csv")
    text = format_trace(trace)
    assert "xception / c23 / c40" in text and "[ok]" in text and "(matches)" in text

    # a score file edited after the metrics were computed is flagged
    scores = results / "scores" / "xception" / "c23" / "c40.csv"
    scores.write_text(scores.read_text().replace("Deepfakes/035", "Deepfakes/036", 1))
    assert trace_cell(results, "xception", "c23", "c40")["inputs"][0]["status"] == "changed"
    shutil.rmtree(results / "scores")
    assert trace_cell(results, "xception", "c23", "c40")["inputs"][0]["status"] == "missing"

    with pytest.raises(InputError, match="computed for xception/c23: ffpp_raw/c40, ffpp_raw/clean"):
        trace_cell(results, "xception", "c23", "vintage")
