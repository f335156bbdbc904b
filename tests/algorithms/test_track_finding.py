"""Track finding and performance algorithms in real jobs on simulated events."""

from __future__ import annotations

import json

import numpy as np
import pytest

from algorithms import CsvEventReader, CsvTrackWriter
from algorithms.exatrkx_track_finding import INTERMEDIATES, ExaTrkXTrackFinding, TrackFindingConfig
from algorithms.keys import SPACEPOINT_PARTICLE_IDS, TRACKS
from algorithms.performance import TrackFindingPerformance, particle_kinematics
from sonic_exatrkx.exatrkx import GraphConfig, Pipeline, PipelineConfig
from sonic_exatrkx.framework import (
    Algorithm,
    AlgorithmContext,
    ConfigurationError,
    ReadHandle,
    Sequencer,
    WriteHandle,
)
from sonic_exatrkx.io import acts_csv


class TruthTracks(Algorithm):
    """Perfect track finding: one track per particle, noise as singletons; optionally
    splits particles with >= `split_above` hits into a majority part and the rest."""

    def __init__(self, split_above: int | None = None):
        super().__init__()
        self.pids = ReadHandle(self, SPACEPOINT_PARTICLE_IDS, np.ndarray)
        self.out = WriteHandle(self, TRACKS, np.ndarray)
        self.split_above = split_above
        self.n_split = 0

    def execute(self, ctx: AlgorithmContext) -> None:
        pids = self.pids(ctx)
        _, labels = np.unique(pids, return_inverse=True)
        labels = labels.astype(np.int64)
        noise = np.flatnonzero(pids == 0)
        labels[noise] = labels.max(initial=0) + 1 + np.arange(noise.size)
        if self.split_above:
            next_label = labels.max(initial=0) + 1
            for pid in np.unique(pids[pids != 0]):
                idx = np.flatnonzero(pids == pid)
                if idx.size >= self.split_above:
                    labels[idx[idx.size // 2 + 1 :]] = next_label  # majority part stays
                    next_label += 1
                    self.n_split += 1
        self.out(ctx, labels)


def perf_job(sim_events, tmp_path, producer, **perf_kw):
    seq = Sequencer(output_dir=tmp_path, progress=False)
    seq.add_reader(CsvEventReader(sim_events, kinds=("spacepoint", "particles"), truth=True))
    seq.add_algorithm(producer)
    perf = TrackFindingPerformance(tmp_path, **perf_kw)
    seq.add_writer(perf)
    seq.run()
    return perf


def test_perfect_tracks_have_full_efficiency_and_no_fakes(sim_events, tmp_path):
    perf = perf_job(sim_events, tmp_path, TruthTracks())
    s = json.loads((tmp_path / "performance.json").read_text())
    assert s["events"] == 4
    for key in ("all_pt", "pt>1"):
        assert s[key]["efficiency"] == 1.0
        assert s[key]["fake_rate"] == 0.0
        assert s[key]["duplicate_rate"] == 0.0
    assert s["pt>1"]["n_particles"] < s["all_pt"]["n_particles"]
    assert s["trackml_score"] == pytest.approx(1.0)
    assert "efficiency 100.0%" in perf.summary_text()
    assert (tmp_path / "efficiency_vs_pt.png").stat().st_size > 1000
    assert (tmp_path / "efficiency_vs_eta.png").stat().st_size > 1000
    assert sum(s["efficiency_vs_pt"]["n_particles"]) == s["all_pt"]["n_particles"]


def test_split_tracks_count_as_duplicates(sim_events, tmp_path):
    splitter = TruthTracks(split_above=8)
    perf_job(sim_events, tmp_path, splitter, plots=False)
    s = json.loads((tmp_path / "performance.json").read_text())
    assert splitter.n_split > 0
    assert s["all_pt"]["efficiency"] == 1.0  # the majority part still double-matches
    assert s["all_pt"]["n_duplicated"] == splitter.n_split
    assert s["all_pt"]["fake_rate"] == 0.0


def test_particle_kinematics_maps_ids_to_pt_and_eta():
    import pandas as pd

    particles = pd.DataFrame({"particle_id": np.array([7, 3], np.uint64),
                              "px": [3.0, 0.0], "py": [4.0, 1.0], "pz": [0.0, 1.0]})
    pt, eta = particle_kinematics(np.array([3, 0, 7, 9], np.uint64), particles)
    np.testing.assert_allclose(pt[[0, 2]], [1.0, 5.0])
    np.testing.assert_allclose(eta[[0, 2]], [np.arcsinh(1.0), 0.0])
    assert np.isnan(pt[[1, 3]]).all()


@pytest.fixture(scope="module")
def untrained_models(tmp_path_factory):
    """Small untrained models with a tight graph (few edges): enough to exercise the
    algorithm's plumbing quickly; physics with the shipped models is tested elsewhere."""
    out = tmp_path_factory.mktemp("models")
    config = PipelineConfig(graph=GraphConfig(radius=0.05, max_k=8, orientation="inner_outer"))
    Pipeline.from_config(config, seed=3).save(out)
    return out


def test_exatrkx_algorithm_writes_labels_and_intermediates(sim_events, untrained_models,
                                                           tmp_path):
    seq = Sequencer(output_dir=tmp_path, progress=False, num_threads=2, max_in_flight=4)
    seq.add_reader(CsvEventReader(sim_events, kinds=("spacepoint", "particles"), truth=True))
    seq.add_algorithm(
        ExaTrkXTrackFinding(
            TrackFindingConfig(models=untrained_models, output_intermediates=INTERMEDIATES)
        )
    )
    seq.add_writer(CsvTrackWriter(tmp_path / "tracks"))
    gnn_cut = Pipeline.from_directory(untrained_models).config.gnn.cut
    perf = TrackFindingPerformance(
        tmp_path, input_intermediates=INTERMEDIATES, plots=False, gnn_cut=gnn_cut
    )
    seq.add_writer(perf)
    seq.run()
    for event in range(4):
        labels = acts_csv.read_tracks_csv(acts_csv.event_path(tmp_path / "tracks", event, "tracks"))
        n = len(acts_csv.read_spacepoints(acts_csv.event_path(sim_events, event, "spacepoint")))
        assert labels.shape == (n,)
        assert labels.dtype == np.int64
    edges = perf.summary["edges"]
    assert set(edges) == {"graph", "filter", "gnn", "tracks"}
    assert edges["graph"]["n_pred"] > 0
    assert (
        edges["graph"]["n_pred"]
        >= edges["filter"]["n_pred"]
        >= edges["gnn"]["n_pred"]
        >= edges["tracks"]["n_pred"]
    )
    with pytest.raises(ConfigurationError, match="gnn_cut"):
        TrackFindingPerformance(tmp_path, gnn_cut=1.5)


def test_exatrkx_outputs_do_not_depend_on_threads(sim_events, untrained_models, tmp_path):
    outputs = []
    for threads, in_flight in ((1, 1), (2, 4)):
        out = tmp_path / f"t{threads}"
        seq = Sequencer(
            output_dir=out, progress=False, num_threads=threads, max_in_flight=in_flight
        )
        seq.add_reader(CsvEventReader(sim_events))
        seq.add_algorithm(ExaTrkXTrackFinding(TrackFindingConfig(models=untrained_models)))
        seq.add_writer(CsvTrackWriter(out))
        seq.run()
        outputs.append({p.name: p.read_bytes() for p in sorted(out.glob("*-tracks.csv"))})
    assert len(outputs[0]) == 4
    assert outputs[0] == outputs[1]


def test_missing_model_folder_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="model folder .*nope not found"):
        ExaTrkXTrackFinding(TrackFindingConfig(models=tmp_path / "nope"))
