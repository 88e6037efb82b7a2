"""Where a result came from: config, code version, tool versions, seed, input checksums.

Every metrics file carries one of these records, so any number in a table can
be traced back (see dfrobust.reporting.trace). The environment part (git
describe, library versions, ffmpeg version, host) is computed once per process
and input hashes are cached by (path, size, mtime), so calling `collect` in a
loop stays cheap.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Iterable

import dfrobust
from dfrobust.core.errors import InputError
from dfrobust.core.io import sha256_file

# label -> distribution names to try (the first one installed wins)
LIBRARIES = {
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "timm": ("timm",),
    "numpy": ("numpy",),
    "scipy": ("scipy",),
    "pandas": ("pandas",),
    "scikit-learn": ("scikit-learn",),
    "dlib": ("dlib-bin", "dlib"),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python"),
    "imageio-ffmpeg": ("imageio-ffmpeg",),
    "snakemake": ("snakemake",),
}

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def code_version() -> str:
    """`git describe --always --dirty --tags` of the repository holding this
    package, or 'dfrobust <version>' when the package is not in a git checkout."""
    return _code_version()


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    package_dir = Path(dfrobust.__file__).resolve().parent
    fallback = f"dfrobust {dfrobust.__version__}"
    try:
        # only a checkout that tracks this package counts, not some repo around a venv
        tracked = subprocess.run(
            ["git", "-C", str(package_dir), "ls-files", "--error-unmatch", "__init__.py"],
            capture_output=True, text=True, timeout=10,
        )
        if tracked.returncode != 0:
            return fallback
        out = subprocess.run(
            ["git", "-C", str(package_dir), "describe", "--always", "--dirty", "--tags"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return fallback
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else fallback


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    """Installed versions of the key libraries (None when not installed).

    Read from package metadata rather than by importing, so torch is never
    imported just to learn its version.
    """
    versions: dict[str, str | None] = {}
    for label, dists in LIBRARIES.items():
        versions[label] = None
        for dist in dists:
            try:
                versions[label] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


@functools.lru_cache(maxsize=8)
def ffmpeg_info(override: str | None = None) -> dict[str, str | None]:
    """Path and version line of the ffmpeg the pipeline uses; an error text
    instead of the version when none can be found or run."""
    from dfrobust.core.tools import ffmpeg_version, find_ffmpeg

    try:
        exe = find_ffmpeg(override)
        return {"path": exe, "version": ffmpeg_version(exe)}
    except (InputError, ImportError, OSError, subprocess.SubprocessError) as exc:
        return {"path": None, "version": f"unavailable ({exc})"}


def _sha256_cached(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256_file(path)
    return _HASH_CACHE[key]


def hash_input(path: str | os.PathLike) -> dict:
    """{path, sha256, bytes} of a file; for a directory {path, sha256, files}
    where sha256 hashes the sorted listing of 'sha256  relative/path' lines."""
    path = Path(path)
    if path.is_file():
        return {"path": str(path), "sha256": _sha256_cached(path), "bytes": path.stat().st_size}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        listing = "".join(f"{_sha256_cached(p)}  {p.relative_to(path).as_posix()}\n" for p in files)
        digest = hashlib.sha256(listing.encode()).hexdigest()
        return {"path": str(path), "sha256": digest, "files": len(files)}
    raise InputError(f"{path}: input file does not exist (cannot record its checksum)")


def collect(
    config_subtree: dict,
    inputs: Iterable[str | os.PathLike],
    seed: int | None,
    extra: dict | None = None,
) -> dict:
    """The provenance record of one result.

    `config_subtree` is the config block the rule used (its "ffmpeg" key, if
    a string, is the ffmpeg override); `inputs` are the files or directories
    it read; `extra` is free-form (e.g. the rule name).
    """
    override = config_subtree.get("ffmpeg") if isinstance(config_subtree, dict) else None
    return {
        "config": config_subtree,
        "seed": seed,
        "code_version": code_version(),
        "package_version": dfrobust.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": dict(library_versions()),
        "ffmpeg": dict(ffmpeg_info(override if isinstance(override, str) else None)),
        "hostname": socket.gethostname(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": [hash_input(p) for p in inputs],
        "extra": extra or {},
    }
