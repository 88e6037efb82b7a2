"""config/protocols/two_branch.yaml, overlaid on config/ffpp.yaml, dry-run against fixture trees
in each dataset's published layout: every table is a target, and the plan holds exactly the
train, face, score, metrics and table jobs the paper's tables need (counts stated with their reasons)."""

from __future__ import annotations

from conftest import job_counts
from protocols import dry_run, trees  # noqa: F401 (a fixture)

# Two models (c23, c40); faces: FF++ c23 and c40 x train/val/test (6), Celeb-DF and the DFDC
# preview's test (2). Scores and metrics: 2 models x 4 test sets.
EXPECTED = {"tables": ["two_branch", "two_branch_dfdc_preview"],
               "counts": {"train": 2, "extract_faces": 8, "score": 8, "metrics": 8, "table": 2, "dataset_index": 3,
                                  "fetch_pretrained": 1}}


def test_protocol_plans_exactly_its_tables_jobs(trees, tmp_path):  # noqa: F811
    proc = dry_run("two_branch", trees, tmp_path, *(f"results/tables/{name}.csv" for name in EXPECTED["tables"]))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    assert {rule: counts.get(rule, 0) for rule in EXPECTED["counts"]} == EXPECTED["counts"], counts
    # clean copies only: no processed test copy is made for these tables
    assert "distort_copy" not in counts
