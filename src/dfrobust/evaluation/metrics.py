"""Detection metrics of one score table (one detector on one copy of the test set).

The paper's number is the *video-level* ROC AUC: a video's score is the mean of
its frame scores. Everything else (frame AUC, accuracy, EER, AP, the
low-false-alarm metrics of the two-branch LoG paper, a bootstrap interval and
per-manipulation AUCs) is reported next to it so a cell can be read in context.

Conventions
-----------
* A score is the probability of *fake*; a sample is called fake when
  ``score >= threshold`` (the same rule as scikit-learn's ROC thresholds).
* ROC operating points between two thresholds are joined by straight lines
  (ROC linear interpolation, as scikit-learn's ``roc_auc_score(max_fpr=)``):
  tied scores give one diagonal step, and where the curve is vertical at a
  requested FAR the highest TAR is taken (the best point with FPR <= FAR).
* A score table may carry a `video_score` column (a sequence detector whose
  video score is not the mean of its rows': the two-branch network's
  g(mean of its windows' distances)); it must be the same in every row of a
  video, and video-level metrics take it instead of the mean. Frame-level
  metrics count rows, which for such a detector are faces, each carrying its
  window's score.
* Degenerate input (an empty table, only real or only fake videos, labels
  other than 0/1, scores outside [0, 1] or NaN, a video with two labels)
  raises :class:`MetricsInputError` (a ``ValueError``), never a silent NaN:
  a number in Table I must mean something.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score, roc_curve

from dfrobust.core.errors import InputError
from dfrobust.evaluation.bootstrap import bootstrap_auc

REQUIRED_COLUMNS = ("video_id", "manipulation", "label", "frame_index", "score")
VIDEO_SCORE = "video_score"  # optional: a video's own score, in each of its rows


class MetricsInputError(InputError, ValueError):
    """A score table on which a metric is undefined (one class only, empty, bad values)."""


def _where(source: str | os.PathLike | None) -> str:
    return f"{source}: " if source else ""


def check_frames(frames: pd.DataFrame, source: str | os.PathLike | None = None) -> pd.DataFrame:
    """Validate a per-frame score table; return it with clean dtypes.

    `source` (a file name) prefixes every error message.
    """
    where = _where(source)
    missing = [c for c in REQUIRED_COLUMNS if c not in frames.columns]
    if missing:
        raise MetricsInputError(f"{where}score table lacks column(s) {', '.join(missing)}")
    if len(frames) == 0:
        raise MetricsInputError(f"{where}score table is empty: no frames to evaluate")
    frames = frames.copy()
    frames["video_id"] = frames["video_id"].astype(str)
    frames["manipulation"] = frames["manipulation"].astype(str)
    score = pd.to_numeric(frames["score"], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(score)):
        bad = frames.loc[~np.isfinite(score), "video_id"].iloc[0]
        raise MetricsInputError(f"{where}score is NaN or not a number (first in video {bad})")
    if score.min() < 0 or score.max() > 1:
        raise MetricsInputError(
            f"{where}scores must be fake probabilities in [0, 1], found range "
            f"[{score.min():.4g}, {score.max():.4g}] (logits?)"
        )
    frames["score"] = score
    labels = pd.to_numeric(frames["label"], errors="coerce")
    if not labels.isin([0, 1]).all():
        found = frames.loc[~labels.isin([0, 1]), "label"].unique()[:5].tolist()
        raise MetricsInputError(f"{where}label must be 0 (real) or 1 (fake), found {found}")
    frames["label"] = labels.astype(int)
    if VIDEO_SCORE in frames.columns:
        video = pd.to_numeric(frames[VIDEO_SCORE], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(video)) or video.min() < 0 or video.max() > 1:
            raise MetricsInputError(f"{where}{VIDEO_SCORE} must be a probability in [0, 1] in every row")
        frames[VIDEO_SCORE] = video
        uneven = frames.groupby("video_id")[VIDEO_SCORE].nunique()
        if (uneven > 1).any():
            raise MetricsInputError(f"{where}video {uneven.index[uneven > 1][0]} has rows with different {VIDEO_SCORE}s")
    per_video = frames.groupby("video_id")[["label", "manipulation"]].nunique()
    mixed = per_video.index[(per_video > 1).any(axis=1)]
    if len(mixed):
        raise MetricsInputError(f"{where}video {mixed[0]} has frames with different labels or manipulations")
    return frames


def video_scores(frames: pd.DataFrame, source: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per video: video_id, manipulation, label, score (mean of its
    frame scores, or its `video_score` where the table has one, rounded to 12
    decimals so that equal means tie exactly),
    n_frames; sorted by video_id so results never depend on row order.

    Videos are keyed by their full id ("Deepfakes/000_003"), so fakes with the
    same name under different manipulations stay separate videos.
    """
    return _aggregate(check_frames(frames, source))


