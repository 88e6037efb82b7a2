"""WildDeepfake (Zi et al., ACM MM 2020), in its published layout: face crops, not videos.

    real_train/0.tar.gz, 1.tar.gz ...     one archive per source video
    real_test/ ...                        (the README spells the folders "real train" etc.:
    fake_train/ ...                        both spellings are read, ids always use "_")
    fake_test/ ...

Each archive (gzip or plain tar, whatever its name says) holds one folder of
images per face sequence, `<n>/<real|fake>/<sequence>/<frame>.png`, each
image named by its frame number in the source video (not zero padded: 98.png,
99.png, 100.png). There is no label file: the folder gives the label (real_*
0, fake_* 1) and the split (train, test). One quality, "native".

Each face sequence is one "video" of the index:

    video_id      wilddeepfake/<folder>/<archive>/<sequence>, e.g. wilddeepfake/fake_test/3/17
    manipulation  "original" for reals, "WildDeepfake" for fakes
    name          <archive>/<sequence>
    path          the archive (e.g. <root>/fake_test/3.tar.gz; read in place, never unpacked by hand)
    member        the sequence's folder inside the archive (3/fake/17)
    frame_rate    the rate the sequence is read at, as a stream (config key frame_rate)
    missed_face   what an image without a detected face gives (config key missed_face)

<archive> is the archive's file name without .tar.gz/.tgz/.tar; <sequence> is
the member path below `<n>/<real|fake>/` (the whole member path when it has
another shape). The last three columns are the index's sequence columns
(dfrobust.datasets.common.SEQUENCE_COLUMNS): the face stage and the test
copies read a row that has a member as an image sequence
(dfrobust.media.sequence). Being in the index, a change of frame_rate or
missed_face rebuilds the index and so reruns this dataset's face and copy
jobs, and no other's.

What cannot be read is left out, each thing in one line (`skipped(cfg)`,
logged as a WARNING by build_index), and the rest goes on: an archive that
cannot be read (truncated, not a tar file), a sequence folder without images,
a folder whose images are not named by frame numbers, name one frame twice
(07.png and 7.png) or mix image types. A sequence whose path says `real`
inside a fake_* folder (or the reverse) stops the run: that is a mislabelled
copy, not damage.

Config keys (besides `root`, the folder holding the four folders, and
`on_missing`: error|warn, accepted as for every reader; nothing is ever
listed without its archive):

    splits          which folders to read, default [train, test] ([test]: real_test, fake_test only)
    frame_rate      the sequences' frame rate as streams, default 25 (the usual rate of the field; the
                    source videos' rates are not published): the image2 -framerate of every face
                    decode and test copy (an x264 encode of a sequence is at this rate)
    missed_face     an image where the detector finds no face: whole_image (default) keeps the whole
                    image as the face (the images are face crops), flagged in the shard and counted
                    in the summary; skip drops it, as a video frame without a face
    listing_cache   folder of the archive-listing cache, default resources/listings (relative to the
                    working directory); null: none

Listing an archive reads every member header (for gzip, the whole archive),
and planning needs the counts at every Snakemake start. So the listings are
cached, keyed by each archive's size and modification time: the first plan
lists every archive once, later plans only stat them. This is the one reader
that writes a file when planning.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from dfrobust.core.errors import InputError
from dfrobust.core.io import atomic_path
from dfrobust.core.runlog import log
from dfrobust.datasets.common import (COMMON_DEFAULTS, NATIVE, ORIGINAL, Entry, count_splits,
                                      dataset_root, fixed, make_index, order, wanted_splits)
from dfrobust.media.sequence import ArchiveListing, archive_stem, list_archive

KIND = "wilddeepfake"
MANIPULATION = "WildDeepfake"
FOLDERS = {"real_train": (0, "train"), "real_test": (0, "test"), "fake_train": (1, "train"), "fake_test": (1, "test")}
LABEL_WORD = {0: "real", 1: "fake"}
QUALITIES = (NATIVE,)
SPLITS_HERE = ("train", "test")
MISSED_FACE = ("whole_image", "skip")
DEFAULTS = {**COMMON_DEFAULTS, "splits": list(SPLITS_HERE), "frame_rate": 25, "missed_face": "whole_image",
            "listing_cache": "resources/listings"}
CACHE_VERSION = 1


def settings(cfg: dict) -> dict:
    cfg = {**DEFAULTS, **cfg}
    rate = cfg["frame_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
        raise InputError(f"config key 'frame_rate' of the WildDeepfake dataset: {rate!r} is not a positive number")
    if cfg["missed_face"] not in MISSED_FACE:
        raise InputError(f"config key 'missed_face' of the WildDeepfake dataset: {cfg['missed_face']!r} is not one of "
                         f"{', '.join(MISSED_FACE)}")
    return cfg


def spellings(folder: str) -> tuple[str, str]:
    return folder, folder.replace("_", " ")


def disk_folder(root: Path, folder: str) -> str | None:
    """The spelling of a folder this copy uses ('real_test' or 'real test'), None when absent."""
    present = [s for s in spellings(folder) if (root / s).is_dir()]
    if len(present) > 1:
        raise InputError(f"{root}: holds both {' and '.join(repr(p + '/') for p in present)}; keep one "
                         f"(they are the same WildDeepfake folder)")
    return present[0] if present else None


def _stem_key(stem: str) -> tuple:
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)


def archives(cfg: dict) -> list[tuple[str, Path]]:
    """(canonical folder, archive) of the wanted splits' folders, by folder then by number."""
    cfg = settings(cfg)
    root = dataset_root(cfg, "WildDeepfake")
    splits = wanted_splits(cfg, SPLITS_HERE, "WildDeepfake")
    out = []
    for folder, (_, split) in FOLDERS.items():
        if split not in splits:
            continue
        on_disk = disk_folder(root, folder)
        if on_disk is None:
            raise InputError(f"{root}: folder {folder}/ (or '{spellings(folder)[1]}/') does not exist; a WildDeepfake copy "
                             f"has real_train, real_test, fake_train, fake_test (config key 'splits' "
                             f"{list(splits)}: set it to the splits this copy has)")
        found = [(archive_stem(p.name), p) for p in (root / on_disk).iterdir() if p.is_file() and archive_stem(p.name)]
        out += [(folder, path) for _, path in sorted(found, key=lambda sp: _stem_key(sp[0]))]
    return out


