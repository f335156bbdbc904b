"""Plot helpers of the studies: the seeds' figure style (matplotlib, headless Agg backend,
mplhep's ROOT style), medians over trials with their range as error bars, the seeds'
values as open reference markers, and overlays of several runs (``bench compare``: one
line style per run, one colour per series).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

    from sonic_exatrkx.bench.references import Reference
    from sonic_exatrkx.bench.results import StudyResult

__all__ = ["Runs", "colour", "figure", "label_for", "reference", "save", "series"]

#: (run label, result) pairs; one run for a study's own plots, several for a comparison.
Runs = Sequence[tuple[str, "StudyResult"]]
_LINES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def colour(index: int) -> str:
    """The colour of series ``index`` (the same in every plot and every study)."""
    return _COLOURS[index % len(_COLOURS)]


@contextlib.contextmanager
def figure(ncols: int = 1, width: float = 7.5, height: float = 8.0
           ) -> Iterator[tuple[Any, list[Any]]]:
    """A figure of ``ncols`` axes in the ROOT style (closed on exit: long suites make many)."""
    with plt.style.context(mplhep.style.ROOT):
        fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
        try:
            yield fig, list(axes[0])
        finally:
            plt.close(fig)


def label_for(series_label: str, run: str, runs: int) -> str:
    """The legend entry: the series, and the run when several are overlaid."""
    return series_label if runs <= 1 else f"{series_label} [{run}]"


def series(ax: Any, frame: pd.DataFrame, x: str, metric: str, label: str, *, run: int = 0,
           colour: int = 0, errors: bool = True) -> None:
    """Medians of ``metric`` against ``x`` (a :func:`~.results.summarize` frame), with the
    range over trials as error bars; ``run`` picks the line style, ``colour`` the colour."""
    if frame.empty:
        return
    frame = frame.sort_values(x)
    y = frame[metric].to_numpy(float)
    kwargs = {"color": _COLOURS[colour % len(_COLOURS)], "ls": _LINES[run % len(_LINES)],
              "marker": _MARKERS[colour % len(_MARKERS)], "label": label, "capsize": 3}
    if errors and f"{metric}_low" in frame:
        lo = y - frame[f"{metric}_low"].to_numpy(float)
        hi = frame[f"{metric}_high"].to_numpy(float) - y
        ax.errorbar(frame[x].to_numpy(float), y, yerr=np.vstack([lo, hi]), **kwargs)
    else:
        kwargs.pop("capsize")
        ax.plot(frame[x].to_numpy(float), y, **kwargs)


def reference(ax: Any, ref: Reference, *, colour: int = 0, hline: bool = False) -> None:
    """The seeds' points as open markers (``hline``: one value drawn across the axis)."""
    c = _COLOURS[colour % len(_COLOURS)]
    if hline:
        ax.axhline(ref.y[0], color=c, ls=(0, (1, 3)), lw=1.5, label=f"{ref.label} ({ref.y[0]:g})")
        return
    ax.plot(ref.x, ref.y, ls="none", marker="o", mfc="none", mec=c, ms=10, mew=2,
            label=ref.label)


def save(fig: Any, ax: Any | Sequence[Any], path: Path, *, xlabel: str | Sequence[str],
         ylabel: str | Sequence[str], title: str = "") -> str:
    """Label the axes, add legends and the title, write a PNG; returns its file name."""
    axes = list(ax) if isinstance(ax, list | tuple) else [ax]
    xl = [xlabel] * len(axes) if isinstance(xlabel, str) else list(xlabel)
    yl = [ylabel] * len(axes) if isinstance(ylabel, str) else list(ylabel)
    for a, x_, y_ in zip(axes, xl, yl, strict=True):
        a.set_xlabel(x_, fontsize="small")
        a.set_ylabel(y_, fontsize="small")
        if a.get_xscale() == "log":
            a.xaxis.set_major_formatter(ScalarFormatter())
        handles, labels = a.get_legend_handles_labels()
        if handles:  # below the axes: never over the points
            wide = max(len(text) for text in labels) > 28 * len(axes) ** -0.5
            a.legend(handles, labels, fontsize="xx-small", loc="upper center",
                     bbox_to_anchor=(0.5, -0.16), ncols=1 if wide else 2, frameon=False)
    if title:
        fig.suptitle(title, fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    return path.name
