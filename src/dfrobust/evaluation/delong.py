"""DeLong's test for two correlated ROC AUCs (two detectors on the same videos).

Two detectors scored on the same copy of the test set are paired, so their
AUCs are correlated; DeLong, DeLong & Clarke-Pearson (1988) estimate the
covariance from the structural components, here computed with mid-ranks in
O(n log n) as in Sun & Xu (2014). Ties count 1/2, as in the AUC itself.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from dfrobust.evaluation.metrics import MetricsInputError, video_scores


class DeLongResult(NamedTuple):
    auc1: float
    auc2: float
    z: float
    p: float


def structural_components(labels: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(auc, v10, v01) of one score vector.

    v10[i] = P(score of fake i > score of a random real) (+1/2 for ties),
    v01[j] = P(score of a random fake > score of real j); both average to the AUC.
    """
    from scipy.stats import rankdata  # lazily: scipy.stats costs ~1 s to import

    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    pos, neg = scores[labels], scores[~labels]
    m, n = len(pos), len(neg)
    combined = rankdata(np.r_[pos, neg])
    rank_pos, rank_neg = combined[:m], combined[m:]
    v10 = (rank_pos - rankdata(pos)) / n
    v01 = 1.0 - (rank_neg - rankdata(neg)) / m
    return float(v10.mean()), v10, v01


def delong_test(labels: np.ndarray, scores1: np.ndarray, scores2: np.ndarray) -> DeLongResult:
    """Two-sided DeLong test of AUC(scores1) == AUC(scores2) on the same samples.

    Identical scores give z = 0, p = 1. Needs at least two samples per class
    (the covariance of the structural components is undefined otherwise).
    """
    from scipy.stats import norm

    labels = np.asarray(labels).astype(int)
    scores1 = np.asarray(scores1, dtype=float)
    scores2 = np.asarray(scores2, dtype=float)
    if not (len(labels) == len(scores1) == len(scores2)):
        raise ValueError("labels and both score vectors must have the same length (paired samples)")
    m, n = int(np.sum(labels == 1)), int(np.sum(labels == 0))
    if m < 2 or n < 2:
        raise MetricsInputError(f"DeLong test needs at least 2 real and 2 fake samples, got {n} real, {m} fake")
    auc1, v10_1, v01_1 = structural_components(labels, scores1)
    auc2, v10_2, v01_2 = structural_components(labels, scores2)
    s10 = np.cov(np.vstack([v10_1, v10_2]))
    s01 = np.cov(np.vstack([v01_1, v01_2]))
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = auc1 - auc2
    if var <= 1e-15 * max(1.0, cov[0, 0] + cov[1, 1]):
        # no spread in the paired difference: equal AUCs are no evidence of a difference
        z = 0.0 if abs(diff) < 1e-12 else float(np.sign(diff) * np.inf)
    else:
        z = float(diff / np.sqrt(var))
    p = float(2 * norm.sf(abs(z)))
    return DeLongResult(auc1, auc2, z, p)


def delong_videos(frames1: pd.DataFrame, frames2: pd.DataFrame) -> DeLongResult:
    """DeLong test of two detectors' video-level AUCs from their per-frame score tables."""
    return delong_video_tables(video_scores(frames1), video_scores(frames2))


def delong_video_tables(videos1: pd.DataFrame, videos2: pd.DataFrame) -> DeLongResult:
    """DeLong test on two video tables (from `video_scores`), paired by video_id.

    Only videos present in both tables are compared (two detectors' scores on
    one copy of the test set normally hold the same videos); their labels must agree.
    """
    v1 = videos1.set_index("video_id")
    v2 = videos2.set_index("video_id")
    common = v1.index.intersection(v2.index).sort_values()
    v1, v2 = v1.loc[common], v2.loc[common]
    if not np.array_equal(v1["label"].to_numpy(), v2["label"].to_numpy()):
        raise MetricsInputError("DeLong test: the two score tables disagree on video labels")
    return delong_test(v1["label"].to_numpy(), v1["score"].to_numpy(), v2["score"].to_numpy())
