"""Plots of the track finding performance (matplotlib, HEP style via mplhep)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402


def _efficiency_with_errors(n_matched: np.ndarray, n_total: np.ndarray):
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = np.where(n_total > 0, n_matched / np.maximum(n_total, 1), np.nan)
        err = np.sqrt(np.clip(eff * (1 - eff), 0, None) / np.maximum(n_total, 1))
    return eff, np.where(n_total > 0, err, np.nan)


def plot_efficiency(summary: dict, output_dir: Path) -> list[Path]:
    """Efficiency vs pT and vs eta (binomial errors), one PNG each."""
    paths = []
    for var, label, log in (("pt", r"particle $p_T$ [GeV]", True), ("eta", r"particle $\eta$",
                                                                       False)):
        data = summary[f"efficiency_vs_{var}"]
        edges = np.asarray(data["bin_edges"], dtype=float)
        eff, err = _efficiency_with_errors(np.asarray(data["n_matched"], float),
                                           np.asarray(data["n_particles"], float))
        with plt.style.context(mplhep.style.ROOT):
            fig, ax = plt.subplots(figsize=(8, 6))
            centres = 0.5 * (edges[1:] + edges[:-1])
            ax.errorbar(centres, eff, yerr=err, xerr=0.5 * np.diff(edges), fmt="o",
                        label="ExaTrkX (double majority)")
            ax.set_xlabel(label)
            ax.set_ylabel("track efficiency")
            ax.set_ylim(0, 1.1)
            if log:
                ax.set_xscale("log")
                ax.set_xlim(max(edges[0], 0.1), edges[-1])
            ax.legend(loc="lower right")
            path = output_dir / f"efficiency_vs_{var}.png"
            fig.savefig(path, dpi=80, bbox_inches="tight")
            plt.close(fig)
        paths.append(path)
    return paths


def plot_edge_scores(scores: dict, path: Path) -> Path | None:
    """Filter and GNN edge score distributions for true and false edges."""
    stages = [s for s in ("filter", "gnn") if scores.get(s)]
    if not stages:
        return None
    with plt.style.context(mplhep.style.ROOT):
        fig, axes = plt.subplots(1, len(stages), figsize=(8 * len(stages), 6), squeeze=False)
        for ax, stage in zip(axes[0], stages, strict=True):
            s = np.concatenate([a for a, _ in scores[stage]])
            t = np.concatenate([b for _, b in scores[stage]])
            bins = np.linspace(0, 1, 51)
            ax.hist(s[t], bins=bins, histtype="step", label="true edges", density=True)
            ax.hist(s[~t], bins=bins, histtype="step", label="false edges", density=True)
            ax.set_yscale("log")
            ax.set_xlabel(f"{stage} score (sigmoid)")
            ax.set_ylabel("density")
            ax.legend(loc="upper center")
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)
    return path
