# Face extraction and alignment, one job per (dataset, quality, split, shard).


rule extract_faces:
    """Sample frames evenly, find the largest face, 68 landmarks, 1.3x square crop."""
    input:
        index=lambda wc: index_of(wc.dataset),
    output:
        npz="results/faces/{dataset}/{quality}/{split}/shard_{shard}.npz",
        json="results/faces/{dataset}/{quality}/{split}/shard_{shard}.json",
    params:
        faces=FACES,
        ffmpeg=config["ffmpeg"],
        planned_shards=lambda wc: planned_shards(wc.dataset, wc.split),
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
        [path for d, q, s in sorted(PLAN.face_keys()) for path in face_shards(d, q, s, "json")],
    output:
        "results/faces/summary.csv",
    log:
        "logs/faces/summary.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/faces_summary.py"
