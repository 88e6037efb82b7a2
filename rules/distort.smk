# Processed copies of test sets: every operation applied to the whole stream of
# every test video of a (dataset, quality); faces cropped from the frames the
# test protocol samples (the clean test faces' frames). Identity operations
# (clean) need no copy: they are scored on the clean test faces themselves.
#
# Default (operations.one_decode: false): one job per (operation, shard) whose
# params hold only that operation's resolved config, so adding or editing an
# operation reruns exactly its own jobs. one_decode: true: one job per shard
# decodes each video once for all operations (less total work; any operation
# change reruns them all).

CLEAN_TEST_FACES = "results/faces/{dataset}/{quality}/test/shard_{shard}.npz"
# per-frame operations (Operation.scope) start from the sampled frames the test face job stored
CLEAN_TEST_FRAMES = stored_frames("{dataset}", "{quality}", "{shard}")
PROCESSED = [name for name in OPERATION_NAMES if name not in IDENTITY]


if config["operations"]["one_decode"]:

    rule distort_shard_all:
        """Every operation on one shard, each video decoded once (split into one branch per operation)."""
        input:
            faces=CLEAN_TEST_FACES,
            index=lambda wc: index_of(wc.dataset),
            frames=CLEAN_TEST_FRAMES if FROM_STORED_FRAMES & set(PROCESSED) else [],
        output:
            npz=[f"results/distorted/{{dataset}}/{{quality}}/{name}/shard_{{shard}}.npz" for name in PROCESSED],
            json=[f"results/distorted/{{dataset}}/{{quality}}/{name}/shard_{{shard}}.json" for name in PROCESSED],
            videos=[directory(f"results/distorted_videos/{{dataset}}/{{quality}}/{name}/shard_{{shard}}")
                    for name in KEPT_OPERATIONS],
        params:
            operations=[OPERATION_PARAMS[name] for name in PROCESSED],
            kept=KEPT_OPERATIONS,
            faces=FACES,
            ffmpeg=config["ffmpeg"],
        log:
            "logs/distorted/{dataset}/{quality}/one_decode/shard_{shard}.log",
        benchmark:
            "benchmarks/distorted/{dataset}/{quality}/one_decode/shard_{shard}.tsv"
        threads: 1
        resources:
            **rule_resources(COPY_FAMILY),
        conda:
            "../envs/dfrobust.yaml"
        script:
            "../workflow_scripts/distort_copy.py"

else:

    rule distort_copy:
        """One operation on one shard of the clean test faces (same videos, frames and boxes)."""
        input:
            faces=CLEAN_TEST_FACES,
            index=lambda wc: index_of(wc.dataset),
            frames=lambda wc: CLEAN_TEST_FRAMES.format(**wc) if wc.operation in FROM_STORED_FRAMES else [],
        output:
            npz="results/distorted/{dataset}/{quality}/{operation}/shard_{shard}.npz",
            json="results/distorted/{dataset}/{quality}/{operation}/shard_{shard}.json",
        params:
            operation=lambda wc: OPERATION_PARAMS[wc.operation],
            faces=FACES,
            ffmpeg=config["ffmpeg"],
        wildcard_constraints:
            operation=names_regex(set(PROCESSED) - set(KEPT_OPERATIONS)),
        log:
            "logs/distorted/{dataset}/{quality}/{operation}/shard_{shard}.log",
        benchmark:
            "benchmarks/distorted/{dataset}/{quality}/{operation}/shard_{shard}.tsv"
        threads: 1
        resources:
            **rule_resources(COPY_FAMILY),
        conda:
            "../envs/dfrobust.yaml"
        script:
            "../workflow_scripts/distort_copy.py"

    use rule distort_copy as distort_copy_kept with:
        """The same for an operation with keep_videos: its full processed videos are an output too."""
        output:
            npz="results/distorted/{dataset}/{quality}/{operation}/shard_{shard}.npz",
            json="results/distorted/{dataset}/{quality}/{operation}/shard_{shard}.json",
            videos=directory("results/distorted_videos/{dataset}/{quality}/{operation}/shard_{shard}"),
        params:
            operation=lambda wc: OPERATION_PARAMS[wc.operation],
            kept=lambda wc: [wc.operation],
            faces=FACES,
            ffmpeg=config["ffmpeg"],
        wildcard_constraints:
            operation=names_regex(set(KEPT_OPERATIONS) & set(PROCESSED)),


rule distorted:
    """All processed copies: one row per (operation, video), and the operations in column order."""
    input:
        [path for d, q, op in COPIES for path in copy_shards(d, q, op, "json")],
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
        faces=face_shards(MAIN, BASE_QUALITY, "test")[0],
        index=index_of(MAIN),
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
