"""The torch modules: shapes, config validation and TorchScript round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sonic_exatrkx.exatrkx import (
    Embedding,
    EmbeddingConfig,
    Filter,
    FilterConfig,
    GNNConfig,
    InteractionNetwork,
    load_script,
    script_module,
)


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
