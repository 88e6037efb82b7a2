"""The embedded demo datasets: built offline from a seed, in a real dataset's
layout, so every stage after them reads them as that dataset.

    kind demo           FaceForensics++ layout (ffpp_layout.build_demo)
    kind demo_celebdf   Celeb-DF v2 layout (celebdf_layout.build_demo_celebdf)

Their pieces: identities (real photos and identities made from them),
motion (performances and frame rendering), manipulations (the four FF++
methods), warp (piecewise-affine warps and masks).
"""

from __future__ import annotations

from pathlib import Path

from dfrobust.datasets import READERS
from dfrobust.datasets.ffpp import SPLITS


def planned_counts(kind: str, block: dict, config: dict) -> dict[str, int]:
    """Videos per split of a dataset, from its split or label files only (a
    dry run plans every face job before any video is read). A demo is not
    built yet when the workflow plans: its counts come from its config block
    (`config` is the whole validated config)."""
    if kind == "demo":
        pairs = config["demo"]["pairs"]
        return {split: 2 * pairs[split] * (1 + len(block["methods"])) for split in SPLITS}
    if kind == "demo_celebdf":
        from dfrobust.demo.celebdf_layout import planned_counts as celebdf_counts

        return celebdf_counts(config["demo_celebdf"])
    return READERS[kind].planned_counts(block)


def build(kind: str, demo_block: dict, dataset_block: dict, seed: int, ffmpeg_path: str | None, root: str | Path,
          look: dict | None = None) -> dict:
    """Build an embedded demo under `root`: the FF++-layout demo (kind demo)
    with the dataset block's methods and qualities (the index must find what
    it writes), or the Celeb-DF-layout one (kind demo_celebdf), whose people
    and motion follow the `demo` block (`look`)."""
    if kind == "demo_celebdf":
        from dfrobust.demo.celebdf_layout import build_demo_celebdf

        return build_demo_celebdf(root, demo_block, seed, ffmpeg_path, look=look)
    from dfrobust.demo.ffpp_layout import build_demo

    return build_demo(root, {**demo_block, "methods": dataset_block["methods"], "qualities": dataset_block["qualities"]},
                      seed, ffmpeg_path)
