"""Every protocol config (config/protocols/<paper>.yaml) has its tests (tests/test_protocol_<paper>.py)."""

from conftest import REPO


def test_every_protocol_config_is_tested():
    configs = {p.stem for p in (REPO / "config" / "protocols").glob("*.yaml")}
    tested = {p.stem.removeprefix("test_protocol_") for p in (REPO / "tests").glob("test_protocol_*.py")}
    assert configs == tested
