"""Training of the three models in sequence: embedding, then filter, then GNN.

Input: a list of events, each a mapping (or :class:`TrainingEvent`) with ``features``
float32 ``[N, F]`` (computed with the pipeline's :class:`FeatureConfig`), ``particle_id``
uint64 ``[N]`` (0 = noise) and optionally ``pt`` per space point.

Truth for the edge models: two space points belong together when they share a non-zero
``particle_id`` (the "all pairs" truth of :mod:`.metrics`): connected components only need
every edge it keeps to join hits of one particle.

1. Embedding (metric learning): the squared distance of positive pairs is pulled to 0; by
   default these are consecutive hits of a particle ordered by r (a single hit cannot know
   its track's curvature, so only neighbouring hits can be mapped close together; connected
   components then chains them). A hinge ``relu(margin - d)^2`` pushes apart random pairs
   and the false pairs the current embedding puts within the radius (hard negatives);
   other same-particle pairs are neither pulled nor pushed. ``margin``:
   ``TrainingConfig.margin`` (default: the graph radius; larger leaves a gap).
2. Filter: edges built with the trained embedding (pipeline orientation), weighted BCE
   (positive weight = negatives / positives, clipped).
3. GNN: edges kept by the trained filter, weighted BCE.

With ``graph_construction="module_map"`` step 1 is the :class:`~.module_map.ModuleMap`
(built from truth beforehand, :meth:`ModuleMap.from_events`, and passed in): the filter and
GNN train on its graphs, which need each event's ``module_id``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sonic_exatrkx.checks import check_count

from .errors import ExaTrkXConfigError
from .features import check_finite, check_width
from .graph import apply_cut, build_edges
from .metrics import EdgeMetrics, edge_metrics, true_edges
from .models import exact_tanh
from .module_map import ModuleMap, coordinates
from .pipeline import Pipeline, PipelineConfig, save_models
from .triplets import filter_selection

log = logging.getLogger(__name__)
#: Without a bar (not a terminal, or --no-progress), a stage logs its loss this many times.
LOSS_LINES = 5


@dataclass(frozen=True)
class TrainingEvent:
    """One training event (validated on construction)."""

    features: np.ndarray
    particle_id: np.ndarray
    pt: np.ndarray | None = None
    module_id: np.ndarray | None = None  # uint64 per space point (module-map graphs)

    def __post_init__(self) -> None:
        f = np.ascontiguousarray(np.asarray(self.features, dtype=np.float32))
        pid = np.asarray(self.particle_id).reshape(-1).astype(np.uint64)
        if f.ndim != 2 or f.shape[0] != pid.size:
            raise ValueError(
                f"TrainingEvent: features {f.shape} do not match {pid.size} particle ids"
            )
        check_finite(f, "training", "features")
        object.__setattr__(self, "features", f)
        object.__setattr__(self, "particle_id", pid)
        if self.pt is not None:
            object.__setattr__(self, "pt", np.asarray(self.pt, dtype=np.float32).reshape(-1))
        if self.module_id is not None:
            ids = np.asarray(self.module_id).reshape(-1).astype(np.uint64)
            if ids.size != pid.size:
                raise ValueError(f"TrainingEvent: {ids.size} module ids for {pid.size} "
                                 "space points")
            object.__setattr__(self, "module_id", ids)

    @classmethod
    def coerce(cls, event: TrainingEvent | Mapping[str, Any]) -> TrainingEvent:
        if isinstance(event, TrainingEvent):
            return event
        return cls(event["features"], event["particle_id"], event.get("pt"),
                   event.get("module_id"))


def phi_sectors(event: TrainingEvent, n: int, phi: np.ndarray) -> list[TrainingEvent]:
    """Cut a dense (pileup) event into ``n`` azimuthal wedges of equal width.

    Why: a wedge keeps the event's hit density, which is what the embedding and filter must
    learn to cope with, at ``1/n`` of the cost per training step, so a mu=200 event can join
    a training set that fits the time budget. Edges across wedge borders are simply absent
    in training (``phi``: radians in ``[-pi, pi]``, one per space point).
    """
    check_count(n, "phi_sectors: n")
    if n == 1:
        return [event]
    phi = np.asarray(phi, dtype=np.float64).reshape(-1)
    if phi.size != event.particle_id.size:
        raise ValueError(
            f"phi_sectors: {phi.size} phi values for {event.particle_id.size} space points"
        )
    sector = np.clip(np.floor((phi + np.pi) / (2.0 * np.pi) * n), 0, n - 1).astype(np.int64)
    out = []
    for k in range(int(n)):
        m = sector == k
        pt = None if event.pt is None else event.pt[m]
        ids = None if event.module_id is None else event.module_id[m]
        out.append(TrainingEvent(event.features[m], event.particle_id[m], pt, ids))
    return out


@dataclass(frozen=True)
class TrainingConfig:
    """Epochs, learning rates and sampling of the three training stages."""

    seed: int = 0
    embedding_epochs: int = 20
    filter_epochs: int = 10
    gnn_epochs: int = 10
    embedding_lr: float = 3e-3
    filter_lr: float = 3e-3
    gnn_lr: float = 3e-3
    embedding_truth: str = "consecutive"  # positive pairs: "consecutive" (by r) or "all_pairs"
    negatives_per_positive: float = 2.0
    # signal threshold (GeV): embedding positives and the filter/GNN's true edges come only
    # from particles with pt > pt_min; lower-pT true pairs are left out of every loss
    pt_min: float | None = None
    # true edges of signal particles weigh clip(pt / 1 GeV, 1, pt_weight_max) in the filter
    # and GNN losses: dense training events hold few high-pT tracks, and an edge budget
    # ranked by the filter drops the rare ones first (1: every true edge weighs 1)
    pt_weight_max: float = 1.0
    # filter loss weight of the edges an event's GNN input budget (gnn_input_max_edges)
    # ranks wrongly: false edges among its best filter scores and true edges below them;
    # hard negatives at the budget's score, where a dense event's filter decides (1: off)
    filter_budget_weight: float = 1.0
    hard_negatives: bool = True
    max_pairs: int = 200_000  # cap on positive pairs per event and step
    max_pos_weight: float = 50.0
    margin: float | None = None  # embedding hinge margin; None: the graph radius
    # at most this many GNN training edges per training event, the best filter scores (as
    # filter.max_edges at inference; 0: all past the cut)
    gnn_input_max_edges: int = 0
    cosine_lr: bool = False  # cosine-anneal every stage's learning rate to 0 over its epochs
    progress: bool | None = None  # bars; None: only when stderr is a terminal
    plots: bool = True

    def __post_init__(self) -> None:
        for name in ("embedding_epochs", "filter_epochs", "gnn_epochs"):
            check_count(getattr(self, name), f"TrainingConfig: {name}", minimum=0,
                        error=ExaTrkXConfigError)
        for name in ("pt_weight_max", "filter_budget_weight"):
            if not getattr(self, name) >= 1:
                raise ExaTrkXConfigError(
                    f"TrainingConfig: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("embedding_lr", "filter_lr", "gnn_lr", "max_pos_weight"):
            if not getattr(self, name) > 0:
                raise ExaTrkXConfigError(f"TrainingConfig: {name} must be > 0")
        if self.embedding_truth not in ("consecutive", "all_pairs"):
            raise ExaTrkXConfigError(
                f"TrainingConfig: bad embedding_truth {self.embedding_truth!r}"
            )
        if self.negatives_per_positive < 0:
            raise ExaTrkXConfigError("TrainingConfig: negatives_per_positive must be >= 0")
        check_count(self.max_pairs, "TrainingConfig: max_pairs", error=ExaTrkXConfigError)
        check_count(self.gnn_input_max_edges, "TrainingConfig: gnn_input_max_edges",
                    minimum=0, error=ExaTrkXConfigError)
        if self.margin is not None and not self.margin > 0:
            raise ExaTrkXConfigError(f"TrainingConfig: margin must be > 0, got {self.margin}")


def _scheduler(
    opt: torch.optim.Optimizer, steps: int, training: TrainingConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if not training.cosine_lr or steps < 1:
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)


@dataclass
class TrainingHistory:
    """Mean loss per epoch of each stage, edge metrics on the training events, and time."""

    embedding_loss: list[float] = field(default_factory=list)
    filter_loss: list[float] = field(default_factory=list)
    gnn_loss: list[float] = field(default_factory=list)
    edge_metrics: dict[str, EdgeMetrics] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _same_particle(pid: np.ndarray, edges: np.ndarray) -> np.ndarray:
    a, b = pid[edges[0]], pid[edges[1]]
    return (a == b) & (a != 0)


def _r_of(features: np.ndarray, config: PipelineConfig) -> np.ndarray | None:
    idx = config.features.index("r")
    return None if idx is None else features[:, idx]


def _graph(embedding: nn.Module, ev: TrainingEvent, config: PipelineConfig) -> np.ndarray:
    with torch.inference_mode():
        emb = embedding(torch.from_numpy(ev.features)).numpy()
    return build_edges(emb, r=_r_of(ev.features, config), config=config.graph)


def _map_graph(module_map: ModuleMap, ev: TrainingEvent, config: PipelineConfig
               ) -> np.ndarray:
    """The module map's graph of a training event (as :meth:`Pipeline.graph`)."""
    if ev.module_id is None:
        raise ValueError("training: a module-map pipeline needs each event's module_id")
    r, phi, z = coordinates(ev.features, config.features)
    return module_map.edges(ev.module_id, r, phi, z, config.graph.orientation)


