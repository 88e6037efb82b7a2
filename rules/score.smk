# Scoring and metrics: one job per (detector, training quality, operation).


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
    conda:
        "../envs/dfrobust.yaml"
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
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/metrics.py"
