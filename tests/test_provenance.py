"""Provenance records: fields, versions, checksums of files and directories."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dfrobust
from dfrobust.core import provenance
from dfrobust.core.errors import InputError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_collect_fields(tmp_path):
    data = tmp_path / "scores.csv"
    data.write_bytes(b"video_id,score\noriginal/000,0.1\n")
    record = provenance.collect({"bootstrap": 10}, [data], seed=42, extra={"rule": "metrics"})
    assert record["config"] == {"bootstrap": 10}
    assert record["seed"] == 42
    assert record["extra"] == {"rule": "metrics"}
    assert record["package_version"] == dfrobust.__version__
    assert record["python"] == sys.version.split()[0]
    assert record["libraries"]["numpy"] == np.__version__
    assert set(provenance.LIBRARIES) <= set(record["libraries"])
    assert record["hostname"]
    stamp = dt.datetime.fromisoformat(record["timestamp"])
    assert stamp.tzinfo is not None and abs(dt.datetime.now(dt.timezone.utc) - stamp).total_seconds() < 60
    assert record["inputs"] == [{"path": str(data), "sha256": sha(data.read_bytes()), "bytes": data.stat().st_size}]
    ffmpeg = record["ffmpeg"]
    if ffmpeg["path"]:
        assert ffmpeg["version"].startswith("ffmpeg version")
    else:
        assert ffmpeg["version"].startswith("unavailable")


def test_code_version_is_git_describe_of_the_package_checkout():
    package_dir = Path(dfrobust.__file__).resolve().parent
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    tracked = subprocess.run(["git", "-C", str(package_dir), "ls-files", "--error-unmatch", "__init__.py"],
                             capture_output=True)
    if tracked.returncode != 0:
        assert provenance.code_version() == f"dfrobust {dfrobust.__version__}"
    else:
        described = subprocess.run(["git", "-C", str(package_dir), "describe", "--always", "--dirty", "--tags"],
                                   capture_output=True, text=True).stdout.strip()
        assert provenance.code_version() == described


def test_code_version_falls_back_to_package_version(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    assert provenance._code_version.__wrapped__() == f"dfrobust {dfrobust.__version__}"


def test_directory_checksum_is_a_sorted_listing(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, order in ((a, ["x.bin", "sub/y.bin"]), (b, ["sub/y.bin", "x.bin"])):  # creation order differs
        for name in order:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(name.encode())
    listing = f"{sha(b'sub/y.bin')}  sub/y.bin\n{sha(b'x.bin')}  x.bin\n"
    entry_a = provenance.hash_input(a)
    assert entry_a == {"path": str(a), "sha256": sha(listing.encode()), "files": 2}
    assert provenance.hash_input(b)["sha256"] == entry_a["sha256"]
    (b / "sub" / "y.bin").write_bytes(b"changed")
    assert provenance.hash_input(b)["sha256"] != entry_a["sha256"]
    (a / "x.bin").rename(a / "z.bin")  # same bytes, other name: a different input
    assert provenance.hash_input(a)["sha256"] != entry_a["sha256"]


def test_cached_hash_follows_file_changes(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("one")
    first = provenance.hash_input(path)["sha256"]
    path.write_text("two!")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert provenance.hash_input(path)["sha256"] == sha(b"two!") != first


def test_environment_part_is_cached(tmp_path):
    provenance.collect({}, [], None)
    hits = provenance.library_versions.cache_info().hits
    provenance.collect({}, [], None)
    assert provenance.library_versions.cache_info().hits == hits + 1


def test_missing_input_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        provenance.collect({}, [tmp_path / "nope.csv"], seed=0)
