"""config/protocols/gradreg.yaml, overlaid on config/ffpp.yaml, dry-run against fixture trees
in each dataset's published layout: every table is a target, and the plan holds exactly the
train, face, score, metrics and table jobs the paper's tables need (counts stated with their reasons)."""

from __future__ import annotations

from conftest import job_counts
from protocols import dry_run, trees  # noqa: F401 (a fixture)

# 8 cross-manipulation models (convnext_base +-PIM x 4 manipulations) + 9 cross-dataset
# (efficientnet_b4 +-PIM, convnext_base plain / PIM / DualFlat, 4 SBI) + 16 backbone rows,
# of which efficientnet_b4, +pim, convnext_base, +pim repeat cross-dataset's: 8 + 9 + 12.
# Faces: FF++ c23 train/val/test (3) and raw train/val (SBI, 2); DFD, Celeb-DF, DFDC test (3).
# Scores: clean copies only: 8 models x 1 (FF++ c23; the manipulation columns share it)
# + 21 models x 4 (FF++ c23, Celeb-DF, DFD, DFDC). Metrics: 8 x 4 + 21 x 4.
EXPECTED = {"tables": ["gradreg_cross_manipulation", "gradreg_cross_dataset", "gradreg_backbones"],
            "counts": {"train": 29, "extract_faces": 8, "score": 8 + 21 * 4, "metrics": 8 * 4 + 21 * 4, "table": 3,
                       "dataset_index": 4, "fetch_pretrained": 6}}


def test_protocol_plans_exactly_its_tables_jobs(trees, tmp_path):  # noqa: F811
    proc = dry_run("gradreg", trees, tmp_path, *(f"results/tables/{name}.csv" for name in EXPECTED["tables"]))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    assert {rule: counts.get(rule, 0) for rule in EXPECTED["counts"]} == EXPECTED["counts"], counts
    # clean copies only: no processed test copy is made for these tables
    assert "distort_copy" not in counts
