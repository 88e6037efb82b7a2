"""What the papers' protocol tests share (tests/test_protocol_<paper>.py): fixture trees in
each dataset's published layout, a dry run of config/ffpp.yaml + one protocol overlay on them,
and the plan of that config, to check each declared table's rows and columns against the
paper's, transcribed in the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SMALL_PAIRS, make_ffpp_tree, operations_of
from test_datasets import make_celebdf, make_dfd, make_dfdc, make_dfdc_preview
from test_wilddeepfake import make_wilddeepfake

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
MAKERS = {"celebdf": make_celebdf, "dfdc": make_dfdc, "dfdc_preview": make_dfdc_preview,
          "wilddeepfake": make_wilddeepfake}


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    """Trees in each layout (file names only; a dry run opens no video)."""
    root = tmp_path_factory.mktemp("protocols")
    out = {"ffpp": make_dfd(make_ffpp_tree(root / "ffpp", SMALL_PAIRS))}
    out["dfd"] = out["ffpp"]
    for kind, make in MAKERS.items():
        out[kind] = make(root / kind)
    return out


def overlay(protocol: str) -> dict:
    return yaml.safe_load((REPO / "config" / "protocols" / f"{protocol}.yaml").read_text())


def roots(protocol: str, trees: dict[str, Path]) -> dict:
    """The overlay's dataset roots pointed at the fixture trees."""
    return {"dataset": {"root": str(trees["ffpp"])},
            "datasets": {name: {"root": str(trees[cfg["kind"]])} for name, cfg in overlay(protocol).get("datasets", {}).items()}}


def dry_run(protocol: str, trees: dict[str, Path], workdir: Path, *targets: str) -> subprocess.CompletedProcess:
    """Dry run of ffpp.yaml + the protocol + the fixture roots."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "roots.yaml").write_text(yaml.safe_dump(roots(protocol, trees)))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "-n", "--configfile",
           str(REPO / "config" / "ffpp.yaml"), str(REPO / "config" / "protocols" / f"{protocol}.yaml"),
           str(workdir / "roots.yaml"), "--", *targets]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def protocol_plan(protocol: str, trees: dict[str, Path]):
    """The plan of ffpp.yaml + the protocol (fixture roots): its tables' rows and columns."""
    from dfrobust.config import validate_config
    from dfrobust.core.config import deep_update
    from dfrobust.plan import build_plan

    config = yaml.safe_load((REPO / "config" / "ffpp.yaml").read_text())
    config = deep_update(deep_update(config, overlay(protocol)), roots(protocol, trees))
    validated = validate_config(config)
    return build_plan(validated, operations_of(validated["operations"]), lambda kind, cfg: {"train": 1, "val": 1, "test": 1})


def layout(plan, table: str) -> tuple[list[str], list[str]]:
    """(row labels "name/trainset", column labels) of one planned table."""
    t = plan.tables[table]
    return [m.id for m in t.rows], [c.label for c in t.columns]
