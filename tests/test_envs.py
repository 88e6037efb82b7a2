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


def test_workflow_scripts_import_the_installed_package():
    """The package is installed (make setup; in a rule's conda environment, its post-deploy
    script): no script edits sys.path to find it."""
    for path in (REPO / "workflow_scripts").glob("*.py"):
        assert "sys.path" not in path.read_text(), path.name
    deploy = REPO / "envs" / "dfrobust.post-deploy.sh"  # Snakemake runs it beside envs/dfrobust.yaml's environment
    assert deploy.stat().st_mode & 0o111 and 'pip install --no-deps --editable "${DFROBUST_REPO' in deploy.read_text()
    from dfrobust.workflow import export_checkout

    export_checkout(str(REPO))
    import os

    assert os.environ["DFROBUST_REPO"] == str(REPO)
