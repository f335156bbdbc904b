"""Track finding performance over a whole job: summary (text + JSON) and plots."""

from __future__ import annotations

import json
import os
import textwrap
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
    BinnedEfficiency,
    EdgeTruth,
    StageEdges,
    efficiency_vs,
    track_metrics,
    trackml_score,
)
from sonic_exatrkx.framework import AlgorithmContext, ConfigurationError, ReadHandle, Writer
from sonic_exatrkx.paths import sample_events_dir
from sonic_exatrkx.sonic.service_option import ServiceOption

EDGE_STAGES = ("graph", "filter", "gnn", "tracks")
#: The marker before the definitions in ``performance.txt`` (the job prints what is above).
DEFINITIONS_HEADING = "definitions:"


def sample_label(input_path: str | os.PathLike[str]) -> str:
    """What the plots and the report call the input: its folder (or file) name; the
    shipped sample events by that name."""
    path = Path(input_path).resolve()
    return "the shipped sample" if path == sample_events_dir().resolve() else path.name


def served_edge_note(service_option: str) -> str:
    """Why a served run has no per-stage edge figures (one line of the report)."""
    if ServiceOption.parse(service_option).whole:  # one request runs every stage there
        why = "the server runs every stage and answers with the track labels only"
    else:
        why = "the job keeps only the track labels of the stages it has served"
    return (f"edge efficiency and purity per stage: not measured in a served run (service "
            f"option {service_option}: {why}); run with --inference local for them")


def definitions_text(min_hits: int, pt_cut: float) -> str:
    """The definitions behind the report's numbers (``performance.txt``, docs/physics.md)."""
    items = [
        f"particle: a truth particle with >= {min_hits} space points (noise excluded); "
        f"'pT > {pt_cut:g} GeV' also requires its transverse momentum above {pt_cut:g} GeV.",
        f"track: the space points sharing a label, when there are >= {min_hits} of them.",
        "majority particle of a track: the particle with more than half of the track's "
        "space points; double majority: the track also holds more than half of that "
        "particle's space points.",
        "efficiency = particles with a double-majority track / particles.",
        "fake rate = tracks with no majority particle / tracks. With a pT selection it is "
        "over the tracks whose leading particle (the one with most of the track's space "
        "points) passes it: ACTS selects tracks by their fitted pT, and these tracks have "
        "none.",
        "duplicate rate = particles with 2 or more majority tracks / found particles (those "
        "with at least one majority track).",
        "TrackML score: the weight of the space points on double-majority (track, "
        "particle) pairs over the weight of all space points, every event together.",
        "edge efficiency: the share of each particle's consecutive (by r) space point "
        "pairs that a stage keeps; edge purity: the share of the kept edges that join two "
        "space points of one particle.",
        "every figure sums the counts of all events before dividing (docs/physics.md).",
    ]
    return "\n".join([DEFINITIONS_HEADING, *(textwrap.fill(
        item, width=92, initial_indent="  - ", subsequent_indent="    ") for item in items)])


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


def _edge_summary(counts: StageEdges) -> dict[str, float]:
    return {"efficiency": counts.efficiency, "purity": counts.purity, **asdict(counts)}


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
    edges: dict[str, StageEdges] = field(
        default_factory=lambda: {s: StageEdges() for s in EDGE_STAGES}
    )
    scores_per_event: list[float] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)
    label_offset: int = 0
    particle_offset: int = 0


def _binned_counts(binned: BinnedEfficiency) -> dict[str, list]:
    """The counts of a :class:`BinnedEfficiency` as the summary's JSON lists."""
    return {"bin_edges": binned.bin_edges.tolist(),
            "n_particles": binned.n_particles.tolist(),
            "n_matched": binned.n_matched.tolist()}


