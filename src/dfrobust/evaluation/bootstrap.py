"""Bootstrap confidence interval of a ROC AUC.

Videos (not frames) are resampled: frames of one video are strongly
correlated, so resampling frames would give intervals that are far too narrow.
Resampling is stratified by label (reals from reals, fakes from fakes, each
class keeping its size) so every replicate has both classes and a defined AUC.
"""

from __future__ import annotations

import numpy as np


def rank_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each row of `scores` (Mann-Whitney U with mid-ranks, so ties count 1/2).

    `labels` is one 0/1 vector shared by all rows; works on a 1-d score
    vector too (returns a 0-d array).
    """
    from scipy.stats import rankdata  # here, not at import: scipy.stats costs ~1 s, and score jobs never rank

    labels = np.asarray(labels).astype(bool)
    ranks = rankdata(scores, axis=-1)
    n_pos = labels.sum()
    n_neg = labels.size - n_pos
    rank_sum = ranks[..., labels].sum(axis=-1)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def bootstrap_auc(
    labels: np.ndarray,
    scores: np.ndarray,
    n: int,
    seed: int,
    ci: float,
    chunk: int = 250,
) -> tuple[float, float, np.ndarray]:
    """Percentile interval (low, high) of the AUC and the `n` replicate AUCs.

    The same seed and the same (sorted) videos always give the same interval;
    resamples are drawn in chunks to bound memory on large tables.
    """
    if n < 1:
        raise ValueError(f"bootstrap needs at least one resample, got n={n}")
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    neg = np.flatnonzero(labels == 0)
    pos = np.flatnonzero(labels == 1)
    if len(neg) == 0 or len(pos) == 0:
        raise ValueError("bootstrap needs both real and fake samples")
    rng = np.random.default_rng(seed)
    stacked_labels = np.r_[np.zeros(len(neg), int), np.ones(len(pos), int)]
    replicates = []
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        idx = np.hstack([rng.choice(neg, (size, len(neg))), rng.choice(pos, (size, len(pos)))])
        replicates.append(rank_auc(stacked_labels, scores[idx]))
    replicates = np.concatenate(replicates)
    alpha = (1 - ci) / 2
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    return float(low), float(high), replicates
