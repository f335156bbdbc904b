"""Track finding performance over a whole job: summary (text + JSON) and plots."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from algorithms.keys import SPACEPOINT_PARTICLE_IDS, SPACEPOINTS, TRACKS
from sonic_exatrkx.exatrkx import PipelineResult, apply_cut, sigmoid
from sonic_exatrkx.exatrkx.metrics import (
    DEFAULT_ETA_BINS,
    DEFAULT_PT_BINS,
    EdgeMetrics,
    edge_metrics,
    efficiency_vs,
    track_metrics,
    trackml_score,
)
from sonic_exatrkx.framework import AlgorithmContext, ConfigurationError, ReadHandle, Writer

EDGE_STAGES = ("graph", "filter", "gnn", "tracks")


def particle_kinematics(
    particle_ids: np.ndarray, particles: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """pT (GeV) and eta of each space point's particle (NaN for noise / unknown ids)."""
    pt = np.full(particle_ids.shape, np.nan)
    eta = np.full(particle_ids.shape, np.nan)
    if particles.empty:
        return pt, eta
    table = particles.sort_values("particle_id", kind="stable")
    ids = table["particle_id"].to_numpy(np.uint64)
    pos = np.minimum(np.searchsorted(ids, particle_ids), ids.size - 1)
    found = ids[pos] == particle_ids
    px, py, pz = (table[c].to_numpy(np.float64)[pos[found]] for c in ("px", "py", "pz"))
    pt[found] = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta[found] = np.arcsinh(pz / pt[found])
    return pt, eta


@dataclass
class _EdgeCounts:
    n_true: int = 0  # consecutive truth edges
    n_found: int = 0  # of those, predicted
    n_pred: int = 0
    n_pure: int = 0  # predicted edges joining two hits of one particle

    def add(self, consecutive: EdgeMetrics, any_pair: EdgeMetrics) -> None:
        self.n_true += consecutive.n_true
        self.n_found += consecutive.n_true_pred
        self.n_pred += any_pair.n_pred
        self.n_pure += any_pair.n_true_pred

    def summary(self) -> dict[str, float]:
        return {
            "efficiency": self.n_found / self.n_true if self.n_true else float("nan"),
            "purity": self.n_pure / self.n_pred if self.n_pred else float("nan"),
            "n_true": self.n_true,
            "n_pred": self.n_pred,
        }


@dataclass
class _Accumulated:
    """Per-event arrays joined into one 'job event' (in event order) so ratios are exact
    over all events."""

    labels: list[np.ndarray] = field(default_factory=list)
    particles: list[np.ndarray] = field(default_factory=list)
    pt: list[np.ndarray] = field(default_factory=list)
    eta: list[np.ndarray] = field(default_factory=list)
    scores: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(
        default_factory=lambda: {"filter": [], "gnn": []}
    )
    edges: dict[str, _EdgeCounts] = field(
        default_factory=lambda: {s: _EdgeCounts() for s in EDGE_STAGES}
    )
    scores_per_event: list[float] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)
    label_offset: int = 0
    particle_offset: int = 0


