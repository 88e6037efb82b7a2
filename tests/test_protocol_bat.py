"""config/protocols/bat.yaml, overlaid on config/ffpp.yaml, dry-run against fixture trees
in each dataset's published layout: every table is a target, and the plan holds exactly the
train, face, score, metrics and table jobs the paper's tables need (counts stated with their reasons)."""

from __future__ import annotations

from conftest import job_counts
from protocols import dry_run, trees  # noqa: F401 (a fixture)

# Models: NT-trained c23 efficientnet_b4_radam plain + 6 procedures, xception plain + Two-Gen-BAT (9);
# cross-quality plain / Two-Gen-BAT x raw, c23, c40 (6); all qualities (2); the NT augmentation
# table adds 4 baselines (its plain and Two-Gen-BAT rows are Table I's), the raw one 4 more
# (its plain and Two-Gen-BAT rows are cross-quality's): 9 + 6 + 2 + 4 + 4 = 25.
# Faces: FF++ raw, c23, c40 x train/val/test (9); DFD and Celeb-DF test (2).
# Scores: NT-trained 13 models x 3 (FF++ c23, DFD, Celeb-DF); the others (12) x 3 qualities.
# Metrics: NT-trained 13 x 6 columns; the others 12 x 3.
EXPECTED = {"tables": ["bat_nt_to_all", "bat_cross_quality", "bat_all_qualities", "bat_augmentation_nt",
                   "bat_augmentation_raw"],
        "counts": {"train": 25, "extract_faces": 11, "score": 13 * 3 + 12 * 3, "metrics": 13 * 6 + 12 * 3,
                   "table": 5, "dataset_index": 3, "fetch_pretrained": 2}}


def test_protocol_plans_exactly_its_tables_jobs(trees, tmp_path):  # noqa: F811
    proc = dry_run("bat", trees, tmp_path, *(f"results/tables/{name}.csv" for name in EXPECTED["tables"]))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    assert {rule: counts.get(rule, 0) for rule in EXPECTED["counts"]} == EXPECTED["counts"], counts
    # clean copies only: no processed test copy is made for these tables
    assert "distort_copy" not in counts


def test_protocol_tables_use_the_papers_training_sets(trees):  # noqa: F811
    """The model directories name the manipulation subset and the qualities (nothing collides)."""
    from protocols import protocol_plan

    plan = protocol_plan("bat", trees)
    ids = {m.id for m in plan.tables["bat_nt_to_all"].rows}
    assert "efficientnet_b4_radam+two_gen_bat/c23-NT" in ids and "xception_radam/c23-NT" in ids
    assert {m.id for m in plan.tables["bat_all_qualities"].rows} == {
        "efficientnet_b4_radam/raw+c23+c40", "efficientnet_b4_radam+two_gen_bat/raw+c23+c40"}
