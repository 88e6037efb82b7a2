"""The run's plan: which datasets, models, test sets and tables a validated
config asks for, their names, every path the workflow writes, and which jobs
they need.

The rules (rules/*.smk) build the DAG from this, before any job runs, so a
dry run lists every job. Everything here is plain data, testable without
Snakemake.

    model      (detector, training qualities, training manipulations, procedure)
               -> results/models/{name}/{trainset}/    e.g. xception/c23, efficientnet_b4/c23-NT,
                                                          convnext_base+pim/raw, xception/raw+c23+c40
               or (detector, weights file, format): trained elsewhere, no train job; its file is
               an input of its score jobs                 e.g. sbi_official/raw, xception/external
    test set   (dataset, quality, split, manipulations) e.g. ffpp_raw, ffpp_c23_NT, celebdf
    column     (test set, operation)                   the operation is `clean` unless it says otherwise
    table      rows (models) x columns x metrics       Table I is one (`table1`): its rows are `models`,
                                                       its columns the operations on the base test set

Work is shared: a test set's faces are extracted once per (dataset, quality,
split), a model scores each (dataset, quality, split, operation) copy once,
and the metrics of a test set that keeps only some manipulations are
computed from that one score file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from dfrobust.core.config import deep_update, vocabulary
from dfrobust.core.errors import InputError
from dfrobust.datasets import reader
from dfrobust.demo.ffpp_layout import MANIFEST
from dfrobust.media.masks import MASK_SPLITS
from dfrobust.media.operations import Operation

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]*$")
NATIVE = "native"  # the one quality of a dataset that has no compression levels (Celeb-DF, DFDC)
SHORT = {"Deepfakes": "DF", "Face2Face": "F2F", "FaceSwap": "FS", "NeuralTextures": "NT"}
REFERENCE = "clean"
TABLE1 = "table1"
SPLITS = vocabulary("split")
ALL_SPLITS = "all"  # a test set reading every split of its dataset
EXTERNAL = "external"  # the training set of a weights file whose row names no quality


@dataclass(frozen=True)
class Layout:
    """Every path the workflow writes, each template written here only (rules, plan and
    command line read them from here). {wildcards} are Snakemake's."""

    demo_manifest: str = "{root}/" + MANIFEST  # an embedded demo's, written last by its build
    index: str = "results/datasets/{dataset}/index.csv"
    missing: str = "results/datasets/{dataset}/missing.csv"
    faces_npz: str = "results/faces/{dataset}/{quality}/{split}/shard_{shard}.npz"
    faces_json: str = "results/faces/{dataset}/{quality}/{split}/shard_{shard}.json"
    faces_frames: str = "results/faces/{dataset}/{quality}/{split}/shard_{shard}.frames.zip"
    faces_summary: str = "results/faces/summary.csv"
    copy_npz: str = "results/distorted/{dataset}/{quality}/{split}/{operation}/shard_{shard}.npz"
    copy_json: str = "results/distorted/{dataset}/{quality}/{split}/{operation}/shard_{shard}.json"
    copy_videos: str = "results/distorted_videos/{dataset}/{quality}/{split}/{operation}/shard_{shard}"
    copies_summary: str = "results/distorted/summary.csv"
    copies_operations: str = "results/distorted/operations.csv"
    weights: str = "results/models/{model}/{trainset}/weights.pt"
    hparams: str = "results/models/{model}/{trainset}/hparams.json"
    history: str = "results/models/{model}/{trainset}/log.csv"
    curve: str = "results/models/{model}/{trainset}/curve.png"
    fetched: str = "resources/pretrained/{fetch}.json"
    scores: str = "results/scores/{model}/{trainset}/{dataset}/{quality}/{split}/{operation}.csv"
    metrics: str = "results/metrics/{model}/{trainset}/{test_set}/{operation}.json"
    table_csv: str = "results/{table}.csv"  # table: "table1" (Table I) or "tables/{name}"
    table_md: str = "results/{table}.md"
    table_tex: str = "results/{table}.tex"
    table_ci: str = "results/{table}_ci.csv"
    delong: str = "results/{table}_delong.csv"
    figure: str = "results/figures/{figure}.png"

    def model_weights(self, model_id: str) -> str:
        model, trainset = model_id.split("/")
        return self.weights.format(model=model, trainset=trainset)

    def table_stem(self, name: str) -> str:
        """The {table} of a table's files: Table I at the top of results/, the others in tables/."""
        return name if name == TABLE1 else f"tables/{name}"

    def shard(self, kind: str, ext: str) -> str:
        """The template of a face ("faces") or test-copy ("copy") shard's file with this extension."""
        return getattr(self, f"{kind}_{ext.replace('.zip', '')}")


