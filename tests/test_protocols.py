"""config/protocols/*.yaml, overlaid on config/ffpp.yaml, dry-run against
fixture trees in each dataset's published layout: every table is a target and
the plan holds exactly the train, face, score, metrics and table jobs the
papers' tables need (counts stated with their reasons)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SMALL_PAIRS, job_counts, make_ffpp_tree, operations_of
from test_datasets import make_celebdf, make_dfdc, make_dfdc_preview, make_dfd

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
MAKERS = {"celebdf": make_celebdf, "dfdc": make_dfdc, "dfdc_preview": make_dfdc_preview}

# The fixture FF++ (SMALL_PAIRS; ffpp.yaml's 25 videos per shard): one face shard per
# (quality, split). DFD (inside it, c23): one test shard. Celeb-DF, DFDC, DFDC preview:
# one test shard each. ImageNet weights: one fetch per detector the tables train, and one per
# other backbone a row's settings name (gradreg's SBI rows on ConvNeXt-base).
EXPECTED = {
    # 8 cross-manipulation models (convnext_base +-PIM x 4 manipulations) + 9 cross-dataset
    # (efficientnet_b4 +-PIM, convnext_base plain / PIM / DualFlat, 4 SBI) + 16 backbone rows,
    # of which efficientnet_b4, +pim, convnext_base, +pim repeat cross-dataset's: 8 + 9 + 12.
    # Faces: FF++ c23 train/val/test (3) and raw train/val (SBI, 2); DFD, Celeb-DF, DFDC test (3).
    # Scores: clean copies only: 8 models x 1 (FF++ c23; the manipulation columns share it)
    # + 21 models x 4 (FF++ c23, Celeb-DF, DFD, DFDC). Metrics: 8 x 4 + 21 x 4.
    "gradreg": {"tables": ["gradreg_cross_manipulation", "gradreg_cross_dataset", "gradreg_backbones"],
                "counts": {"train": 29, "extract_faces": 8, "score": 8 + 21 * 4, "metrics": 8 * 4 + 21 * 4, "table": 3,
                           "dataset_index": 4, "fetch_pretrained": 6}},
    # Models: NT-trained c23 efficientnet_b4_radam plain + 6 procedures, xception plain + Two-Gen-BAT (9);
    # cross-quality plain / Two-Gen-BAT x raw, c23, c40 (6); all qualities (2); the NT augmentation
    # table adds 4 baselines (its plain and Two-Gen-BAT rows are Table I's), the raw one 4 more
    # (its plain and Two-Gen-BAT rows are cross-quality's): 9 + 6 + 2 + 4 + 4 = 25.
    # Faces: FF++ raw, c23, c40 x train/val/test (9); DFD and Celeb-DF test (2).
    # Scores: NT-trained 13 models x 3 (FF++ c23, DFD, Celeb-DF); the others (12) x 3 qualities.
    # Metrics: NT-trained 13 x 6 columns; the others 12 x 3.
    "bat": {"tables": ["bat_nt_to_all", "bat_cross_quality", "bat_all_qualities", "bat_augmentation_nt",
                       "bat_augmentation_raw"],
            "counts": {"train": 25, "extract_faces": 11, "score": 13 * 3 + 12 * 3, "metrics": 13 * 6 + 12 * 3,
                       "table": 5, "dataset_index": 3, "fetch_pretrained": 2}},
    # Two models (c23, c40); faces: FF++ c23 and c40 x train/val/test (6), Celeb-DF and the DFDC
    # preview's test (2). Scores and metrics: 2 models x 4 test sets.
    "two_branch": {"tables": ["two_branch", "two_branch_dfdc_preview"],
                   "counts": {"train": 2, "extract_faces": 8, "score": 8, "metrics": 8, "table": 2, "dataset_index": 3,
                                      "fetch_pretrained": 1}},
}


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("protocols")
    out = {"ffpp": make_dfd(make_ffpp_tree(root / "ffpp", SMALL_PAIRS))}
    out["dfd"] = out["ffpp"]
    for kind, make in MAKERS.items():
        out[kind] = make(root / kind)
    return out


def plan(protocol: str, trees: dict[str, Path], workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    """Dry run of ffpp.yaml + the protocol + the fixture roots, its tables as targets."""
    overlay = yaml.safe_load((REPO / "config" / "protocols" / f"{protocol}.yaml").read_text())
    roots = {"dataset": {"root": str(trees["ffpp"])},
             "datasets": {name: {"root": str(trees[cfg["kind"]])} for name, cfg in overlay.get("datasets", {}).items()}}
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "roots.yaml").write_text(yaml.safe_dump(roots))
    targets = [f"results/tables/{name}.csv" for name in EXPECTED[protocol]["tables"]]
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "-n", "--configfile",
           str(REPO / "config" / "ffpp.yaml"), str(REPO / "config" / "protocols" / f"{protocol}.yaml"),
           str(workdir / "roots.yaml"), "--", *targets, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("protocol", sorted(EXPECTED))
def test_protocol_plans_exactly_its_tables_jobs(protocol, trees, tmp_path):
    proc = plan(protocol, trees, tmp_path / protocol)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    expected = EXPECTED[protocol]["counts"]
    assert {rule: counts.get(rule, 0) for rule in expected} == expected, counts
    # clean copies only: no processed test copy is made for these tables
    assert "distort_copy" not in counts


def test_every_protocol_config_is_tested():
    assert {p.stem for p in (REPO / "config" / "protocols").glob("*.yaml")} == set(EXPECTED)


def test_protocol_tables_use_the_papers_training_sets(trees):
    """The model directories name the manipulation subset and the qualities (nothing collides)."""
    from dfrobust.config import validate_config
    from dfrobust.plan import build_plan

    config = yaml.safe_load((REPO / "config" / "ffpp.yaml").read_text())
    config["dataset"]["root"] = str(trees["ffpp"])
    overlay = yaml.safe_load((REPO / "config" / "protocols" / "bat.yaml").read_text())
    for name, cfg in overlay["datasets"].items():
        cfg["root"] = str(trees[cfg["kind"]])
    config.update(overlay)
    validated = validate_config(config)
    the_plan = build_plan(validated, operations_of(validated["operations"]), lambda kind, cfg: {"train": 1, "val": 1, "test": 1})
    ids = {m.id for m in the_plan.tables["bat_nt_to_all"].rows}
    assert "efficientnet_b4_radam+two_gen_bat/c23-NT" in ids and "xception_radam/c23-NT" in ids
    assert {m.id for m in the_plan.tables["bat_all_qualities"].rows} == {
        "efficientnet_b4_radam/raw+c23+c40", "efficientnet_b4_radam+two_gen_bat/raw+c23+c40"}
