"""ROC curves on log-log axes (the low-FPR region is where membership inference matters)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_roc(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]], n_non_members: int, title: str, path: Path
) -> None:
    """curves: attack -> (fpr, tpr, auc). Points with FPR or TPR of 0 cannot be drawn on log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = 0.5 / max(n_non_members, 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, (fpr, tpr, auc) in curves.items():
        keep = (fpr > 0) & (tpr > 0)
        ax.plot(fpr[keep], tpr[keep], label=f"{name} (AUC {auc:.3f})", linewidth=1.2)
    ax.plot([floor, 1], [floor, 1], "k--", linewidth=0.8, label="chance")
    ax.axvline(
        1 / max(n_non_members, 1), color="grey", linestyle=":", linewidth=0.8, label=f"1 / {n_non_members} non-members"
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
