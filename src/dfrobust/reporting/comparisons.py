"""Pairwise DeLong tests between a table's rows (models) on each of its
columns: which detector is better on the same test copy, with its p-value."""

from __future__ import annotations

import itertools
import os
from typing import Mapping

import pandas as pd

from dfrobust.core.io import write_text


def pairwise_delong(scores: Mapping[tuple[str, str, str], str | os.PathLike | pd.DataFrame]) -> pd.DataFrame:
    """DeLong tests between every pair of models (method/train_quality) on each operation.

    `scores` maps (method, train_quality, operation) to a per-frame score
    table or its CSV path. Returns one row per (operation, model_a, model_b)
    with auc_a, auc_b, z, p and the number of videos both models scored.
    """
    from dfrobust.evaluation.delong import delong_video_tables
    from dfrobust.evaluation.metrics import read_scores, video_scores

    by_operation: dict[str, dict[str, pd.DataFrame]] = {}
    for (method, quality, operation), source in scores.items():
        frames = source if isinstance(source, pd.DataFrame) else read_scores(source)
        name = None if isinstance(source, pd.DataFrame) else source
        by_operation.setdefault(operation, {})[f"{method}/{quality}"] = video_scores(frames, name)
    rows = []
    for operation, models in by_operation.items():
        for (a, va), (b, vb) in itertools.combinations(models.items(), 2):
            result = delong_video_tables(va, vb)
            rows.append({"operation": operation, "model_a": a, "model_b": b,
                         "auc_a": result.auc1, "auc_b": result.auc2, "z": result.z, "p": result.p,
                         "n_videos": len(set(va["video_id"]) & set(vb["video_id"]))})
    return pd.DataFrame(rows, columns=["operation", "model_a", "model_b", "auc_a", "auc_b", "z", "p", "n_videos"])


def write_pairwise_delong(scores, path: str | os.PathLike) -> pd.DataFrame:
    """Write the pairwise DeLong table as CSV (AUCs as fractions, 6 significant digits)."""
    table = pairwise_delong(scores)
    write_text(path, table.to_csv(index=False, float_format="%.6g"))
    return table


def scores_by_cell(spec: Mapping, score_paths: list[str]) -> dict[tuple[str, str, str], str]:
    """(method, train_quality, operation) -> score file, for a table's rows x columns (the paths
    in that order, as the plan lists them: dfrobust.plan.Plan.table_scores)."""
    keys = [(r["method"], r["train_quality"], c["operation"]) for r in spec["rows"] for c in spec["columns"]]
    if len(keys) != len(score_paths):
        raise ValueError(f"{len(score_paths)} score files for a table of {len(keys)} cells")
    return dict(zip(keys, score_paths))
