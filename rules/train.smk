# Training: one model per (detector, training set, procedure) any table names.


rule train:
    """Train one model on the train faces of its qualities (and manipulations);
    select the epoch on val (never test); checkpoint every epoch and resume
    after a restart."""
    input:
        train=lambda wc: [p for q in model_of(wc).qualities for p in face_shards(MAIN, q, "train")],
        val=lambda wc: [p for q in model_of(wc).qualities for p in face_shards(MAIN, q, "val")],
        pretrained=lambda wc: pretrained_inputs(model_of(wc)),
    output:
        weights="results/models/{model}/{trainset}/weights.pt",
        hparams="results/models/{model}/{trainset}/hparams.json",
        history="results/models/{model}/{trainset}/log.csv",
        curve=report(
            "results/models/{model}/{trainset}/curve.png",
            caption="../report/curve.rst",
            category="Training curves",
            subcategory="{model}",
            labels={"detector": "{model}", "training set": "{trainset}"},
        ),
    params:
        method=lambda wc: model_of(wc).method,
        detector=lambda wc: model_of(wc).detector_cfg(config["detectors"]),
        train_on=lambda wc: list(model_of(wc).train_on),
        procedure=lambda wc: model_of(wc).procedure_cfg(),
        compute=config["compute"],
        seed=config["seed"],
    log:
        "logs/train/{model}/{trainset}.log",
    benchmark:
        "benchmarks/train/{model}/{trainset}.tsv"
    wildcard_constraints:
        model=names_regex(MODEL_NAMES),
        trainset=names_regex(TRAINSETS),
    threads: GPU_THREADS
    resources:
        **rule_resources("gpu"),
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/train.py"


rule fetch_pretrained:
    """Download a detector's ImageNet weights into the timm/torch cache (local rule)."""
    output:
        "resources/pretrained/{method}.json",
    params:
        detector=lambda wc: config["detectors"][wc.method],
    log:
        "logs/pretrained/{method}.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/fetch_pretrained.py"


rule models:
    """Every model the tables need."""
    input:
        [weights_of(m) for m in MODELS.values()],
    localrule: True


rule pretrained:
    """Fetch the ImageNet weights of every model's detector with `pretrained: true`
    (run it where the internet is reachable, e.g. a login node)."""
    input:
        sorted({marker for m in MODELS.values() for marker in pretrained_marker(m.method)}),
    localrule: True
