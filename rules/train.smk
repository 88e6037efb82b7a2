# Training: one model per (detector, training set, procedure) any table names; a model whose
# row names `weights` (trained elsewhere) has no train job: its file is an input of its scores.


rule train:
    """Train one model on the train faces of its qualities (and manipulations);
    select the epoch on val (never test); checkpoint every epoch and resume
    after a restart."""
    input:
        train=training_faces("train"),
        val=training_faces("val"),
        pretrained=pretrained_inputs,
    output:
        weights=LAYOUT.weights,
        hparams=LAYOUT.hparams,
        history=LAYOUT.history,
        curve=report(
            LAYOUT.curve,
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
    threads: GPU_THREADS
    resources:
        **rule_resources("gpu"),
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/train.py"


rule fetch_pretrained:
    """Download a detector's ImageNet weights into the timm/torch cache (local rule): one fetch per
    detector block, and one per model whose own settings change it (another backbone)."""
    output:
        LAYOUT.fetched,
    params:
        method=lambda wc: FETCHES[wc.fetch][0],
        detector=lambda wc: FETCHES[wc.fetch][1],
    wildcard_constraints:
        fetch=names_regex(FETCHES),
    log:
        "logs/pretrained/{fetch}.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/fetch_pretrained.py"


rule models:
    """Every model the tables need that the workflow trains (not those scoring a weights file)."""
    input:
        [LAYOUT.model_weights(m.id) for m in PLAN.models.values() if m.trains],
    localrule: True


rule pretrained:
    """Fetch the ImageNet weights every model with `pretrained: true` waits for
    (run it where the internet is reachable, e.g. a login node)."""
    input:
        [LAYOUT.fetched.format(fetch=fetch) for fetch in sorted(FETCHES)],
    localrule: True
