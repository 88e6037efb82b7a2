"""The run's plan: which datasets, models, test sets and tables a validated
config asks for, their names, and which jobs they need.

The rules (rules/common.smk) build the DAG from this, before any job runs,
so a dry run lists every job. Everything here is plain data, testable
without Snakemake.

    model      (detector, training qualities, training manipulations, procedure)
               -> results/models/{name}/{trainset}/    e.g. xception/c23, efficientnet_b4/c23-NT,
                                                          convnext_base+pim/raw, xception/raw+c23+c40
    test set   (dataset, quality, manipulations)       e.g. ffpp_raw, ffpp_c23_NT, celebdf
    column     (test set, operation)                   the operation is `clean` unless it says otherwise
    table      rows (models) x columns x metrics       Table I is one: its rows are `models`, its
                                                       columns the operations on the base test set

Work is shared: a test set's faces are extracted once per (dataset,
quality), a model scores each (dataset, quality, operation) once, and the
metrics of a test set that keeps only some manipulations are computed from
that one score file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfrobust.core.config import deep_update, vocabulary
from dfrobust.core.errors import InputError

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]*$")
NATIVE = "native"  # the one quality of a dataset that has no compression levels (Celeb-DF, DFDC)
SHORT = {"Deepfakes": "DF", "Face2Face": "F2F", "FaceSwap": "FS", "NeuralTextures": "NT"}
REFERENCE = "clean"


@dataclass(frozen=True)
class Dataset:
    """One dataset: its config block (with `kind`) and its planned videos per split."""

    name: str
    kind: str
    cfg: dict = field(hash=False, compare=False)
    qualities: tuple[str, ...] = ()
    counts: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_demo(self) -> bool:
        return self.kind.startswith("demo")

    def shards(self, split: str, shard_size: int) -> int:
        return max(1, math.ceil(self.counts.get(split, 0) / shard_size))


@dataclass(frozen=True)
class Model:
    """A trained model: one row of a table."""

    name: str
    trainset: str
    method: str
    qualities: tuple[str, ...]
    train_on: tuple[str, ...]
    procedure: tuple = ()  # (("name", "pim"), ("r", 0.1), ...): hashable
    settings: tuple = ()  # detector settings of this model only, over its `detectors` block

    @property
    def id(self) -> str:
        return f"{self.name}/{self.trainset}"

    def procedure_cfg(self) -> dict:
        return _thaw(self.procedure) or {"name": "plain"}

    def detector_cfg(self, detectors: dict) -> dict:
        """The detector's config block with this model's own settings over it."""
        return deep_update(detectors[self.method], _thaw(self.settings))


@dataclass(frozen=True)
class TestSet:
    name: str
    dataset: str
    quality: str
    manipulations: tuple[str, ...] | None = None  # None: all


@dataclass(frozen=True)
class Column:
    test_set: str
    operation: str = REFERENCE
    label: str = ""


@dataclass
class Table:
    name: str
    title: str
    rows: list[Model]
    columns: list[Column]
    metrics: list[str]


@dataclass
class Plan:
    main: str  # the training dataset (FF++ layout)
    datasets: dict[str, Dataset]
    models: dict[str, Model]  # id -> model, every model any table needs
    table1_models: list[Model]
    table1_test_set: str
    test_sets: dict[str, TestSet]
    tables: dict[str, Table]

    def score_keys(self) -> set[tuple[str, str, str, str]]:
        """(model id, dataset, quality, operation) of every score file."""
        keys = {(m.id, *self._copy(self.table1_test_set), op) for m in self.table1_models for op in self.operations}
        for table in self.tables.values():
            keys |= {(m.id, *self._copy(c.test_set), c.operation) for m in table.rows for c in table.columns}
        return keys

    def metric_keys(self) -> set[tuple[str, str, str]]:
        """(model id, test set, operation) of every metrics file."""
        keys = {(m.id, self.table1_test_set, op) for m in self.table1_models for op in self.operations}
        for table in self.tables.values():
            keys |= {(m.id, c.test_set, c.operation) for m in table.rows for c in table.columns}
        return keys

    def face_keys(self) -> set[tuple[str, str, str]]:
        """(dataset, quality, split) of every face shard set a job reads."""
        keys = {(self.main, q, split) for m in self.models.values() for q in m.qualities for split in ("train", "val")}
        return keys | {(d, q, "test") for _, d, q, _ in self.score_keys()}

    def _copy(self, test_set: str) -> tuple[str, str]:
        ts = self.test_sets[test_set]
        return ts.dataset, ts.quality

    operations: list[str] = field(default_factory=list)


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError(f"config: {kind} name {name!r} must start with a letter and use letters, digits, '_', '.', '+', '-'")
    return name


def short(manipulation: str) -> str:
    """The usual short name of an FF++ manipulation (NT for NeuralTextures); others as they are."""
    return SHORT.get(manipulation, manipulation)


def datasets_of(config: dict, counts_of) -> dict[str, Dataset]:
    """The main dataset and the extra ones (`datasets` block), with planned counts.

    counts_of(kind, cfg) -> {split: videos}, from label files only."""
    main_cfg = config["dataset"]
    main = main_cfg["name"]
    blocks = {main: ("dataset", main_cfg, tuple(main_cfg["qualities"]))}
    for name, cfg in config.get("datasets", {}).items():
        _check_name("dataset", name)
        if name in blocks:
            raise InputError(f"config key 'datasets.{name}': the name is the training dataset's (dataset.name)")
        qualities = tuple(cfg.get("qualities") or vocabulary("quality")) if cfg["kind"] == "dfd" else (NATIVE,)
        blocks[name] = (f"datasets.{name}", cfg, qualities)
    out = {}
    for name, (key, cfg, qualities) in blocks.items():
        if not cfg["kind"].startswith("demo") and not Path(cfg["root"]).is_dir():
            raise InputError(f"{cfg['root']}: dataset directory does not exist (config key '{key}.root')")
        out[name] = Dataset(name, cfg["kind"], cfg, qualities, counts_of(cfg["kind"], cfg))
    return out


def weights_of(model: Model) -> str:
    """Where the train rule writes a model's weights."""
    return f"results/models/{model.id}/weights.pt"


