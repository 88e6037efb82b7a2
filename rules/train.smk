# Training: one model per (detector, training quality) listed in config `models`.

GPU_THREADS = config["resources"]["gpu"]["cpus_per_gpu"]  # what SLURM gives a GPU job, reserved locally too
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
    script:
        "../workflow_scripts/train.py"


def pretrained_marker(method):
    """Training with `pretrained: true` waits for the weights to be in the local
    cache (fetched once, on the login node: compute nodes often have no internet)."""
    return [f"resources/pretrained/{method}.json"] if config["detectors"][method].get("pretrained") is True else []


rule fetch_pretrained:
    """Download a detector's ImageNet weights into the timm/torch cache (local rule)."""
    output:
        "resources/pretrained/{method}.json",
    params:
        detector=lambda wc: config["detectors"][wc.method],
    log:
        "logs/pretrained/{method}.log",
    localrule: True
    script:
        "../workflow_scripts/fetch_pretrained.py"


rule models:
    """Every model of Table I's rows."""
    input:
        [f"{model_dir(m, q)}/weights.pt" for m, q in MODELS],
