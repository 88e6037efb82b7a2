# Shared setup: the validated config, the plan of the run (datasets, models,
# test sets, tables: dfrobust.plan), file names and helpers of the rules.
import os
import re as _re
import sys

# the checkout envs/dfrobust.post-deploy.sh installs into a rule's conda environment (--sdm conda)
os.environ["DFROBUST_REPO"] = workflow.basedir

from dfrobust.config import validate_config
from dfrobust.core.errors import InputError
from dfrobust.datasets import ffpp, reader
from dfrobust.demo import planned_counts
from dfrobust.media.crops import resolve_faces
from dfrobust.media.operations import expand_operations
from dfrobust.plan import build_plan, weights_of
from snakemake.exceptions import WorkflowError

try:
    _validated = validate_config(config)
    OPERATIONS = expand_operations(_validated["operations"])
    PLAN = build_plan(_validated, [op.name for op in OPERATIONS], lambda kind, cfg: planned_counts(kind, cfg, _validated))
    # the stored crop holds the largest crop any model's detector takes (SBI's RetinaFace box, its margins)
    _validated["faces"], _crop_notes = resolve_faces(
        _validated["faces"], [(m.method, m.detector_cfg(_validated["detectors"])) for m in PLAN.models.values()])
except InputError as _error:
    raise WorkflowError(str(_error)) from None
for _note in _crop_notes:
    print(f"note: {_note}", file=sys.stderr)
config.clear()
config.update(_validated)

FACES = config["faces"]
# RetinaFace (SBI's boxes, or the face detector itself) is a GPU network: 16-52 s a frame on a CPU
RETINAFACE = bool(FACES["retinaface"]["weights"]) or FACES["detector"] == "retinaface"
FACE_FAMILY = "gpu" if RETINAFACE else "cpu"
SPLITS = list(ffpp.SPLITS)
DATASETS = PLAN.datasets
DEMO_BUILDS = [name for name, d in DATASETS.items() if d.is_demo]
MAIN = PLAN.main


def names_regex(names):
    """A wildcard constraint matching exactly these names (never the empty string)."""
    return "|".join(_re.escape(name) for name in sorted(names, key=len, reverse=True)) or "(?!)"


wildcard_constraints:
    dataset=names_regex(DATASETS),
    quality=names_regex({q for d in DATASETS.values() for q in d.qualities}),
    split="|".join(ffpp.SPLITS),
    shard=r"\d{3}",


def dataset_block(name):
    """The config block of a dataset, with its kind and name (what its jobs get as params)."""
    return {**DATASETS[name].cfg, "name": name}


def demo_manifest(name):
    return f"{DATASETS[name].cfg['root']}/demo_manifest.json"


def index_of(name):
    return f"results/datasets/{name}/index.csv"


def planned_shards(dataset, split):
    return DATASETS[dataset].shards(split, FACES["shard_size"])


def face_shards(dataset, quality, split, ext="npz"):
    return [f"results/faces/{dataset}/{quality}/{split}/shard_{k:03d}.{ext}" for k in range(planned_shards(dataset, split))]


def rule_resources(family, **overrides):
    """What a job of `family` ("cpu" or "gpu") asks the batch system for, from
    config `resources` (src/dfrobust/core/schema/resources.yaml, docs/cluster.md). Use as

        resources: **rule_resources("gpu")

    Memory grows with each retry (Snakemake's `attempt`) by
    resources.retry_mem_factor; settings left null are omitted, so the
    profile's default-resources apply to them."""
    families = {k: v for k, v in config["resources"].items() if isinstance(v, dict)}
    if family not in families:
        raise WorkflowError(f"rule_resources: unknown family '{family}' (config resources has {sorted(families)})")
    settings = {k: v for k, v in families[family].items() if v is not None and k != "score_runtime"}
    settings.update(overrides)
    base_mb = settings.pop("mem_mb")
    factor = config["resources"]["retry_mem_factor"]

    def mem_mb(wildcards, attempt):
        return int(base_mb * factor ** (attempt - 1))

    return {**settings, "mem_mb": mem_mb}


# --- operations: processed copies of test sets (rules/distort.smk) ---
OPERATION_PARAMS = {op.name: op.params() for op in OPERATIONS}
OPERATION_NAMES = list(OPERATION_PARAMS)
IDENTITY = {op.name for op in OPERATIONS if op.is_identity}  # scored straight from the face shards
KEPT_OPERATIONS = [op.name for op in OPERATIONS if op.keep_videos]  # their full videos are outputs too
BASE_QUALITY = config["operations"]["base_quality"]
# test copies find faces again only with operations.faces: redetect (else they reuse the clean boxes)
COPY_FAMILY = FACE_FAMILY if config["operations"]["faces"] == "redetect" else "cpu"


