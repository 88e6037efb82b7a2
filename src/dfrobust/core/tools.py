"""The external programs the pipeline runs (ffmpeg), found once and versioned.

Their versions go into the provenance of every result, so finding them is a
core service: media I/O runs them, provenance records them.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from dfrobust.core.errors import InputError

ENV_VAR = "DFROBUST_FFMPEG"


def find_ffmpeg(override: str | None = None) -> str:
    """The ffmpeg binary: config override, $DFROBUST_FFMPEG, `ffmpeg` on PATH,
    then the one shipped in the imageio-ffmpeg wheel."""
    for candidate in (override, os.environ.get(ENV_VAR)):
        if candidate:
            resolved = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
            if not resolved:
                raise InputError(f"ffmpeg binary {candidate!r} (from config or ${ENV_VAR}) does not exist")
            return resolved
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=8)
def ffmpeg_version(exe: str) -> str:
    """First line of `ffmpeg -version`, e.g. 'ffmpeg version n9.0.2-...'."""
    out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()