def _bce_weight(y: torch.Tensor, max_pos_weight: float) -> torch.Tensor:
    n_pos = float(y.sum())
    n_neg = float(y.numel()) - n_pos
    return torch.tensor(min(max(n_neg / max(n_pos, 1.0), 1.0), max_pos_weight))


def _fit(
    model: nn.Module,
    n_events: int,
    epochs: int,
    lr: float,
    rng: np.random.Generator,
    step: Callable[[int], torch.Tensor | None],
    training: TrainingConfig,
    desc: str,
) -> list[float]:
    """The optimisation loop every stage shares: per epoch, the events in a random order
    (from ``rng``), one AdamW step on each event's loss (``step(i)``; None skips the
    event); returns the mean loss per epoch and leaves ``model`` in eval mode.

    ``step`` draws from the same ``rng`` after the permutation, so the random numbers
    (and hence the trained weights) follow one fixed order."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    sched = _scheduler(opt, epochs * n_events, training)
    history: list[float] = []
    bar = training.progress if training.progress is not None else sys.stderr.isatty()
    every = max(epochs // LOSS_LINES, 1)
    t0 = time.perf_counter()
    for epoch in tqdm(range(epochs), desc=desc, disable=not bar):
        losses = []
        for i in rng.permutation(n_events):
            loss = step(i)
            if loss is None:
                continue
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)) if losses else float("nan"))
        if not bar and ((epoch + 1) % every == 0 or epoch + 1 == epochs):  # a log line,
            # not bar frames, where no terminal shows them (batch logs)
            log.info("%s: epoch %d/%d, mean loss %.4g (%.0f s)", desc, epoch + 1, epochs,
                     history[-1], time.perf_counter() - t0)
    model.eval()
    return history


def train_embedding(
    model: nn.Module,
    events: Sequence[TrainingEvent],
    config: PipelineConfig,
    training: TrainingConfig,
) -> list[float]:
    """Metric-learning training of ``model`` in place; returns the mean loss per epoch."""
    rng = np.random.default_rng(training.seed)
    margin = float(config.graph.radius if training.margin is None else training.margin)
    r_col = config.features.index("r")
    mode = training.embedding_truth if r_col is not None else "all_pairs"
    positives = []
    for ev in events:
        r = None if r_col is None else ev.features[:, r_col]
        pos = true_edges(ev.particle_id, r, mode=mode)
        if training.pt_min is not None:
            if ev.pt is None:
                raise ValueError("train_embedding: pt_min is set but an event has no pt")
            pos = pos[:, ev.pt[pos[0]] > training.pt_min]
        positives.append(pos)

    def step(i: int) -> torch.Tensor | None:
        ev, pos = events[i], positives[i]
        n = ev.features.shape[0]
        if n < 2:
            return None
        if pos.shape[1] > training.max_pairs:
            pos = pos[:, rng.choice(pos.shape[1], training.max_pairs, replace=False)]
        n_rand = max(int(training.negatives_per_positive * max(pos.shape[1], 1)), 1)
        neg = rng.integers(0, n, size=(2, n_rand))
        if training.hard_negatives:
            model.eval()
            hard = _graph(model, ev, config)
            neg = np.concatenate([neg, hard], axis=1)
        neg = neg[:, ~_same_particle(ev.particle_id, neg) & (neg[0] != neg[1])]
        model.train()
        out = model(torch.from_numpy(ev.features))
        loss = torch.zeros(())
        if pos.shape[1]:
            p = torch.from_numpy(pos)
            loss = loss + ((out[p[0]] - out[p[1]]) ** 2).sum(1).mean()
        if neg.shape[1]:
            q = torch.from_numpy(neg)
            d = ((out[q[0]] - out[q[1]]) ** 2).sum(1).add(1e-12).sqrt()
            loss = loss + torch.relu(margin - d).pow(2).mean()
        return loss

    return _fit(model, len(events), training.embedding_epochs, training.embedding_lr, rng,
                step, training, "embedding")


def _edge_weights(
    ev: TrainingEvent, edges: np.ndarray, same: np.ndarray, training: TrainingConfig
) -> np.ndarray:
    """Loss weight per edge: 0 for true edges of particles at or below the signal
    threshold ``pt_min`` (neither kept nor rejected is wrong for them), the particle's pT
    in GeV clipped to ``[1, pt_weight_max]`` for the other true edges, 1 for false ones."""
    w = np.ones(edges.shape[1], dtype=np.float32)
    if training.pt_min is None and training.pt_weight_max == 1:
        return w
    if ev.pt is None:
        raise ValueError("training: pt_min or pt_weight_max is set but an event has no pt")
    pt = ev.pt[edges[0]]
    if training.pt_weight_max > 1:
        w[same] = np.clip(pt[same], 1.0, training.pt_weight_max)
    if training.pt_min is not None:
        w[same & (pt <= training.pt_min)] = 0.0
    return w


def budget_weights(logits: torch.Tensor, y: torch.Tensor, budget: int,
                   factor: float) -> torch.Tensor | None:
    """Per-edge loss factors of one event under a GNN input budget: ``factor`` for the
    false edges among its ``budget`` best scores and for the true edges below them, 1 for
    the rest; None where the budget does not bind (``factor`` 1, no budget, or no more
    edges than it).

    Why: where the budget binds (mu=200), which edges the GNN gets is decided by the
    ranking at the budget's score, not at the cut; plain BCE spends its gradient on the
    many easy fakes far below it."""
    n = int(logits.numel())
    if factor == 1 or budget <= 0 or n <= budget:
        return None
    scores = logits.detach()
    inside = scores >= torch.topk(scores, budget, sorted=False).values.min()
    wrong = inside != (y > 0)
    return torch.where(wrong, torch.tensor(factor, dtype=logits.dtype),
                       torch.tensor(1.0, dtype=logits.dtype))


def _train_edge_model(
    model: nn.Module,
    events: Sequence[TrainingEvent],
    edges: Sequence[np.ndarray],
    epochs: int,
    lr: float,
    training: TrainingConfig,
    desc: str,
    budget: int = 0,
) -> list[float]:
    """Weighted BCE of one edge model over the events; ``budget``: the GNN input budget
    per event the filter's ranking is weighted for (:func:`budget_weights`; 0: none)."""
    rng = np.random.default_rng(training.seed + 1)
    labels, weights = [], []
    for ev, e in zip(events, edges, strict=True):
        same = _same_particle(ev.particle_id, e)
        labels.append(torch.from_numpy(same.astype(np.float32)))
        weights.append(torch.from_numpy(_edge_weights(ev, e, same, training)))

    def step(i: int) -> torch.Tensor | None:
        if edges[i].shape[1] == 0:
            return None
        y, w = labels[i], weights[i]
        logits = model(torch.from_numpy(events[i].features), torch.from_numpy(edges[i]))
        # without a threshold no weight at all: the loss stays bit-identical to the one
        # the shipped models were trained with
        weight = None if training.pt_min is None and training.pt_weight_max == 1 else w
        ranked = budget_weights(logits, y, budget, training.filter_budget_weight)
        if ranked is not None:
            weight = ranked if weight is None else weight * ranked
        return nn.functional.binary_cross_entropy_with_logits(
            logits, y, weight=weight,
            pos_weight=_bce_weight(y[w > 0], training.max_pos_weight),
        )

    model.train()
    return _fit(model, len(events), epochs, lr, rng, step, training, desc)