class TrackFindingPerformance(Writer):
    """Track efficiency (double majority), fake and duplicate rates, TrackML score, and,
    with the pipeline's intermediates, edge efficiency/purity per stage (efficiency: share
    of the consecutive same-particle edges, by r, that the stage keeps; purity: share of
    kept edges that join two space points of one particle). `gnn_cut` (the pipeline's GNN
    cut on sigmoid scores) adds the GNN's own row, the edges passing it; the "tracks" row is
    the edges track building joined (after the track builder's selection). `filter_cut`
    and `gnn_cut` are marked on the score plot; `sample` (see :func:`sample_label`) names
    the input on the plots and in the report; `edge_note` replaces the edge rows when
    there are none (a served run: :func:`served_edge_note`).

    Writes `<output_dir>/performance.json`, `performance.txt` (the summary, then the
    definitions) and PNG plots (efficiency vs pT and eta, edge score distributions) when
    the job finishes and lists them in `written`; `summary_text()` gives the summary.
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
        filter_cut: float | None = None,
        sample: str | None = None,
        edge_note: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        for key, cut in (("gnn_cut", gnn_cut), ("filter_cut", filter_cut)):
            if cut is not None and not 0.0 <= cut <= 1.0:
                raise ConfigurationError(f"{self.name}: {key} must be in [0, 1], got {cut}")
        self.gnn_cut = gnn_cut
        self.filter_cut = filter_cut
        self.sample = sample
        self.edge_note = edge_note
        #: The files finalize wrote (names in ``output_dir``), for the job's summary.
        self.written: list[str] = []
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
        edge_truth = EdgeTruth.of(pids, r)  # sorted once for the four stages
        for stage, edges in (("graph", res.edges), ("filter", res.filtered_edges),
                             ("gnn", gnn_edges), ("tracks", res.track_edges)):
            if edges is not None:
                record[f"edges_{stage}"] = np.array(astuple(edge_truth.stage(edges)),
                                                    dtype=np.int64)
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
                    acc.edges[stage] += StageEdges(*rec[f"edges_{stage}"].tolist())
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
        (self.output_dir / "performance.txt").write_text(
            f"{self.summary_text()}\n\n{definitions_text(self.min_hits, self.pt_cut)}\n")
        self.written = ["performance.txt", "performance.json"]
        if self.plots and self._acc.labels:
            from algorithms.performance_plots import plot_edge_scores, plot_efficiency

            plots = plot_efficiency(self.summary, self.output_dir)
            plots.append(plot_edge_scores(self._acc.scores, self.output_dir / "edge_scores.png",
                                          self.summary))
            self.written += [p.name for p in plots if p is not None]
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
            "sample": self.sample,
            "events": len(acc.labels),
            "spacepoints": int(labels.size),
            "min_hits": self.min_hits,
            "definitions": "double-majority matching; particles and tracks with >= "
            f"{self.min_hits} space points; pt>{self.pt_cut:g}: particles with pT > "
            f"{self.pt_cut:g} GeV, fake rate over tracks whose leading particle has it; see "
            "performance.txt and docs/physics.md",
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
            out[f"efficiency_vs_{var}"] = _binned_counts(
                efficiency_vs(labels, pids, np.nan_to_num(values), bins, **kw))
        # versus eta also above the pT cut: at pileup the all-pT curve is the low-pT one
        out[f"efficiency_vs_eta_pt>{self.pt_cut:g}"] = _binned_counts(
            efficiency_vs(labels, pids, np.nan_to_num(eta), DEFAULT_ETA_BINS,
                          pt=np.nan_to_num(pt), pt_min=self.pt_cut, **kw))
        out["cuts"] = {"filter": self.filter_cut, "gnn": self.gnn_cut}
        if self.intermediates is not None:
            out["edges"] = {s: _edge_summary(c) for s, c in acc.edges.items()
                            if s != "gnn" or self.gnn_cut is not None}
        return out

    def summary_text(self) -> str:
        """The summary in physics words: what each rate counts, over what, with counts."""
        s = self.summary if self.summary is not None else self.compute()
        sample = f" ({s['sample']})" if s.get("sample") else ""
        lines = [f"{s['events']} events{sample}, {s['spacepoints']} space points; "
                 f"double-majority matching, particles and tracks with >= {self.min_hits} "
                 "space points:"]
        for key, label in (("all_pt", "all particles"),
                           (f"pt>{self.pt_cut:g}", f"pT > {self.pt_cut:g} GeV")):
            m = s[key]
            assert isinstance(m, dict)
            lines.append(
                f"  {label + ':':<15} efficiency {_percent(m['efficiency'])} "
                f"({m['n_matched']}/{m['n_particles']} particles), fake rate "
                f"{_percent(m['fake_rate'])} ({m['n_fake']}/{m['n_tracks']} tracks), "
                f"duplicate rate {_percent(m['duplicate_rate'])} "
                f"({m['n_duplicated']}/{m['n_found']} found particles)")
        lines.append(f"  (pT > {self.pt_cut:g} GeV tracks: those whose leading particle has "
                     f"pT > {self.pt_cut:g} GeV; definitions in performance.txt)")
        weights = s.get("trackml_score_weights")
        lines.append(f"TrackML score: {s['trackml_score']:.3f} over all events' space points "
                     "together" + (f"; weights: {weights}" if weights else "")
                     + f"; mean of the events' scores {s['trackml_score_per_event_mean']:.3f}")
        edges = s.get("edges")
        if isinstance(edges, dict):
            lines.append("edges per stage (efficiency: consecutive same-particle pairs kept; "
                         "purity: kept edges joining one particle's space points):")
            for stage, e in edges.items():
                lines.append(
                    f"  {self._stage_label(stage) + ':':<24} efficiency "
                    f"{_percent(e['efficiency'])} ({e['n_found']}/{e['n_true']} pairs), "
                    f"purity {_percent(e['purity'])} ({e['n_pure']}/{e['n_pred']} edges)")
        elif self.edge_note:
            lines.append(self.edge_note)
        return "\n".join(lines)

    def _stage_label(self, stage: str) -> str:
        cut = {"filter": self.filter_cut, "gnn": self.gnn_cut}.get(stage)
        name = {"graph": "graph building", "filter": "filter", "gnn": "GNN",
                "tracks": "track building"}[stage]
        return f"{name} (score > {cut:g})" if cut is not None else name


def _percent(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"  # NaN: nothing to count
