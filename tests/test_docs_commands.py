"""Every command written in the README and the docs runs as written.

Commands are read from the Markdown (code blocks and inline code) of
README.md, docs/*.md and bench/README.md, and run in a fresh copy of the
repository's tracked files:

* snakemake ...   as written plus `-n` (a dry run: nothing is computed);
                  a command that names config/ffpp.yaml gets a small FF++-shaped
                  tree as its dataset root (the only edit, in the copy's config);
* make TARGET     `make -n TARGET` (the recipe is checked, not run: CI runs `make test`);
* dfrobust ...    as written, on a results folder made for it;
* python bench/X  `--help` must work and must know every option the doc gives.

A few commands need what a test cannot have here (a real cluster, root, the
HTML report of a finished run); they are listed in SKIP with the test that
covers them instead.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, SMALL_PAIRS, make_ffpp_tree
from test_datasets import make_celebdf, make_dfd, make_dfdc, make_dfdc_preview
from test_wilddeepfake import make_wilddeepfake

OTHER_DATASETS = {"celebdf": make_celebdf, "dfdc": make_dfdc, "dfdc_preview": make_dfdc_preview,
                  "wilddeepfake": make_wilddeepfake}

DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md")), "bench/README.md"]
RUNNABLE = ("snakemake", "make", "dfrobust", "python")
BIN = Path(sys.executable).parent
SKIP = {
    "tests/slurm/": "needs root and a SLURM cluster: tests/test_slurm.py runs it",
    "--report": "needs a finished run: tests/test_workflow.py::test_html_report",
    "inspect-weights": "needs a published weights file: tests/test_checkpoints.py runs it on their formats",
}


def _clean(line: str) -> str:
    line = line.strip()
    if " #" in line:
        line = line[: line.index(" #")].rstrip()
    return line


def documented_commands() -> list[tuple[str, str]]:
    """(doc, command) for every runnable command in the docs, in order, once each."""
    found: dict[str, str] = {}
    for doc in DOCS:
        fenced = False
        lines = (REPO / doc).read_text().splitlines()
        for line in lines:
            if line.strip().startswith("```"):
                fenced = not fenced
                continue
            candidates = []
            if fenced or line.startswith("    "):
                candidates.append(_clean(line))
            candidates += re.findall(r"`([^`]+)`", line)
            for candidate in candidates:
                for part in candidate.split("&&"):
                    part = part.strip()
                    if part.split(" ", 1)[0] in RUNNABLE and " " in part:
                        found.setdefault(part, doc)
    return [(doc, command) for command, doc in found.items()]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The tracked files (what a fresh clone has), and an FF++-shaped tree for config/ffpp.yaml."""
    root = tmp_path_factory.mktemp("clone")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, tracked.split("\0")):
        source = REPO / rel
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            (root / rel).symlink_to(source.readlink())
        elif source.is_file():
            shutil.copy2(source, root / rel)
    ffpp = make_dfd(make_ffpp_tree(tmp_path_factory.mktemp("ffpp"), SMALL_PAIRS))
    config = yaml.safe_load((root / "config/ffpp.yaml").read_text())
    config["dataset"]["root"] = str(ffpp)
    (root / "config/ffpp.yaml").write_text(yaml.safe_dump(config))
    # the protocol overlays' other datasets: fixture trees in their layouts
    trees = {"dfd": ffpp, **{kind: make(tmp_path_factory.mktemp(kind)) for kind, make in OTHER_DATASETS.items()}}
    for protocol in (root / "config" / "protocols").glob("*.yaml"):
        overlay = yaml.safe_load(protocol.read_text())
        for block in overlay.get("datasets", {}).values():
            block["root"] = str(trees[block["kind"]])
        protocol.write_text(yaml.safe_dump(overlay))
    _trace_results(root / "results")
    return root


def _trace_results(results: Path) -> None:
    """Metrics files for the cells the docs trace, made through the real metrics step."""
    import numpy as np
    import pandas as pd

    from dfrobust.stages.score import evaluate_file

    rng = np.random.default_rng(0)
    frames = pd.DataFrame({"video_id": np.repeat([f"v{i}" for i in range(8)], 2), "manipulation": "original",
                           "label": np.repeat([0, 1] * 4, 2), "frame_index": np.tile([0, 1], 8),
                           "score": rng.uniform(0, 1, 16)})
    frames.loc[frames.label == 1, "manipulation"] = "Deepfakes"
    for method, quality, operation in (("xception", "c23", "c40"),):
        scores = results / "scores" / method / quality / "ffpp" / "raw" / "test" / f"{operation}.csv"
        scores.parent.mkdir(parents=True, exist_ok=True)
        frames.to_csv(scores, index=False)
        cell = {"method": method, "train_quality": quality, "test_set": "ffpp_raw", "operation": operation,
                "category": "compression"}
        evaluate_file(scores, results / "metrics" / method / quality / "ffpp_raw" / f"{operation}.json", {"bootstrap": 10}, cell)