LAYOUT = Layout()


@dataclass(frozen=True)
class Dataset:
    """One dataset: its config block (with `kind`) and its planned videos per split."""

    name: str
    kind: str
    cfg: dict = field(hash=False, compare=False)
    qualities: tuple[str, ...] = ()
    counts: dict = field(default_factory=dict, hash=False, compare=False)
    frames: int | None = None  # frames per video in every split (datasets.<name>.frames); None: faces.frames

    @property
    def is_demo(self) -> bool:
        return self.kind.startswith("demo")

    def faces(self, faces: dict) -> dict:
        """The faces block of this dataset's face jobs: its own frames per video over faces.frames."""
        if self.frames is None:
            return faces
        return {**faces, "frames": {split: self.frames for split in faces["frames"]}}

    def shards(self, split: str, shard_size: int) -> int:
        return max(1, math.ceil(self.counts[split] / shard_size))


@dataclass(frozen=True)
class Model:
    """A model: one row of a table. Trained by the workflow, or (`weights`) a file trained
    elsewhere, read in its `format` and scored as it is."""

    name: str
    trainset: str
    method: str
    qualities: tuple[str, ...]  # trained on (a weights file's: what its row says it was trained on, a label)
    train_on: tuple[str, ...]
    procedure: tuple = ()  # (("name", "pim"), ("r", 0.1), ...): hashable
    settings: tuple = ()  # detector settings of this model only, over its `detectors` block
    weights: str | None = None  # a weights file scored as it is (no training), read as `format`
    format: str | None = None
    preprocessing: tuple = ()  # the format's detector settings (input size, mean/std, crop, ...)
    origin: str = field(default="", compare=False, hash=False)  # the config key of its (first) row

    @property
    def id(self) -> str:
        return f"{self.name}/{self.trainset}"

    @property
    def trains(self) -> bool:
        """Whether the workflow trains it (False: a weights file, scored as it is)."""
        return self.weights is None

    def procedure_cfg(self) -> dict:
        return _thaw(self.procedure) or {"name": "plain"}

    def own_settings(self) -> dict:
        return _thaw(self.settings) or {}

    def detector_cfg(self, detectors: dict) -> dict:
        """The detector's config block with its weights format's settings (a weights row) and
        this model's own settings over it."""
        return deep_update(deep_update(detectors[self.method], _thaw(self.preprocessing) or {}), self.own_settings())

    def scoring(self, detectors: dict) -> dict | None:
        """What a score job needs to load a weights file (None: a trained model's weights.pt)."""
        if self.trains:
            return None
        return {"method": self.method, "format": self.format, "detector": self.detector_cfg(detectors),
                "settings": self.own_settings()}

    def fetch(self, detectors: dict) -> tuple[str, dict] | None:
        """(name, detector block) of the ImageNet-weights download this model waits for
        (`pretrained: true` in its own resolved settings); None when it needs none. Named by
        what is downloaded: the detector's weights, or `{method}.{backbone}` for a model with
        another backbone than its detector's block."""
        cfg = self.detector_cfg(detectors)
        if cfg["pretrained"] is not True:
            return None
        own = {"backbone": cfg["backbone"]} if "backbone" in cfg else {}
        block = deep_update(detectors[self.method], {"pretrained": True, **own})
        same = own.get("backbone") == detectors[self.method].get("backbone")
        return (self.method if same else f"{self.method}.{own['backbone']}"), block


@dataclass(frozen=True)
class TestSet:
    name: str
    dataset: str
    qualities: tuple[str, ...]  # several: the copies of every quality pooled (each video once per quality)
    manipulations: tuple[str, ...] | None = None  # None: all
    split: str = "test"  # a split of the dataset, or "all"
    thresholds_from: str | None = None  # a table column's: recall thresholds chosen on this other test set

    @property
    def quality(self) -> str:
        """Its one quality (the label of a pooled test set: its qualities joined by '+')."""
        return "+".join(self.qualities)



