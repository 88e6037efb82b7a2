# Scoring and metrics: a model scores each (dataset, quality, operation) copy
# once; the metrics of each test set (a manipulation subset is a filter) are
# computed from that score file.


rule score:
    """Run one trained model on every face of one test copy (one row per frame)."""
    input:
        model="results/models/{model}/{trainset}/weights.pt",
        faces=lambda wc: copy_shards(wc.dataset, wc.quality, wc.operation),
    output:
        "results/scores/{model}/{trainset}/{dataset}/{quality}/{operation}.csv",
    params:
        scoring=config["scoring"],
        compute=config["compute"],
    log:
        "logs/score/{model}/{trainset}/{dataset}/{quality}/{operation}.log",
    benchmark:
        "benchmarks/score/{model}/{trainset}/{dataset}/{quality}/{operation}.tsv"
    wildcard_constraints:
        model=names_regex(MODEL_NAMES),
        trainset=names_regex(TRAINSETS),
        operation=names_regex(OPERATION_NAMES),
    threads: 1
    resources:
        **rule_resources("gpu", runtime=config["resources"]["gpu"]["score_runtime"]),
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/score.py"


rule metrics:
    """Video/frame AUC, EER, AP, low-FAR metrics, bootstrap CI, per-manipulation AUC."""
    input:
        scores=lambda wc: score_file(f"{wc.model}/{wc.trainset}", PLAN.test_sets[wc.test_set].dataset,
                                     PLAN.test_sets[wc.test_set].quality, wc.operation),
        model="results/models/{model}/{trainset}/weights.pt",
    output:
        "results/metrics/{model}/{trainset}/{test_set}/{operation}.json",
    params:
        evaluation=config["evaluation"],
        cell=metrics_cell,
    log:
        "logs/metrics/{model}/{trainset}/{test_set}/{operation}.log",
    wildcard_constraints:
        model=names_regex(MODEL_NAMES),
        trainset=names_regex(TRAINSETS),
        test_set=names_regex(PLAN.test_sets),
        operation=names_regex(OPERATION_NAMES),
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/metrics.py"
