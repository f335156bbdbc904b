"""Event display: space points in r-z and x-y, coloured by truth particle (noise grey).

Uses matplotlib's object API with the Agg canvas directly, so it never touches the
global pyplot backend of the process that calls it (works headless, in threads, in tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from sonic_exatrkx.sim.geometry import Geometry

__all__ = ["plot_event"]


def _particle_per_spacepoint(tables: Mapping[str, pd.DataFrame]) -> np.ndarray:
    from sonic_exatrkx.io.acts_csv import attach_truth

    return attach_truth(tables["spacepoint"], tables["measurement-simhit-map"], tables["hits"])


def plot_event(tables: Mapping[str, pd.DataFrame], path: str | PathLike[str],
               geometry: Geometry | None = None, title: str | None = None,
               dpi: int = 120) -> Path:
    """Write a PNG with the r-z and x-y views of one event's space points.

    `tables` are the ACTS tables of one event (as `simulate_event` returns or
    `read_event` reads). With `geometry`, the layer outlines are drawn faintly.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    sp = tables["spacepoint"]
    x, y, z = (sp[c].to_numpy(np.float64) for c in ("x", "y", "z"))
    r = np.hypot(x, y)
    pid = _particle_per_spacepoint(tables)
    noise = pid == 0
    uniq, inverse = np.unique(pid[~noise], return_inverse=True)
    # shuffle colours (fixed seed) so neighbouring particle ids do not look alike
    cmap = ListedColormap(np.vstack([matplotlib.colormaps[name].colors
                                     for name in ("tab20", "tab20b")]))
    colour_index = np.random.default_rng(0).permutation(max(uniq.size, 1))[inverse] % cmap.N

    fig = Figure(figsize=(14, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_rz, ax_xy = fig.subplots(1, 2, width_ratios=(1.6, 1))
    size = 4.0 if sp.shape[0] < 5000 else 0.6
    if geometry is not None:
        for layer in geometry.layers:
            if layer.kind == "barrel":
                ax_rz.plot([-layer.half_length, layer.half_length], [layer.position] * 2,
                           color="0.85", lw=0.8, zorder=0)
                ax_xy.add_patch(Circle((0, 0), layer.position, fill=False, color="0.85",
                                       lw=0.8, zorder=0))
            else:
                ax_rz.plot([layer.position] * 2, [layer.r_min, layer.r_max], color="0.85",
                           lw=0.8, zorder=0)
    from sonic_exatrkx.io.acts_csv import split_particle_id

    displaced = split_particle_id(pid)["particle_id_sv"].to_numpy() > 0
    plain = ~noise & ~displaced
    sec = tables.get("particles")
    sv = None
    if sec is not None and len(sec):
        sec_sv = split_particle_id(sec["particle_id"].to_numpy())["particle_id_sv"].to_numpy()
        sv = sec.loc[sec_sv > 0, ["vx", "vy", "vz"]].drop_duplicates().to_numpy(np.float64)
    for ax, (u, v) in ((ax_rz, (z, r)), (ax_xy, (x, y))):
        ax.scatter(u[noise], v[noise], s=size, c="0.6", marker=".", linewidths=0,
                   label=f"noise ({int(noise.sum())})")
        ax.scatter(u[plain], v[plain], s=size * 2, c=colour_index[plain[~noise]], cmap=cmap,
                   vmin=0, vmax=cmap.N - 1, marker="o", linewidths=0,
                   label=f"{uniq.size} particles ({int((~noise).sum())} space points)")
        if displaced.any():
            ax.scatter(u[displaced], v[displaced], s=size * 6,
                       c=colour_index[displaced[~noise]], cmap=cmap, vmin=0, vmax=cmap.N - 1,
                       marker="D", edgecolors="k", linewidths=0.6,
                       label=f"secondary-vertex particles ({int(displaced.sum())} points)")
        if sv is not None and sv.size:
            su, svv = ((sv[:, 2], np.hypot(sv[:, 0], sv[:, 1])) if ax is ax_rz
                       else (sv[:, 0], sv[:, 1]))
            ax.scatter(su, svv, s=120, marker="*", c="red", edgecolors="k", linewidths=0.5,
                       zorder=5, label="secondary vertex")
    ax_rz.set(xlabel="z [mm]", ylabel="r [mm]", title="r-z view")
    ax_xy.set(xlabel="x [mm]", ylabel="y [mm]", title="x-y view", aspect="equal")
    ax_xy.legend(loc="upper left", fontsize=7, markerscale=1, framealpha=0.8)
    if title:
        fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out
