import pytest
import yaml

from dfrobust.config import load_config, validate_config
from dfrobust.core.errors import InputError

from conftest import REPO


def test_defaults_are_filled_from_the_schema():
    config = validate_config({"dataset": {"kind": "ffpp", "root": "/data/ffpp"}})
    assert config["faces"]["crop_scale"] is None  # computed from the detectors by the workflow (dfrobust.media.crops)
    assert config["faces"]["frames"] == {"train": 100, "val": 32, "test": 32}
    assert config["dataset"]["qualities"] == ["raw", "c23", "c40"]
    assert config["dataset"]["on_missing"] == "error"
    assert isinstance(config["seed"], int)


def test_user_values_win_over_defaults():
    config = validate_config({"faces": {"frames": {"test": 8}}})
    assert config["faces"]["frames"] == {"train": 100, "val": 32, "test": 8}


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"faces": {"crop_size": "big"}}, "faces.crop_size"),
        ({"faces": {"frames": {"train": 0}}}, "faces.frames.train"),
        ({"dataset": {"qualities": ["raw", "hd"]}}, "dataset.qualities.1"),
        ({"dataset": {"kind": "celebdf"}}, "dataset.kind"),
        ({"seed": "abc"}, "seed"),
        ({"faces": {"crop_sise": 64}}, "faces"),
    ],
)
def test_wrong_key_or_type_names_the_key(bad, key):
    with pytest.raises(InputError, match=f"config key '{key}'"):
        validate_config(bad)


def test_unknown_top_level_key_is_named():
    with pytest.raises(InputError, match="fcaes"):
        validate_config({"fcaes": {}})


@pytest.mark.parametrize("name", ["config.yaml", "config/tiny.yaml", "config/ffpp.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(REPO / name)
    assert config["faces"]["crop_scale"] in (None, 1.3) and config["faces"]["frames"]["test"] >= 1


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_schema_documents_every_key():
    """Every property in every schema file has a description or is self-evident (leaf of frames)."""
    for path in (REPO / "src" / "dfrobust" / "core" / "schema").glob("*.yaml"):
        schema = yaml.safe_load(path.read_text())
        for key, sub in schema.get("properties", {}).items():
            assert "description" in sub or "$ref" in sub, f"{path.name}: {key} has no description"
