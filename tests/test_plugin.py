"""A detector of one's own, outside the project: a module named by `detectors.<name>.module`
(or an installed package's entry point) registers it; it is validated, trained and scored
like the built-in ones (dfrobust.detectors.registry, dfrobust.config). The example is
docs/DEVELOPING.md's, read from there."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from dfrobust.config import validate_config
from dfrobust.core.errors import InputError
from dfrobust.detectors import build_detector

from conftest import REPO, SNAKEMAKE, job_counts


def developing_example() -> tuple[str, dict]:
    """(module source, config rows) of docs/DEVELOPING.md's "A detector of your own"."""
    text = (REPO / "docs" / "DEVELOPING.md").read_text().split("## A detector of your own", 1)[1].split("\n## ", 1)[0]
    module = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    config = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    return module, config


def plugin(folder: Path, name: str | None = None, source: str | None = None) -> tuple[str, str]:
    """The example module under a fresh module and detector name (the registry is per process):
    (module, detector)."""
    name = name or f"mynet_{uuid.uuid4().hex[:8]}"
    source = (source or developing_example()[0]).replace('@register("mynet")', f'@register("{name}")')
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(source)
    return name, name


def test_the_example_is_complete_and_short():
    module, config = developing_example()
    assert len(module.splitlines()) + len(yaml.safe_dump(config).splitlines()) < 60
    assert config["detectors"]["mynet"]["module"] == "mynet" and config["models"][0]["method"] == "mynet"


