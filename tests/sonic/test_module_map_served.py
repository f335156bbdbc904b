"""A module-map pipeline served like the metric-learning one: local and Triton (custom
backend, ensemble, per-stage S1-S3) give identical tracks on a pileup-50 event, with the
filter's GNN-input budget (``filter.max_edges``) cutting the graph by triplet ranking."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from algorithms import CsvEventReader
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.exatrkx import Pipeline, cut_and_cap
from sonic_exatrkx.exatrkx.triplets import TripletRanking
from sonic_exatrkx.paths import data_dir
from sonic_exatrkx.server import TritonServer
from tests.sonic.conftest import run_job, start_server, write_repo

#: GNN input edges per event: well under what the filter passes at mu=50 (~90 k).
BUDGET = 5000


@pytest.fixture(scope="module")
def map_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped pileup models (a compact module map, a trained filter and GNN) with a
    GNN-input budget that binds, ranked by triplet support, and junction removal."""
    out = tmp_path_factory.mktemp("mm-models")
    pipe = Pipeline.from_directory(data_dir() / "models-pileup")
    cfg = pipe.config
    assert pipe.module_map is not None and pipe.module_map.grid is not None
    pipe.with_config(replace(cfg, track_builder="junction_removal",
                             filter=replace(cfg.filter, max_edges=BUDGET,
                                            triplets=TripletRanking()))).save(out)
    return out


@pytest.fixture(scope="module")
def mu50_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sonic_exatrkx.sim import SimulationConfig, write_events

    out = tmp_path_factory.mktemp("sim-mu50")
    write_events(SimulationConfig(sample="hnl", pileup=50, seed=4242), out, 1, progress=False)
    return out


@pytest.fixture(scope="module")
def map_server(triton_available: None, map_models: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    repo = write_repo(tmp_path_factory.mktemp("mm-repo"), map_models)
    assert not (repo / "exatrkx_embed").exists()  # a module map has no embed stage
    assert (repo / "exatrkx" / "1" / "pipeline" / "module_map.npz").is_file()
    server = start_server(repo, tmp_path_factory.mktemp("mm-log"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def local_labels(mu50_events: Path, map_models: Path) -> dict[int, np.ndarray]:
    out, summary = run_job(CsvEventReader(mu50_events),
                           ExaTrkXTrackFinding(TrackFindingConfig(models=map_models)))
    assert summary.processed == 1
    labels = out.labels[0]
    assert labels.size > 10_000 and np.unique(labels).size < labels.size  # real tracks
    # the budget binds: the GNN saw exactly BUDGET of the filter's edges
    from sonic_exatrkx.jobs.training import simulate_arrays

    pipe = Pipeline.from_directory(map_models)
    (a,) = simulate_arrays(50.0, 4242, 1)
    res = pipe.run(pipe.features(a["x"], a["y"], a["z"]), module_ids=a["module_id"],
                   return_intermediates=True)
    assert res.n_edges["filter"] == BUDGET < res.n_edges["graph"]
    # ... and the triplet ranking, not the filter logits alone, chose them
    by_logit = cut_and_cap(res.edges, res.filter_scores, pipe.config.filter.cut, 0, BUDGET)
    assert not np.array_equal(res.filtered_edges, res.edges[:, by_logit])
    np.testing.assert_array_equal(res.labels, labels)
    return out.labels


@pytest.mark.triton
@pytest.mark.parametrize("option", ["custom", "S4", "S3", "S2", "S1"])
def test_served_module_map_tracks_equal_local(map_server, mu50_events, map_models,
                                              local_labels, option):
    alg = ExaTrkXTrackFinding(TrackFindingConfig(
        models=map_models, inference="triton", servers=map_server.grpc_url,
        service_option=option))
    out, _ = run_job(CsvEventReader(mu50_events), alg)
    assert sorted(out.labels) == sorted(local_labels)
    np.testing.assert_array_equal(out.labels[0], local_labels[0])
    remote = [s for s in alg.stats if s.name.startswith("triton:")]
    assert remote and all(s.requests == 1 and s.failures == 0 for s in remote)
