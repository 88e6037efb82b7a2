# The dataset: build the embedded demo (kind: demo) and index the FF++ layout.


if IS_DEMO:

    rule demo_dataset:
        """Build the embedded demo dataset in FF++ layout (offline, deterministic)."""
        output:
            DEMO_MANIFEST,
        params:
            demo=config["demo"],
            dataset=DATASET,
            seed=config["seed"],
            ffmpeg=config["ffmpeg"],
        log:
            "logs/dataset/demo.log",
        benchmark:
            "benchmarks/dataset/demo.tsv"
        threads: 2
        resources:
            **rule_resources("cpu"),
        conda:
            "../envs/dfrobust.yaml"
        script:
            "../workflow_scripts/build_demo.py"


rule dataset_index:
    """Every (video, quality) of the configured splits, methods and qualities,
    with what is missing reported (error or warning per dataset.on_missing)."""
    input:
        dataset_inputs,
    output:
        index="results/dataset/index.csv",
        missing="results/dataset/missing.csv",
    params:
        dataset=DATASET,
    log:
        "logs/dataset/index.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/dataset_index.py"
