"""ExaTrkX track finding as plain functions and torch modules on numpy arrays.

features -> :class:`Embedding` -> :func:`build_edges` -> :class:`Filter` -> :func:`apply_cut`
(+ :func:`degree_cap`) -> :class:`InteractionNetwork` -> :func:`apply_cut` ->
:func:`build_tracks`, composed by :class:`Pipeline`. No framework, server or Triton code is
imported here.
"""

from .errors import ExaTrkXConfigError, MissingModelFileError
from .features import FeatureConfig, check_finite, check_width, compute_features
from .graph import GraphConfig, apply_cut, build_edges, cut_and_cap, degree_cap, sigmoid
from .models import (
    Embedding,
    EmbeddingConfig,
    Filter,
    FilterConfig,
    GNNConfig,
    InteractionNetwork,
    make_mlp,
)
from .module_map import ModuleMap, ModuleMapConfig
from .pipeline import (
    Pipeline,
    PipelineConfig,
    PipelineResult,
    load_models,
    load_script,
    save_models,
    script_module,
    set_num_threads,
)
from .timing import StageTimer
from .tracks import (
    TRACK_BUILDERS,
    UNASSIGNED,
    best_edges,
    build_tracks,
    junction_removal,
    renumber_first_appearance,
)

__all__ = [
    "TRACK_BUILDERS",
    "UNASSIGNED",
    "Embedding",
    "EmbeddingConfig",
    "ExaTrkXConfigError",
    "FeatureConfig",
    "Filter",
    "FilterConfig",
    "GNNConfig",
    "GraphConfig",
    "InteractionNetwork",
    "MissingModelFileError",
    "ModuleMap",
    "ModuleMapConfig",
    "Pipeline",
    "PipelineConfig",
    "PipelineResult",
    "StageTimer",
    "apply_cut",
    "best_edges",
    "build_edges",
    "build_tracks",
    "check_finite",
    "check_width",
    "compute_features",
    "cut_and_cap",
    "degree_cap",
    "junction_removal",
    "load_models",
    "load_script",
    "make_mlp",
    "renumber_first_appearance",
    "save_models",
    "script_module",
    "set_num_threads",
    "sigmoid",
]
