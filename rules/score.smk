# Scoring and metrics: one job per (detector, training quality, operation).


def _op(op, key, default=None):
    return op.get(key, default) if isinstance(op, dict) else getattr(op, key, default)


OPERATION_NAMES = [_op(op, "name") for op in OPERATIONS]
OPERATION_CELLS = {
    _op(op, "name"): {k: _op(op, k) for k in ("category", "sweep", "level") if _op(op, k) is not None}
    for op in OPERATIONS
}


def distorted_copy(operation):
    return [f"results/distorted/{operation}/shard_{k:03d}.npz" for k in range(planned_shards("test"))]


rule score:
    """Run one trained model on every face of one test copy (one row per frame)."""
    input:
        model="results/models/{method}/{quality}/weights.pt",
        faces=lambda wc: distorted_copy(wc.operation),
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
    threads: 1
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
    script:
        "../workflow_scripts/metrics.py"