class TrackFindingPerformance(Writer):
    """Track efficiency (double majority), fake and duplicate rates, TrackML score, and,
    with the pipeline's intermediates, edge efficiency/purity per stage (efficiency: share
    of the consecutive same-particle edges, by r, that the stage keeps; purity: share of
    kept edges that join two space points of one particle). `gnn_cut` (the pipeline's GNN
    cut on sigmoid scores) adds the GNN's own row, the edges passing it; the "tracks" row is
    the edges track building joined (after the track builder's selection).

    Writes `<output_dir>/performance.json`, `performance.txt` and PNG plots (efficiency vs
    pT and eta, edge score distributions) when the job finishes; `summary_text()` gives the
    same text for printing.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        *,
        input_tracks: str = TRACKS,
        input_particle_ids: str = SPACEPOINT_PARTICLE_IDS,
        input_particles: str = "particles",
        input_spacepoints: str = SPACEPOINTS,
        input_intermediates: str | None = None,
        input_weights: str | None = None,
        min_hits: int = 3,
        pt_cut: float = 1.0,
        plots: bool = True,
        gnn_cut: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if gnn_cut is not None and not 0.0 <= gnn_cut <= 1.0:
            raise ConfigurationError(f"{self.name}: gnn_cut must be in [0, 1], got {gnn_cut}")
        self.gnn_cut = gnn_cut
        self.output_dir = Path(output_dir)
        self.tracks = ReadHandle(self, input_tracks, np.ndarray)
        self.particle_ids = ReadHandle(self, input_particle_ids, np.ndarray)
        self.particles = ReadHandle(self, input_particles, pd.DataFrame)
        self.spacepoints = ReadHandle(self, input_spacepoints, pd.DataFrame)
        self.intermediates = (
            ReadHandle(self, input_intermediates, PipelineResult) if input_intermediates else None
        )
        # TrackML truth weights per space point: the TrackML score sums them.
        self.weights = ReadHandle(self, input_weights, np.ndarray) if input_weights else None
        self.min_hits = min_hits
        self.pt_cut = pt_cut
        self.plots = plots
        self._records: dict[int, dict[str, np.ndarray]] = {}  # event -> its arrays
        self._acc = _Accumulated()
        self._lock = threading.Lock()
        self.summary: dict[str, object] | None = None

    def execute(self, ctx: AlgorithmContext) -> None:
        labels = np.asarray(self.tracks(ctx), dtype=np.int64)
        pids = np.asarray(self.particle_ids(ctx), dtype=np.uint64)
        if labels.shape != pids.shape:
            raise ValueError(
                f"event {ctx.event}: {labels.size} track labels for {pids.size} space points"
            )
        pt, eta = particle_kinematics(pids, self.particles(ctx))
        record = {"labels": labels, "pids": pids, "pt": pt, "eta": eta}
        if self.weights is not None:
            record["weights"] = np.asarray(self.weights(ctx), dtype=np.float64)
        if self.intermediates is not None:
            record.update(self._edge_record(ctx, pids))
        with self._lock:  # writers run one event at a time; the lock documents it
            self._records[ctx.event] = record

    def checkpoint(self, ctx: AlgorithmContext) -> dict[str, np.ndarray]:
        """The event's per-space-point arrays, edge counts and edge scores: all the job's
        summary is computed from (see :mod:`sonic_exatrkx.framework.commits`)."""
        return self._records[ctx.event]

    def restore(self, event: int, state: Mapping[str, np.ndarray]) -> None:
        with self._lock:
            self._records[event] = dict(state)

    def _edge_record(self, ctx: AlgorithmContext, pids: np.ndarray) -> dict[str, np.ndarray]:
        assert self.intermediates is not None
        res = self.intermediates(ctx)
        sp = self.spacepoints(ctx)
        r = np.hypot(sp["x"].to_numpy(np.float64), sp["y"].to_numpy(np.float64))
        record: dict[str, np.ndarray] = {}
        # Efficiency against the edges a track needs (consecutive hits by r), purity as the
        # share of edges joining two hits of one particle (any two).
        gnn_edges = None
        if self.gnn_cut is not None and res.filtered_edges is not None \
                and res.gnn_scores is not None:
            gnn_edges = res.filtered_edges[:, apply_cut(res.gnn_scores, self.gnn_cut)]
        for stage, edges in (("graph", res.edges), ("filter", res.filtered_edges),
                             ("gnn", gnn_edges), ("tracks", res.track_edges)):
            if edges is not None:
                counts = _EdgeCounts()
                counts.add(edge_metrics(edges, pids, r, mode="consecutive"),
                           edge_metrics(edges, pids, r, mode="all_pairs"))
                record[f"edges_{stage}"] = np.array(astuple(counts), dtype=np.int64)
        for stage, edges, scores in (("filter", res.edges, res.filter_scores),
                                     ("gnn", res.filtered_edges, res.gnn_scores)):
            if edges is not None and scores is not None and edges.shape[1]:
                truth = (pids[edges[0]] == pids[edges[1]]) & (pids[edges[0]] != 0)
                record[f"scores_{stage}"] = sigmoid(scores)
                record[f"truth_{stage}"] = truth
        return record

    def _accumulate(self) -> _Accumulated:
        """The events' records joined in event order."""
        acc = _Accumulated()
        with self._lock:
            records = [self._records[e] for e in sorted(self._records)]
        for rec in records:
            labels, pids = rec["labels"], rec["pids"]
            _, dense = np.unique(pids, return_inverse=True)
            dense = dense.reshape(-1).astype(np.int64)
            acc.scores_per_event.append(trackml_score(labels, pids, rec.get("weights")))
            if "weights" in rec:
                acc.weights.append(rec["weights"])
            joined = dense + acc.particle_offset + 1
            joined[pids == 0] = 0
            acc.particles.append(joined.astype(np.uint64))
            acc.labels.append(np.where(labels >= 0, labels + acc.label_offset, -1))
            acc.pt.append(rec["pt"])
            acc.eta.append(rec["eta"])
            acc.label_offset += int(labels.max(initial=-1)) + 1
            acc.particle_offset += int(dense.max(initial=-1)) + 1
            for stage in EDGE_STAGES:
                if f"edges_{stage}" in rec:
                    counts = acc.edges[stage]
                    for name, value in zip(("n_true", "n_found", "n_pred", "n_pure"),
                                           rec[f"edges_{stage}"].tolist(), strict=True):
                        setattr(counts, name, getattr(counts, name) + value)
            for stage in ("filter", "gnn"):
                if f"scores_{stage}" in rec:
                    acc.scores[stage].append((rec[f"scores_{stage}"], rec[f"truth_{stage}"]))
        return acc

    # -- end of job ----------------------------------------------------------------------
    def finalize(self) -> None:
        self.summary = self.compute()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "performance.json").write_text(
            json.dumps(self.summary, indent=2, default=float) + "\n"
        )
        (self.output_dir / "performance.txt").write_text(self.summary_text() + "\n")
        if self.plots and self._acc.labels:
            from algorithms.performance_plots import plot_edge_scores, plot_efficiency

            plot_efficiency(self.summary, self.output_dir)
            plot_edge_scores(self._acc.scores, self.output_dir / "edge_scores.png")
        self.logger.debug("track finding performance:\n%s", self.summary_text())

    def compute(self) -> dict[str, object]:
        acc = self._acc = self._accumulate()
        cat = np.concatenate if acc.labels else (lambda _x: np.zeros(0))
        labels, pids = cat(acc.labels).astype(np.int64), cat(acc.particles).astype(np.uint64)
        pt, eta = cat(acc.pt), cat(acc.eta)
        # Every event's truth weights (restored ones too, as in a merge), or none.
        weighted = bool(acc.weights) and len(acc.weights) == len(acc.labels)
        weights = np.concatenate(acc.weights) if weighted else None
        kw = {"min_hits": self.min_hits, "min_track_hits": self.min_hits}
        out: dict[str, object] = {
            "events": len(acc.labels),
            "spacepoints": int(labels.size),
            "definitions": "double-majority matching; particles with >= "
            f"{self.min_hits} space points; see sonic_exatrkx/exatrkx/metrics.py",
            "all_pt": asdict(track_metrics(labels, pids, **kw)),
            f"pt>{self.pt_cut:g}": asdict(
                track_metrics(labels, pids, pt=np.nan_to_num(pt), pt_min=self.pt_cut, **kw)
            ),
            "trackml_score": trackml_score(labels, pids, weights),
            "trackml_score_weights": "truth weight column" if weights is not None
            else "uniform (1 per hit of a particle)",
            "trackml_score_per_event_mean": float(np.mean(acc.scores_per_event))
            if acc.scores_per_event else float("nan"),
        }
        for var, bins in (("pt", DEFAULT_PT_BINS), ("eta", DEFAULT_ETA_BINS)):
            values = pt if var == "pt" else eta
            binned = efficiency_vs(labels, pids, np.nan_to_num(values), bins, **kw)
            out[f"efficiency_vs_{var}"] = {
                "bin_edges": binned.bin_edges.tolist(),
                "n_particles": binned.n_particles.tolist(),
                "n_matched": binned.n_matched.tolist(),
            }
        if self.intermediates is not None:
            out["edges"] = {s: c.summary() for s, c in acc.edges.items()
                            if s != "gnn" or self.gnn_cut is not None}
        return out

    def summary_text(self) -> str:
        s = self.summary if self.summary is not None else self.compute()
        lines = [f"events: {s['events']}, space points: {s['spacepoints']}"]
        for key in ("all_pt", f"pt>{self.pt_cut:g}"):
            m = s[key]
            assert isinstance(m, dict)
            lines.append(
                f"{key:>8}: efficiency {100 * m['efficiency']:.1f}% "
                f"({m['n_matched']}/{m['n_particles']}), fake rate "
                f"{100 * m['fake_rate']:.1f}% ({m['n_fake']}/{m['n_tracks']}), duplicate rate "
                f"{100 * m['duplicate_rate']:.1f}%"
            )
        lines.append(f"TrackML score: {s['trackml_score']:.3f}")
        edges = s.get("edges")
        if isinstance(edges, dict):
            for stage, e in edges.items():
                lines.append(
                    f"edges after {stage:>6}: efficiency {100 * e['efficiency']:.1f}%, "
                    f"purity {100 * e['purity']:.1f}% ({e['n_pred']} edges)"
                )
        return "\n".join(lines)