def copy_shards(dataset, quality, operation, ext="npz"):
    """The face shards of one test copy: the clean test faces for an identity
    operation, else the processed copy (one shard per clean test shard)."""
    if operation in IDENTITY:
        return face_shards(dataset, quality, "test", ext)
    return [f"results/distorted/{dataset}/{quality}/{operation}/shard_{k:03d}.{ext}"
            for k in range(planned_shards(dataset, "test"))]


COPIES = sorted({(d, q, op) for _, d, q, op in PLAN.score_keys() if op not in IDENTITY})
FROM_STORED_FRAMES = {op.name for op in OPERATIONS if op.from_stored_frames}
# (dataset, quality) whose test face shards also store the sampled frames (dfrobust.media.framestore)
STORED_FRAMES = {(d, q) for d, q, op in COPIES if op in FROM_STORED_FRAMES}


def stored_frames(dataset, quality, shard):
    """The sampled clean frames of one test shard (written by its face job: rules/faces.smk)."""
    return f"results/faces/{dataset}/{quality}/test/shard_{shard}.frames.zip"


# --- models: the rows of the tables (rules/train.smk, score.smk, report.smk) ---
GPU_THREADS = config["resources"]["gpu"]["cpus_per_gpu"]  # what SLURM gives a GPU job, reserved locally too
MODELS = PLAN.models  # id ("xception/c23") -> dfrobust.plan.Model
MODEL_NAMES = {m.name for m in MODELS.values()}
TRAINSETS = {m.trainset for m in MODELS.values()}
TABLE1_ROWS = [(m.name, m.trainset) for m in PLAN.table1_models]
METHOD_ORDER = list(dict.fromkeys(name for name, _ in TABLE1_ROWS))  # table rows follow config `models`
TEST_SET = PLAN.table1_test_set  # Table I's test set: the training dataset at the base quality


def model_of(wildcards):
    return MODELS[f"{wildcards.model}/{wildcards.trainset}"]


def pretrained_marker(method):
    """Training with `pretrained: true` waits for the weights to be in the local
    cache (fetched once, on the login node: compute nodes often have no internet)."""
    return [f"resources/pretrained/{method}.json"] if config["detectors"][method].get("pretrained") is True else []


def pretrained_inputs(model):
    """What training a model waits for: the fetched weights (`pretrained: true`), or
    the weights file `pretrained` names; one under results/models/ is a model of
    `pretraining`, trained first (dfrobust.plan.check_pretrained_weights)."""
    pretrained = model.detector_cfg(config["detectors"]).get("pretrained")
    return [pretrained] if isinstance(pretrained, str) else pretrained_marker(model.method)


def score_file(model_id, dataset, quality, operation):
    return f"results/scores/{model_id}/{dataset}/{quality}/{operation}.csv"


def metrics_file(model_id, test_set, operation):
    return f"results/metrics/{model_id}/{test_set}/{operation}.json"


# each Table I cell: the operation's category (and sweep/level for severity sweeps)
OPERATION_CELLS = {
    op.name: {k: getattr(op, k) for k in ("category", "sweep", "level") if getattr(op, k) is not None}
    for op in OPERATIONS
}
METRIC_FILES = [metrics_file(m.id, TEST_SET, op) for m in PLAN.table1_models for op in OPERATION_NAMES]
SCORE_FILES = [score_file(m.id, MAIN, BASE_QUALITY, op) for m in PLAN.table1_models for op in OPERATION_NAMES]
TABLE_OPERATIONS = [{"name": n, "category": OPERATION_CELLS[n].get("category", "")} for n in OPERATION_NAMES]


def demo_block(root):
    """The config block of the demo built under `root` (its kind: demo or demo_celebdf)."""
    return next(DATASETS[n].kind for n in DEMO_BUILDS if DATASETS[n].cfg["root"] == root)


def dataset_inputs(wildcards):
    """What a dataset's index depends on: its demo build, or its split / label files."""
    dataset = DATASETS[wildcards.dataset]
    if dataset.is_demo:
        return [demo_manifest(wildcards.dataset)]
    return [str(path) for path in reader(dataset.kind).label_files(dataset.cfg)]


def metrics_cell(wc):
    """What a metrics file is about: the model, the test set and the operation."""
    test_set = PLAN.test_sets[wc.test_set]
    return {"method": wc.model, "train_quality": wc.trainset, "test_set": test_set.name, "dataset": test_set.dataset,
            "quality": test_set.quality, "manipulations": list(test_set.manipulations or []) or None,
            "operation": wc.operation, **OPERATION_CELLS[wc.operation]}


def table_spec(name):
    """A table as plain data (what its job gets, so editing it reruns only it)."""
    table = PLAN.tables[name]
    return {"name": name, "title": table.title, "metrics": table.metrics,
            "rows": [{"method": m.name, "train_quality": m.trainset} for m in table.rows],
            "columns": [{"test_set": c.test_set, "operation": c.operation, "label": c.label} for c in table.columns]}


def table_metric_files(wildcards):
    table = PLAN.tables[wildcards.table]
    return [metrics_file(m.id, c.test_set, c.operation) for m in table.rows for c in table.columns]