def _aggregate(frames: pd.DataFrame) -> pd.DataFrame:
    own = VIDEO_SCORE in frames.columns
    videos = (
        frames.groupby("video_id", sort=True)
        .agg(manipulation=("manipulation", "first"), label=("label", "first"),
             score=(VIDEO_SCORE, "first") if own else ("score", "mean"), n_frames=("score", "size"))
        .reset_index()
    )
    # equal means must tie whatever the summation order (0.1+0.5)/2 vs 0.3
    videos["score"] = videos["score"].round(12)
    return videos


def _require_both_classes(labels: np.ndarray, what: str, source) -> None:
    n_fake = int(np.sum(labels == 1))
    n_real = int(np.sum(labels == 0))
    if n_fake == 0 or n_real == 0:
        lacking = "fake (label 1)" if n_fake == 0 else "real (label 0)"
        raise MetricsInputError(
            f"{_where(source)}no {lacking} {what} ({n_real} real, {n_fake} fake): AUC is undefined with one class"
        )


def _roc(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # keep every vertex: interpolation below must see the exact curve
    return roc_curve(labels, scores, drop_intermediate=False)


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """TAR at a given FAR on the linearly interpolated ROC curve.

    Where the curve is vertical at `far` the highest TPR is returned (the best
    operating point whose FPR does not exceed `far`), as scikit-learn does.
    """
    if not 0 < far <= 1:
        raise ValueError(f"FAR must be in (0, 1], got {far}")
    stop = int(np.searchsorted(fpr, far, side="right"))
    if stop >= len(fpr):
        return float(tpr[-1])
    return float(np.interp(far, [fpr[stop - 1], fpr[stop]], [tpr[stop - 1], tpr[stop]]))


def partial_area(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """Area under the linearly interpolated ROC curve for FPR in [0, far]."""
    stop = int(np.searchsorted(fpr, far, side="right"))
    xs = np.append(fpr[:stop], far)
    ys = np.append(tpr[:stop], tpr_at_fpr(fpr, tpr, far))
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2))  # trapezoid rule


