# Scoring and metrics: one job per (detector, training quality, operation).


def _op(op, key, default=None):
    return op.get(key, default) if isinstance(op, dict) else getattr(op, key, default)


OPERATION_CELLS = {
    _op(op, "name"): {k: _op(op, k) for k in ("category", "sweep", "level") if _op(op, k) is not None}
    for op in OPERATIONS
}


rule score:
    """Run one trained model on every face of one test copy (one row per frame)."""
    input:
        model="results/models/{method}/{quality}/weights.pt",
        faces=lambda wc: distorted_shards(wc.operation),
    output:
        "results/scores/{method}/{quality}/{operation}.csv",
    params:
        scoring=config["scoring"],
    log:
        "logs/score/{method}/{quality}/{operation}.log",
    benchmark:
        "benchmarks/score/{method}/{quality}/{operation}.tsv"
    wildcard_constraints:
        method="|".join(DETECTOR_NAMES) or "none",
        operation=OPERATION_RE,
    threads: 1
    resources:
        **rule_resources("gpu"),
    script:
        "../workflow_scripts/score.py"


rule metrics:
    """Video/frame AUC, EER, AP, low-FAR metrics, bootstrap CI, per-manipulation AUC."""
    input:
        scores="results/scores/{method}/{quality}/{operation}.csv",
        model="results/models/{method}/{quality}/weights.pt",
    output:
        "results/metrics/{method}/{quality}/{operation}.json",
    params:
        evaluation=config["evaluation"],
        cell=lambda wc: {"method": wc.method, "train_quality": wc.quality, "operation": wc.operation,
                         **OPERATION_CELLS[wc.operation]},
    log:
        "logs/metrics/{method}/{quality}/{operation}.log",
    wildcard_constraints:
        method="|".join(DETECTOR_NAMES) or "none",
        operation=OPERATION_RE,
    localrule: True
    script:
        "../workflow_scripts/metrics.py"