@dataclass(frozen=True)
class Column:
    test_set: str
    operation: str
    label: str
    category: str | None = None  # Table I's: its operation's category, a header above the operations
    shown: bool = True  # in the csv/md/tex (Table I's reference column: in _ci.csv only, unless show_reference)
    averaged: bool = False  # part of the Average column


@dataclass
class Table:
    name: str
    title: str | None
    rows: list[Model]
    columns: list[Column]
    metrics: list[str]
    note: str | None  # under the table; None: what its metrics are (dfrobust.reporting.tables)
    average: bool = False
    group: str | None = None  # a target rule building every table of the group
    labels: dict[str, str] = field(default_factory=dict)  # model id -> the row's label as the paper prints it

    def spec(self, decimals: int) -> dict:
        """The table as plain data (what its job gets, so editing it reruns only it)."""
        return {"name": self.name, "title": self.title, "note": self.note, "average": self.average,
                "decimals": decimals, "metrics": list(self.metrics),
                "rows": [{"method": m.name, "train_quality": m.trainset, "label": self.labels.get(m.id)} for m in self.rows],
                "columns": [{"test_set": c.test_set, "operation": c.operation, "label": c.label,
                             "category": c.category, "shown": c.shown, "averaged": c.averaged} for c in self.columns]}


@dataclass
class Plan:
    main: str  # the training dataset (FF++ layout)
    datasets: dict[str, Dataset]
    models: dict[str, Model]  # id -> model, every model any table needs (and `pretraining`)
    test_sets: dict[str, TestSet]
    tables: dict[str, Table]  # Table I (TABLE1) first
    operations: dict[str, Operation]  # name -> operation, in config order
    base_quality: str
    shard_size: int
    layout: Layout = LAYOUT
    reads_masks: bool = False  # a model's detector reads manipulation masks (FFD): its training faces keep them

    # -- what the tables need ---------------------------------------------------------------
    def groups(self) -> dict[str, list[str]]:
        """Target name -> the tables of that group (`tables.<name>.group`)."""
        out: dict[str, list[str]] = {}
        for name, table in self.tables.items():
            if table.group:
                out.setdefault(table.group, []).append(name)
        return out

    @property
    def table1(self) -> Table:
        return self.tables[TABLE1]

    @property
    def table1_test_set(self) -> TestSet:
        return self.test_sets[self.table1.columns[0].test_set]

    def cells(self) -> set[tuple[str, str, str]]:
        """(model id, test set, operation) of every metrics file."""
        return {(m.id, c.test_set, c.operation) for t in self.tables.values() for m in t.rows for c in t.columns}

    def score_keys(self) -> set[tuple[str, str, str, str, str]]:
        """(model id, dataset, quality, split, operation) of every score file (a column choosing its
        thresholds on another test set needs that one's too)."""
        return {(model, *copy, operation) for model, test_set, operation in self.cells() for read in self.reads(test_set)
                for copy in self.copies_of(read)}

    def reads(self, test_set: str) -> list[str]:
        """The test sets whose scores a test set's metrics read: itself, and the one its
        thresholds come from."""
        source = self.test_sets[test_set].thresholds_from
        return [test_set] + ([source] if source else [])

    def threshold_score_files(self, model_id: str, test_set: str, operation: str) -> list[str]:
        """The score files a test-from-valid column chooses its thresholds on (none for others)."""
        source = self.test_sets[test_set].thresholds_from
        return self.score_files(model_id, source, operation) if source else []

    def copies_of(self, test_set: str) -> list[tuple[str, str, str]]:
        """(dataset, quality, split) of each copy a test set's faces and scores come from
        (one per quality; several for a test set pooling qualities)."""
        ts = self.test_sets[test_set]
        return [(ts.dataset, quality, ts.split) for quality in ts.qualities]

    def face_keys(self) -> set[tuple[str, str, str]]:
        """(dataset, quality, split) of every face shard set a job reads."""
        keys = {(self.main, q, split) for m in self.models.values() if m.trains for q in m.qualities for split in ("train", "val")}
        for _, dataset, quality, split, _ in self.score_keys():
            keys |= {(dataset, quality, s) for s in self.splits_of(dataset, split)}
        return keys

    def splits_of(self, dataset: str, split: str) -> tuple[str, ...]:
        """The face splits a test set's `split` reads: itself, or for "all" every split in which
        the dataset lists videos."""
        if split != ALL_SPLITS:
            return (split,)
        return tuple(s for s in SPLITS if self.datasets[dataset].counts[s])

    def copies(self) -> list[tuple[str, str, str, str]]:
        """(dataset, quality, face split, operation) of every processed test copy (identity
        operations need none: they are scored on the clean faces)."""
        return sorted({(d, q, s, op) for _, d, q, split, op in self.score_keys() if not self.operations[op].is_identity
                       for s in self.splits_of(d, split)})

    def keeps_masks(self, dataset: str, split: str) -> bool:
        """Whether a face job keeps its faces' manipulation masks: the training dataset's training
        and validation faces, where a planned model reads them."""
        return self.reads_masks and dataset == self.main and split in MASK_SPLITS

    def stored_frames(self) -> set[tuple[str, str, str]]:
        """(dataset, quality, split) whose face jobs also store the sampled frames: their copies
        of a per-frame operation start from them (dfrobust.media.framestore)."""
        return {(d, q, s) for d, q, s, op in self.copies() if self.operations[op].from_stored_frames}

    # -- paths ------------------------------------------------------------------------------
    def shards(self, dataset: str, split: str) -> int:
        return self.datasets[dataset].shards(split, self.shard_size)

    def face_shards(self, dataset: str, quality: str, split: str, ext: str = "npz") -> list[str]:
        template = self.layout.shard("faces", ext)
        return [template.format(dataset=dataset, quality=quality, split=split, shard=f"{k:03d}")
                for k in range(self.shards(dataset, split))]

    def copy_shards(self, dataset: str, quality: str, split: str, operation: str, ext: str = "npz") -> list[str]:
        """The face shards of one test copy (`split` may be "all"): the clean faces for an identity
        operation, else the processed copy (one shard per clean shard)."""
        out = []
        for s in self.splits_of(dataset, split):
            if self.operations[operation].is_identity:
                out += self.face_shards(dataset, quality, s, ext)
            else:
                template = self.layout.shard("copy", ext)
                out += [template.format(dataset=dataset, quality=quality, split=s, operation=operation, shard=f"{k:03d}")
                        for k in range(self.shards(dataset, s))]
        return out

    def score_files(self, model_id: str, test_set: str, operation: str) -> list[str]:
        """The score files a test set's metrics read (one per quality it pools)."""
        model, trainset = model_id.split("/")
        return [self.layout.scores.format(model=model, trainset=trainset, dataset=dataset, quality=quality, split=split,
                                          operation=operation) for dataset, quality, split in self.copies_of(test_set)]

    def score_file(self, model_id: str, test_set: str, operation: str) -> str:
        """The score file of a test set of one quality."""
        [path] = self.score_files(model_id, test_set, operation)
        return path

    def test_set_shards(self, test_set: str, operation: str, ext: str = "json") -> list[str]:
        """The face (or copy) shards a test set's scores come from."""
        return [p for copy in self.copies_of(test_set) for p in self.copy_shards(*copy, operation, ext)]

    def metrics_file(self, model_id: str, test_set: str, operation: str) -> str:
        model, trainset = model_id.split("/")
        return self.layout.metrics.format(model=model, trainset=trainset, test_set=test_set, operation=operation)

    def table_metrics(self, name: str) -> list[str]:
        table = self.tables[name]
        return [self.metrics_file(m.id, c.test_set, c.operation) for m in table.rows for c in table.columns]

    def table_scores(self, name: str) -> list[str]:
        table = self.tables[name]
        return [self.score_file(m.id, c.test_set, c.operation) for m in table.rows for c in table.columns]

    def table_file(self, name: str) -> str:
        """A table's .csv (its other files are beside it: Layout.table_*)."""
        return self.layout.table_csv.format(table=self.layout.table_stem(name))

    def metrics_cell(self, test_set: str, operation: str) -> dict:
        """What a metrics file is about, besides its model: test set and operation."""
        ts, op = self.test_sets[test_set], self.operations[operation]
        out = {"test_set": ts.name, "dataset": ts.dataset, "quality": ts.quality, "split": ts.split,
               "qualities": list(ts.qualities),
               "manipulations": list(ts.manipulations or []) or None, "operation": operation,
               **{k: getattr(op, k) for k in ("category", "sweep", "level") if getattr(op, k) is not None}}
        if ts.thresholds_from:
            source = self.test_sets[ts.thresholds_from]
            out["thresholds_from"] = {"test_set": source.name, "manipulations": list(source.manipulations or []) or None}
        return out


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError(f"config: {kind} name {name!r} must start with a letter and use letters, digits, '_', '.', '+', '-'")
    return name


