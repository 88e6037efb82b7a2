# Training: one model per (detector, training quality) listed in config `models`.

MODELS = [(m["method"], m["quality"]) for m in config["models"]]
DETECTOR_NAMES = sorted({method for method, _ in MODELS})


def model_dir(method, quality):
    return f"results/models/{method}/{quality}"


rule train:
    """Train one detector on the train faces of one quality; select the epoch on
    val (never test); checkpoint every epoch and resume after a restart."""
    input:
        train=lambda wc: face_shards(wc.quality, "train"),
        val=lambda wc: face_shards(wc.quality, "val"),
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
    threads: 2
    resources:
        **rule_resources("gpu"),
    script:
        "../workflow_scripts/train.py"


rule models:
    """Every model of Table I's rows."""
    input:
        [f"{model_dir(m, q)}/weights.pt" for m, q in MODELS],
