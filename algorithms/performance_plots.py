"""Plots of the track finding performance (matplotlib, HEP style via mplhep).

Every plot names its sample, event count and selection; efficiencies carry
Clopper-Pearson intervals (68.3 %, scipy), which stay inside [0, 1] and do not shrink to
zero at 0 or 100 % as the normal approximation does.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import binomtest  # noqa: E402

#: One standard deviation of a normal distribution: the error bars' coverage.
CONFIDENCE = 0.6827


def efficiency_intervals(n_matched: np.ndarray, n_total: np.ndarray,
                         confidence: float = CONFIDENCE
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Efficiency and its Clopper-Pearson ("exact") interval per bin: (efficiency,
    lower, upper); NaN where a bin has no particle."""
    k = np.asarray(n_matched, dtype=np.int64).reshape(-1)
    n = np.asarray(n_total, dtype=np.int64).reshape(-1)
    eff, lo, hi = (np.full(k.shape, np.nan) for _ in range(3))
    for i in np.flatnonzero(n > 0):
        ci = binomtest(int(k[i]), int(n[i])).proportion_ci(confidence, method="exact")
        eff[i], lo[i], hi[i] = k[i] / n[i], ci.low, ci.high
    return eff, lo, hi


def _context(summary: dict, selection: str) -> str:
    """The plot's title: sample, events and selection."""
    sample = summary.get("sample") or "input"
    events = summary.get("events", 0)
    return f"{sample}, {events} event{'s' if events != 1 else ''}; {selection}"


def efficiency_figure(summary: dict, var: str) -> plt.Figure:
    """Efficiency vs ``var`` ("pt" or "eta") with Clopper-Pearson 68 % intervals, titled
    with the sample, the events and the particle selection. Versus eta, the particles
    above the summary's pT cut (``efficiency_vs_eta_pt>CUT``) are a second series where
    the summary has them: at pileup the all-pT curve is the low-pT particles'."""
    label, log = {"pt": (r"particle $p_T$ [GeV]", True), "eta": (r"particle $\eta$", False)}[var]
    above = sorted(k for k in summary if k.startswith(f"efficiency_vs_{var}_pt>"))
    selection = f"particles with $\\geq$ {summary.get('min_hits', 3)} space points"
    series = [(summary[f"efficiency_vs_{var}"], "all $p_T$")]
    series += [(summary[k], f"$p_T$ > {k.rsplit('>', 1)[1]} GeV") for k in above]
    if len(series) == 1:
        selection += ", all $p_T$"
    with plt.style.context(mplhep.style.ROOT):
        fig, ax = plt.subplots(figsize=(8, 6))
        for data, name in series:
            edges = np.asarray(data["bin_edges"], dtype=float)
            eff, lo, hi = efficiency_intervals(np.asarray(data["n_matched"]),
                                               np.asarray(data["n_particles"]))
            centres = 0.5 * (edges[1:] + edges[:-1])
            ax.errorbar(centres, eff, yerr=np.vstack([eff - lo, hi - eff]),
                        xerr=0.5 * np.diff(edges), fmt="o",
                        label="ExaTrkX, double majority\n(68% Clopper-Pearson intervals)"
                        if len(series) == 1 else f"{name}, double majority")
        ax.set_xlabel(label)
        ax.set_ylabel("track efficiency")
        ax.set_ylim(0, 1.1)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(max(edges[0], 0.1), edges[-1])
        ax.set_title(_context(summary, selection), fontsize=13)
        # loc best: in dense events the efficiency is low where a fixed legend would sit
        ax.legend(loc="best", fontsize=14, title_fontsize=13,
                  title=None if len(series) == 1 else "68% Clopper-Pearson intervals")
    return fig


def plot_efficiency(summary: dict, output_dir: Path) -> list[Path]:
    """Efficiency vs pT and vs eta (:func:`efficiency_figure`), one PNG each."""
    paths = []
    for var in ("pt", "eta"):
        path = output_dir / f"efficiency_vs_{var}.png"
        _save(efficiency_figure(summary, var), path)
        paths.append(path)
    return paths


def edge_scores_figure(scores: dict, summary: dict | None = None) -> plt.Figure | None:
    """Filter and GNN edge score distributions for true and false edges, with the
    pipeline's cuts (``summary["cuts"]``) marked; None without scores."""
    stages = [s for s in ("filter", "gnn") if scores.get(s)]
    if not stages:
        return None
    info = summary or {}
    cuts = info.get("cuts") or {}
    names = {"filter": "filter", "gnn": "GNN"}
    with plt.style.context(mplhep.style.ROOT):
        fig, axes = plt.subplots(1, len(stages), figsize=(8 * len(stages), 6), squeeze=False)
        for ax, stage in zip(axes[0], stages, strict=True):
            s = np.concatenate([a for a, _ in scores[stage]])
            t = np.concatenate([b for _, b in scores[stage]])
            bins = np.linspace(0, 1, 51)
            ax.hist(s[t], bins=bins, histtype="step", label="true edges (one particle)",
                    density=True)
            ax.hist(s[~t], bins=bins, histtype="step", label="false edges", density=True)
            cut = cuts.get(stage)
            if cut is not None:
                ax.axvline(cut, color="black", linestyle="--",
                           label=f"{names[stage]} cut {cut:g} (edges kept above)")
            ax.set_yscale("log")
            ax.set_xlabel(f"{names[stage]} edge score (sigmoid)")
            ax.set_ylabel("density")
            edges_in = "graph edges" if stage == "filter" else "edges after the filter"
            ax.set_title(_context(info, edges_in) if info else edges_in, fontsize=14)
            ax.legend(loc="upper center", fontsize=13)
    return fig


def plot_edge_scores(scores: dict, path: Path, summary: dict | None = None) -> Path | None:
    """:func:`edge_scores_figure` as a PNG; None (nothing written) without scores."""
    fig = edge_scores_figure(scores, summary)
    if fig is None:
        return None
    _save(fig, path)
    return path


def _save(fig: plt.Figure, path: Path) -> None:
    with plt.style.context(mplhep.style.ROOT):  # fonts are looked up when drawing
        fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