def short(manipulation: str) -> str:
    """The usual short name of an FF++ manipulation (NT for NeuralTextures); others as they are."""
    return SHORT.get(manipulation, manipulation)


def datasets_of(config: dict, counts_of: Callable[[str, dict], dict]) -> dict[str, Dataset]:
    """The main dataset and the extra ones (`datasets` block), with planned counts.

    counts_of(kind, cfg) -> {split: videos}, from label files only."""
    main_cfg = config["dataset"]
    main = main_cfg["name"]
    blocks = {main: ("dataset", main_cfg, tuple(main_cfg["qualities"]))}
    for name, cfg in config["datasets"].items():
        _check_name("dataset", name)
        cfg = reader(cfg["kind"]).settings(cfg)  # the reader's defaults for its own keys
        if name in blocks:
            raise InputError(f"config key 'datasets.{name}': the name is the training dataset's (dataset.name)")
        qualities = tuple(cfg["qualities"] or vocabulary("quality")) if cfg["kind"] == "dfd" else (NATIVE,)
        blocks[name] = (f"datasets.{name}", cfg, qualities)
    out = {}
    for name, (key, cfg, qualities) in blocks.items():
        if not cfg["kind"].startswith("demo") and not Path(cfg["root"]).is_dir():
            raise InputError(f"{cfg['root']}: dataset directory does not exist (config key '{key}.root')")
        counts = counts_of(cfg["kind"], cfg)
        out[name] = Dataset(name, cfg["kind"], cfg, qualities, {split: counts[split] for split in SPLITS},
                            frames=None if key == "dataset" else cfg["frames"])
    return out


