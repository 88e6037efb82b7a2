"""The per-epoch training log (log.csv) and its picture (curve.png)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from dfrobust.core.io import atomic_path, write_text

COLUMNS = ["epoch", "train_loss", "val_loss", "val_auc", "lr", "seconds", "images_per_s", "resumed"]


def write_log(path: str | Path, rows: list[dict]) -> None:
    """Rewrite the whole log from the rows kept in the checkpoint (atomic), so
    a resumed run's log holds every epoch even if the old file is gone."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row[k]) for k in COLUMNS})
    write_text(path, buf.getvalue())


def read_log(path: str | Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [
            {k: (int(v) if k in ("epoch", "resumed") else float(v)) for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]


def plot_curve(path: str | Path, rows: list[dict], selected_epoch: int, title: str) -> None:
    """Losses and validation AUC per epoch, the selected epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_auc) = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in rows], "s-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_auc.plot(epochs, [100 * r["val_auc"] for r in rows], "o-", color="tab:green")
    ax_auc.set(xlabel="epoch", ylabel="AUC (%)", title="validation AUC")
    for ax in (ax_loss, ax_auc):
        ax.axvline(selected_epoch, color="grey", linestyle="--", linewidth=1)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title} (selected epoch {selected_epoch})")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)
