"""The operating point of the shipped models: the pipeline configuration they are trained
with, tuned for the toy detector (``docs/models.md``). Training starts from it;
``sonic-exatrkx train`` options replace parts of it."""

from __future__ import annotations

from .features import FeatureConfig
from .graph import GraphConfig
from .models import EmbeddingConfig, FilterConfig, GNNConfig
from .pipeline import PipelineConfig

__all__ = ["DEFAULT_NEIGHBOUR_BUDGET", "default_pipeline_config"]

#: Graph neighbour budget of the shipped operating point: k = 32 up to 50k space points,
#: 16 at 100k (mu=200); see ``docs/models.md``.
DEFAULT_NEIGHBOUR_BUDGET = 1_600_000


def default_pipeline_config() -> PipelineConfig:
    """The pipeline configuration the shipped models are trained with; ``train`` writes the
    inference graph radius (``--graph-radius``) into the saved copy."""
    features = FeatureConfig()
    geo = features.scales[:3]  # (r, phi, z): the models compute geometric inputs in torch
    return PipelineConfig(
        features=features,
        embedding=EmbeddingConfig(hidden=64, n_layers=3, out_features=8, geometry=geo),
        # k-d tree: exact, and 3-4x faster than this machine's FAISS build (no AVX2) at
        # mu=0, no slower at mu=200; the neighbour budget leaves events of up to 50k space
        # points at k = 32 and gives mu=200 (~100k) k = 16 (docs/models.md)
        graph=GraphConfig(radius=0.7, max_k=32, orientation="inner_outer", search="knn",
                          index="kdtree", neighbour_budget=DEFAULT_NEIGHBOUR_BUDGET),
        filter=FilterConfig(hidden=32, n_layers=3, cut=0.1, geometry=geo),
        gnn=GNNConfig(hidden=48, n_layers=2, n_iterations=6, cut=0.5, geometry=geo),
        track_builder="best_outgoing",
        min_hits=1,
        num_threads=1,
    )
