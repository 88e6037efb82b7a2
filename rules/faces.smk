# Face extraction and alignment, one job per (dataset, quality, split, shard).
# A shard's job also stores its sampled frames (losslessly, in the video's own
# pixel format: dfrobust.media.framestore) when test copies of its (dataset,
# quality, split) start from them (per-frame operations, rules/distort.smk);
# every other shard's frames file is an empty archive.

STORED_FRAMES = PLAN.stored_frames()


rule extract_faces:
    """Sample frames evenly, find the largest face, 68 landmarks, 1.3x square crop."""
    input:
        index=index_of,
    output:
        npz=LAYOUT.faces_npz,
        json=LAYOUT.faces_json,
        frames=LAYOUT.faces_frames,
    params:
        faces=lambda wc: PLAN.datasets[wc.dataset].faces(FACES),
        ffmpeg=config["ffmpeg"],
        planned_shards=lambda wc: PLAN.shards(wc.dataset, wc.split),
        store_frames=lambda wc: (wc.dataset, wc.quality, wc.split) in STORED_FRAMES,
        masks=lambda wc: PLAN.keeps_masks(wc.dataset, wc.split),
    log:
        "logs/faces/{dataset}/{quality}/{split}/shard_{shard}.log",
    benchmark:
        "benchmarks/faces/{dataset}/{quality}/{split}/shard_{shard}.tsv"
    threads: 1
    resources:
        **rule_resources(FACE_FAMILY),
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/extract_faces.py"


rule faces:
    """Every face shard the run needs, and a per-video summary (frames found / missed, exclusions)."""
    input:
        [path for d, q, s in sorted(PLAN.face_keys()) for path in PLAN.face_shards(d, q, s, "json")],
    output:
        LAYOUT.faces_summary,
    log:
        "logs/faces/summary.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/faces_summary.py"