def _scores(model: nn.Module, ev: TrainingEvent, edges: np.ndarray) -> np.ndarray:
    if edges.shape[1] == 0:
        return np.zeros(0, dtype=np.float32)
    with torch.inference_mode():
        return model(torch.from_numpy(ev.features), torch.from_numpy(edges)).numpy()


def _mean_edge_metrics(
    events: Sequence[TrainingEvent], edges: Sequence[np.ndarray]
) -> EdgeMetrics:
    ms = [
        edge_metrics(e, ev.particle_id, mode="all_pairs")
        for ev, e in zip(events, edges, strict=True)
    ]
    n_true = sum(m.n_true for m in ms)
    n_pred = sum(m.n_pred for m in ms)
    n_tp = sum(m.n_true_pred for m in ms)
    return EdgeMetrics(
        n_true=n_true,
        n_pred=n_pred,
        n_true_pred=n_tp,
        efficiency=n_tp / n_true if n_true else float("nan"),
        purity=n_tp / n_pred if n_pred else float("nan"),
    )


def _train_edge_stage(
    hist: TrainingHistory, stage: str, model: nn.Module, evs: list[TrainingEvent],
    edges: list[np.ndarray], epochs: int, lr: float, tcfg: TrainingConfig,
    keep: Callable[[TrainingEvent, np.ndarray, np.ndarray], np.ndarray], budget: int = 0,
) -> tuple[list[float], list[np.ndarray]]:
    """Train one edge model and keep the edges ``keep(event, edges, logits)`` selects: the
    next stage's input. Records the stage's edge metrics and seconds in ``hist``; returns
    the losses and the kept edges. ``budget``: the GNN input budget per training event the
    filter's loss is weighted for (:func:`budget_weights`)."""
    t0 = time.perf_counter()
    losses = _train_edge_model(model, evs, edges, epochs, lr, tcfg, stage, budget=budget)
    kept = [e[:, keep(ev, e, _scores(model, ev, e))] for ev, e in zip(evs, edges, strict=True)]
    hist.edge_metrics[stage] = _mean_edge_metrics(evs, kept)
    hist.seconds[stage] = time.perf_counter() - t0
    return losses, kept


