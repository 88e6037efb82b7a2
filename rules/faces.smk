# Face extraction and alignment, one job per (quality, split, shard).


rule extract_faces:
    """Sample frames evenly, find the largest face, 68 landmarks, 1.3x square crop."""
    input:
        index="results/dataset/index.csv",
    output:
        npz="results/faces/{quality}/{split}/shard_{shard}.npz",
        json="results/faces/{quality}/{split}/shard_{shard}.json",
    params:
        faces=FACES,
        ffmpeg=config["ffmpeg"],
        planned_shards=lambda wc: planned_shards(wc.split),
    log:
        "logs/faces/{quality}/{split}/shard_{shard}.log",
    benchmark:
        "benchmarks/faces/{quality}/{split}/shard_{shard}.tsv"
    threads: 1
    resources:
        **rule_resources("cpu"),
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/extract_faces.py"


rule faces:
    """All face shards and a per-video summary (frames found / missed, exclusions)."""
    input:
        [face_shards(q, s, "json") for q in QUALITIES for s in SPLITS],
    output:
        "results/faces/summary.csv",
    log:
        "logs/faces/summary.log",
    localrule: True
    conda:
        "../envs/dfrobust.yaml"
    script:
        "../workflow_scripts/faces_summary.py"