def _bench_options(script: str, clone: Path) -> str:
    proc = subprocess.run([sys.executable, script, "--help"], cwd=clone, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_docs_have_commands():
    commands = [c for _, c in documented_commands()]
    assert "make demo" in commands and "make test" in commands
    assert any(c.startswith("snakemake --profile slurm") for c in commands)


@pytest.mark.parametrize("doc, command", documented_commands(), ids=lambda value: value[:60])
def test_documented_command_runs_as_written(doc, command, clone):
    for marker, why in SKIP.items():
        if marker in command:
            pytest.skip(why)
    words = shlex.split(command)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    if words[0] == "python" and len(words) > 1 and words[1].startswith("bench/"):
        help_text = _bench_options(words[1], clone)
        unknown = [w.split("=")[0] for w in words[2:] if w.startswith("--") and w.split("=")[0] not in help_text]
        assert not unknown, f"{doc}: `{command}` uses options {words[1]} does not have: {unknown}"
        return
    if words[0] == "make":
        command = "make -n " + command.split(" ", 1)[1]
    elif words[0] == "snakemake" and "-n" not in words and "--dry-run" not in words:
        command = "snakemake -n " + command.split(" ", 1)[1]
    # through bash, as a reader would type it (brace expansion and all)
    proc = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{doc}: `{command}` failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def datasets_example() -> dict:
    """The config block of docs/datasets.md's "Using them in a run"."""
    text = (REPO / "docs" / "datasets.md").read_text().split("## Using them in a run", 1)[1]
    block = re.search(r"\n((?:    .*\n)+)", text).group(1)
    return yaml.safe_load("\n".join(line[4:] for line in block.splitlines()))


@pytest.mark.slow
def test_the_datasets_example_runs_through_its_table(tiny_run, tmp_path, face_video):
    """docs/datasets.md's example, its roots pointed at fixtures of face clips in each layout (a
    DFDC training part among them), run for real through its table on a copy of the tiny run (its
    models trained); one more column of faceless clips gives n/a with its reason, and the run ends well."""
    from dfrobust.media.ffmpeg import write_video

    from conftest import run
    from test_datasets import make_celebdf, make_dfd, make_dfdc

    example = datasets_example()
    faces, gray = face_video.read_bytes(), tmp_path / "gray.mp4"
    write_video(gray, [np.full((240, 320, 3), 90, np.uint8)] * 12, fps=25, crf=18)
    roots = {"celebdf": make_celebdf(tmp_path / "celebdf"), "dfdc": make_dfdc(tmp_path / "dfdc"),
             "dfd": make_dfd(tmp_path / "ffpp", qualities=("c23",)), "faceless": make_dfdc(tmp_path / "faceless")}
    for name, root in roots.items():  # the videos the example reads: face clips (gray ones for `faceless`)
        read = {"dfd": "*/*/c23/videos/*.mp4", "dfdc": "dfdc_train_part_0/*.mp4", "faceless": "dfdc_train_part_0/*.mp4"}
        for path in root.glob(read.get(name, "**/*.mp4")):
            path.write_bytes(gray.read_bytes() if name == "faceless" else faces)
    workdir = tmp_path / "work"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    for name, block in example["datasets"].items():
        config.setdefault("datasets", {})[name] = {**block, "root": str(roots[name])}
    config["datasets"]["faceless"] = {**example["datasets"]["dfdc"], "root": str(roots["faceless"])}
    config["test_sets"].update(example["test_sets"], faceless={"dataset": "faceless", "split": "train"})
    table = example["tables"]["cross_dataset"]
    config["tables"]["cross_dataset"] = {**table, "columns": [*table["columns"], "faceless"]}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run(workdir, "--cores", "2", "results/tables/cross_dataset.csv")
    result = pd.read_csv(workdir / "results" / "tables" / "cross_dataset.csv", dtype=str, keep_default_na=False)
    assert list(result.columns[2::2]) == ["ffpp_raw AUC", "celebdf AUC", "dfdc_part0 AUC", "dfd_c23 AUC", "faceless AUC"]
    for column in ("celebdf AUC", "dfdc_part0 AUC", "dfd_c23 AUC"):
        assert result[column].astype(float).between(0, 100).all(), column
    assert (result["faceless AUC"] == "n/a").all()
    md = (workdir / "results" / "tables" / "cross_dataset.md").read_text()
    assert md.rstrip().endswith("* no real or fake video scored: 3 of 3 videos excluded (no_face 3)")
