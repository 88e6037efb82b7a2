"""The conda environment of the rules pins the same packages as pyproject.toml."""

import tomllib

import yaml

from conftest import REPO


def test_conda_env_matches_pyproject_dependencies():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "envs" / "dfrobust.yaml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert sorted(pip) == sorted(deps)


def test_every_rule_names_the_environment():
    for path in (REPO / "rules").glob("*.smk"):
        text = path.read_text()
        assert text.count("script:") == text.count('conda:\n') , path.name
