"""The torch modules: shapes, config validation and TorchScript round trips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sonic_exatrkx.exatrkx import (
    Embedding,
    EmbeddingConfig,
    Filter,
    FilterConfig,
    GNNConfig,
    InteractionNetwork,
    PipelineConfig,
    load_script,
    script_module,
)
from sonic_exatrkx.exatrkx.features import FeatureConfig, compute_features
from sonic_exatrkx.exatrkx.models import Geometry, Tanh, exact_tanh

GEO = (1000.0, math.pi, 1000.0)


def _inputs(n: int = 50, e: int = 120, f: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, f, generator=g), torch.randint(0, n, (2, e), generator=g)


def test_shapes() -> None:
    torch.manual_seed(0)
    x, edges = _inputs()
    emb = Embedding(EmbeddingConfig(hidden=32, n_layers=3, out_features=8))
    assert emb(x).shape == (50, 8)
    assert Filter(FilterConfig(hidden=16))(x, edges).shape == (120,)
    gnn = InteractionNetwork(GNNConfig(hidden=16, n_iterations=2))
    assert gnn(x, edges).shape == (120,)
    assert gnn(x, edges[:, :0]).shape == (0,)  # no edges: no scores


def test_edge_models_are_asymmetric() -> None:
    torch.manual_seed(0)
    x, edges = _inputs()
    filt = Filter(FilterConfig(hidden=16))
    assert not torch.allclose(filt(x, edges), filt(x, edges.flip(0)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Embedding(EmbeddingConfig(hidden=32)),
        lambda: Filter(FilterConfig(hidden=32, edge_differences=False)),
        lambda: Filter(FilterConfig(hidden=32)),
        lambda: InteractionNetwork(GNNConfig(hidden=16, n_iterations=3)),
        lambda: Embedding(EmbeddingConfig(hidden=32, geometry=GEO)),
        lambda: Filter(FilterConfig(hidden=32, geometry=GEO)),
        lambda: InteractionNetwork(GNNConfig(hidden=16, n_iterations=3, geometry=GEO)),
    ],
)
def test_torchscript_round_trip_is_identical(make, tmp_path: Path) -> None:  # noqa: ANN001
    torch.manual_seed(1)
    model = make().eval()
    x, edges = _inputs()
    args = (x,) if isinstance(model, Embedding) else (x, edges)
    path = tmp_path / "m.pt"
    script_module(model).save(str(path))
    loaded = load_script(path)
    with torch.inference_mode():
        assert torch.equal(model(*args), loaded(*args))
    assert loaded.in_features == 3


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="hidden"):
        EmbeddingConfig(hidden=0)
    with pytest.raises(ValueError, match="activation"):
        FilterConfig(activation="sigmoidish")
    with pytest.raises(ValueError, match="cut"):
        GNNConfig(cut=1.5)
    with pytest.raises(ValueError, match="n_iterations"):
        GNNConfig(n_iterations=0)
    assert FilterConfig().cut == 0.21 and GNNConfig().cut == 0.5
    assert GNNConfig.from_dict(GNNConfig(cut=0.75).to_dict()).cut == 0.75


def test_geometry_quantities_wrap_phi_and_match_numpy() -> None:
    # two points either side of the phi = +-pi seam, 100 mm apart in r, 50 mm in z
    xyz = np.array([[-100.0, 1.0, 10.0], [-200.0, -1.0, 60.0]])
    feats = torch.from_numpy(compute_features(xyz[:, 0], xyz[:, 1], xyz[:, 2], FeatureConfig()))
    geo = Geometry(GEO)
    e = geo.edge(geo.edge_nodes(feats), torch.tensor([0]), torch.tensor([1]))[0].double().numpy()
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    dphi = math.remainder(math.atan2(-1.0, -200.0) - math.atan2(1.0, -100.0), 2 * math.pi)
    assert abs(dphi) < 0.02  # across the seam, not ~2 pi
    assert e[0] == pytest.approx((r[1] - r[0]) / 100.0, rel=1e-5)
    assert e[1] == pytest.approx(10.0 * dphi, abs=1e-5)
    assert e[2] == pytest.approx(0.5, rel=1e-5)
    assert e[4] == pytest.approx(1000.0 * dphi / (r[1] - r[0]), rel=1e-4)
    z0 = 10.0 - r[0] * 50.0 / (r[1] - r[0])
    assert e[5] == pytest.approx(z0 / 100.0, rel=1e-4)
    node = geo.node(feats).numpy()
    assert node[:, 0] == pytest.approx(np.cos(np.arctan2(xyz[:, 1], xyz[:, 0])), abs=1e-6)


def test_geometry_config_round_trip_and_validation() -> None:
    cfg = FilterConfig(geometry=GEO)
    again = FilterConfig.from_dict(cfg.to_dict())  # JSON gives a list
    assert again == cfg and isinstance(again.geometry, tuple)
    assert FilterConfig.from_dict({"hidden": 8}).geometry is None  # older configs
    with pytest.raises(ValueError, match="geometry"):
        GNNConfig(geometry=(1.0, 2.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="geometry"):
        EmbeddingConfig(geometry=(1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="stage 'filter' geometry"):
        PipelineConfig(features=FeatureConfig.reference(), filter=FilterConfig(geometry=GEO))


def test_gather_is_row_indexing() -> None:
    from sonic_exatrkx.exatrkx.models import gather

    x = torch.arange(12.0).reshape(6, 2)
    idx = torch.tensor([5, 0, 0, 3])
    assert torch.equal(gather(x, idx), x[idx])
    assert torch.equal(gather(x[:, 0], idx), x[idx, 0])


@pytest.mark.parametrize("block", [1, 7, 64, 10_000])
def test_gnn_edge_blocks_are_the_same_function(block: int) -> None:
    """Inference runs the edge updates block by block: any block size gives the one-block
    result (what training computes) to float rounding, and TorchScript the same bits."""
    torch.manual_seed(2)
    gnn = InteractionNetwork(GNNConfig(hidden=16, n_iterations=3, geometry=GEO))
    x, edges = _inputs(n=80, e=300)
    x[:, 0] = x[:, 0].abs() + 0.05  # a positive radius for the geometry columns
    with torch.no_grad():
        whole = gnn.train()(x, edges)
        gnn.eval()
        gnn.edge_block = block
        scripted = script_module(gnn)
        assert scripted.edge_block == block
        blocked = gnn(x, edges)
        torch.testing.assert_close(blocked, whole, rtol=1e-5, atol=1e-6)
        if block >= edges.shape[1]:
            assert torch.equal(blocked, whole)
        assert torch.equal(scripted(x, edges), blocked)
        assert scripted(x, edges[:, :0]).shape == (0,)
    with torch.enable_grad():  # eval mode with autograd on takes the out-of-place path
        grad_out = gnn(x, edges)
        assert grad_out.requires_grad
        torch.testing.assert_close(grad_out.detach(), whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("block", [1, 7, 64, 10_000])
def test_filter_edge_blocks_are_the_same_function(block: int) -> None:
    """The filter's inference blocks (with the inference tanh) give the one-block result
    to float rounding, the same bits in TorchScript, and stay differentiable in eval mode;
    with the exact tanh one block is the training-mode function bit for bit."""
    torch.manual_seed(3)
    filt = Filter(FilterConfig(hidden=16, geometry=GEO))
    x, edges = _inputs(n=80, e=300)
    x[:, 0] = x[:, 0].abs() + 0.05
    with torch.no_grad():
        whole = filt.train()(x, edges)
        filt.eval()
        filt.edge_block = block
        scripted = script_module(filt)
        blocked = filt(x, edges)
        torch.testing.assert_close(blocked, whole, rtol=1e-5, atol=1e-6)
        assert not torch.equal(blocked, whole)  # the inference tanh did run
        with exact_tanh(filt):
            exact = filt(x, edges)
        torch.testing.assert_close(exact, whole, rtol=1e-5, atol=1e-6)
        if block >= edges.shape[1]:
            assert torch.equal(exact, whole)
        assert torch.equal(scripted(x, edges), blocked)
        assert scripted(x, edges[:, :0]).shape == (0,)
    grad_out = filt(x.requires_grad_(), edges)
    grad_out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_inference_tanh_is_tanh_to_float_rounding() -> None:
    """``2 sigmoid(2x) - 1`` in inference: within 2.4e-7 of ``torch.tanh`` from 0 to
    saturation, NaN stays NaN; training, autograd and ``exact_tanh`` use ``torch.tanh``."""
    x = torch.cat([torch.linspace(-30, 30, 200_001), torch.tensor([0.0, -0.0, 1e-30, 1e4])])
    x = torch.cat([x, torch.tensor([float("inf"), -float("inf")])])
    act = Tanh().eval()
    with torch.inference_mode():
        fast = act(x.clone())
        assert (fast - torch.tanh(x)).abs().max().item() <= 2.4e-7
        assert fast[-2].item() == 1.0 and fast[-1].item() == -1.0
        assert torch.isnan(act(torch.tensor([float("nan")]))).all()
        with exact_tanh(act):
            assert act.exact and torch.equal(act(x.clone()), torch.tanh(x))
        assert not act.exact
        assert torch.equal(act.train()(x.clone()), torch.tanh(x))
    act.eval()
    y = x[:100].clone().requires_grad_()
    out = act(y)  # autograd on: exact, differentiable, input untouched
    out.sum().backward()
    assert torch.equal(out.detach(), torch.tanh(x[:100])) and y.grad is not None
    assert torch.equal(y.detach(), x[:100])
    scripted = script_module(act)
    with torch.inference_mode():
        assert torch.equal(scripted(x.clone()), fast)


def test_exact_tanh_is_restored_after_an_error() -> None:
    emb = Embedding(EmbeddingConfig(hidden=8, n_layers=2, out_features=4))
    acts = [m for m in emb.modules() if isinstance(m, Tanh)]
    assert len(acts) == 2
    with pytest.raises(RuntimeError, match="boom"), exact_tanh(emb):
        assert all(a.exact for a in acts)
        raise RuntimeError("boom")
    assert not any(a.exact for a in acts)
