"""Figures of the robustness study (matplotlib, Agg backend, PNG).

Each function writes one PNG atomically and returns its path; figures are
closed after saving so a report rule can draw many without leaking memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dfrobust.core.io import atomic_path  # noqa: E402

SUMMARY = ("summary", "average")  # the Average column of a table with categories (dfrobust.reporting.tables.by_category)


def _save(fig, path: str | os.PathLike, dpi: int) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _model_labels(table: pd.DataFrame) -> list[str]:
    return [f"{m} ({q})" for m, q in table.index]


def _colors(n: int):
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def heatmap(table: pd.DataFrame, path: str | os.PathLike, dpi: int, decimals: int,
            cmap: str) -> Path:
    """Table I as a heatmap: models down, operations across, AUC (%) written in each cell."""
    values = table.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * n_cols, 1.2 + 0.45 * max(n_rows, 1)))
    finite = values[np.isfinite(values)]
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (50.0, 100.0)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=max(vmax, vmin + 1e-6),
                      aspect="auto")
    for i in range(n_rows):
        for j in range(n_cols):
            text = "–" if not np.isfinite(values[i, j]) else f"{values[i, j]:.{decimals}f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(n_cols), ["Average" if c == SUMMARY else c[1] for c in table.columns],
                  rotation=45, ha="right")
    ax.set_yticks(range(n_rows), _model_labels(table))
    # category names above their columns, thin lines between categories
    categories = [c for c, _ in table.columns]
    start = 0
    for j in range(1, n_cols + 1):
        if j == n_cols or categories[j] != categories[start]:
            if categories[start] != SUMMARY[0]:
                ax.text((start + j - 1) / 2, -0.7, categories[start], ha="center", va="bottom", fontsize=8)
            if j < n_cols:
                ax.axvline(j - 0.5, color="white", linewidth=2)
            start = j
    ax.set_ylim(n_rows - 0.5, -1.2)
    fig.colorbar(image, ax=ax, label="video AUC (%)")
    ax.set_title("Video-level AUC (%) per operation", pad=14)
    return _save(fig, path, dpi)


def auc_drop_bars(table: pd.DataFrame, path: str | os.PathLike, reference: str,
                  dpi: int) -> Path:
    """Grouped bars: for each operation category, each model's AUC drop from the
    reference column (mean over the category's operations, percentage points;
    positive = the operation hurts)."""
    ops = [c for c in table.columns if c != SUMMARY and c[1] != reference]
    ref_cols = [c for c in table.columns if c[1] == reference]
    if not ref_cols:
        raise ValueError(f"table has no reference column {reference!r} to measure drops from")
    clean = table[ref_cols[0]]
    categories = list(dict.fromkeys(c for c, _ in ops))
    # drop of each operation, then its category's mean (missing cells skipped)
    drops = pd.DataFrame({
        cat: table[[c for c in ops if c[0] == cat]].rsub(clean, axis=0).mean(axis=1) for cat in categories
    }, index=table.index).to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(categories) + 2), 3.8))
    width = 0.8 / max(len(table), 1)
    x = np.arange(len(categories))
    for i, (label, color) in enumerate(zip(_model_labels(table), _colors(len(table)))):
        ax.bar(x + (i - (len(table) - 1) / 2) * width, np.nan_to_num(drops[i]), width, label=label, color=color)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, categories, rotation=20, ha="right")
    ax.set_ylabel(f"AUC drop from {reference} (points)")
    ax.set_title("AUC drop per operation category")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path, dpi)


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike,
               title: str, dpi: int) -> Path:
    """One model's ROC curves, one per operation: `curves` maps operation -> (fpr, tpr)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for (operation, (fpr, tpr)), color in zip(curves.items(), _colors(len(curves))):
        auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        ax.plot(fpr, tpr, color=color, linewidth=1.2, label=f"{operation} ({100 * auc:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false alarm rate (real called fake)")
    ax.set_ylabel("true acceptance rate (fake detected)")
    ax.set_title(title or "ROC (video level)")
    ax.legend(fontsize=7, title="operation (AUC %)", title_fontsize=7, loc="lower right")
    return _save(fig, path, dpi)


