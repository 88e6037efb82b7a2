# Scoring and metrics: a model scores each (dataset, quality, split, operation)
# copy once; the metrics of each test set (a manipulation subset is a filter)
# are computed from that one score file.


rule score:
    """Run one model (trained, or a weights file read in its format) on every face of one test copy (one row per frame)."""
    input:
        model=weights_input,
        faces=lambda wc: PLAN.copy_shards(wc.dataset, wc.quality, wc.split, wc.operation),
        pretrained=scoring_pretrained,
    output:
        LAYOUT.scores,
    params:
        weights=scoring_weights,
        scoring=config["scoring"],
        compute=config["compute"],
        operation=lambda wc: PLAN.operations[wc.operation].params(),
    log:
        "logs/score/{model}/{trainset}/{dataset}/{quality}/{split}/{operation}.log",
    benchmark:
        "benchmarks/score/{model}/{trainset}/{dataset}/{quality}/{split}/{operation}.tsv"
    threads: 1
    resources:
        **rule_resources("gpu", runtime=config["resources"]["gpu"]["score_runtime"]),
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/score.py"


rule metrics:
    """Video/frame AUC, EER, AP, low-FAR metrics, bootstrap CI, per-manipulation AUC
    (or, where no video was left to score, that and why)."""
    input:
        scores=test_set_scores,
        model=weights_input,
        shards=test_set_shards,
        thresholds=threshold_scores,
    output:
        LAYOUT.metrics,
    params:
        evaluation=config["evaluation"],
        cell=metrics_cell,
    log:
        "logs/metrics/{model}/{trainset}/{test_set}/{operation}.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/metrics.py"
