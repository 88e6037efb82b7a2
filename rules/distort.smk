# Processed copies of test sets: every operation applied to the whole stream of
# every video of a (dataset, quality, split); faces cropped from the frames
# the test protocol samples (the clean faces' frames). Identity operations
# (clean) need no copy: they are scored on the clean faces themselves.
#
# Default (operations.one_decode: false): one job per (operation, shard) whose
# params hold only that operation's resolved config, so adding or editing an
# operation reruns exactly its own jobs. one_decode: true: one job per shard
# decodes each video once for all operations (less total work; any operation
# change reruns them all).

OPERATION_PARAMS = {name: op.params() for name, op in PLAN.operations.items()}
PROCESSED = [name for name, op in PLAN.operations.items() if not op.is_identity]
KEPT = [name for name in PROCESSED if PLAN.operations[name].keep_videos]  # their full videos are outputs too


if config["operations"]["one_decode"]:

    rule distort_shard_all:
        """Every operation on one shard, each video decoded once (split into one branch per operation)."""
        input:
            faces=LAYOUT.faces_npz,
            index=index_of,
            frames=LAYOUT.faces_frames if any(PLAN.operations[n].from_stored_frames for n in PROCESSED) else [],
        output:
            npz=[copy_of_operation(name, "npz") for name in PROCESSED],
            json=[copy_of_operation(name, "json") for name in PROCESSED],
            videos=[directory(LAYOUT.copy_videos.replace("{operation}", name)) for name in KEPT],
        params:
            operations=[OPERATION_PARAMS[name] for name in PROCESSED],
            kept=KEPT,
            faces=FACES,
            ffmpeg=config["ffmpeg"],
        log:
            "logs/distorted/{dataset}/{quality}/{split}/one_decode/shard_{shard}.log",
        benchmark:
            "benchmarks/distorted/{dataset}/{quality}/{split}/one_decode/shard_{shard}.tsv"
        threads: 1
        resources:
            **rule_resources(COPY_FAMILY),
        conda:
            "../envs/dfrobust.yaml"
        script:
            "../workflow_scripts/distort_copy.py"

else:

    rule distort_copy:
        """One operation on one shard of the clean faces (same videos, frames and boxes)."""
        input:
            faces=LAYOUT.faces_npz,
            index=index_of,
            frames=stored_frames_input,
        output:
            npz=LAYOUT.copy_npz,
            json=LAYOUT.copy_json,
        params:
            operation=lambda wc: OPERATION_PARAMS[wc.operation],
            faces=FACES,
            ffmpeg=config["ffmpeg"],
        wildcard_constraints:
            operation=names_regex(set(PROCESSED) - set(KEPT)),
        log:
            "logs/distorted/{dataset}/{quality}/{split}/{operation}/shard_{shard}.log",
        benchmark:
            "benchmarks/distorted/{dataset}/{quality}/{split}/{operation}/shard_{shard}.tsv"
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
            npz=LAYOUT.copy_npz,
            json=LAYOUT.copy_json,
            videos=directory(LAYOUT.copy_videos),
        params:
            operation=lambda wc: OPERATION_PARAMS[wc.operation],
            kept=lambda wc: [wc.operation],
            faces=FACES,
            ffmpeg=config["ffmpeg"],
        wildcard_constraints:
            operation=names_regex(KEPT),


rule distorted:
    """All processed copies: one row per (operation, video), and the operations in column order."""
    input:
        [path for d, q, s, op in PLAN.copies() for path in PLAN.copy_shards(d, q, s, op, "json")],
    output:
        summary=LAYOUT.copies_summary,
        operations=LAYOUT.copies_operations,
    params:
        operations=list(PLAN.operations),
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
        faces=PLAN.face_shards(*PLAN.copies_of(PLAN.table1_test_set.name)[0])[0],
        index=LAYOUT.index.format(dataset=PLAN.main),
    output:
        LAYOUT.figure.format(figure="operations"),
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