def cache_file(cfg: dict) -> Path | None:
    """Where this copy's archive listings are cached (None: no cache)."""
    cfg = settings(cfg)
    if cfg["listing_cache"] is None:
        return None
    key = hashlib.sha1(str(Path(cfg["root"]).resolve()).encode()).hexdigest()[:12]
    return Path(cfg["listing_cache"]) / f"{KIND}-{key}.json"


def _read_cache(path: Path | None, root: Path) -> dict[str, ArchiveListing]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != CACHE_VERSION or data.get("root") != str(root.resolve()):
            return {}
        return {rel: ArchiveListing.from_json(item) for rel, item in data["archives"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}  # a damaged cache is rebuilt, never trusted


def listings(cfg: dict) -> dict[Path, ArchiveListing]:
    """Each wanted archive's listing: from the cache when the archive's size and
    modification time are unchanged, else listed (and the cache rewritten)."""
    cfg = settings(cfg)
    root = Path(cfg["root"])
    cache = cache_file(cfg)
    known = _read_cache(cache, root)
    out, changed = {}, False
    for _, path in archives(cfg):
        rel = path.relative_to(root).as_posix()
        stat = path.stat()
        hit = known.get(rel)
        if hit is None or (hit.size, hit.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            hit, changed = list_archive(path), True
            known[rel] = hit
        out[path] = hit
    if cache is not None and changed:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "root": str(root.resolve()),
                                       "archives": {k: v.to_json() for k, v in sorted(known.items())}}, indent=0))
    return out


def sequence_name(member: str) -> str:
    """The id's <sequence>: the member below `<n>/<real|fake>/` (the whole member path for another shape)."""
    parts = member.split("/")
    return "/".join(parts[2:]) if len(parts) >= 3 and parts[1] in ("real", "fake") else member


def sequences(cfg: dict) -> tuple[list[Entry], dict[str, str], list[str]]:
    """(entries, member of each id, one line per thing left out), from the listings."""
    cfg = settings(cfg)
    root = Path(cfg["root"])
    found = listings(cfg)
    entries, members, skipped = [], {}, []
    for folder, path in archives(cfg):
        label, split = FOLDERS[folder]
        listing = found[path]
        shown = path.relative_to(root).as_posix()
        if listing.error is not None:
            skipped.append(f"{path}: cannot be read ({listing.error}); its sequences are left out")
            continue
        for member in listing.empty:
            skipped.append(f"{path}: sequence {member} has no images; left out")
        for member, reason in listing.rejected.items():
            skipped.append(f"{path}: sequence {member}: {reason}; left out")
        stem = archive_stem(path.name)
        for member in listing.sequences:
            parts = member.split("/")
            word = next((p for p in parts[:-1] if p in ("real", "fake")), None)
            if word is not None and word != LABEL_WORD[label]:
                raise InputError(f"{path}: sequence {member} is in {shown.rsplit('/', 1)[0]}/ ({LABEL_WORD[label]}) but its "
                                 f"path says {word}; this copy is mislabelled")
            name = f"{stem}/{sequence_name(member)}"
            video_id = f"{KIND}/{folder}/{name}"
            entries.append(Entry(video_id, ORIGINAL if label == 0 else MANIPULATION, label, name, split, fixed(shown)))
            members[video_id] = member
    return order(entries), members, skipped


def videos(cfg: dict) -> list[Entry]:
    """Every readable face sequence of the wanted folders (Entry.relpath: its archive)."""
    return sequences(cfg)[0]


def skipped(cfg: dict) -> list[str]:
    """One line per archive or sequence left out (and why)."""
    return sequences(cfg)[2]


def build_index(cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(index, missing): one row per face sequence, with its sequence columns; `missing` is always
    empty (the folders are the list). What is left out is logged, one WARNING line each."""
    cfg = settings(cfg)
    root = Path(cfg["root"])
    entries, members, left_out = sequences(cfg)
    for line in left_out:
        log(f"WARNING: {line}")
    index, _ = make_index(entries, root, QUALITIES, root)
    index["member"] = index["video_id"].map(members).astype(str)
    index["frame_rate"] = float(cfg["frame_rate"])
    index["missed_face"] = cfg["missed_face"]
    return index, index[~index["exists"]].reset_index(drop=True)


def planned_counts(cfg: dict) -> dict[str, int]:
    """Sequences per split, from the (cached) listings: the same as the index's."""
    return count_splits(videos(cfg))


def label_files(cfg: dict) -> list[Path]:
    """The files the index is read from: every archive of the wanted folders."""
    return [path for _, path in archives(cfg)]
