# The datasets: build the embedded demos (kind demo, demo_celebdf) and index
# every dataset in its own layout.


rule demo_dataset:
    """Build an embedded demo dataset (offline, deterministic) in its dataset's layout."""
    output:
        LAYOUT.demo_manifest,
    params:
        dataset=lambda wc: dataset_block(demo_of(wc.root)),
        demo=lambda wc: config[PLAN.datasets[demo_of(wc.root)].kind],
        look=lambda wc: config["demo"] if PLAN.datasets[demo_of(wc.root)].kind != "demo" else None,
        seed=config["seed"],
        ffmpeg=config["ffmpeg"],
    wildcard_constraints:
        root=names_regex([d.cfg["root"] for d in PLAN.datasets.values() if d.is_demo]),
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
        index=LAYOUT.index,
        missing=LAYOUT.missing,
    params:
        dataset=lambda wc: dataset_block(wc.dataset),
    log:
        "logs/datasets/{dataset}/index.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/dataset_index.py"
