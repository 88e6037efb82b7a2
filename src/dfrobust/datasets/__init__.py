"""Datasets: readers of each dataset's published layout (FaceForensics++ and
the others), and the embedded demo datasets that mimic them."""

from __future__ import annotations

from dfrobust.core.errors import InputError


def planned_counts(kind: str, cfg: dict, config: dict) -> dict[str, int]:
    """Videos per split of a dataset, from its split or label files only (a
    dry run plans every face job before any video is read). `config` is the
    whole validated config (the demo's size lives in its own block)."""
    from dfrobust.datasets import ffpp

    if kind == "demo":
        pairs = config["demo"]["pairs"]
        return {split: 2 * pairs[split] * (1 + len(cfg["methods"])) for split in ffpp.SPLITS}
    if kind == "ffpp":
        splits = ffpp.read_splits(ffpp.splits_dir_of(cfg))
        return {split: len(ffpp.split_videos(splits[split], cfg["methods"], split)) for split in ffpp.SPLITS}
    raise InputError(f"dataset kind {kind!r}: no reader")
