# The functions the rules call: what a job reads (input functions), what its
# params are, and what it asks the batch system for. Paths are the plan's
# layout (LAYOUT); which jobs exist is the plan's (PLAN), both set up in the
# Snakefile.

FACES = config["faces"]
# RetinaFace (SBI's boxes, or the face detector itself) is a GPU network: 16-52 s a frame on a CPU
FACE_FAMILY = "gpu" if FACES["retinaface"]["weights"] or FACES["detector"] == "retinaface" else "cpu"
# test copies find faces again only with operations.faces: redetect (else they reuse the clean boxes)
COPY_FAMILY = FACE_FAMILY if config["operations"]["faces"] == "redetect" else "cpu"
GPU_THREADS = config["resources"]["gpu"]["cpus_per_gpu"]  # what SLURM gives a GPU job, reserved locally too


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


# --- datasets ---
def dataset_block(name):
    """The config block of a dataset, with its kind and name (what its jobs get as params)."""
    return {**PLAN.datasets[name].cfg, "name": name}


def dataset_inputs(wildcards):
    """What a dataset's index depends on: its demo build, or its split / label files."""
    dataset = PLAN.datasets[wildcards.dataset]
    if dataset.is_demo:
        return [LAYOUT.demo_manifest.format(root=dataset.cfg["root"])]
    return [str(path) for path in reader(dataset.kind).label_files(dataset.cfg)]


def demo_of(root):
    """The name of the demo dataset built under `root`."""
    return next(n for n, d in PLAN.datasets.items() if d.is_demo and d.cfg["root"] == root)


# --- faces and test copies ---
def index_of(wildcards):
    return LAYOUT.index.format(dataset=wildcards.dataset)


def stored_frames_input(wildcards):
    """The sampled clean frames a per-frame operation's copy starts from (its shard's face job stored them)."""
    if not PLAN.operations[wildcards.operation].from_stored_frames:
        return []
    return LAYOUT.faces_frames.format(**{k: wildcards[k] for k in ("dataset", "quality", "split", "shard")})


def copy_of_operation(name, ext):
    """A copy shard's template for one operation (the one-decode job writes every operation's)."""
    return LAYOUT.shard("copy", ext).replace("{operation}", name)


# --- models ---
def model_of(wildcards):
    return PLAN.models[f"{wildcards.model}/{wildcards.trainset}"]


def training_faces(split):
    def faces(wildcards):
        return [p for q in model_of(wildcards).qualities for p in PLAN.face_shards(PLAN.main, q, split)]

    return faces


def pretrained_inputs(wildcards):
    """What training a model waits for: the fetched ImageNet weights (`pretrained: true` in the
    model's own settings), or the weights file `pretrained` names; one under results/models/ is a
    model of `pretraining`, trained first (dfrobust.plan.check_pretrained_weights)."""
    model = model_of(wildcards)
    pretrained = model.detector_cfg(config["detectors"])["pretrained"]
    if isinstance(pretrained, str):
        return [pretrained]
    fetch = model.fetch(config["detectors"])
    return [LAYOUT.fetched.format(fetch=fetch[0])] if fetch else []


# fetch name -> (detector, the block whose `pretrained: true` weights it downloads)
FETCHES = {fetch[0]: (m.method, fetch[1]) for m in PLAN.models.values() if (fetch := m.fetch(config["detectors"]))}


# --- scores, metrics, tables ---
def weights_input(wildcards):
    """The weights a model's scores come from: its weights.pt, or the file its row names
    (a model trained elsewhere: no train job; the file's checksum goes into the metrics' provenance)."""
    model = model_of(wildcards)
    return LAYOUT.model_weights(model.id) if model.trains else model.weights


def scoring_pretrained(wildcards):
    """What a weights file's detector takes from `pretrained` (capsule_forensics: the VGG19
    extractor its file lacks); nothing for a trained model (its weights.pt holds every weight)."""
    return [] if model_of(wildcards).trains else pretrained_inputs(wildcards)


def scoring_weights(wildcards):
    """How a score job reads a weights file (detector, format, settings); None for a trained model."""
    return model_of(wildcards).scoring(config["detectors"])


def test_set_scores(wildcards):
    return PLAN.score_files(f"{wildcards.model}/{wildcards.trainset}", wildcards.test_set, wildcards.operation)


def test_set_shards(wildcards):
    """The summaries of the shards a test set's score files were made from (what was excluded, and why)."""
    return PLAN.test_set_shards(wildcards.test_set, wildcards.operation)


def threshold_scores(wildcards):
    """The score files a "test-from-valid" column chooses its recall thresholds on (none for others)."""
    return PLAN.threshold_score_files(f"{wildcards.model}/{wildcards.trainset}", wildcards.test_set, wildcards.operation)


def metrics_cell(wildcards):
    """What a metrics file is about: the model, the test set and the operation."""
    model = model_of(wildcards)
    weights = {} if model.trains else {"weights": model.weights, "format": model.format}
    return {"method": wildcards.model, "train_quality": wildcards.trainset, **weights,
            **PLAN.metrics_cell(wildcards.test_set, wildcards.operation)}


def table_name(wildcards):
    return next(name for name in PLAN.tables if LAYOUT.table_stem(name) == wildcards.table)


def table_spec(wildcards):
    """A table as plain data (what its job gets, so editing it reruns only it)."""
    return PLAN.tables[table_name(wildcards)].spec(config["report"]["decimals"])
