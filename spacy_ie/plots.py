"""Plots of an evaluation's threshold sweeps (`spacy_ie.evaluation.evaluate_relations`):
per view, a precision-recall curve and an F1-by-threshold plot, a line per relation label plus
micro, as PNG files.

matplotlib is an optional extra (``pip install spacy-ie[plots]``). It is imported only when a
plot is drawn, and only its object-oriented API (``Figure`` on an Agg canvas): no pyplot, no
display, no change to matplotlib's global backend. This module imports nothing from the rest of
the package, so `spacy_ie.evaluation` can call it.
"""
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union


class PlotsUnavailable(ImportError):
    """Plots were asked for but matplotlib is not installed."""


def _matplotlib() -> Tuple[Any, Any]:
    """matplotlib's Figure and Agg canvas (no pyplot, no display, no global backend change).

    RAISES (PlotsUnavailable): if matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise PlotsUnavailable(
            "Plots need matplotlib, an optional extra: pip install spacy-ie[plots]"
        ) from err
    return Figure, FigureCanvasAgg


def check_plots_available() -> None:
    """RAISES (PlotsUnavailable): if matplotlib is missing (call before a long evaluation)."""
    _matplotlib()


def write_plots(
    results: Dict[str, Any],
    plots_dir: Union[str, Path],
    *,
    titles: Optional[Mapping[str, str]] = None,
) -> Dict[str, List[str]]:
    """Write, per view, a precision-recall curve and a threshold-vs-F1 plot (PNG, 700 x 500
    pixels), each with a line per label plus micro, and a dot at each line's best threshold.

    results (Dict[str, Any]): as `spacy_ie.evaluation.evaluate_relations` returns them; read:
        ``threshold`` (the configured global threshold, a dashed line) and, per view in
        ``views``, its ``sweep`` (``thresholds`` and the ``micro`` and ``per_type`` curves).
    plots_dir (Union[str, Path]): the directory to write to (created if missing); files are
        named ``{view}_precision_recall.png`` and ``{view}_threshold_f1.png``.
    titles (Optional[Mapping[str, str]]): view -> the words for it in the plot titles
        (default: the view's name).
    RETURNS (Dict[str, List[str]]): view -> the paths written.
    RAISES (PlotsUnavailable): if matplotlib is not installed.
    """
    Figure, FigureCanvasAgg = _matplotlib()
    titles = titles or {}
    out = Path(plots_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: Dict[str, List[str]] = {}
    for view, data in results["views"].items():
        sweep = data["sweep"]
        ts = sweep["thresholds"]
        curves = [(label, curve, {}) for label, curve in sweep["per_type"].items()]
        curves.append(("micro", sweep["micro"], {"color": "black", "linewidth": 2.5}))
        title = f"{titles.get(view, view)}, strict"
        files = []
        for kind in ("precision_recall", "threshold_f1"):
            fig = Figure(figsize=(7, 5), layout="constrained")
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            for label, curve, style in curves:
                if kind == "precision_recall":
                    # no point where nothing is predicted (precision undefined) or found
                    points = [(r, p) for r, p in zip(curve["r"], curve["p"]) if r or p]
                    xs, ys = zip(*points) if points else ((), ())
                    (line,) = ax.plot(xs, ys, marker=".", label=label, **style)
                    ax.plot([curve["best_r"]], [curve["best_p"]], "o", color=line.get_color())
                else:
                    (line,) = ax.plot(ts, curve["f"], label=label, **style)
                    best = ([curve["best_threshold"]], [curve["best_f"]])
                    ax.plot(*best, "o", color=line.get_color())
            if kind == "precision_recall":
                ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall: {title}")
            else:
                ax.axvline(results["threshold"], color="grey", linestyle="--", label="configured")
                ax.set(xlabel="threshold", ylabel="F1", title=f"F1 by threshold: {title}")
            ax.set(xlim=(0, 1), ylim=(0, 1.02))
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small", loc="best")
            path = out / f"{view}_{kind}.png"
            fig.savefig(path, dpi=100)
            files.append(str(path))
        written[view] = files
    return written
