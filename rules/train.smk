# Training: one model per (detector, training quality) listed in config `models`.

rule train:
    """Train one detector on the train faces of one quality; select the epoch on
    val (never test); checkpoint every epoch and resume after a restart."""
    input:
        train=lambda wc: face_shards(wc.quality, "train"),
        val=lambda wc: face_shards(wc.quality, "val"),
        pretrained=lambda wc: pretrained_marker(wc.method),
    output:
        weights="results/models/{method}/{quality}/weights.pt",
        hparams="results/models/{method}/{quality}/hparams.json",
        history="results/models/{method}/{quality}/log.csv",
        curve=report(
            "results/models/{method}/{quality}/curve.png",
            caption="../report/curve.rst",
            category="Training curves",
            subcategory="{method}",
            labels={"detector": "{method}", "training set": "{quality}"},
        ),
    params:
        detector=lambda wc: config["detectors"][wc.method],
        seed=config["seed"],
    log:
        "logs/train/{method}/{quality}.log",
    benchmark:
        "benchmarks/train/{method}/{quality}.tsv"
    wildcard_constraints:
        method="|".join(DETECTOR_NAMES) or "none",
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
    """Every model of Table I's rows."""
    input:
        [f"results/models/{m}/{q}/weights.pt" for m, q in MODELS],


rule pretrained:
    """Fetch the ImageNet weights of every model's detector with `pretrained: true`
    (run it where the internet is reachable, e.g. a login node)."""
    input:
        sorted({marker for method, _ in MODELS for marker in pretrained_marker(method)}),
    localrule: True
