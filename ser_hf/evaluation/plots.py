"""Figures for evaluation reports: confusion matrices, per-class scores, UA per speaker, reliability diagram, and the
speaker-adaptive UA by enrollment size.

Built with matplotlib's object API (``matplotlib.figure.Figure``), never ``pyplot``: no backend is
selected, no global state is touched and no window opens, so importing or calling this module is safe
on headless servers and inside notebooks alike. ``Figure.savefig`` renders with Agg on its own.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ser_hf._io import write_output_file

_SCORE_KEYS = ("precision", "recall", "f1")


def _annotate_matrix(ax: Any, values: np.ndarray, texts: list[list[str]], vmax: float) -> None:
    # White text on dark cells, black on light ones, so every number stays readable.
    for row in range(values.shape[0]):
        for col in range(values.shape[1]):
            dark = vmax > 0 and values[row, col] > 0.5 * vmax
            ax.text(col, row, texts[row][col], ha="center", va="center", fontsize=8, color="white" if dark else "black")


def _draw_matrix(
    fig: Figure, ax: Any, values: np.ndarray, texts: list[list[str]], labels: Sequence[str], title: str, vmax: float
) -> None:
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax if vmax > 0 else 1.0)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(ticks, labels=list(labels))
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Reference")
    ax.set_title(title)
    _annotate_matrix(ax, values, texts, vmax)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def plot_confusion_matrix(confusion_matrix: Any, labels: Sequence[str], title: str | None = None) -> Figure:
    """Counts and row-normalised (recall, %) confusion matrices side by side, every cell annotated.

    Args:
        confusion_matrix: ``(C, C)`` counts, rows are references, columns predictions.
        labels: The C class names.
        title: Figure title (e.g. ``"wav2vec2-base on RAVDESS (test)"``).

    Returns:
        A ``matplotlib.figure.Figure``; save it with ``fig.savefig(path)``.

    Example:
        ```python
        >>> fig = plot_confusion_matrix([[5, 1], [2, 4]], ["neutral", "angry"])
        >>> fig.savefig("confusion_matrix.png")  # doctest: +SKIP

        ```
    """
    counts = np.asarray(confusion_matrix, dtype=np.int64)
    support = counts.sum(axis=1, keepdims=True)
    # Rows without references stay empty rather than dividing by zero.
    normalised = np.divide(100.0 * counts, support, out=np.zeros(counts.shape), where=support > 0)
    size = max(4.0, 0.6 * len(labels) + 2.5)
    fig = Figure(figsize=(2 * size + 1, size), layout="constrained")
    ax_counts, ax_norm = fig.subplots(1, 2)
    count_texts = [[str(v) for v in row] for row in counts]
    norm_texts = [[f"{v:.0f}" if s else "-" for v in row] for row, s in zip(normalised, support[:, 0], strict=True)]
    _draw_matrix(fig, ax_counts, counts, count_texts, labels, "Counts", float(counts.max()))
    _draw_matrix(fig, ax_norm, normalised, norm_texts, labels, "Row-normalised (% of reference)", 100.0)
    if title:
        fig.suptitle(title)
    return fig


def plot_per_class(per_class: Mapping[str, Mapping[str, Any]], title: str | None = None) -> Figure:
    """Grouped bars of precision, recall and F1 for each class; undefined values are marked "n/a".

    Args:
        per_class: Class name -> dict with ``precision``, ``recall``, ``f1`` (floats or `None`) and
            ``support``, as in :attr:`EvaluationReport.per_class`.
        title: Figure title.

    Returns:
        A ``matplotlib.figure.Figure``.
    """
    labels = list(per_class)
    fig = Figure(figsize=(max(5.0, 1.2 * len(labels) + 2.0), 4.0), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(len(labels))
    width = 0.8 / len(_SCORE_KEYS)
    for k, key in enumerate(_SCORE_KEYS):
        values = [per_class[name].get(key) for name in labels]
        x = positions + (k - 1) * width
        ax.bar(x, [0.0 if v is None else v for v in values], width, label=key.capitalize() if key != "f1" else "F1")
        for xi, v in zip(x, values, strict=True):
            if v is None:
                ax.text(xi, 0.02, "n/a", ha="center", va="bottom", rotation=90, fontsize=7)
    ax.set_xticks(positions, labels=[f"{name}\n(n={per_class[name].get('support', 0)})" for name in labels])
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("Score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    ax.set_title(title or "Per-class scores")
    return fig


def plot_reliability(calibration: Mapping[str, Any], title: str | None = None) -> Figure:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with bin counts below.

    Args:
        calibration: The dict from :func:`ser_hf.evaluation.calibration.reliability_bins`.
        title: Figure title; defaults to one quoting the ECE.

    Returns:
        A ``matplotlib.figure.Figure``.
    """
    edges = np.asarray(calibration["bin_edges"])
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    accuracy = np.array([np.nan if v is None else v for v in calibration["bin_accuracy"]])
    confidence = np.array([np.nan if v is None else v for v in calibration["bin_confidence"]])
    fig = Figure(figsize=(5.0, 6.0), layout="constrained")
    ax, ax_count = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    filled = ~np.isnan(accuracy)
    ax.bar(centers[filled], accuracy[filled], width[filled], edgecolor="black", label="Accuracy")
    # The gap bars show over/under-confidence per bin, the quantity ECE averages.
    ax.bar(
        centers[filled],
        confidence[filled] - accuracy[filled],
        width[filled],
        bottom=accuracy[filled],
        color="red",
        alpha=0.3,
        edgecolor="red",
        label="Gap to confidence",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="Perfect calibration")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("Accuracy")
    ax.legend(loc="upper left")
    ece = calibration["expected_calibration_error"]
    ax.set_title(title or f"Reliability (ECE = {100 * ece:.1f}%, {calibration['n_bins']} bins)")
    ax_count.bar(centers, calibration["bin_count"], width, color="gray", edgecolor="black")
    ax_count.set_xlabel("Confidence (top-label probability)")
    ax_count.set_ylabel("Count")
    return fig