def check_pretrained_weights(models: dict[str, Model], detectors: dict) -> None:
    """A `pretrained` path into results/models/ is a model the workflow trains
    first: it must be a planned model's weights, and not the model's own."""
    planned = {weights_of(m): m for m in models.values()}
    for model in models.values():
        path = model.detector_cfg(detectors).get("pretrained")
        if not isinstance(path, str) or not Path(path).as_posix().startswith("results/models/"):
            continue
        source = planned.get(Path(path).as_posix())
        where = f"config key 'detectors.{model.method}.pretrained' (model {model.id})"
        if source is None:
            raise InputError(f"{where}: {path} is not the weights.pt of a planned model; add that model to "
                             f"`pretraining` (planned: {sorted(planned)})")
        if source is model:
            raise InputError(f"{where}: {path} is the model's own weights")


def model_of(row: dict, config: dict, where: str) -> Model:
    """A model from a `models` row (or a table's row)."""
    methods = tuple(config["dataset"]["methods"])
    method = row["method"]
    if method not in config["detectors"]:
        raise InputError(f"config key '{where}': detector {method!r} has no block in 'detectors' ({sorted(config['detectors'])})")
    qualities = row["quality"] if isinstance(row["quality"], list) else [row["quality"]]
    order = {q: i for i, q in enumerate(vocabulary("quality"))}
    qualities = tuple(sorted(dict.fromkeys(qualities), key=lambda q: order.get(q, len(order))))
    for quality in qualities:
        if quality not in config["dataset"]["qualities"]:
            raise InputError(f"config key '{where}': quality {quality!r} is not in dataset.qualities {config['dataset']['qualities']}")
    train_on = tuple(row.get("train_on") or methods)
    unknown = [m for m in train_on if m not in methods]
    if unknown:
        raise InputError(f"config key '{where}.train_on': {unknown} are not manipulations of the dataset ({list(methods)})")
    train_on = tuple(m for m in methods if m in train_on)
    procedure = row.get("procedure") or "plain"
    procedure = {"name": procedure} if isinstance(procedure, str) else dict(procedure)
    name = procedure["name"]
    if name not in config["procedures"]:
        raise InputError(f"config key '{where}.procedure': unknown training procedure {name!r} ({sorted(config['procedures'])})")
    settings = {**config["procedures"][name], **{k: v for k, v in procedure.items() if k != "name"}}
    trainset = "+".join(qualities) + ("" if train_on == methods else "-" + "+".join(short(m) for m in train_on))
    if row.get("settings") and not row.get("name"):
        raise InputError(f"config key '{where}.settings': a model with its own detector settings needs a `name`")
    unknown = sorted(set(row.get("settings") or {}) - set(config["detectors"][method]))
    if unknown:
        raise InputError(f"config key '{where}.settings': {unknown} are not settings of detector {method!r} "
                         f"({', '.join(sorted(config['detectors'][method]))})")
    label = row.get("name") or (method if name == "plain" else f"{method}+{name}")
    _check_name("model", label)
    frozen = _freeze({"name": name, **settings}) if name != "plain" else ()
    return Model(label, trainset, method, qualities, train_on, frozen, _freeze(row.get("settings") or {}))


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
    for name, cfg in config.get("test_sets", {}).items():
        _check_name("test set", name)
        dataset = datasets.get(cfg["dataset"])
        if dataset is None:
            raise InputError(f"config key 'test_sets.{name}.dataset': no dataset {cfg['dataset']!r} ({sorted(datasets)})")
        quality = cfg.get("quality") or dataset.qualities[0]
        if quality not in dataset.qualities:
            raise InputError(f"config key 'test_sets.{name}.quality': {quality!r} is not a quality of {dataset.name} {list(dataset.qualities)}")
        manipulations = tuple(cfg["manipulations"]) if cfg.get("manipulations") else None
        test_set = TestSet(name, dataset.name, quality, manipulations)
        if name in out and out[name] != test_set:
            raise InputError(f"config key 'test_sets.{name}': the name is taken by Table I's test set ({base})")
        out[name] = test_set
    return out