def standardized_pauc(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """Partial AUC on FPR in [0, far] with McClish's correction: 0.5 for a
    random detector, 1 for a perfect one (equals sklearn's roc_auc_score(max_fpr=far))."""
    area = partial_area(fpr, tpr, far)
    min_area = 0.5 * far**2
    return 0.5 * (1 + (area - min_area) / (far - min_area))


def truncated_auc(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """Mean TAR over FAR in [0, far]: the partial area divided by `far` (1 = perfect)."""
    return partial_area(fpr, tpr, far) / far


def vertex_tauc(labels: np.ndarray, scores: np.ndarray, far: float) -> float:
    """The tAUC reading that may reproduce the two-branch paper's printed tAUCs: the mean TAR
    over the vertices of scikit-learn's default ROC (roc_curve with drop_intermediate=True,
    its (0, 0) start included) whose FAR is <= `far`. Not an area: it depends on which
    vertices the curve keeps. It is what `get_trunc_auc` computes in code from the authors'
    group (github.com/CHELSEA234/HiFi_IFDL, applications/deepfake_detection/sequence/torch_utils.py,
    and the same group's anti-spoofing evaluation script: tpr[fpr <= far].mean() of roc_curve);
    the paper's text defines tAUC as an area (truncated_auc)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.mean(tpr[fpr <= far]))


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """FPR where FPR = FNR on the linearly interpolated ROC curve.

    fpr + tpr - 1 never decreases along the curve, so the crossing is found on
    the first segment where it becomes >= 0 and interpolated there.
    """
    gap = fpr + tpr - 1.0
    i = int(np.argmax(gap >= 0))
    if i == 0:
        return float(fpr[0])
    share = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + share * (fpr[i] - fpr[i - 1]))


def recall_threshold(labels: np.ndarray, scores: np.ndarray, recall: float) -> float:
    """The highest threshold whose recall (fakes with score >= threshold) reaches `recall`;
    thresholds only at observed scores, so tied scores are called together."""
    order = np.argsort(-scores, kind="stable")
    ranked_scores, ranked = scores[order], labels[order]
    tp = np.cumsum(ranked == 1)
    last = np.r_[ranked_scores[1:] != ranked_scores[:-1], True]  # cut only between distinct scores
    k = int(np.flatnonzero(last & (tp >= recall * tp[-1]))[0])
    return float(ranked_scores[k])


def precision_at(labels: np.ndarray, scores: np.ndarray, threshold: float, alpha: float) -> tuple[float | None, float]:
    """(weighted precision TP / (TP + alpha FP), recall) of calling fake every score >=
    `threshold`; the precision is None when nothing is called fake."""
    called = scores >= threshold
    tp, fp = int(np.sum(called & (labels == 1))), int(np.sum(called & (labels == 0)))
    recall = tp / int(np.sum(labels == 1))
    return (None if tp + fp == 0 else tp / (tp + alpha * fp)), float(recall)


def weighted_precision(labels: np.ndarray, scores: np.ndarray, recall: float, alpha: float) -> float:
    """The DFDC preview's weighted precision at a recall: TP / (TP + alpha FP)
    at the highest threshold whose recall reaches `recall` (alpha weighs the
    false alarms by how much more common real videos are in the wild)."""
    return precision_at(labels, scores, recall_threshold(labels, scores, recall), alpha)[0]


def _pct(far: float) -> str:
    """Key suffix for a FAR level: 0.01 -> '1pct', 0.001 -> '0.1pct'."""
    return f"{format(round(100 * far, 10), 'g')}pct"


def roc_points(frames: pd.DataFrame, level: str = "video") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of the ROC curve at video level (mean frame
    score per video) or frame level, every vertex kept, for figures."""
    if level == "video":
        table = video_scores(frames)
    elif level == "frame":
        table = check_frames(frames)
    else:
        raise ValueError(f"level must be 'video' or 'frame', got {level!r}")
    labels = table["label"].to_numpy()
    _require_both_classes(labels, f"{level}s", None)
    return _roc(labels, table["score"].to_numpy())


def compute_metrics(frames: pd.DataFrame, evaluation: Mapping, source: str | os.PathLike | None = None,
                    thresholds_from: pd.DataFrame | None = None) -> dict:
    """All metrics of one per-frame score table, as a flat JSON-ready dict;
    `evaluation` is the validated evaluation block (bootstrap, seed, ci,
    far_levels, threshold, recall_levels, wp_alpha: dfrobust.core.config.block).

    Keys: video_auc (the paper's number), frame_auc, video_accuracy,
    frame_accuracy (at `threshold`, fake when score >= threshold), video_log_loss,
    frame_log_loss (scikit-learn's, of the fake probability), eer,
    average_precision (video level), for each FAR level f in `far_levels`
    tar_at_far_{f}pct, tauc_{f}pct (truncated AUC) and pauc_{f}pct (McClish
    standardized partial AUC), at video level on the linearly interpolated
    ROC, tauc_vtx_{f}pct (the vertex reading of tAUC, `vertex_tauc`), and the
    same prefixed frame_ at frame level; for each recall r in
    `recall_levels`, log_wp_at_recall_{r} (natural log of the DFDC preview's
    weighted precision, video level, weight `wp_alpha`; None when nothing is
    called fake or no fake is among those called), recall_at_recall_{r} (the
    recall its threshold achieves) and threshold_at_recall_{r}: the threshold
    is the highest reaching recall r on this table, or with `thresholds_from`
    (another score table: the validation set of "test-from-valid") on that
    table's videos, applied here; ci_low/ci_high (stratified percentile bootstrap of video AUC over
    videos, `bootstrap` resamples, `seed`; None when bootstrap == 0);
    per_manipulation ({name: {video_auc, n_videos}}: that method's fakes
    against all real videos); counts (videos/frames per class).

    Raises MetricsInputError (a ValueError) on degenerate input.
    """
    bootstrap, seed, ci = int(evaluation["bootstrap"]), int(evaluation["seed"]), float(evaluation["ci"])
    threshold, recall_levels, wp_alpha = float(evaluation["threshold"]), evaluation["recall_levels"], evaluation["wp_alpha"]
    frames = check_frames(frames, source)
    videos = _aggregate(frames)
    v_labels = videos["label"].to_numpy()
    v_scores = videos["score"].to_numpy()
    f_labels = frames["label"].to_numpy()
    f_scores = frames["score"].to_numpy()
    _require_both_classes(v_labels, "videos", source)
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    far_levels = [float(f) for f in evaluation["far_levels"]]

    fpr, tpr, _ = _roc(v_labels, v_scores)
    out: dict = {
        "video_auc": float(roc_auc_score(v_labels, v_scores)),
        "frame_auc": float(roc_auc_score(f_labels, f_scores)),
        "video_accuracy": float(np.mean((v_scores >= threshold) == v_labels)),
        "frame_accuracy": float(np.mean((f_scores >= threshold) == f_labels)),
        "threshold": float(threshold),
        "eer": equal_error_rate(fpr, tpr),
        # scikit-learn's log-loss of the fake probability (natural log; scores clipped away from 0 and 1)
        "video_log_loss": float(log_loss(v_labels, v_scores, labels=[0, 1])),
        "frame_log_loss": float(log_loss(f_labels, f_scores, labels=[0, 1])),
        "average_precision": float(average_precision_score(v_labels, v_scores)),
        "far_levels": far_levels,
    }
    frame_fpr, frame_tpr, _ = _roc(f_labels, f_scores)
    for far in far_levels:
        out[f"tar_at_far_{_pct(far)}"] = tpr_at_fpr(fpr, tpr, far)
        out[f"tauc_{_pct(far)}"] = truncated_auc(fpr, tpr, far)
        out[f"pauc_{_pct(far)}"] = standardized_pauc(fpr, tpr, far)
        out[f"frame_tar_at_far_{_pct(far)}"] = tpr_at_fpr(frame_fpr, frame_tpr, far)
        out[f"frame_tauc_{_pct(far)}"] = truncated_auc(frame_fpr, frame_tpr, far)
        out[f"frame_pauc_{_pct(far)}"] = standardized_pauc(frame_fpr, frame_tpr, far)
        out[f"tauc_vtx_{_pct(far)}"] = vertex_tauc(v_labels, v_scores, far)
        out[f"frame_tauc_vtx_{_pct(far)}"] = vertex_tauc(f_labels, f_scores, far)
    if thresholds_from is not None:
        chosen = _aggregate(check_frames(thresholds_from, f"{source or 'scores'} (thresholds_from)"))
        _require_both_classes(chosen["label"].to_numpy(), "videos to choose thresholds on", source)
        t_labels, t_scores = chosen["label"].to_numpy(), chosen["score"].to_numpy()
    else:
        t_labels, t_scores = v_labels, v_scores
    for recall in recall_levels:
        key = format(recall, "g")
        threshold = recall_threshold(t_labels, t_scores, recall)
        wp, achieved = precision_at(v_labels, v_scores, threshold, wp_alpha)
        out[f"log_wp_at_recall_{key}"] = None if not wp else float(np.log(wp))
        out[f"recall_at_recall_{key}"] = achieved
        out[f"threshold_at_recall_{key}"] = threshold

    low, high = (None, None)
    if bootstrap > 0:
        low, high, _ = bootstrap_auc(v_labels, v_scores, n=bootstrap, seed=seed, ci=ci)
    out.update(ci_low=low, ci_high=high, ci_level=float(ci), bootstrap=int(bootstrap), seed=int(seed))

    reals = videos[videos["label"] == 0]
    per_manipulation = {}
    for name, fakes in videos[videos["label"] == 1].groupby("manipulation", sort=True):
        both = pd.concat([reals, fakes])
        per_manipulation[name] = {
            "video_auc": float(roc_auc_score(both["label"], both["score"])),
            "n_videos": int(len(fakes)),
        }
    out["per_manipulation"] = per_manipulation
    out["counts"] = {
        "videos": {"real": int(np.sum(v_labels == 0)), "fake": int(np.sum(v_labels == 1))},
        "frames": {"real": int(np.sum(f_labels == 0)), "fake": int(np.sum(f_labels == 1))},
    }
    return out


def read_scores(path: str | os.PathLike) -> pd.DataFrame:
    """Read a per-frame score CSV; a missing or unreadable file is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: score file does not exist")
    try:
        return pd.read_csv(path, dtype={"video_id": str, "manipulation": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MetricsInputError(f"{path}: cannot read score table ({str(exc).splitlines()[0]})") from exc