def check_pretrained_weights(models: dict[str, Model], detectors: dict) -> None:
    """A `pretrained` path into results/models/ is a model the workflow trains
    first: it must be a planned model's weights, and not the model's own."""
    planned = {LAYOUT.model_weights(m.id): m for m in models.values() if m.trains}
    for model in models.values():
        path = model.detector_cfg(detectors)["pretrained"]
        if not isinstance(path, str) or not Path(path).as_posix().startswith("results/models/"):
            continue
        source = planned.get(Path(path).as_posix())
        where = f"config key 'detectors.{model.method}.pretrained' (model {model.id})"
        if source is None:
            raise InputError(f"{where}: {path} is not the weights.pt of a planned model; add that model to "
                             f"`pretraining` (planned: {sorted(planned)})")
        if source is model:
            raise InputError(f"{where}: {path} is the model's own weights")


def model_of(row: dict, config: dict, where: str, formats: dict | None = None) -> Model:
    """A model from a `models` row (or a table's row). `formats`: the weights formats a row with
    `weights` may name (dfrobust.config.weights_formats; None: read from the detectors)."""
    methods = tuple(config["dataset"]["methods"])
    method = row["method"]
    if method not in config["detectors"]:
        raise InputError(f"config key '{where}': detector {method!r} has no block in 'detectors' ({sorted(config['detectors'])})")
    if (row["weights"] is None) != (row["format"] is None):
        raise InputError(f"config key '{where}': `weights` (a file trained elsewhere) and `format` (how to read it) go "
                         "together; `dfrobust inspect-weights FILE` says a file's format")
    external = row["weights"] is not None
    if row["quality"] is None and not external:
        raise InputError(f"config key '{where}': a model the workflow trains needs `quality` (its training qualities)")
    qualities = row["quality"] if isinstance(row["quality"], list) else [row["quality"]] if row["quality"] else []
    order = {q: i for i, q in enumerate(vocabulary("quality"))}
    qualities = tuple(sorted(dict.fromkeys(qualities), key=lambda q: order.get(q, len(order))))
    for quality in qualities:
        if quality not in config["dataset"]["qualities"] and not external:  # a weights row's qualities are a label
            raise InputError(f"config key '{where}': quality {quality!r} is not in dataset.qualities {config['dataset']['qualities']}")
    train_on = tuple(row["train_on"] or methods)
    unknown = [m for m in train_on if m not in methods]
    if unknown:
        raise InputError(f"config key '{where}.train_on': {unknown} are not manipulations of the dataset ({list(methods)})")
    train_on = tuple(m for m in methods if m in train_on)
    procedure = row["procedure"]
    procedure = {"name": procedure} if isinstance(procedure, str) else dict(procedure)
    name = procedure["name"]
    if name not in config["procedures"]:
        raise InputError(f"config key '{where}.procedure': unknown training procedure {name!r} ({sorted(config['procedures'])})")
    settings = {**config["procedures"][name], **{k: v for k, v in procedure.items() if k != "name"}}
    trainset = ("+".join(qualities) or EXTERNAL) + ("" if train_on == methods else "-" + "+".join(short(m) for m in train_on))
    if row["settings"] and not row["name"]:
        raise InputError(f"config key '{where}.settings': a model with its own detector settings needs a `name`")
    unknown = sorted(set(row["settings"]) - set(config["detectors"][method]))
    if unknown:
        raise InputError(f"config key '{where}.settings': {unknown} are not settings of detector {method!r} "
                         f"({', '.join(sorted(config['detectors'][method]))})")
    label = row["name"] or (method if name == "plain" else f"{method}+{name}")
    _check_name("model", label)
    frozen = _freeze({"name": name, **settings}) if name != "plain" else ()
    if not external:
        return Model(label, trainset, method, qualities, train_on, frozen, _freeze(row["settings"]), origin=where)
    if name != "plain":
        raise InputError(f"config key '{where}.procedure': a model with `weights` is not trained here, so it has no "
                         f"training procedure ({name!r})")
    if formats is None:
        from dfrobust.detectors.formats import describe

        formats = describe()
    if row["format"] not in formats:
        raise InputError(f"config key '{where}.format': unknown weights format {row['format']!r} (known: {', '.join(formats)})")
    form = formats[row["format"]]
    if "*" not in form["settings"] and method not in form["settings"]:
        raise InputError(f"config key '{where}.format': format {row['format']} holds weights of detector(s) "
                         f"{', '.join(form['settings'])}, not {method!r}")
    preprocessing = form["settings"]["*" if "*" in form["settings"] else method]
    model = Model(label, trainset, method, qualities, train_on, (), _freeze(row["settings"]), str(row["weights"]),
                  row["format"], _freeze(preprocessing), origin=where)
    if form["supplied"] and model.detector_cfg(config["detectors"])["pretrained"] is False:
        raise InputError(f"config key '{where}.format': a {row['format']} file holds no {form['lacks']} "
                         f"weights; detectors.{method}.pretrained (or this row's settings) must supply them: true "
                         "(the ImageNet weights its authors used) or a local file")
    return model