def roc_figures(scores: Mapping[tuple[str, str, str], str | os.PathLike | pd.DataFrame],
                paths: Mapping[tuple[str, str], str | os.PathLike], operations: Sequence[str] | None,
                dpi: int) -> list[Path]:
    """One ROC figure per model (method, train_quality), written to its entry of `paths`,
    one curve per operation.

    `scores` maps (method, train_quality, operation) to a per-frame score table
    or its CSV; curves follow `operations` order when given (others after).
    """
    from dfrobust.evaluation.metrics import read_scores, roc_points

    models: dict[tuple[str, str], dict[str, object]] = {}
    for (method, quality, operation), source in scores.items():
        models.setdefault((method, quality), {})[operation] = source
    rank = {op: i for i, op in enumerate(operations or ())}
    written = []
    for (method, quality), by_op in models.items():
        curves = {}
        for operation in sorted(by_op, key=lambda op: (rank.get(op, len(rank)), op)):
            source = by_op[operation]
            frames = source if isinstance(source, pd.DataFrame) else read_scores(source)
            fpr, tpr, _ = roc_points(frames, level="video")
            curves[operation] = (fpr, tpr)
        written.append(roc_figure(curves, paths[(method, quality)],
                                  title=f"{method} trained on {quality}: video-level ROC", dpi=dpi))
    return written


def _level_key(level):
    try:
        return (0, float(level), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(level))


def severity_figure(records: Sequence[Mapping], path: str | os.PathLike, dpi: int) -> Path:
    """Video AUC (%) against severity level, one panel per swept operation, one
    line per model (method, train_quality), with the bootstrap interval as a band.

    Swept operations are records with a `sweep` name and a `level`. Without any,
    the figure says so (the file still exists for the workflow).
    """
    swept = [r for r in records if r.get("sweep") not in (None, "") and r.get("level") is not None]
    sweeps = list(dict.fromkeys(str(r["sweep"]) for r in swept))
    if not sweeps:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no swept operations configured", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, path, dpi)
    fig, axes = plt.subplots(1, len(sweeps), figsize=(4.2 * len(sweeps), 3.6), squeeze=False)
    models = list(dict.fromkeys((str(r["method"]), str(r["train_quality"])) for r in swept))
    colors = dict(zip(models, _colors(len(models))))
    for ax, sweep in zip(axes[0], sweeps):
        in_sweep = [r for r in swept if str(r["sweep"]) == sweep]
        levels = sorted(dict.fromkeys(r["level"] for r in in_sweep), key=_level_key)
        numeric = all(_level_key(lv)[0] == 0 for lv in levels)
        position = {lv: (float(lv) if numeric else i) for i, lv in enumerate(levels)}
        for model in models:
            rows = sorted((r for r in in_sweep if (str(r["method"]), str(r["train_quality"])) == model),
                          key=lambda r: _level_key(r["level"]))
            if not rows:
                continue
            x = np.array([position[r["level"]] for r in rows])
            y = np.array([100 * float(r["video_auc"]) for r in rows])
            ax.plot(x, y, marker="o", color=colors[model], label=f"{model[0]} ({model[1]})")
            if all(r.get("ci_low") is not None and r.get("ci_high") is not None for r in rows):
                low = [100 * float(r["ci_low"]) for r in rows]
                high = [100 * float(r["ci_high"]) for r in rows]
                ax.fill_between(x, low, high, color=colors[model], alpha=0.15, linewidth=0)
        if not numeric:
            ax.set_xticks(range(len(levels)), [str(lv) for lv in levels])
        ax.set_title(sweep)
        ax.set_xlabel("level")
        ax.set_ylabel("video AUC (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path, dpi)
