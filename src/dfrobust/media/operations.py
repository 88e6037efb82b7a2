"""Video processing operations declared in config: parsing, validation, sweeps, geometry.

An operation is one column of Table I: a name, a category (the paper groups
columns by category) and either an ffmpeg filter chain (pixel operations),
codec settings (a real libx264 encode/decode round trip) or nothing (`clean`,
the identity). A severity sweep is one declaration with a list of `levels`
whose filter or codec settings use the placeholder `{level}`; it expands into
one operation per level, named `<name>@<level>` (e.g. `noise@10`, `scale@0.25`),
which is safe in file names, shells and Snakemake wildcards.

Face boxes found on the clean video can be reused on a processed copy when the
operation's geometry is known: hflip/vflip mirror, scale changes the scale,
transpose swaps the axes, and every other filter must keep the frame size
(colour, noise, blur). Frame sizes are measured by running the chain on a
blank frame, so scale expressions of any form (`iw/2`, `-2:360`) are exact.
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from dfrobust.core.errors import ConfigError, InputError
from dfrobust.core.settings import Settings
from dfrobust.media.ffmpeg import frame_size_after, split_top_level

PLACEHOLDER = "{level}"
LEVEL_SEP = "@"
# filters that move pixels without changing the frame size: boxes cannot be reused
MOVES_PIXELS = {"rotate", "perspective", "lenscorrection", "shear", "crop", "pad", "zoompan", "v360", "deshake",
                "vidstabtransform", "dejudder", "fillborders", "transpose_npp", "scroll", "tile", "swaprect"}
# filters whose output frame depends only on the input frame (and the options): an operation
# made of these can run on the stored sampled frames (dfrobust.media.framestore) instead of the
# whole stream. Deliberately a short list: a filter not named here runs on the whole stream
# (always right, only slower).
FRAME_FILTERS = {"hflip", "vflip", "transpose", "scale", "format", "curves", "eq", "colorchannelmixer",
                 "colorbalance", "colorlevels", "negate", "lutyuv", "lutrgb", "gblur", "boxblur", "unsharp"}
# filters whose output depends on the input frame and on how many frames came before it, never on
# those frames' pixels: ffmpeg's noise draws its per-frame random offsets (allf=t) from a generator
# seeded once (all_seed), so frame n gets the same noise whenever n frames precede it
POSITION_FILTERS = {"noise"}
TRANSPOSE_DIRS = {"0": "cclock_flip", "1": "clock", "2": "cclock", "3": "clock_flip",
                  "cclock_flip": "cclock_flip", "clock": "clock", "cclock": "cclock", "clock_flip": "clock_flip"}


class OperationError(ConfigError):
    """A problem with an operation's declaration: the same for every video, so
    the job stops instead of excluding videos one by one."""


@dataclass(frozen=True)
class Operation:
    """One processed copy of the test set, fully resolved (what a job's params hold).

    filter:  ffmpeg filter chain (linear, comma-separated) or None
    codec:   {encoder, crf, preset, pix_fmt, threads} or None
    perturb: {mean, variance, sites}: scored on the clean faces with the detector's shallow
             feature statistics shifted (no copy: is_identity), or None
    sweep:   the declared name of a severity sweep this copy belongs to, level its value
    faces:   'reuse' (clean boxes through the geometry) or 'redetect'
    """

    name: str
    category: str
    filter: str | None
    codec: dict | None = field(hash=False)
    sweep: str | None
    level: float | int | None
    faces: str
    keep_videos: bool
    perturb: dict | None = field(hash=False)  # a scoring setting (feature statistics), not a copy of the video

    @property
    def is_identity(self) -> bool:
        return self.filter is None and self.codec is None

    @property
    def is_codec(self) -> bool:
        return self.codec is not None

    @property
    def scope(self) -> str:
        """What the operation needs of the video to give a sampled frame:
        'frame'    that frame only (every filter in FRAME_FILTERS);
        'position' that frame and its frame number (POSITION_FILTERS, the rest per-frame);
        'stream'   the whole stream (codecs, identity, any other filter, and a filter with
                   eval=frame: its expressions may read the time or frame number)."""
        if self.is_codec or self.is_identity:
            return "stream"
        scopes = set()
        for single in self.filters():
            name = filter_name(single)
            if re.search(r"\beval\s*=\s*frame", single):
                return "stream"
            if name in FRAME_FILTERS:
                scopes.add("frame")
            elif name in POSITION_FILTERS:
                scopes.add("position")
            else:
                return "stream"
        return "position" if "position" in scopes else "frame"

    @property
    def from_stored_frames(self) -> bool:
        """Whether the test copy starts from the stored sampled frames
        (dfrobust.media.framestore) instead of the video: a per-frame or position
        operation that does not keep its full processed videos."""
        return self.scope in ("frame", "position") and not self.keep_videos

    def filters(self) -> list[str]:
        """The filter chain as a list of single filters ([] for identity and codec)."""
        return split_chain(self.filter) if self.filter else []

    def params(self) -> dict:
        """Plain dict of the resolved operation (Snakemake params, shard metadata)."""
        return asdict(self)

    @classmethod
    def from_params(cls, params: dict) -> "Operation":
        return cls(**params)


def split_chain(chain: str) -> list[str]:
    """Split a linear filter chain at its top-level commas (as ffmpeg's own parser does)."""
    return split_top_level(chain, ",")


def filter_name(single: str) -> str:
    """'scale=iw/2:ih/2' -> 'scale' (an '@instance' suffix is dropped)."""
    return single.split("=", 1)[0].split("@", 1)[0].strip()


def format_level(level: float | int) -> str:
    """A level as written in names and filters: 10, 0.5, 0.125 (never 10.0)."""
    if isinstance(level, float) and level.is_integer():
        level = int(level)
    return str(level)


# --- config -> operations ---------------------------------------------------------


def _where(key: str, entry: Settings) -> str:
    return f"operations.{key} ({entry.name!r})"


def _check_entry(where: str, entry: Settings) -> None:
    """What the schema cannot say: which of filter / codec / levels an entry may have."""
    has_filter, has_codec = entry.filter is not None, entry.codec is not None
    if (entry.category == "features") != (entry.perturb is not None):
        raise OperationError(f"{where}: a scoring perturbation (perturb) is category features, and only it")
    if entry.category == "features":
        if has_filter or has_codec or entry.levels is not None:
            raise OperationError(f"{where}: a scoring perturbation takes no filter, codec or levels (the clean faces are scored)")
        return
    if entry.category == "none":
        if has_filter or has_codec or entry.levels is not None:
            raise OperationError(f"{where}: category 'none' is the unprocessed copy and takes no filter, codec or levels")
        return
    if has_filter == has_codec:
        which = "both" if has_filter else "neither"
        raise OperationError(f"{where}: give exactly one of 'filter' (an ffmpeg filter chain) or 'codec' (encoder settings), got {which}")
    if has_filter:
        chain = entry["filter"]
        if not chain.strip():
            raise OperationError(f"{where}: filter must be a non-empty ffmpeg filter chain string")
        if ";" in chain or re.search(r"\[[A-Za-z0-9_]+\]", chain):
            raise OperationError(f"{where}: filter must be one linear chain (filters separated by ','), without ';' or [labels]")


def _check_levels(where: str, entry: Settings) -> tuple | None:
    levels = entry.levels
    template = entry.filter if entry.filter is not None else str(entry.codec.crf)
    uses = PLACEHOLDER in template
    if levels is None:
        if uses:
            raise OperationError(f"{where}: uses {PLACEHOLDER} but declares no levels")
        return None
    if len({format_level(v) for v in levels}) != len(levels):
        raise OperationError(f"{where}: levels repeat a value: {levels!r}")
    if not uses:
        raise OperationError(f"{where}: declares levels but its filter/codec does not use the placeholder {PLACEHOLDER}")
    return levels


def _resolve_codec(where: str, codec: Settings, level, block: Settings) -> dict:
    crf = codec.crf
    if isinstance(crf, str):
        text = crf.replace(PLACEHOLDER, format_level(level)) if level is not None else crf
        try:
            crf = float(text)
        except ValueError:
            raise OperationError(f"{where}: codec crf must be a number or '{PLACEHOLDER}', got {codec.crf!r}") from None
    if isinstance(crf, bool) or not isinstance(crf, (int, float)) or not float(crf).is_integer() or not 0 <= crf <= 63:
        raise OperationError(f"{where}: codec crf must be an integer in 0..63, got {crf!r}")
    return {
        "encoder": codec.encoder,
        "crf": int(crf),
        "preset": codec.preset or block.x264_preset,
        "pix_fmt": codec.pix_fmt,
        "threads": int(block.encoder_threads),
    }


def expand_operations(block: Settings) -> list[Operation]:
    """The operations of the validated `operations` block (`list` then `extra`;
    dfrobust.core.config.block), checked for what the schema cannot say,
    sweeps expanded in the order declared. Raises InputError naming the operation."""
    entries = [(f"{key}[{i}]", entry) for key in ("list", "extra") for i, entry in enumerate(block[key])]
    operations: list[Operation] = []
    for key, entry in entries:
        where = _where(key, entry)
        _check_entry(where, entry)
        common = {
            "category": entry.category,
            "faces": entry.faces or block.faces,
            "keep_videos": bool(block.keep_videos if entry.keep_videos is None else entry.keep_videos),
        }
        levels = _check_levels(where, entry) if entry.category not in ("none", "features") else None
        for level in levels if levels is not None else [None]:
            name = entry.name if level is None else f"{entry.name}{LEVEL_SEP}{format_level(level)}"
            chain = entry.filter
            if chain is not None and level is not None:
                chain = chain.replace(PLACEHOLDER, format_level(level))
            codec = _resolve_codec(where, entry.codec, level, block) if entry.codec is not None else None
            operations.append(Operation(
                name=name, filter=chain, codec=codec, level=level,
                sweep=entry.name if level is not None else None,
                perturb=entry.perturb.to_dict() if entry.perturb is not None else None, **common,
            ))
    names = [op.name for op in operations]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise OperationError(f"operations: names must be unique, repeated: {', '.join(duplicates)}")
    if not operations:
        raise OperationError("operations: the list is empty (at least the clean reference is needed)")
    return operations


def registry(operations: list[Operation]) -> dict[str, Operation]:
    """name -> operation, in config order."""
    return {op.name: op for op in operations}


def categories(operations: list[Operation]) -> list[str]:
    """Categories in order of first appearance (the column groups of the table)."""
    return list(dict.fromkeys(op.category for op in operations))


# --- geometry ---------------------------------------------------------------------


@dataclass(frozen=True)
class Transform:
    """Where a point of the source frame lands in the processed frame: an affine
    map on continuous pixel coordinates (pixel edges at integers)."""

    matrix: np.ndarray  # (2, 3)
    size: tuple[int, int]  # (width, height) of the processed frame

    def points(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, np.float64)
        return (xy @ self.matrix[:, :2].T + self.matrix[:, 2]).astype(np.float32)

    def box(self, box: np.ndarray) -> np.ndarray:
        """A [x0, y0, x1, y1] box mapped and re-ordered (a flip swaps its edges)."""
        corners = self.points(np.array([[box[0], box[1]], [box[2], box[3]]]))
        return np.concatenate([corners.min(axis=0), corners.max(axis=0)]).astype(np.float32)


def _affine(a, b, c, d, e, f) -> np.ndarray:
    return np.array([[a, b, c], [d, e, f], [0, 0, 1]], np.float64)


def _transpose_dir(single: str) -> str:
    args = single.split("=", 1)[1] if "=" in single else "0"
    for part in args.split(":"):
        key, _, value = part.partition("=")
        value = value if _ else key
        if (not _ or key.strip() == "dir") and value.strip() in TRANSPOSE_DIRS:
            return TRANSPOSE_DIRS[value.strip()]
    return "cclock_flip"


def _filter_step(op_name: str, single: str, before: tuple[int, int], after: tuple[int, int]) -> np.ndarray:
    """3x3 matrix of one filter, from its name and the sizes around it."""
    (w, h), (w2, h2) = before, after
    name = filter_name(single)
    if name == "hflip":
        return _affine(-1, 0, w, 0, 1, 0)
    if name == "vflip":
        return _affine(1, 0, 0, 0, -1, h)
    if name == "transpose":
        if (w2, h2) == (w, h) and w != h:  # passthrough=landscape/portrait left it alone
            return np.eye(3)
        direction = _transpose_dir(single)
        return {
            "clock": _affine(0, -1, h, 1, 0, 0),
            "cclock": _affine(0, 1, 0, -1, 0, w),
            "clock_flip": _affine(0, -1, h, -1, 0, w),
            "cclock_flip": _affine(0, 1, 0, 1, 0, 0),
        }[direction]
    if name in ("scale", "zscale") and (w2, h2) != (w, h):
        return _affine(w2 / w, 0, 0, 0, h2 / h, 0)
    if name in MOVES_PIXELS or (w2, h2) != (w, h):
        change = f" changes the frame size ({w}x{h} -> {w2}x{h2})" if (w2, h2) != (w, h) else " moves pixels"
        raise OperationError(
            f"operation {op_name!r}: filter {single!r}{change}, and face boxes cannot be carried through it; "
            f"set `faces: redetect` for this operation (or use hflip/vflip/transpose/scale)"
        )
    return np.eye(3)


def geometry(op: Operation, width: int, height: int, exe: str) -> Transform:
    """How `op` maps source-frame coordinates to processed-frame coordinates."""
    filters = op.filters()
    total = np.eye(3)
    size = (int(width), int(height))
    for k, single in enumerate(filters):
        after = output_size(op, width, height, exe, upto=k + 1)
        total = _filter_step(op.name, single, size, after) @ total
        size = after
    return Transform(matrix=total[:2], size=size)


def output_size(op: Operation, width: int, height: int, exe: str, upto: int | None = None) -> tuple[int, int]:
    """(width, height) of `op`'s frames (after its first `upto` filters) for a source frame of this size."""
    try:
        return chain_output_size(tuple(op.filters()[:upto]), int(width), int(height), exe)
    except OperationError as err:
        raise OperationError(f"operation {op.name!r}: {err}") from None


@functools.lru_cache(maxsize=256)
def chain_output_size(filters: tuple[str, ...], width: int, height: int, exe: str) -> tuple[int, int]:
    """(width, height) a filter chain makes of a width x height frame (measured by ffmpeg)."""
    if not filters:
        return int(width), int(height)
    try:
        return frame_size_after(filters, int(width), int(height), exe)
    except InputError as err:
        raise OperationError(str(err)) from None