_GENDER_COLOURS = {"female": "tab:orange", "male": "tab:blue"}


def plot_speakers(by_speaker: Mapping[str, Any], title: str | None = None) -> Figure:
    """UA of every speaker as bars grouped and coloured by gender, with each gender's UA as a line (the UA of
    all that gender's clips together, not the mean of its speakers' UAs).

    Args:
        by_speaker: The dict from :func:`ser_hf.evaluation.breakdown.speaker_breakdown`
            (:attr:`EvaluationReport.by_speaker`).
        title: Figure title.

    Returns:
        A ``matplotlib.figure.Figure``; speakers of unknown gender are grey and the legend says so.
    """
    rows = sorted(by_speaker["speakers"], key=lambda r: (r["gender"], -(r["unweighted_accuracy"] or 0.0)))
    fig = Figure(figsize=(max(5.0, 0.45 * len(rows) + 2.0), 4.0), layout="constrained")
    ax = fig.subplots()
    colours = [_GENDER_COLOURS.get(r["gender"], "tab:gray") for r in rows]
    ax.bar(np.arange(len(rows)), [r["unweighted_accuracy"] or 0.0 for r in rows], color=colours)
    for gender, summary in by_speaker["genders"].items():
        positions = [i for i, r in enumerate(rows) if r["gender"] == gender]
        if positions and summary["unweighted_accuracy"] is not None:
            ax.hlines(summary["unweighted_accuracy"], positions[0] - 0.4, positions[-1] + 0.4, linestyles="--",
                      colors="black", label=f"{gender}, all {summary['num_samples']} clips together: UA "
                                            f"{100 * summary['unweighted_accuracy']:.1f}% ({summary['num_speakers']} speakers)")
    ax.set_xticks(np.arange(len(rows)), labels=[f"{r['speaker']}\n(n={r['num_samples']})" for r in rows],
                  rotation=90 if len(rows) > 12 else 0, fontsize=7)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("UA of the speaker's clips")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False, fontsize=8)
    ax.set_title(title or "UA per speaker")
    return fig


def plot_enrollment_curve(rows: Sequence[Mapping[str, Any]], with_copies: Sequence[Mapping[str, Any]] = (),
                          title: str | None = None) -> Figure:
    """Speaker-adaptive UA against the enrollment clips (``ser-hf cv``'s rows, from
    :func:`~ser_hf.training.speaker_adaptation.summarise_enrollment`): each setting's UA with its 95% interval, the
    global head's UA on the very same clips beside it, and, with ``with_copies``, the rows scored with test-time copies.

    The settings are categories in the rows' order (1, 3, 5, 10, 20 clips, then all clips and neutral clips), not a
    numeric axis: "all" and "neutral" are not sizes, and a row of a size no test speaker reached is simply absent.

    Returns:
        A ``matplotlib.figure.Figure``.
    """
    names = list(dict.fromkeys(str(row["enrollment"]) for row in [*rows, *with_copies]))
    positions = {name: index for index, name in enumerate(names)}
    fig = Figure(figsize=(max(5.0, 0.8 * len(names) + 2.5), 4.0), layout="constrained")
    ax = fig.subplots()
    series = [(rows, "speaker-adaptive", "tab:blue", -0.08), (with_copies, "speaker-adaptive, test-time copies",
                                                                "tab:green", 0.08)]
    for part, label, colour, nudge in series:
        if not part:
            continue
        x = np.array([positions[str(row["enrollment"])] for row in part]) + nudge
        y = np.array([row["unweighted_accuracy"] for row in part])
        intervals = [row.get("confidence_interval") or (value, value) for row, value in zip(part, y)]
        errors = np.array([[value - low, high - value] for value, (low, high) in zip(y, intervals)]).T
        ax.errorbar(x, y, yerr=errors, fmt="o", color=colour, capsize=3, label=f"{label} (95% CI)")
        ax.plot(x, [row["global_unweighted_accuracy_same_clips"] for row in part], "_", color=colour, markersize=14,
                markeredgewidth=2, alpha=0.6, label="global head on the same clips" if nudge < 0 else None)
    shown = {"1": "1 clip", "neutral": "neutral clips"}
    ax.set_xticks(range(len(names)), labels=[shown.get(name, f"{name} clips" if name.isdigit() else name)
                                             for name in names])
    ax.set_xlabel("clips of the test speaker enrolled (never scored, except 'all')")
    ax.set_ylabel("pooled UA")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "Speaker adaptation by enrollment size")
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write a figure to ``path`` (format from the suffix) and return the path.

    Args:
        fig: The figure.
        path: Output file, e.g. ``out/confusion_matrix.png``.
        dpi: Resolution.

    Returns:
        The path as a ``Path``.
    """
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return write_output_file(path, buffer.getvalue())
