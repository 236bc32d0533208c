"""Plots for evaluation reports: t-SNE of speaker embeddings (the paper's Figures 3 and 6), bar charts, and the
reliability diagram of the face head's readings.

Matplotlib's Agg backend is forced so that plotting works on headless machines and in CI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def tsne_2d(embeddings: np.ndarray, seed: int = 0, perplexity: float | None = None) -> np.ndarray:
    """2-D t-SNE on cosine distance; perplexity shrinks for small sets (it must stay below the point count)."""
    from sklearn.manifold import TSNE

    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    if n < 3:
        return np.zeros((n, 2)) if n < 2 else np.array([[0.0, 0.0], [1.0, 0.0]])
    perplexity = perplexity or float(min(30.0, max(2.0, (n - 1) / 3)))
    perplexity = min(perplexity, n - 1.0)
    tsne = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed)
    return tsne.fit_transform(x + 1e-9)  # zero rows (silent clips) would make cosine distance undefined


def tsne_plot(
    embeddings: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    title: str = "Speaker embeddings (t-SNE)",
    seed: int = 0,
    max_legend: int = 20,
) -> Path:
    """Scatter of the t-SNE map coloured by speaker: tight, separate clusters mean consistent voices."""
    points = tsne_2d(embeddings, seed=seed)
    labels = [str(lab) for lab in labels]
    names = sorted(set(labels))
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    for i, name in enumerate(names):
        m = np.asarray([lab == name for lab in labels])
        ax.scatter(points[m, 0], points[m, 1], s=18, color=cmap(i % cmap.N), label=name, alpha=0.85)
    if len(names) <= max_legend:
        ax.legend(fontsize=7, loc="best", markerscale=0.8, frameon=False)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, path)


def bar_chart(
    names: Sequence[str],
    values: Sequence[float | None],
    path: str | Path,
    title: str,
    ylabel: str,
    reference: float | None = None,
    reference_label: str = "chance",
    counts: Sequence[int] | None = None,
) -> Path:
    """Labelled bars (missing values drawn empty), with an optional dashed reference line such as chance."""
    vals = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 3.6), dpi=120)
    x = np.arange(len(names))
    bars = ax.bar(x, np.nan_to_num(vals), color=plt.get_cmap("tab10")(0), alpha=0.85)
    for i, (bar, v) in enumerate(zip(bars, vals)):
        text = "n/a" if np.isnan(v) else f"{v:.3g}"
        if counts is not None:
            text += f"\nn={counts[i]}"
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7)
    if reference is not None:
        ax.axhline(reference, linestyle="--", color="gray", linewidth=1, label=reference_label)
        ax.legend(fontsize=7, frameon=False)
    ax.set_xticks(x, list(names), rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    finite = vals[np.isfinite(vals)]
    top = max([*finite.tolist(), reference or 0.0, 1e-6])
    ax.set_ylim(min(0.0, *finite.tolist()) if len(finite) else 0.0, top * 1.2)
    return _save(fig, path)


def reliability_diagram(
    curves: dict[str, tuple[Sequence[float], Sequence[float]]], path: str | Path, title: str, bins: int = 10
) -> Path:
    """Accuracy against confidence per equal-width bin, one line per named (confidences, correct) set, with the
    diagonal a calibrated reader would follow and each curve's ECE in the legend."""
    from .calibration import expected_calibration_error, reliability_bins

    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=120)
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="calibrated")
    for name, (confidences, correct) in curves.items():
        rows = [r for r in reliability_bins(confidences, correct, bins) if r["count"]]
        ece = expected_calibration_error(confidences, correct, bins)
        ax.plot(
            [r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o", label=f"{name} (ECE {ece:.3f})"
        )
    ax.set_xlim(0.45, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("confidence of the class read")
    ax.set_ylabel("share read right")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