def check_weights_files(models: dict[str, Model]) -> None:
    """A weights row's file exists, or is the weights.pt of a planned model (trained first)."""
    planned = {LAYOUT.model_weights(m.id) for m in models.values() if m.trains}
    for model in models.values():
        if model.trains or Path(model.weights).is_file():
            continue
        if Path(model.weights).as_posix() not in planned:
            raise InputError(f"config key '{model.origin}.weights': {model.weights} does not exist")


class _Block(tuple):
    """A frozen mapping (hashable, so models compare by value)."""


def _freeze(value: Any):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return _Block(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _thaw(value: Any):
    if isinstance(value, _Block):
        return {k: _thaw(v) for k, v in value}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def test_sets_of(config: dict, datasets: dict[str, Dataset], base: TestSet) -> dict[str, TestSet]:
    out = {base.name: base}
    for name, cfg in config["test_sets"].items():
        _check_name("test set", name)
        dataset = datasets.get(cfg["dataset"])
        if dataset is None:
            raise InputError(f"config key 'test_sets.{name}.dataset': no dataset {cfg['dataset']!r} ({sorted(datasets)})")
        qualities = cfg["quality"] or dataset.qualities[0]
        qualities = tuple(qualities) if isinstance(qualities, list) else (qualities,)
        for quality in qualities:
            if quality not in dataset.qualities:
                raise InputError(f"config key 'test_sets.{name}.quality': {quality!r} is not a quality of {dataset.name} "
                                 f"{list(dataset.qualities)}")
        manipulations = tuple(cfg["manipulations"]) if cfg["manipulations"] else None
        test_set = TestSet(name, dataset.name, qualities, manipulations, cfg["split"])
        if name in out and out[name] != test_set:
            raise InputError(f"config key 'test_sets.{name}': the name is taken by Table I's test set ({base})")
        out[name] = test_set
    return out


def check_listed(key: str, dataset: Dataset, splits: tuple[str, ...], quality: str, what: str,
                 present_of: Callable[[str, dict, tuple, str], bool] | None) -> None:
    """Planning stops when a set reads splits in which its dataset lists no video, or none of
    the listed videos is on disk (`present_of(kind, cfg, splits, quality)`; not for a demo,
    which is built later): before any job runs."""
    listed = sum(dataset.counts[s] for s in splits)
    where = f"config key '{key}': {what} on dataset {dataset.name!r} ({dataset.kind}) reads split {'+'.join(splits)}"
    if listed == 0:
        counts = ", ".join(f"{s} {dataset.counts[s]}" for s in SPLITS)
        hint = "; name the split it reads (`split: train`, or `all`)" if what == "test set" else ""
        raise InputError(f"{where}, where it lists no video (per split: {counts}){hint}")
    if present_of is not None and not dataset.is_demo and not present_of(dataset.kind, dataset.cfg, splits, quality):
        raise InputError(f"{where}: none of its {listed} listed videos is on disk at quality {quality} under "
                         f"{dataset.cfg['root']} (is the root right?)")


def row_labels(models: list[Model], rows: list[dict], where: str) -> dict[str, str]:
    """model id -> `label` of the table rows that give one; a model labelled twice differently is an error."""
    labels: dict[str, str] = {}
    for i, (model, row) in enumerate(zip(models, rows)):
        if row["label"] is not None and labels.setdefault(model.id, row["label"]) != row["label"]:
            raise InputError(f"config key '{where}.{i}.label': model {model.id} is already a row of this table, "
                             f"labelled {labels[model.id]!r}")
    return labels


def table1_of(config: dict, models: list[Model], base: TestSet, operations: dict[str, Operation]) -> Table:
    """Table I: `models` down (grouped by detector in their order, qualities in report.qualities
    order), the operations across on the base test set, categories above them, an Average."""
    report = config["report"]
    # the operations named in report.columns (and the reference), else those on the video (not a scoring perturbation)
    shown = [name for name, op in operations.items()
             if name == report["reference"] or (name in report["columns"] if report["columns"] else op.perturb is None)]
    reference = [name for name in shown if name == report["reference"]]
    rest = [name for name in shown if name != report["reference"]]
    categories = list(dict.fromkeys(operations[name].category for name in rest))
    ordered = reference + [name for category in categories for name in rest if operations[name].category == category]
    columns = [Column(base.name, name, name, operations[name].category, shown=name not in reference or report["show_reference"],
                      averaged=name not in reference or report["include_reference"])
               for name in ordered]
    method_rank = {m: i for i, m in enumerate(dict.fromkeys(m.name for m in models))}
    quality_rank = {q: i for i, q in enumerate(report["qualities"])}
    rows = sorted(dict.fromkeys(models), key=lambda m: (method_rank[m.name], m.name,
                                                        quality_rank.get(m.trainset, len(quality_rank)), m.trainset))
    return Table(TABLE1, None, rows, columns, ["video_auc"], "Video-level AUC (%).", average=True,
                 labels=row_labels(models, config["models"], "models"))


def thresholds_test_set(test_sets: dict[str, TestSet], test_set: str, source: str, where: str) -> str:
    """The test set of a column whose recall thresholds are chosen on test set `source` ("test-from-valid"):
    `test_set` under the name "{test_set}@{source}" (its metrics file's folder), added to `test_sets`;
    its scores are `test_set`'s."""
    if source not in test_sets:
        raise InputError(f"config key '{where}.thresholds_from': no test set {source!r} ({sorted(test_sets)})")
    if source == test_set:
        raise InputError(f"config key '{where}.thresholds_from': the column's own test set; leave it out (thresholds are "
                         f"chosen on the test set itself by default)")
    derived = replace(test_sets[test_set], name=f"{test_set}@{source}", thresholds_from=source)
    return test_sets.setdefault(derived.name, derived).name


def table_of(name: str, spec: dict, rows: list[Model], labels: dict[str, str], test_sets: dict[str, TestSet],
             operations: dict[str, Operation]) -> Table:
    """A declared table; a column with `thresholds_from` adds its test set (thresholds_test_set) to `test_sets`."""
    columns = []
    for i, col in enumerate(spec["columns"]):
        col = {"test_set": col} if isinstance(col, str) else col
        if col["test_set"] not in test_sets:
            raise InputError(f"config key 'tables.{name}.columns.{i}.test_set': no test set {col['test_set']!r} ({sorted(test_sets)})")
        operation = col.get("operation") or REFERENCE
        if operation not in operations:
            raise InputError(f"config key 'tables.{name}.columns.{i}.operation': no operation {operation!r} ({list(operations)})")
        label = col.get("label") or (col["test_set"] if operation == REFERENCE else f"{col['test_set']} {operation}")
        test_set = col["test_set"]
        if col.get("thresholds_from"):
            test_set = thresholds_test_set(test_sets, test_set, col["thresholds_from"], f"tables.{name}.columns.{i}")
        columns.append(Column(test_set, operation, label, averaged=spec["average"]))
    return Table(name, spec["title"] or name, rows, columns, list(spec["metrics"]), spec["note"], average=spec["average"],
                 group=spec["group"], labels=labels)


def build_plan(config: dict, operations: list[Operation], counts_of: Callable[[str, dict], dict],
               present_of: Callable[[str, dict, tuple, str], bool] | None = None, formats: dict | None = None) -> Plan:
    """The plan of a validated config; `operations` are the expanded operations
    (Table I's columns), `counts_of(kind, cfg)` plans a dataset's splits from its label
    files, `present_of(kind, cfg, splits, quality)` says whether any listed video is on
    disk (None: not checked), `formats` the weights formats (model_of)."""
    datasets = datasets_of(config, counts_of)
    main = config["dataset"]["name"]
    base_quality = config["operations"]["base_quality"]
    if base_quality not in config["dataset"]["qualities"]:
        raise InputError(f"config key 'operations.base_quality': {base_quality!r} is not one of dataset.qualities "
                         f"{config['dataset']['qualities']}")
    ops = {op.name: op for op in operations}
    base = TestSet(f"{main}_{base_quality}", main, (base_quality,))
    test_sets = test_sets_of(config, datasets, base)
    models: dict[str, Model] = {}

    def add(row: dict, where: str) -> Model:
        model = model_of(row, config, where, formats)
        if model.id in models and models[model.id] != model:
            raise InputError(f"config key '{where}': model {model.id} differs from another model of that name; give it a `name`")
        return models.setdefault(model.id, model)

    table1_rows = [add(row, f"models.{i}") for i, row in enumerate(config["models"])]
    for i, row in enumerate(config["pretraining"]):
        if add(row, f"pretraining.{i}").weights is not None:
            raise InputError(f"config key 'pretraining.{i}': a pretraining model is trained here; it cannot name `weights`")
    tables = {TABLE1: table1_of(config, table1_rows, base, ops)}
    for name, spec in config["tables"].items():
        _check_name("table", name)
        if name == TABLE1:
            raise InputError("config key 'tables.table1': Table I is results/table1.csv (rows: `models`, columns: `operations`)")
        if spec["rows"]:
            rows = [add(row, f"tables.{name}.rows.{i}") for i, row in enumerate(spec["rows"])]
            labels = row_labels(rows, spec["rows"], f"tables.{name}.rows")
        else:
            rows, labels = list(table1_rows), tables[TABLE1].labels
        tables[name] = table_of(name, spec, rows, labels, test_sets, ops)
    check_pretrained_weights(models, config["detectors"])
    check_weights_files(models)
    plan = Plan(main, datasets, models, test_sets, tables, ops, base_quality, config["faces"]["shard_size"])
    used = {read for _, test_set, _ in plan.cells() for read in plan.reads(test_set)}
    for name in sorted(used):
        ts = test_sets[name]
        check_listed(f"test_sets.{name}" if name != base.name else "operations.base_quality", datasets[ts.dataset],
                     SPLITS if ts.split == ALL_SPLITS else (ts.split,), ts.qualities[0], "test set", present_of)
    for quality in sorted({q for m in models.values() if m.trains for q in m.qualities}):
        for split in ("train", "val"):
            check_listed("dataset", datasets[main], (split,), quality, f"the models' {split} set", present_of)
    return plan
