"""The three learned stages as small, TorchScript-friendly torch modules.

- :class:`Embedding`: MLP node features ``[N, F]`` -> embedding ``[N, D]`` (metric learning:
  hits of one particle close together, others at least ``radius`` apart);
- :class:`Filter`: MLP on ``cat(x[src], x[dst])`` -> one logit per edge ``[E]``;
- :class:`InteractionNetwork`: message-passing GNN -> one logit per edge ``[E]``.

Both edge models are asymmetric: edge direction matters, so they must be used with the edge
orientation they were trained with (stored in ``config.json``). They return raw logits; cuts
are applied outside (:func:`sonic_exatrkx.exatrkx.graph.apply_cut`), as in the reference.

With ``geometry`` set in a stage's config, the model derives extra inputs from the plain
``(r, phi, z)`` features in torch (:class:`Geometry`: ``cos/sin phi``, wrapped ``dphi``,
``dphi/dr``, z intercept, ...), so callers still send the same ``[N, F]`` features.
On the toy detector this raised the GNN's edge efficiency at the same purity from 91 to
94-95 % on held-out mu=0 events (``docs/models.md``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sonic_exatrkx.checks import check_count

from .errors import ExaTrkXConfigError
from .triplets import TripletRanking


class Tanh(nn.Module):
    """``tanh``; in inference (eval mode, autograd off) computed in place as
    ``2 sigmoid(2x) - 1``.

    torch's CPU ``tanh`` costs ~2.7 ns per element here against ~0.4 for ``sigmoid``: the
    filter's three tanh layers were ~40 % of its time at mu=200. The two forms are the same
    function to float rounding (at most 2.4e-7 apart, saturating alike); the in-place ops
    are safe because an activation's input is always a fresh Linear, LayerNorm or gather
    output that nothing else reads. Training and any call with autograd on use
    ``torch.tanh`` (exact gradients), as does inference with ``exact`` set
    (:func:`exact_tanh`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.exact: bool = False

    def forward(self, x: Tensor) -> Tensor:
        if self.exact or self.training or torch.is_grad_enabled():
            return torch.tanh(x)
        return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


@contextmanager
def exact_tanh(*modules: nn.Module) -> Iterator[None]:
    """``torch.tanh`` in every :class:`Tanh` of ``modules`` for the block, inference too.

    Training's own inference passes (hard-negative graphs, the edges a stage passes on)
    run under it: a score within 1e-6 of a cut could otherwise land on the other side, and
    ``sonic-exatrkx train`` reproduces the shipped weights bit for bit.
    """
    acts = [m for module in modules for m in module.modules() if isinstance(m, Tanh)]
    for act in acts:
        act.exact = True
    try:
        yield
    finally:
        for act in acts:
            act.exact = False


ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": Tanh, "relu": nn.ReLU, "silu": nn.SiLU}


def _check_positive(owner: str, **values: int) -> None:
    for name, v in values.items():
        check_count(v, f"{owner}: {name}", error=ExaTrkXConfigError)


def _check_activation(owner: str, activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ExaTrkXConfigError(
            f"{owner}: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
        )


def _check_cut(owner: str, cut: float) -> None:
    if not 0.0 <= cut <= 1.0:
        raise ExaTrkXConfigError(f"{owner}: cut must be in [0, 1], got {cut}")


def _check_geometry(owner: str, config: Any) -> None:
    """Normalise ``geometry`` (JSON gives a list) to a tuple of three positive floats."""
    g = config.geometry
    if g is None:
        return
    vals = tuple(float(v) for v in g)
    if len(vals) != 3 or not all(math.isfinite(v) and v > 0 for v in vals):
        raise ExaTrkXConfigError(
            f"{owner}: geometry must be None or three scales > 0 of the (r, phi, z) feature "
            f"columns 0-2, got {g}"
        )
    if config.in_features < 3:
        raise ExaTrkXConfigError(
            f"{owner}: geometry needs in_features >= 3, got {config.in_features}"
        )
    object.__setattr__(config, "geometry", vals)


class _ConfigMixin:
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        if d.get("geometry") is not None:
            d["geometry"] = list(d["geometry"])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):  # noqa: ANN206
        return cls(**dict(d))


@dataclass(frozen=True)
class EmbeddingConfig(_ConfigMixin):
    """Embedding MLP: ``n_layers`` hidden layers of width ``hidden``, output ``out_features``.

    ``geometry``: ``None``, or the scales of the ``(r, phi, z)`` feature columns 0-2; then the
    model adds :class:`Geometry` inputs itself (same for the filter and the GNN). ``None``
    is the default so configs written before the field existed load unchanged.
    """

    in_features: int = 3
    hidden: int = 128
    n_layers: int = 3
    out_features: int = 8
    activation: str = "tanh"
    layer_norm: bool = True
    geometry: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        _check_geometry("EmbeddingConfig", self)
        _check_positive(
            "EmbeddingConfig",
            in_features=self.in_features,
            hidden=self.hidden,
            n_layers=self.n_layers,
            out_features=self.out_features,
        )
        _check_activation("EmbeddingConfig", self.activation)


@dataclass(frozen=True)
class FilterConfig(_ConfigMixin):
    """Edge filter MLP on ``cat(x[src], x[dst])``; ``cut`` on sigmoid (reference 0.21).

    ``edge_differences`` appends ``x[dst] - x[src]`` to the edge input: the same information,
    but the MLP no longer has to learn the subtraction, which makes it train several times
    faster (the reference filter has no such column).

    The filter runs on every graph edge (10-30 per space point), so it is the widest stage:
    width 64 costs ~2.9 us/edge on one core here, width 128 ~6.8 us/edge.

    ``max_degree`` (0: off, as the reference): after the cut, each space point keeps at most
    this many outgoing and this many incoming edges, highest score first
    (:func:`~sonic_exatrkx.exatrkx.graph.cut_and_cap`); at inference only, the GNN trains
    on every edge past the cut. ``max_edges`` (0: off): then at most this many edges per
    event, the highest scores: the GNN input budget of dense events (``train
    --filter-max-edges`` also trains the GNN on graphs cut that way). ``triplets`` (None:
    off): the budget ranks by filter logit plus triplet support instead
    (:class:`~sonic_exatrkx.exatrkx.triplets.TripletRanking`).
    """

    in_features: int = 3
    hidden: int = 64
    n_layers: int = 3
    activation: str = "tanh"
    layer_norm: bool = True
    edge_differences: bool = True
    cut: float = 0.21
    geometry: tuple[float, float, float] | None = None
    max_degree: int = 0
    max_edges: int = 0
    triplets: TripletRanking | None = None

    def __post_init__(self) -> None:
        if isinstance(self.triplets, Mapping):
            object.__setattr__(self, "triplets", TripletRanking.from_dict(self.triplets))
        _check_geometry("FilterConfig", self)
        _check_positive(
            "FilterConfig", in_features=self.in_features, hidden=self.hidden, n_layers=self.n_layers
        )
        _check_activation("FilterConfig", self.activation)
        _check_cut("FilterConfig", self.cut)
        check_count(self.max_degree, "FilterConfig: max_degree", minimum=0,
                    error=ExaTrkXConfigError)
        check_count(self.max_edges, "FilterConfig: max_edges", minimum=0,
                    error=ExaTrkXConfigError)
        if self.triplets is not None and not isinstance(self.triplets, TripletRanking):
            raise ExaTrkXConfigError("FilterConfig: triplets must be a TripletRanking, a "
                                     f"mapping or None, got {self.triplets!r}")

    def to_dict(self) -> dict[str, Any]:
        """As the other sections; no ``triplets`` key when off, so folders written
        before the option existed keep their config.json."""
        d = super().to_dict()
        if d.get("triplets") is None:
            d.pop("triplets", None)
        return d


@dataclass(frozen=True)
class GNNConfig(_ConfigMixin):
    """Interaction network; ``cut`` on sigmoid (default 0.5; the reference uses 0.75).

    ``edge_differences``: the edge encoder also sees ``x[dst] - x[src]`` (as the filter).
    Cost on one core here: ~12 us/edge at hidden 64, ~6 us/edge at hidden 32 (4 iterations).
    """

    in_features: int = 3
    hidden: int = 64
    n_layers: int = 2
    n_iterations: int = 4
    activation: str = "relu"
    layer_norm: bool = True
    edge_differences: bool = True
    cut: float = 0.5
    geometry: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        _check_geometry("GNNConfig", self)
        _check_positive(
            "GNNConfig",
            in_features=self.in_features,
            hidden=self.hidden,
            n_layers=self.n_layers,
            n_iterations=self.n_iterations,
        )
        _check_activation("GNNConfig", self.activation)
        _check_cut("GNNConfig", self.cut)


def gather(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` along dim 0 via ``index_select``: the same values, but on CPU ~7x faster
    than advanced indexing for the ``[E, H]`` gathers of the edge models (30 us against
    217 us for 2200 rows of 48, one thread)."""
    return torch.index_select(x, 0, index)


def _activation(name: str) -> nn.Module:
    """ReLU works in place (same values, one tensor less per layer): its gradient needs only
    its output, and the LayerNorm or Linear before it does not need its own output."""
    return nn.ReLU(inplace=True) if name == "relu" else ACTIVATIONS[name]()


def make_mlp(
    in_features: int,
    hidden: int,
    out_features: int,
    n_layers: int,
    activation: str = "tanh",
    layer_norm: bool = True,
) -> nn.Sequential:
    """``n_layers`` x (Linear, LayerNorm?, activation) then a plain Linear output layer."""
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(n_layers):
        layers.append(nn.Linear(width, hidden))
        if layer_norm:
            layers.append(nn.LayerNorm(hidden))
        layers.append(_activation(activation))
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class EdgeMLP(nn.Module):
    """``make_mlp`` on ``cat(h[src], h[dst], e)`` with the first layer split by input block.

    ``W @ cat(h[src], h[dst], e) == (h @ Ws)[src] + (h @ Wd)[dst] + e @ We``: the node blocks
    are projected once per node (N rows) and then gathered, instead of materialising the
    ``[E, 3H]`` concatenation and multiplying E rows; the same function, fewer flops and
    much less memory traffic, since E is several times N.
    """

    def __init__(
        self,
        node_dim: int,
        edge_dim: int,
        hidden: int,
        out_features: int,
        n_layers: int,
        activation: str = "relu",
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        self.src_proj = nn.Linear(node_dim, hidden)
        self.dst_proj = nn.Linear(node_dim, hidden, bias=False)
        self.edge_proj = nn.Linear(edge_dim, hidden, bias=False)
        layers: list[nn.Module] = []
        if layer_norm:
            layers.append(nn.LayerNorm(hidden))
        layers.append(_activation(activation))
        layers.extend(make_mlp(hidden, hidden, out_features, n_layers - 1, activation, layer_norm))
        self.head = nn.Sequential(*layers)

    def project(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """The per-node halves ``(h @ Ws + b, h @ Wd)``, computed once for all edge blocks."""
        return self.src_proj(h), self.dst_proj(h)

    def combine(self, ps: Tensor, pd: Tensor, e: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        """The MLP for the edges ``src -> dst`` with state ``e``, from :meth:`project`.

        The sums run in place, in the order ``(ps[src] + pd[dst]) + e @ We``: same bits as
        out of place, two ``[E, H]`` tensors fewer (autograd-safe: ``index_select`` keeps
        no output for its gradient).
        """
        z = gather(ps, src)
        z.add_(gather(pd, dst))
        z.add_(self.edge_proj(e))
        return self.head(z)

    def forward(self, h: Tensor, e: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        ps, pd = self.project(h)
        return self.combine(ps, pd, e, src, dst)


class Geometry(nn.Module):
    """Physics quantities computed in torch from the scaled ``(r, phi, z)`` feature columns
    0-2, so a saved model stays self-contained (the served input is still the plain
    features).

    Why: ``phi`` jumps from +pi to -pi, which an MLP on ``phi/pi`` cannot undo, and the
    quantities that separate true from false edges (the azimuthal bend per unit radius,
    the z intercept on the beam line) are ratios an MLP learns only slowly.

    - node (4 columns): ``cos phi``, ``sin phi``, ``eta / 2``, ``z / r`` clipped to +-5;
    - edge (6 columns, ``src -> dst``): ``dr / 100 mm``, ``dphi * 10`` (wrapped to
      ``[-pi, pi]``), ``dz / 100 mm``, ``deta``, ``dphi / dr`` in rad/m and the z intercept
      ``z_src - r_src dz / dr`` in units of 100 mm, the last two with ``|dr| >= 1 mm`` and
      clipped to +-20.

    ``scales=None`` disables it: :meth:`with_node` and :meth:`edge_input` then add nothing
    (TorchScript compiles both branches, so every model has the module; unused, it has no
    weights and costs nothing).
    """

    def __init__(self, scales: tuple[float, float, float] | None) -> None:
        super().__init__()
        self.enabled: bool = scales is not None
        r_scale, phi_scale, z_scale = scales or (1.0, 1.0, 1.0)
        self.r_scale: float = float(r_scale)
        self.phi_scale: float = float(phi_scale)
        self.z_scale: float = float(z_scale)

    def _rpz(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return x[:, 0] * self.r_scale, x[:, 1] * self.phi_scale, x[:, 2] * self.z_scale

    def _eta(self, r: Tensor, z: Tensor) -> Tensor:
        return torch.asinh(z / r.clamp(min=1e-3))

    def node(self, x: Tensor) -> Tensor:
        r, phi, z = self._rpz(x)
        cot = (z / r.clamp(min=1e-3)).clamp(-5.0, 5.0)
        return torch.stack(
            [torch.cos(phi), torch.sin(phi), 0.5 * self._eta(r, z), cot], dim=1
        )

    def edge_nodes(self, x: Tensor) -> Tensor:
        """The per-node columns ``r, phi, z, eta`` ``[4, N]`` that :meth:`edge` gathers,
        computed once per event rather than once per edge block (at mu=200 a GNN's 97
        blocks each recomputed ``asinh`` of 100k space points). Empty when disabled."""
        if not self.enabled:
            return x.new_zeros((4, 0))
        r, phi, z = self._rpz(x)
        return torch.stack([r, phi, z, self._eta(r, z)])

    def edge(self, g: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        """The six edge columns, from :meth:`edge_nodes` ``g``."""
        r, phi, z, eta = g[0], g[1], g[2], g[3]
        r_src, r_dst = gather(r, src), gather(r, dst)
        z_src = gather(z, src)
        dr = r_dst - r_src
        dphi = torch.remainder(gather(phi, dst) - gather(phi, src) + math.pi, 2.0 * math.pi)
        dphi = dphi - math.pi
        dz = gather(z, dst) - z_src
        sign = torch.where(dr < 0, -torch.ones_like(dr), torch.ones_like(dr))
        dr_safe = sign * dr.abs().clamp(min=1.0)
        slope = (1000.0 * dphi / dr_safe).clamp(-20.0, 20.0)
        z0 = ((z_src - r_src * dz / dr_safe) / 100.0).clamp(-20.0, 20.0)
        return torch.stack(
            [dr / 100.0, 10.0 * dphi, dz / 100.0, gather(eta, dst) - gather(eta, src), slope,
             z0],
            dim=1,
        )

    def with_node(self, x: Tensor) -> Tensor:
        """The node features ``x`` with :meth:`node` appended when enabled."""
        return torch.cat([x, self.node(x)], dim=1) if self.enabled else x

    def edge_input(
        self, g: Tensor, xn: Tensor, src: Tensor, dst: Tensor, differences: bool
    ) -> Tensor:
        """An edge model's input: :func:`edge_inputs` of the node inputs ``xn`` (from
        :meth:`with_node`), with :meth:`edge` of ``g`` (from :meth:`edge_nodes`) appended
        when enabled."""
        e = edge_inputs(xn, src, dst, differences)
        return torch.cat([e, self.edge(g, src, dst)], dim=1) if self.enabled else e


#: Columns :class:`Geometry` adds per node and per edge.
GEOMETRY_NODE_FEATURES = 4
GEOMETRY_EDGE_FEATURES = 6


class Embedding(nn.Module):
    """Metric-learning MLP: node features ``[N, F]`` -> embedding ``[N, D]`` (not normalised).

    With ``geometry``, the MLP also sees :meth:`Geometry.node` (``cos/sin phi``: no seam).
    """

    def __init__(self, config: EmbeddingConfig | None = None) -> None:
        super().__init__()
        cfg = config or EmbeddingConfig()
        self.in_features: int = cfg.in_features
        self.out_features: int = cfg.out_features
        self.geometry = Geometry(cfg.geometry)
        width = cfg.in_features + (GEOMETRY_NODE_FEATURES if self.geometry.enabled else 0)
        self.net = make_mlp(
            width, cfg.hidden, cfg.out_features, cfg.n_layers, cfg.activation, cfg.layer_norm,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.geometry.with_node(x))


def edge_inputs(x: Tensor, src: Tensor, dst: Tensor, differences: bool) -> Tensor:
    """``cat(x[src], x[dst])``, plus ``x[dst] - x[src]`` when ``differences``."""
    a, b = gather(x, src), gather(x, dst)
    if differences:
        return torch.cat([a, b, b - a], dim=1)
    return torch.cat([a, b], dim=1)


def _edge_width(in_features: int, differences: bool, geometry: bool) -> int:
    node = in_features + (GEOMETRY_NODE_FEATURES if geometry else 0)
    return (3 if differences else 2) * node + (GEOMETRY_EDGE_FEATURES if geometry else 0)


#: Edges per block in the edge models' inference (see :class:`Filter`, :class:`InteractionNetwork`).
EDGE_BLOCK = 8192


def _block_starts(n: int, block: int) -> list[int]:
    return list(range(0, n, max(block, 1)))


class Filter(nn.Module):
    """Edge classifier MLP on ``cat(x[src], x[dst])`` -> logits ``[E]`` (with ``geometry``:
    node and edge quantities of :class:`Geometry` appended).

    In eval mode the MLP runs on blocks of ``edge_block`` edges, after the node-level
    inputs were computed once: a ``[262144, 32]`` activation is 32 MiB, past glibc's
    largest ``mmap`` threshold, so every layer page-faulted fresh memory (``relu`` at
    3 ns per element instead of 0.45) and every chunk recomputed the node inputs. The MLP
    is row-wise, so this is the same function, to the same float rounding as the GNN's
    blocks (see there).
    """

    def __init__(self, config: FilterConfig | None = None) -> None:
        super().__init__()
        cfg = config or FilterConfig()
        self.in_features: int = cfg.in_features
        self.edge_differences: bool = cfg.edge_differences
        self.geometry = Geometry(cfg.geometry)
        width = _edge_width(cfg.in_features, cfg.edge_differences, self.geometry.enabled)
        self.net = make_mlp(width, cfg.hidden, 1, cfg.n_layers, cfg.activation, cfg.layer_norm)
        self.edge_block: int = EDGE_BLOCK

    def forward(self, x: Tensor, edges: Tensor) -> Tensor:
        xn = self.geometry.with_node(x)
        g = self.geometry.edge_nodes(x)
        src, dst = edges[0], edges[1]
        n_e = src.shape[0]
        block = n_e if self.training else max(self.edge_block, 1)
        if n_e <= block:
            e = self.geometry.edge_input(g, xn, src, dst, self.edge_differences)
            return self.net(e).squeeze(-1)
        out = x.new_empty(n_e)
        for a in _block_starts(n_e, block):
            s, d = src[a : a + block], dst[a : a + block]
            e = self.geometry.edge_input(g, xn, s, d, self.edge_differences)
            out[a : a + block] = self.net(e).squeeze(-1)
        return out


class InteractionNetwork(nn.Module):
    """Interaction network with residual node and edge updates, weights shared across
    iterations (as the reference ResAGNN).

    Each iteration: ``e += edge_net(cat(h[src], h[dst], e))`` (an :class:`EdgeMLP`); node
    ``i`` aggregates the edge states of its incoming (``dst == i``) and outgoing
    (``src == i``) edges separately with ``index_add_`` (sum), then
    ``h += node_net(cat(h, m_in, m_out))``. The output is ``out_net(cat(h[src], h[dst], e))``:
    one logit per edge. With ``geometry``, the node and edge encoders also see the
    :class:`Geometry` quantities.

    Inference (eval mode, autograd off) runs the edge-wise work on blocks of ``edge_block``
    edges, in edge order, so that each block's intermediates stay in cache, and updates the
    edge and node states in place: on a mu=200 event (789k edges) the GNN went from 13.5 to
    5.4 s on one core (blocks), 3.7-4.4 s (in-place residuals and ReLUs), then ~3.4 s (no
    per-iteration copy of the ``[E, H]`` states). Every edge MLP is row-wise and
    ``index_add_`` still adds in edge order, so this is the same function; the logits agree
    with one block to float rounding only, because the matrix library picks other kernels
    for a few rows (a final block of under ~12 edges, or a one-column output layer).
    Callers that share the module and block size (in-process and served runs) get the same
    bits. Training, or any call with autograd on, runs all edges at once out of place: its
    gradients would otherwise be summed in another order.
    """

    def __init__(self, config: GNNConfig | None = None) -> None:
        super().__init__()
        cfg = config or GNNConfig()
        h, f, nl = cfg.hidden, cfg.in_features, cfg.n_layers
        self.in_features: int = f
        self.n_iterations: int = cfg.n_iterations
        self.edge_differences: bool = cfg.edge_differences
        self.geometry = Geometry(cfg.geometry)
        nf = f + (GEOMETRY_NODE_FEATURES if self.geometry.enabled else 0)
        ef = _edge_width(f, cfg.edge_differences, self.geometry.enabled)
        self.node_encoder = make_mlp(nf, h, h, nl, cfg.activation, cfg.layer_norm)
        self.edge_encoder = make_mlp(ef, h, h, nl, cfg.activation, cfg.layer_norm)
        self.edge_net = EdgeMLP(h, h, h, h, nl, cfg.activation, cfg.layer_norm)
        self.node_net = make_mlp(3 * h, h, h, nl, cfg.activation, cfg.layer_norm)
        self.out_net = EdgeMLP(h, h, h, 1, nl, cfg.activation, cfg.layer_norm)
        self.edge_block: int = EDGE_BLOCK

    def forward(self, x: Tensor, edges: Tensor) -> Tensor:
        src, dst = edges[0], edges[1]
        xn = self.geometry.with_node(x)
        g = self.geometry.edge_nodes(x)
        h = self.node_encoder(xn)
        if self.training or torch.is_grad_enabled():
            return self._forward_whole(xn, g, h, src, dst)
        return self._forward_blocks(xn, g, h, src, dst)

    def _forward_whole(self, xn: Tensor, g: Tensor, h: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        """All edges at once, out of place: what autograd needs (training)."""
        e = self.edge_encoder(self.geometry.edge_input(g, xn, src, dst, self.edge_differences))
        for _ in range(self.n_iterations):
            ps, pd = self.edge_net.project(h)
            # residual added in place on the MLP output (a Linear keeps no output)
            e = self.edge_net.combine(ps, pd, e, src, dst).add_(e)
            m_in = torch.zeros_like(h).index_add_(0, dst, e)
            m_out = torch.zeros_like(h).index_add_(0, src, e)
            h = self.node_net(torch.cat([h, m_in, m_out], dim=1)).add_(h)
        ps, pd = self.out_net.project(h)
        return self.out_net.combine(ps, pd, e, src, dst).squeeze(-1)

    def _forward_blocks(self, xn: Tensor, g: Tensor, h: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        """Inference without autograd: edges and nodes in blocks of ``edge_block``, their
        states updated in place (no ``[E, H]`` copy per iteration: at mu=200 each was a
        150 MB ``torch.cat`` into freshly faulted memory, a fifth of the GNN's time)."""
        n_e = src.shape[0]
        block = max(self.edge_block, 1)
        starts = _block_starts(n_e, block)
        e = h.new_empty((n_e, h.shape[1]))
        for a in starts:
            s, d = src[a : a + block], dst[a : a + block]
            e[a : a + block] = self.edge_encoder(
                self.geometry.edge_input(g, xn, s, d, self.edge_differences)
            )
        for _ in range(self.n_iterations):
            ps, pd = self.edge_net.project(h)
            m_in = torch.zeros_like(h)
            m_out = torch.zeros_like(h)
            for a in starts:
                s, d = src[a : a + block], dst[a : a + block]
                eb = e[a : a + block]
                eb.add_(self.edge_net.combine(ps, pd, eb, s, d))  # a + b == b + a, bit for bit
                m_in.index_add_(0, d, eb)
                m_out.index_add_(0, s, eb)
            for a in _block_starts(h.shape[0], block):  # row-wise: no row reads another
                hb = h[a : a + block]
                hm = torch.cat([hb, m_in[a : a + block], m_out[a : a + block]], dim=1)
                hb.add_(self.node_net(hm))
        ps, pd = self.out_net.project(h)
        out = h.new_empty(n_e)
        for a in starts:
            s, d = src[a : a + block], dst[a : a + block]
            out[a : a + block] = self.out_net.combine(ps, pd, e[a : a + block], s, d).squeeze(-1)
        return out