def build_plan(config: dict, operations: list[str], counts_of) -> Plan:
    """The plan of a validated config; `operations` are the expanded operation
    names (Table I's columns), `counts_of(kind, cfg)` plans a dataset's splits."""
    datasets = datasets_of(config, counts_of)
    main = config["dataset"]["name"]
    base_quality = config["operations"]["base_quality"]
    if base_quality not in config["dataset"]["qualities"]:
        raise InputError(f"config key 'operations.base_quality': {base_quality!r} is not one of dataset.qualities "
                         f"{config['dataset']['qualities']}")
    base = TestSet(f"{main}_{base_quality}", main, base_quality)
    test_sets = test_sets_of(config, datasets, base)
    models: dict[str, Model] = {}

    def add(row: dict, where: str) -> Model:
        model = model_of(row, config, where)
        if model.id in models and models[model.id] != model:
            raise InputError(f"config key '{where}': model {model.id} differs from another model of that name; give it a `name`")
        return models.setdefault(model.id, model)

    table1 = [add(row, f"models.{i}") for i, row in enumerate(config["models"])]
    for i, row in enumerate(config.get("pretraining", [])):
        add(row, f"pretraining.{i}")
    tables = {}
    for name, spec in config.get("tables", {}).items():
        _check_name("table", name)
        if name == "table1":
            raise InputError("config key 'tables.table1': Table I is results/table1.csv (rows: `models`, columns: `operations`)")
        rows = [add(row, f"tables.{name}.rows.{i}") for i, row in enumerate(spec["rows"])] if spec.get("rows") else list(table1)
        columns = []
        for i, col in enumerate(spec["columns"]):
            col = {"test_set": col} if isinstance(col, str) else col
            if col["test_set"] not in test_sets:
                raise InputError(f"config key 'tables.{name}.columns.{i}.test_set': no test set {col['test_set']!r} ({sorted(test_sets)})")
            operation = col.get("operation") or REFERENCE
            if operation not in operations:
                raise InputError(f"config key 'tables.{name}.columns.{i}.operation': no operation {operation!r} ({operations})")
            label = col.get("label") or (col["test_set"] if operation == REFERENCE else f"{col['test_set']} {operation}")
            columns.append(Column(col["test_set"], operation, label))
        tables[name] = Table(name, spec.get("title") or name, rows, columns, list(spec["metrics"]))
    check_pretrained_weights(models, config["detectors"])
    plan = Plan(main, datasets, models, table1, base.name, test_sets, tables, operations=list(operations))
    return plan
