"""Scoring and metrics (rules/score.smk): one trained model on every face of
one test copy (one row per frame), and the metrics of that score table.

Batched inference without gradients in eval mode, so the same model and the
same faces give the same scores on a rerun.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from dfrobust.core import provenance
from dfrobust.core.config import block
from dfrobust.core.errors import InputError
from dfrobust.core.io import atomic_path, write_json
from dfrobust.media.store import FaceShard
from dfrobust.media.windows import stored_length
from dfrobust.core.runlog import log

COLUMNS = ["video_id", "manipulation", "label", "frame_index", "score"]


def score_faces(detector, shard_paths: list[str | Path], batch_size: int) -> pd.DataFrame:
    """Fake probability of every stored face of the given shards (one row per
    face), each cut and batched as the detector's data (FaceData.score_records)
    says. A sequence detector scores windows: each face of a window carries its
    window's score, and its data may add columns after COLUMNS (the two-branch
    network: `window`, and `video_score`, the video's own score, which the
    metrics then take instead of the mean of its rows').

    Faces of a whole shard go through the network together, so batches are
    full (a video has only ~32 faces; per-video batches would starve a GPU).
    """
    import numpy as np

    from dfrobust.detectors.registry import build_data

    data = build_data(detector.name, detector.cfg)
    parts = []
    for path in shard_paths:
        shard = FaceShard(path)
        records = [r for r in shard if r.n_faces]
        if not records:
            continue
        scored = data.score_records(detector, records, stored_length(shard.summary), batch_size, log)
        counts = [len(s[0]) for s in scored]
        extra = [s[2] if len(s) > 2 else {} for s in scored]
        part = pd.DataFrame({
            "video_id": np.repeat([r.video_id for r in records], counts),
            "manipulation": np.repeat([r.manipulation for r in records], counts),
            "label": np.repeat([r.label for r in records], counts),
            "frame_index": np.concatenate([s[0] for s in scored]),
            "score": np.concatenate([s[1] for s in scored]),
        })
        for column in dict.fromkeys(k for e in extra for k in e):
            part[column] = np.concatenate([e[column] for e in extra])
        parts.append(part)
    if not parts:  # every video excluded (no face, unreadable): the metrics say so (evaluate_file)
        log(f"{', '.join(map(str, shard_paths))}: no faces to score (every video was excluded)")
        return pd.DataFrame(columns=COLUMNS)
    table = pd.concat(parts, ignore_index=True)
    return table[COLUMNS + [c for c in table.columns if c not in COLUMNS]]


def score_copy(model: str | Path, shard_paths: list[str | Path], out_csv: str | Path,
               batch_size: int, device: str, compute: dict, operation: dict, weights: Mapping | None = None) -> pd.DataFrame:
    """Load the model, score every face of the copy (under the `compute` block's precision
    and memory layout; with the operation's scoring perturbation, if it has one), write the
    per-frame CSV atomically. `model` is a trained model's folder or weights.pt, or (`weights`:
    method, format, detector config and the row's settings, dfrobust.plan.Model.scoring) a
    weights file trained elsewhere."""
    from contextlib import nullcontext

    from dfrobust.detectors.inference import load_trained, load_weights

    if weights is None:
        detector = load_trained(model, device=device).set_compute(compute)
    else:
        detector = load_weights(model, weights["method"], weights["format"], weights["detector"], weights["settings"],
                                device=device).set_compute(compute)
    trained, what = detector.trained, []
    if weights is not None:
        what.append(f"format {trained['format']}")
    if trained["epoch"] is not None:
        what.append(f"epoch {trained['epoch']}")
    if trained["val_auc"] is not None:
        what.append(f"val AUC {trained['val_auc']:.4f}")
    log(f"scoring {len(shard_paths)} shard(s) with {model} ({', '.join(what)})")
    perturb = operation["perturb"]
    shift = nullcontext()
    if perturb:  # imported here: dfrobust.training pulls in scikit-learn, 1.5 s of every score job otherwise
        from dfrobust.training.procedures.pim import shifted_statistics

        shift = shifted_statistics(detector, perturb, f"operations ({operation['name']!r}).perturb")
    with detector.autocast(), shift:
        table = score_faces(detector, shard_paths, batch_size)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.8g")
    log(f"wrote {out_csv}: {len(table)} faces of {table['video_id'].nunique()} videos")
    return table


def evaluate_file(
    scores_path: str | os.PathLike | list,
    output_path: str | os.PathLike,
    config: Mapping,
    cell: Mapping,
    inputs: Iterable[str | os.PathLike] = (),
    shards: Iterable[str | os.PathLike] = (),
    thresholds: Iterable[str | os.PathLike] = (),
) -> dict:
    """Metrics of one score file on one test set, written to `output_path` (several score
    files: a test set pooling qualities, each file one quality's copy; a video counts once per
    file, its id prefixed by the file's quality folder).

    `config` is the evaluation config block (bootstrap, ci, seed, far_levels,
    threshold; a partial one takes the schema's defaults). `cell` names the table cell
    and is copied into the record: method, train_quality, test_set,
    operation, category, sweep/level for swept operations, and
    `manipulations`: a test set keeping only these fakes (the reals always)
    is this filter on the copy's score file. Where no video of a class is
    left to score (every one excluded: no face, unreadable), the record says
    so instead (status "no_video_scored", a one-line reason with the
    exclusions counted from the `shards`' summaries). A column whose recall
    thresholds come from another test set ("test-from-valid": `cell`'s
    `thresholds_from`, {test_set, manipulations}) reads that test set's score
    files, `thresholds`. The record carries its provenance (config, code and
    library versions, seed, sha256 of the score files and of any extra `inputs`).
    """
    evaluation = block("evaluation", config)
    # here, not at import: sklearn and scipy cost ~1 s per score job, which never computes metrics
    from dfrobust.evaluation.metrics import compute_metrics

    paths = [scores_path] if isinstance(scores_path, (str, os.PathLike)) else list(scores_path)
    frames = _read_test_set(paths, cell.get("manipulations"))
    thresholds, chosen = list(thresholds), None
    source = cell.get("thresholds_from")
    if bool(source) != bool(thresholds):
        raise InputError(f"{output_path}: a cell's thresholds_from ({source!r}) and the score files its thresholds "
                         f"are chosen on ({len(thresholds)} given) go together")
    if source:
        chosen = _read_test_set(thresholds, source.get("manipulations"))
    missing = [label for label in (0, 1) if not (frames["label"] == label).any()]
    excluded = exclusions(shards, cell.get("manipulations"), missing)
    if missing and all(excluded["by_label"][label] for label in missing):
        metrics = {"status": "no_video_scored", **excluded}
        log(f"{scores_path}: {metrics['reason']}")
    else:  # a class the test set does not have at all is a MetricsInputError, as any degenerate table
        metrics = compute_metrics(frames, evaluation, source=scores_path, thresholds_from=chosen)
    record = {**dict(cell), **metrics, "scores": str(paths[0]) if len(paths) == 1 else [str(p) for p in paths]}
    if thresholds:
        record["threshold_scores"] = [str(p) for p in thresholds]
    record["provenance"] = provenance.collect(evaluation.to_dict(), [*paths, *thresholds, *inputs], evaluation.seed)
    write_json(output_path, record)
    return record


def _read_test_set(paths: list, manipulations) -> pd.DataFrame:
    """A test set's score table from its score files (several: one per quality it pools, each
    video once per file, its id prefixed by the file's quality folder), keeping the reals and
    `manipulations`' fakes (None: all)."""
    from dfrobust.evaluation.metrics import read_scores

    frames = read_scores(paths[0])
    if len(paths) > 1:  # the same video at each quality: one video per (quality, video)
        frames = pd.concat([read_scores(p).assign(video_id=lambda f, p=p: Path(p).parent.parent.name + "/" + f["video_id"])
                            for p in paths], ignore_index=True)
    if manipulations:
        frames = frames[(frames["label"] == 0) | frames["manipulation"].isin(manipulations)]
    return frames


def exclusions(shards: Iterable[str | os.PathLike], manipulations, missing: list[int]) -> dict:
    """Why a test set has no video of a class (`missing` labels) to score: the exclusions its
    shards' summaries record (videos of the test set's manipulations and the reals), counted
    by status and by label."""
    import json
    from collections import Counter

    videos = [v for path in shards for v in json.loads(Path(path).read_text())["videos"]
              if not manipulations or v["label"] == 0 or v["manipulation"] in manipulations]
    statuses = Counter(v["status"] for v in videos if v["status"] != "ok")
    which = " or ".join({0: "real", 1: "fake"}[label] for label in missing)
    reason = (f"no {which} video scored: {sum(statuses.values())} of {len(videos)} videos excluded"
              + (f" ({', '.join(f'{status} {n}' for status, n in sorted(statuses.items()))})" if statuses else ""))
    by_label = {label: sum(v["status"] != "ok" for v in videos if v["label"] == label) for label in (0, 1)}
    return {"reason": reason, "excluded": dict(statuses), "videos": len(videos), "by_label": by_label}
