# Shared setup: validated config, the dataset plan (which shards exist), helpers.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from dfrobust.config import validate_config
from dfrobust.datasets import ffpp
from dfrobust.core.errors import InputError
from snakemake.exceptions import WorkflowError

try:
    _validated = validate_config(config)
except InputError as _error:
    raise WorkflowError(str(_error)) from None
config.clear()
config.update(_validated)

DATASET = config["dataset"]
FACES = config["faces"]
SPLITS = list(ffpp.SPLITS)
QUALITIES = DATASET["qualities"]
IS_DEMO = DATASET["kind"] == "demo"
DATASET_ROOT = DATASET["root"]
DEMO_MANIFEST = f"{DATASET_ROOT}/demo_manifest.json"
if not IS_DEMO and not Path(DATASET_ROOT).is_dir():
    raise WorkflowError(f"{DATASET_ROOT}: dataset directory does not exist (config key 'dataset.root')")

wildcard_constraints:
    quality="|".join(ffpp.QUALITIES),
    split="|".join(ffpp.SPLITS),
    shard=r"\d{3}",


def planned_videos_count():
    """Number of videos per split, known before any job runs (this is what
    lets a dry run list every face job, for the demo as for FF++)."""
    if IS_DEMO:
        return {split: 2 * config["demo"]["pairs"][split] * (1 + len(DATASET["methods"])) for split in SPLITS}
    try:
        splits = ffpp.read_splits(ffpp.splits_dir_of(DATASET))
    except InputError as error:
        raise WorkflowError(str(error)) from None
    return {split: len(ffpp.split_videos(splits[split], DATASET["methods"], split)) for split in SPLITS}


# planned once at parse time: input functions ask for it for every job
PLANNED_SHARDS = {split: ffpp.n_shards(count, FACES["shard_size"]) for split, count in planned_videos_count().items()}


def planned_shards(split):
    return PLANNED_SHARDS[split]


def face_shards(quality, split, ext="npz"):
    return [f"results/faces/{quality}/{split}/shard_{k:03d}.{ext}" for k in range(planned_shards(split))]


def dataset_inputs(wildcards=None):
    """What the index depends on: the demo build, or the split files of FF++."""
    if IS_DEMO:
        return [DEMO_MANIFEST]
    return [str(ffpp.splits_dir_of(DATASET) / f"{split}.json") for split in SPLITS]


def rule_resources(family):
    """What a job of `family` ("cpu" or "gpu") asks the batch system for, from
    config `resources` (src/dfrobust/core/schema/resources.yaml, docs/cluster.md). Use as

        resources: **rule_resources("gpu")

    Memory grows with each retry (Snakemake's `attempt`) by
    resources.retry_mem_factor; settings left null are omitted, so the
    profile's default-resources apply to them."""
    families = {k: v for k, v in config["resources"].items() if isinstance(v, dict)}
    if family not in families:
        raise WorkflowError(f"rule_resources: unknown family '{family}' (config resources has {sorted(families)})")
    settings = {k: v for k, v in families[family].items() if v is not None}
    base_mb = settings.pop("mem_mb")
    factor = config["resources"]["retry_mem_factor"]

    def mem_mb(wildcards, attempt):
        return int(base_mb * factor ** (attempt - 1))

    return {**settings, "mem_mb": mem_mb}


# --- operations: the processed copies of the test set (rules/distort.smk) ---
import re as _re

from dfrobust.media.operations import expand_operations

try:
    OPERATIONS = expand_operations(config["operations"])
except InputError as _error:
    raise WorkflowError(str(_error)) from None
OPERATION_PARAMS = {op.name: op.params() for op in OPERATIONS}
KEPT_OPERATIONS = [op.name for op in OPERATIONS if op.keep_videos]  # their full videos are outputs too
OPERATION_NAMES = list(OPERATION_PARAMS)
OPERATION_RE = "|".join(_re.escape(name) for name in OPERATION_NAMES)
BASE_QUALITY = config["operations"]["base_quality"]
if BASE_QUALITY not in QUALITIES:
    raise WorkflowError(
        f"config key 'operations.base_quality': {BASE_QUALITY!r} is not one of dataset.qualities {QUALITIES}"
    )


def names_regex(names):
    """A wildcard constraint matching exactly these names (never the empty string)."""
    return "|".join(_re.escape(name) for name in names) or "(?!)"


def distorted_shards(operation, ext="npz"):
    """The shard files of one processed copy (one per clean test shard)."""
    return [f"results/distorted/{operation}/shard_{k:03d}.{ext}" for k in range(planned_shards("test"))]


# --- models: the rows of Table I (rules/train.smk, score.smk, report.smk) ---
GPU_THREADS = config["resources"]["gpu"]["cpus_per_gpu"]  # what SLURM gives a GPU job, reserved locally too
MODELS = [(m["method"], m["quality"]) for m in config["models"]]
DETECTOR_NAMES = sorted({method for method, _ in MODELS})
METHOD_ORDER = list(dict.fromkeys(method for method, _ in MODELS))  # table rows follow config `models`
for _method, _quality in MODELS:
    if _method not in config["detectors"]:
        raise WorkflowError(f"config key 'models': detector {_method!r} has no block in 'detectors' ({sorted(config['detectors'])})")
    if _quality not in QUALITIES:
        raise WorkflowError(f"config key 'models': quality {_quality!r} of {_method} is not in dataset.qualities {QUALITIES}")


def pretrained_marker(method):
    """Training with `pretrained: true` waits for the weights to be in the local
    cache (fetched once, on the login node: compute nodes often have no internet)."""
    return [f"resources/pretrained/{method}.json"] if config["detectors"][method].get("pretrained") is True else []


# each table cell: the operation's category (and sweep/level for severity sweeps)
OPERATION_CELLS = {
    op.name: {k: getattr(op, k) for k in ("category", "sweep", "level") if getattr(op, k) is not None}
    for op in OPERATIONS
}
METRIC_FILES = [f"results/metrics/{m}/{q}/{op}.json" for m, q in MODELS for op in OPERATION_NAMES]
SCORE_FILES = [f"results/scores/{m}/{q}/{op}.csv" for m, q in MODELS for op in OPERATION_NAMES]
TABLE_OPERATIONS = [{"name": n, "category": OPERATION_CELLS[n].get("category", "")} for n in OPERATION_NAMES]
