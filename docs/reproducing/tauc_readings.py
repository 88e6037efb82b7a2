"""Which tAUC reading could give Masi et al.'s printed numbers? (docs/reproducing/two_branch.md)

Simulates FF++-sized frame scores of the two-branch paper's test protocol (140 real and 560
fake videos, 11 windows of 10 frames each, every frame carrying its window's score, windows
clustered by video), at separations that put the frame pAUC at 10% near the paper's 97.43,
and prints both tAUC readings beside it: the area (the paper's text) and the mean TAR over the
ROC's vertices (the authors' group's code). The paper prints 65.29 for that row.

    python docs/reproducing/tauc_readings.py
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from dfrobust.evaluation.metrics import standardized_pauc, truncated_auc, vertex_tauc

VIDEOS = {0: 140, 1: 560}  # real, fake (FF++ test: 140 videos, and 140 of each manipulation)
WINDOWS, FRAMES = 11, 10


def frame_scores(rng: np.random.Generator, video_sd: float, separation: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores, one per frame: a video effect, window noise, frames sharing their window's."""
    labels, scores = [], []
    for label, count in VIDEOS.items():
        video = rng.normal(separation * label, video_sd, count)
        windows = video[:, None] + rng.normal(0, 1, (count, WINDOWS))
        scores.append(np.repeat(windows, FRAMES, axis=1).ravel())
        labels.append(np.full(count * WINDOWS * FRAMES, label))
    return np.concatenate(labels), np.concatenate(scores)


def main() -> None:
    rng = np.random.default_rng(0)
    print("video sd  separation  pAUC@10%  tAUC@10% (area)  tAUC@10% (vertices)  tAUC@1% (area)  tAUC@1% (vertices)")
    for video_sd, separation in [(0.5, 4.3), (1.0, 5.0), (1.5, 6.0), (2.0, 7.5)]:
        labels, scores = frame_scores(rng, video_sd, separation)
        fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
        print(f"{video_sd:8.1f}  {separation:10.1f}  {100 * standardized_pauc(fpr, tpr, 0.1):8.2f}  "
              f"{100 * truncated_auc(fpr, tpr, 0.1):15.2f}  {100 * vertex_tauc(labels, scores, 0.1):19.2f}  "
              f"{100 * truncated_auc(fpr, tpr, 0.01):14.2f}  {100 * vertex_tauc(labels, scores, 0.01):18.2f}")


if __name__ == "__main__":
    main()
