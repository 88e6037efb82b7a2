# The datasets: build the embedded demos (kind demo, demo_celebdf) and index
# every dataset in its own layout.


rule demo_dataset:
    """Build an embedded demo dataset (offline, deterministic) in its dataset's layout."""
    output:
        "{root}/demo_manifest.json",
    params:
        dataset=lambda wc: dataset_block(next(n for n in DEMO_BUILDS if DATASETS[n].cfg["root"] == wc.root)),
        demo=lambda wc: config[demo_block(wc.root)],
        look=lambda wc: config["demo"] if demo_block(wc.root) != "demo" else None,
        seed=config["seed"],
        ffmpeg=config["ffmpeg"],
    wildcard_constraints:
        root=names_regex([DATASETS[n].cfg["root"] for n in DEMO_BUILDS]),
    log:
        "logs/datasets/demo_{root}.log",
    benchmark:
        "benchmarks/datasets/demo_{root}.tsv"
    threads: 2
    resources:
        **rule_resources("cpu"),
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/build_demo.py"


rule dataset_index:
    """Every (video, quality) of one dataset, with what is missing reported
    (error or warning per its on_missing)."""
    input:
        dataset_inputs,
    output:
        index="results/datasets/{dataset}/index.csv",
        missing="results/datasets/{dataset}/missing.csv",
    params:
        dataset=lambda wc: dataset_block(wc.dataset),
    log:
        "logs/datasets/{dataset}/index.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/dataset_index.py"
