"""Video aggregation, detection metrics, bootstrap intervals and DeLong tests."""

from dfrobust.evaluation.bootstrap import bootstrap_auc
from dfrobust.evaluation.delong import DeLongResult, delong_test, delong_video_tables, delong_videos
from dfrobust.evaluation.metrics import (
    MetricsInputError,
    compute_metrics,
    read_scores,
    roc_points,
    video_scores,
)

__all__ = [
    "DeLongResult",
    "MetricsInputError",
    "bootstrap_auc",
    "compute_metrics",
    "delong_test",
    "delong_video_tables",
    "delong_videos",
    "read_scores",
    "roc_points",
    "video_scores",
]