def test_a_plugin_module_registers_a_detector_that_is_validated_and_built(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    module, name = plugin(tmp_path)
    config = validate_config({"detectors": {name: {"module": module, "width": 4}}, "models": [{"method": name, "quality": "raw"}]})
    block = config["detectors"][name]
    assert block["module"] == module and block["width"] == 4 and block["input_size"] == 64  # its defaults, validated
    assert "module" not in config["detectors"]["xception"]  # the built-in blocks are unchanged
    detector = build_detector(name, block)
    assert detector.net[0].out_channels == 4 and detector.cfg["module"] == module
    with pytest.raises(InputError, match=rf"config key 'detectors.{name}.width': 'four' is not of type 'integer'"):
        validate_config({"detectors": {name: {"module": module, "width": "four"}}})


@pytest.mark.parametrize("source, message", [
    ("import not_a_package_here\n", r"cannot import detector module '{module}' \(ModuleNotFoundError: No module named "
                                    r"'not_a_package_here'\) - is its folder on PYTHONPATH"),
    ("def broken(:\n", r"cannot import detector module '{module}' \(SyntaxError: "),
    ("X = 1\n", r"module '{module}' registers no detector '{module}'"),
])
def test_a_module_that_fails_to_import_names_the_module_and_the_key(tmp_path, monkeypatch, source, message):
    monkeypatch.syspath_prepend(str(tmp_path))
    module, name = plugin(tmp_path, source=source)
    with pytest.raises(InputError, match=rf"config key 'detectors.{name}.module': " + message.format(module=module)):
        validate_config({"detectors": {name: {"module": module}}})
    with pytest.raises(InputError, match=r"config key 'detectors.mine.module': cannot import detector module 'nowhere_mod'"):
        validate_config({"detectors": {"mine": {"module": "nowhere_mod"}}})


def fresh_python(code: str, path: Path, cache: Path) -> subprocess.CompletedProcess:
    """`code` in a new interpreter (nothing imported yet: the generated schemas come from the cache)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")]),
           "XDG_CACHE_HOME": str(cache)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)


def test_the_schema_cache_follows_the_plugin_and_entry_points_need_no_module_key(tmp_path):
    """In a fresh process the detector schemas come from a cache keyed by the code: an edited
    plugin module makes a new one. An installed package's entry point registers its detector
    without a `module` key, and a job building it (no config) finds it too."""
    module, name = plugin(tmp_path / "plugins")
    check = (f"from dfrobust.config import validate_config; "
             f"print(validate_config({{'detectors': {{'{name}': {{'module': '{module}'}}}}}})['detectors']['{name}']['width'])")
    first = fresh_python(check, tmp_path / "plugins", tmp_path / "cache")
    assert first.returncode == 0 and first.stdout.strip() == "16", first.stderr
    source = (tmp_path / "plugins" / f"{module}.py").read_text()
    (tmp_path / "plugins" / f"{module}.py").write_text(source.replace('"width": 16}', '"width": 12}'))
    second = fresh_python(check, tmp_path / "plugins", tmp_path / "cache")
    assert second.stdout.strip() == "12", second.stderr
    assert len(list((tmp_path / "cache" / "dfrobust").glob("generated-*.json"))) == 2
    # an installed package: its dist-info declares the entry point
    site = tmp_path / "site"
    ep_module, ep_name = plugin(site)
    info = site / f"{ep_module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {ep_module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[dfrobust.detectors]\n{ep_name} = {ep_module}\n")
    code = (f"from dfrobust.config import validate_config; c = validate_config({{'detectors': {{'{ep_name}': {{'width': 2}}}}, "
            f"'models': [{{'method': '{ep_name}', 'quality': 'raw'}}]}}); print(c['detectors']['{ep_name}']['width'])")
    proc = fresh_python(code, site, tmp_path / "cache")
    assert proc.returncode == 0 and proc.stdout.strip() == "2", proc.stderr
    proc = fresh_python(f"from dfrobust.detectors import build_detector; print(type(build_detector('{ep_name}')).__name__)",
                        site, tmp_path / "cache")
    assert proc.stdout.strip() == "MyNet", proc.stderr


@pytest.mark.slow
def test_a_plugin_trains_and_scores_beside_weights_files_on_the_tiny_run(tiny_run, tmp_path):
    """docs/DEVELOPING.md's module in a folder on PYTHONPATH, planned into every table and trained
    on the tiny run's faces and scored; beside it, two of the tiny run's models scored again from
    weights files (the project's weights.pt; a bare state dict): the same scores, no train job,
    their files in the metrics' provenance. (Touching a weights file reruns only its scores,
    metrics and tables: tests/test_checkpoints.py.)"""
    plugins = tmp_path / "plugins"
    module, name = plugin(plugins, name="mynet_e2e")
    given = tmp_path / "given"
    given.mkdir()
    shutil.copy(tiny_run / "results/models/xception/raw/weights.pt", given / "xception.pt")
    blob = torch.load(tiny_run / "results/models/capsule/c40/weights.pt", weights_only=True)
    torch.save({f"module.{k}": v for k, v in blob["state_dict"].items()}, given / "capsule.pth")  # as DataParallel saves it
    workdir = tmp_path / "work"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["detectors"][name] = {"module": module, "width": 4, "input_size": 32, "epochs": 1, "batch_size": 16,
                                 "frames_per_video": 4, "val_frames_per_video": 2}
    config["models"] += [{"method": name, "quality": "raw"},
                         {"method": "xception", "weights": str(given / "xception.pt"), "format": "dfrobust", "name": "xception_given"},
                         {"method": "capsule", "weights": str(given / "capsule.pth"), "format": "state_dict", "name": "capsule_given",
                          "quality": "c40"}]
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])}

    def snakemake(*args):
        cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
               str(workdir / "config.yaml"), "--rerun-triggers", "params", "mtime", "input", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env)
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
        return proc

    counts = job_counts(snakemake("-n").stdout)
    # one train job (the plugin's); each new row: Table I's six copies and the protocols table's c40 copy
    assert counts["train"] == 1 and counts["score"] == 3 * 7 and "extract_faces" not in counts, counts
    # the new rows' clean cells (the other copies take the same score rule)
    snakemake("--cores", "2", *[f"results/metrics/{row}/ffpp_raw/clean.json"
                                for row in (f"{name}/raw", "xception_given/external", "capsule_given/c40")])
    mine = json.loads((workdir / f"results/metrics/{name}/raw/ffpp_raw/clean.json").read_text())
    assert mine["counts"]["videos"] == {"fake": 8, "real": 2} and 0 <= mine["video_auc"] <= 1, mine
    for given_row, trained in (("xception_given/external", "xception/raw"), ("capsule_given/c40", "capsule/c40")):
        ours = pd.read_csv(workdir / f"results/scores/{given_row}/ffpp/raw/test/clean.csv")
        pd.testing.assert_frame_equal(ours, pd.read_csv(workdir / f"results/scores/{trained}/ffpp/raw/test/clean.csv"))
    record = json.loads((workdir / "results/metrics/capsule_given/c40/ffpp_raw/clean.json").read_text())
    assert record["weights"] == str(given / "capsule.pth") and record["format"] == "state_dict"
    assert str(given / "capsule.pth") in json.dumps(record["provenance"]["inputs"])
    # the module gone from the path: the run stops at start, naming it and its config key
    proc = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
                           str(workdir / "config.yaml"), "-n"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and f"config key 'detectors.{name}.module'" in proc.stdout + proc.stderr
