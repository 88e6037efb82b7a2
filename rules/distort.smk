# Processed copies of the test set: every operation applied to the whole stream
# of every test video of the base quality; faces cropped from the frames the
# test protocol samples (the clean test faces' frames).
#
# Default (operations.one_decode: false): one job per (operation, shard) whose
# params hold only that operation's resolved config, so adding or editing an
# operation reruns exactly its own jobs. one_decode: true: one job per shard
# decodes each video once for all operations (less total work; any operation
# change reruns them all).

BASE_TEST_FACES = f"results/faces/{BASE_QUALITY}/test/shard_{{shard}}.npz"


if config["operations"]["one_decode"]:

    rule distort_shard_all:
        """Every operation on one shard, each video decoded once (split into one branch per operation)."""
        input:
            faces=BASE_TEST_FACES,
            index="results/dataset/index.csv",
        output:
            npz=[f"results/distorted/{name}/shard_{{shard}}.npz" for name in OPERATION_NAMES],
            json=[f"results/distorted/{name}/shard_{{shard}}.json" for name in OPERATION_NAMES],
            videos=[directory(f"results/distorted_videos/{name}/shard_{{shard}}") for name in KEPT_OPERATIONS],
        params:
            operations=list(OPERATION_PARAMS.values()),
            kept=KEPT_OPERATIONS,
            faces=FACES,
            ffmpeg=config["ffmpeg"],
        log:
            "logs/distorted/one_decode/shard_{shard}.log",
        benchmark:
            "benchmarks/distorted/one_decode/shard_{shard}.tsv"
        threads: 1
        resources:
            **rule_resources("cpu"),
        conda:
            "../envs/dfrobust.yaml"
        script:
            "../workflow_scripts/distort_copy.py"

else:

    rule distort_copy:
        """One operation on one shard of the clean test faces (same videos, frames and boxes)."""
        input:
            faces=BASE_TEST_FACES,
            index="results/dataset/index.csv",
        output:
            npz="results/distorted/{operation}/shard_{shard}.npz",
            json="results/distorted/{operation}/shard_{shard}.json",
        params:
            operation=lambda wc: OPERATION_PARAMS[wc.operation],
            faces=FACES,
            ffmpeg=config["ffmpeg"],
        wildcard_constraints:
            operation=names_regex(set(OPERATION_NAMES) - set(KEPT_OPERATIONS)),
        log:
            "logs/distorted/{operation}/shard_{shard}.log",
        benchmark:
            "benchmarks/distorted/{operation}/shard_{shard}.tsv"
        threads: 1
        resources:
            **rule_resources("cpu"),
        conda:
            "../envs/dfrobust.yaml"
        script:
            "../workflow_scripts/distort_copy.py"

    use rule distort_copy as distort_copy_kept with:
        """The same for an operation with keep_videos: its full processed videos are an output too."""
        output:
            npz="results/distorted/{operation}/shard_{shard}.npz",
            json="results/distorted/{operation}/shard_{shard}.json",
            videos=directory("results/distorted_videos/{operation}/shard_{shard}"),
        params:
            operation=lambda wc: OPERATION_PARAMS[wc.operation],
            kept=lambda wc: [wc.operation],
            faces=FACES,
            ffmpeg=config["ffmpeg"],
        wildcard_constraints:
            operation=names_regex(KEPT_OPERATIONS),


rule distorted:
    """All processed copies: one row per (operation, video), and the operations in column order."""
    input:
        [path for name in OPERATION_NAMES for path in distorted_shards(name, "json")],
    output:
        summary="results/distorted/summary.csv",
        operations="results/distorted/operations.csv",
    params:
        operations=OPERATION_NAMES,
    log:
        "logs/distorted/summary.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/distorted_summary.py"


rule operations_figure:
    """The same test frame under every operation in a labelled grid (the paper's Fig. 1)."""
    input:
        faces=BASE_TEST_FACES.format(shard="000"),
        index="results/dataset/index.csv",
    output:
        "results/figures/operations.png",
    params:
        operations=list(OPERATION_PARAMS.values()),
        ffmpeg=config["ffmpeg"],
    log:
        "logs/figures/operations.log",
    benchmark:
        "benchmarks/figures/operations.tsv"
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/operations_figure.py"