def plot_losses(history: TrainingHistory, path: str | Path) -> Path:
    """Loss curves of the three stages to a PNG (Agg canvas: no GUI, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.2))
    FigureCanvasAgg(fig)
    curves = (
        ("embedding", history.embedding_loss),
        ("filter", history.filter_loss),
        ("gnn", history.gnn_loss),
    )
    for k, (name, losses) in enumerate(curves):
        ax = fig.add_subplot(1, 3, k + 1)
        ax.plot(np.arange(1, len(losses) + 1), losses, marker=".")
        ax.set_title(f"{name} loss")
        ax.set_xlabel("epoch")
        if losses and np.all(np.asarray(losses) > 0):
            ax.set_yscale("log")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out


def _check_same_models(trained: PipelineConfig, saved: PipelineConfig) -> None:
    """The saved configuration may change cuts, the degree cap and graph building, not the
    models."""
    if saved.features != trained.features:
        raise ExaTrkXConfigError(
            "train_pipeline: saved_config has other features than training"
        )
    if saved.graph_construction != trained.graph_construction:
        raise ExaTrkXConfigError("train_pipeline: saved_config has another graph "
                                 "construction than training")
    selection = ("cut", "max_degree", "max_edges")
    for stage in ("embedding", "filter", "gnn"):
        a = {k: v for k, v in getattr(trained, stage).to_dict().items() if k not in selection}
        b = {k: v for k, v in getattr(saved, stage).to_dict().items() if k not in selection}
        if a != b:
            raise ExaTrkXConfigError(
                f"train_pipeline: saved_config describes another {stage} model than the "
                "one trained"
            )


def train_pipeline(
    events: Sequence[TrainingEvent | Mapping[str, Any]],
    config: PipelineConfig | None = None,
    training: TrainingConfig | None = None,
    output_dir: str | Path | None = None,
    saved_config: PipelineConfig | None = None,
    module_map: ModuleMap | None = None,
) -> tuple[Pipeline, TrainingHistory]:
    """Train embedding, filter and GNN in sequence; save them (TorchScript + config.json)
    and ``loss_curves.png`` into ``output_dir`` when given.

    ``saved_config``: the configuration written to ``config.json`` (default: ``config``),
    for inference settings that differ from training's (e.g. the graph radius); it must
    describe the same models. ``module_map``: the graph of a ``module_map`` config (no
    embedding is trained; it is saved with the models).
    """
    cfg = config or PipelineConfig()
    tcfg = training or TrainingConfig()
    out_cfg = saved_config or cfg
    _check_same_models(cfg, out_cfg)
    evs = [TrainingEvent.coerce(e) for e in events]
    if not evs:
        raise ValueError("train_pipeline: no events")
    for ev in evs:
        check_width(ev.features, cfg.features.width, "training")
    if cfg.module_map and module_map is None:
        raise ExaTrkXConfigError("train_pipeline: graph_construction 'module_map' needs the "
                                 "module map (ModuleMap.from_events)")
    torch.manual_seed(tcfg.seed)
    pipe = Pipeline.from_config(cfg, seed=tcfg.seed, module_map=module_map)
    hist = TrainingHistory()

    models = [m for m in (pipe.embedding, pipe.filter, pipe.gnn) if m is not None]
    with exact_tanh(*models):
        t0 = time.perf_counter()
        if pipe.module_map is not None:
            graphs = [_map_graph(pipe.module_map, ev, cfg) for ev in evs]
        else:
            assert pipe.embedding is not None
            hist.embedding_loss = train_embedding(pipe.embedding, evs, cfg, tcfg)
            graphs = [_graph(pipe.embedding, ev, cfg) for ev in evs]
        hist.edge_metrics["graph"] = _mean_edge_metrics(evs, graphs)
        hist.seconds["embedding" if pipe.module_map is None else "graph"] = (
            time.perf_counter() - t0)

        # the GNN trains on the filter's selection at inference (cut, the budget per
        # training event, its ranking), without the degree cap: a GNN trained on capped
        # graphs was worse at mu=0 (GNN edge efficiency 0.950 against 0.956) and at mu=50
        # (track efficiency 0.53 against 0.63, validation events; docs/models.md)
        selection = replace(cfg.filter, max_degree=0, max_edges=tcfg.gnn_input_max_edges)
        hist.filter_loss, filtered = _train_edge_stage(
            hist, "filter", pipe.filter, evs, graphs, tcfg.filter_epochs, tcfg.filter_lr,
            tcfg, lambda ev, e, s: filter_selection(e, s, ev.features, cfg.features, selection),
            budget=selection.max_edges)
        hist.gnn_loss, _ = _train_edge_stage(
            hist, "gnn", pipe.gnn, evs, filtered, tcfg.gnn_epochs, tcfg.gnn_lr, tcfg,
            lambda ev, e, s: apply_cut(s, cfg.gnn.cut))

    if output_dir is not None:
        save_models(output_dir, pipe.embedding, pipe.filter, pipe.gnn, out_cfg,
                    module_map=pipe.module_map)
        if tcfg.plots:
            plot_losses(hist, Path(output_dir) / "loss_curves.png")
    return pipe, hist
