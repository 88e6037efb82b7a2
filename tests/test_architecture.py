"""What keeps the code trustworthy as tables and detectors are added: a default
lives in one place (the schema; no `.get(key, default)` restating it), each
result path template is written once (the plan's layout), and one engine
writes every table."""

from __future__ import annotations

import ast
import re
from dataclasses import fields

from conftest import REPO, job_counts, run, workdir_with

SRC = REPO / "src" / "dfrobust"

# `.get(key, literal)` calls the check allows, each on something that is not a validated config block
ALLOWED_GETS = {
    ("core/config.py", "schema.get('$defs', {})"): "a JSON Schema document: its keywords are optional",
    ("core/config.py", "schema.get('properties', {})"): "a JSON Schema document: its keywords are optional",
    ("core/config.py", "err.schema.get('properties', {})"): "a JSON Schema document: its keywords are optional",
    ("core/config.py", "config.get(name, {})"): "the raw config, before validation fills it",
    ("core/configurable.py", "schema.get('properties', {})"): "a JSON Schema document: its keywords are optional",
    ("core/configurable.py", "schema.get('description', 'a block')"): "a JSON Schema document, in an error message",
    ("core/configurable.py", "known.get(key, {})"): "a JSON Schema's properties: a key may have none",
    ("core/configurable.py", "cls.__dict__.get('defaults', {})"): "a class's own attributes: a subclass may set none",
    ("core/configurable.py", "cls.__dict__.get('settings', {})"): "a class's own attributes: a subclass may set none",
    ("datasets/celebdf.py", "SPELLINGS.get(folder, (folder,))"): "a table of folder spellings: most have one",
    ("datasets/dfdc.py", "info.get('split', 'train')"): "a published metadata.json entry, read as its files have it",
    ("stages/shards.py", "video.get('n_sampled', 0)"): "a video row of an index (nothing sampled yet) or of a shard summary",
}


def literal_default_gets() -> set[tuple[str, str]]:
    found = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and len(node.args) >= 2
                    and isinstance(node.args[1], (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.UnaryOp))):
                found.add((path.relative_to(SRC).as_posix(), ast.unparse(node)))
    return found


def test_no_literal_default_get_outside_the_allowed_places():
    """Validated blocks are complete (dfrobust.core.settings): a `.get` with a literal default
    restates a default that lives in the schema, and drifts from it."""
    found = literal_default_gets()
    assert found - set(ALLOWED_GETS) == set(), sorted(found - set(ALLOWED_GETS))
    assert set(ALLOWED_GETS) - found == set(), "allowed but gone: drop them from ALLOWED_GETS"


def test_the_get_check_finds_a_literal_default(tmp_path):
    tree = ast.parse("def f(cfg):\n    return cfg.get('bootstrap', 1000)\n")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.func.attr == "get"]
    assert isinstance(calls[0].args[1], ast.Constant)


def code_files():
    yield from SRC.rglob("*.py")
    yield from (REPO / "rules").glob("*.smk")
    yield REPO / "Snakefile"
    yield from (REPO / "workflow_scripts").glob("*.py")


def test_each_result_path_template_is_written_once():
    from dfrobust.plan import LAYOUT

    texts = {path: path.read_text() for path in code_files()}
    for field in fields(LAYOUT):
        template = getattr(LAYOUT, field.name)
        quoted = rf"""["']{re.escape(template)}["']"""
        where = [str(p.relative_to(REPO)) for p, text in texts.items() for _ in re.finditer(quoted, text)]
        # the demo manifest's template is composed: its file name is the demo package's MANIFEST
        assert len(where) == (0 if field.name == "demo_manifest" else 1), (field.name, where)
    for path, text in texts.items():  # nothing else spells out a results/ path
        if path.name != "plan.py":
            assert not re.search(r"""["']results/""", text), path


def test_one_module_writes_tables():
    """One engine: a single csv, markdown and LaTeX writer under reporting/."""
    defined = [(path.name, node.name) for path in (SRC / "reporting").glob("*.py")
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)]
    writers = [d for d in defined if re.search(r"(markdown|latex|_csv)$", d[1])]
    assert sorted(writers) == [("tables.py", "table_csv"), ("tables.py", "table_latex"), ("tables.py", "table_markdown")]


def test_one_table_rule_writes_every_table_table1_included(tmp_path):
    proc = run(workdir_with(tmp_path, REPO / "config.yaml"), "-n", "tables")
    counts = job_counts(proc.stdout)
    assert counts["table"] == 4 and "table1" not in counts  # Table I and the demo's three declared tables
    outputs = re.findall(r"output: (results/\S+?)\.csv,", proc.stdout)
    assert sorted(o for o in outputs if "table" in o) == ["results/table1", "results/tables/cross_dataset",
                                                          "results/tables/cross_manipulation",
                                                          "results/tables/robust_training"]
