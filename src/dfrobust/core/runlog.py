"""Run a workflow step with its output going to the rule's log file.

Bad input (InputError) becomes one clear line in the log and on stderr and a
non-zero exit, instead of a traceback; anything else keeps its traceback.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from pathlib import Path
from typing import Callable

from dfrobust.core.errors import InputError


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()

    def isatty(self):
        return False


def run_logged(log_path: str | Path | None, func: Callable, *args, **kwargs):
    """Call func with stdout/stderr also written to `log_path`."""
    if not log_path:
        return func(*args, **kwargs)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as handle:
        out, err = _Tee(sys.stdout, handle), _Tee(sys.stderr, handle)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                return func(*args, **kwargs)
            except InputError as error:
                print(f"ERROR: {error}", file=sys.stderr)
                raise SystemExit(1) from None
            except Exception:
                traceback.print_exc()
                raise


def log(*parts) -> None:
    """print() that flushes, so logs of killed jobs are complete up to the kill."""
    print(*parts, flush=True)
