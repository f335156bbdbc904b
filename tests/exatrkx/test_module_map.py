"""Module-map graph construction: the map from truth, the graph it gives, its file."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sonic_exatrkx.exatrkx import (
    ExaTrkXConfigError,
    FeatureConfig,
    ModuleMap,
    ModuleMapConfig,
    Pipeline,
    PipelineConfig,
    compute_features,
)
from sonic_exatrkx.exatrkx.metrics import track_metrics, true_edges
from sonic_exatrkx.exatrkx.module_map import (
    MODULE_MAP_FILE,
    MapEvent,
    coordinates,
    doublet_quantities,
)
from sonic_exatrkx.exatrkx.stages import (
    MODULE_IDS,
    SpecError,
    pipeline_stages,
    run_chain,
    run_pipeline,
    run_stage,
    stage_specs,
)
from sonic_exatrkx.jobs.training import build_module_map, event_arrays
from sonic_exatrkx.sim import SimulationConfig, simulate_events
from sonic_exatrkx.sim.geometry import pack_geometry_id

FEATURES = FeatureConfig()
ALL = ("dr", "dz", "dphi", "z0", "phi_slope", "deta")


def module(layer: int, sensitive: int) -> int:
    return int(pack_geometry_id(8, 2 * layer, sensitive))


def hand_event() -> tuple[MapEvent, dict[str, np.ndarray]]:
    """Three barrel layers (r = 100, 200, 300 mm), two modules each (1: phi < 0, 2: phi >= 0).
    Particles 1 and 2 (pT 2 GeV) cross modules 2 of each layer, 3 (3 GeV) modules 1, 4
    (0.5 GeV, below the map's threshold) crosses from module 2 to module 1, 5 has two hits
    only; one noise hit."""
    rows = [  # particle, pt, r, phi, z, layer, sensitive
        (1, 2.0, 100.0, 0.10, 10.0, 1, 2), (1, 2.0, 200.0, 0.12, 21.0, 2, 2),
        (1, 2.0, 300.0, 0.15, 33.0, 3, 2),
        (2, 2.0, 300.0, 0.36, -15.0, 3, 2), (2, 2.0, 100.0, 0.30, -5.0, 1, 2),
        (2, 2.0, 200.0, 0.33, -10.0, 2, 2),
        (3, 3.0, 100.0, -0.50, 0.0, 1, 1), (3, 3.0, 200.0, -0.52, 50.0, 2, 1),
        (3, 3.0, 300.0, -0.55, 100.0, 3, 1),
        (4, 0.5, 100.0, 0.05, 0.0, 1, 2), (4, 0.5, 200.0, -0.10, 5.0, 2, 1),
        (4, 0.5, 300.0, -0.30, 10.0, 3, 1),
        (5, 5.0, 100.0, -0.9, 0.0, 1, 1), (5, 5.0, 200.0, -0.9, 0.0, 2, 1),
        (0, 0.0, 200.0, 0.2, 0.0, 2, 2),
    ]
    a = np.array(rows, dtype=np.float64)
    pid, pt, r, phi, z = a[:, 0].astype(np.uint64), a[:, 1], a[:, 2], a[:, 3], a[:, 4]
    ids = np.array([module(int(la), int(s)) for la, s in a[:, 5:7]], dtype=np.uint64)
    feats = compute_features(r * np.cos(phi), r * np.sin(phi), z, FEATURES)
    return MapEvent(ids, feats, pid, pt), {"pid": pid}


def test_map_of_a_hand_made_event_has_exactly_its_signal_pairs_and_ranges():
    ev, _ = hand_event()
    mm = ModuleMap.from_events([ev], FEATURES, ModuleMapConfig(
        pt_min=1.0, min_hits=3, quantities=ALL, margin=0.0))
    names = {module(1, 1): "L1S1", module(2, 1): "L2S1", module(3, 1): "L3S1",
             module(1, 2): "L1S2", module(2, 2): "L2S2", module(3, 2): "L3S2"}
    got = {(names[int(mm.module_ids[a])], names[int(mm.module_ids[b])]): int(c)
           for (a, b), c in zip(mm.pairs, mm.counts, strict=True)}
    # particles 1+2 share two module pairs, 3 has its own; 4 (low pT) and 5 (2 hits) none
    assert got == {("L1S2", "L2S2"): 2, ("L2S2", "L3S2"): 2, ("L1S1", "L2S1"): 1,
                   ("L2S1", "L3S1"): 1}
    assert mm.module_ids.tolist() == sorted(mm.module_ids.tolist())
    # ranges: min / max of the doublets' quantities, rounded outwards to float32
    r, phi, z = coordinates(ev.features, FEATURES)
    doublets = {("L1S2", "L2S2"): [(0, 1), (4, 5)], ("L2S2", "L3S2"): [(1, 2), (5, 3)],
                ("L1S1", "L2S1"): [(6, 7)], ("L2S1", "L3S1"): [(7, 8)]}
    for k, (a, b) in enumerate(mm.pairs):
        key = (names[int(mm.module_ids[a])], names[int(mm.module_ids[b])])
        i, j = np.array(doublets[key]).T
        q = doublet_quantities(ALL, r[i], phi[i], z[i], r[j], phi[j], z[j])
        lo, hi = mm.ranges[k, :, 0].astype(np.float64), mm.ranges[k, :, 1].astype(np.float64)
        assert (lo <= q.min(0)).all() and (hi >= q.max(0)).all()
        np.testing.assert_allclose(lo, q.min(0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(hi, q.max(0), rtol=1e-6, atol=1e-9)
    # by hand: particle 1's first doublet dz = 11 mm, particle 2's -5 mm; z0 = z1 - r1 dz/dr
    k = next(k for k, (a, b) in enumerate(mm.pairs)
             if names[int(mm.module_ids[a])] == "L1S2" and names[int(mm.module_ids[b])] == "L2S2")
    dz = mm.ranges[k, ALL.index("dz")]
    np.testing.assert_allclose(dz, [-5.0, 11.0], atol=1e-4)
    np.testing.assert_allclose(mm.ranges[k, ALL.index("z0")], [-5.0 + 5.0, 10.0 - 11.0][::-1],
                               atol=1e-4)
    np.testing.assert_allclose(mm.ranges[k, ALL.index("dr")], [100.0, 100.0], atol=1e-4)


def test_margin_widens_by_a_share_of_the_layer_pairs_range():
    ev, _ = hand_event()
    base = ModuleMap.from_events([ev], FEATURES, ModuleMapConfig(pt_min=1.0, margin=0.0,
                                                                 quantities=ALL))
    wide = ModuleMap.from_events([ev], FEATURES, ModuleMapConfig(pt_min=1.0, margin=0.5,
                                                                 quantities=ALL))
    # layer pair (1, 2) holds the module pairs L1S2-L2S2 and L1S1-L2S1: dz spans -5..50
    k = base.quantities.index("dz")
    lp_width = 50.0 - (-5.0)
    for b, w in zip(base.ranges, wide.ranges, strict=True):
        if b[k, 1] > 40 or b[k, 0] < -4:  # a layer-(1, 2) pair
            np.testing.assert_allclose(w[k], b[k] + [-0.5 * lp_width, 0.5 * lp_width],
                                       atol=1e-3)


def test_graph_of_the_hand_made_event():
    ev, t = hand_event()
    mm = ModuleMap.from_events([ev], FEATURES, ModuleMapConfig(pt_min=1.0, margin=0.0))
    r, phi, z = coordinates(ev.features, FEATURES)
    edges = mm.edges(ev.module_id, r, phi, z)
    # the signal doublets exactly; particle 4, 5, the noise hit and cross pairs fail the
    # ranges or have no mapped module pair
    assert sorted(map(tuple, edges.T.tolist())) == [(0, 1), (1, 2), (4, 5), (5, 3), (6, 7),
                                                    (7, 8)]
    ref = mm.edges(ev.module_id, r, phi, z, orientation="reference")
    assert sorted(map(tuple, ref.T.tolist())) == [(1, 0), (2, 1), (5, 3), (5, 4), (7, 6),
                                                  (8, 7)]


def _events(sample: str, pileup: float, seed: int, n: int, **kw):
    cfg = SimulationConfig(sample=sample, pileup=pileup, seed=seed, **kw)
    out = []
    for _, tables in simulate_events(cfg, range(n)):
        a = event_arrays(tables)
        out.append((a, compute_features(a["x"], a["y"], a["z"], FEATURES)))
    return out


@pytest.fixture(scope="module")
def simulated_map() -> tuple[ModuleMap, list]:
    """A map (no margin) of 3 simulated ttbar-like mu=50 events (signal only, as
    :func:`build_module_map` simulates them) and those events."""
    evs = _events("ttbar-like", 50, 31, 3, pt_min=0.8, noise_fraction=0.0)
    mm = ModuleMap.from_events(
        [MapEvent(a["module_id"], f, a["particle_id"], a["pt"]) for a, f in evs], FEATURES,
        ModuleMapConfig(pt_min=0.8, margin=0.0))
    return mm, evs


def test_graph_keeps_every_doublet_the_map_was_built_from(simulated_map):
    mm, evs = simulated_map
    for a, f in evs:
        r, phi, z = coordinates(f, FEATURES)
        edges = mm.edges(a["module_id"], r, phi, z)
        n = r.size
        signal = np.where(a["pt"] > 0.8, a["particle_id"], 0)
        _, inv, cnt = np.unique(signal, return_inverse=True, return_counts=True)
        signal = np.where(cnt[inv] >= 3, signal, 0)
        t = true_edges(signal, r)
        assert t.shape[1] > 500
        assert np.isin(t[0] * n + t[1], edges[0] * n + edges[1]).all()


def _brute_force(mm: ModuleMap, ids, r, phi, z) -> set[tuple[int, int]]:
    """Every space point pair on a mapped module pair inside its ranges: a join of the
    points with the pairs on both modules (no phi window, no search)."""
    import pandas as pd

    midx = np.searchsorted(mm.module_ids, ids).clip(0, mm.n_modules - 1)
    pts = pd.DataFrame({"m": np.where(mm.module_ids[midx] == ids, midx, -1),
                        "i": np.arange(ids.size)})
    pairs = pd.DataFrame({"m1": mm.pairs[:, 0], "m2": mm.pairs[:, 1],
                          "k": np.arange(mm.n_pairs)})
    j = pairs.merge(pts.rename(columns={"m": "m1"}), on="m1").merge(
        pts.rename(columns={"m": "m2", "i": "j"}), on="m2")
    i, jj, k = (j[c].to_numpy() for c in ("i", "j", "k"))
    q = doublet_quantities(mm.quantities, r[i], phi[i], z[i], r[jj], phi[jj], z[jj])
    ok = ((q >= mm.ranges[k, :, 0]) & (q <= mm.ranges[k, :, 1])).all(1) & (i != jj)
    i, jj = i[ok], jj[ok]
    first = (r[i] < r[jj]) | ((r[i] == r[jj]) & (i < jj))
    return set(zip(np.where(first, i, jj).tolist(), np.where(first, jj, i).tolist(),
                   strict=True))


def test_graph_on_held_out_events_keeps_every_true_pair_inside_the_map(simulated_map):
    _, evs = simulated_map
    mm = ModuleMap.from_events(
        [MapEvent(a["module_id"], f, a["particle_id"], a["pt"]) for a, f in evs], FEATURES,
        ModuleMapConfig(pt_min=0.8, margin=0.05))
    for a, f in _events("ttbar-like", 0, 32, 1):
        r, phi, z = coordinates(f, FEATURES)
        edges = mm.edges(a["module_id"], r, phi, z)
        got = set(map(tuple, edges.T.tolist()))
        # the phi-window search finds exactly the pairs a brute-force scan accepts
        assert got == _brute_force(mm, a["module_id"], r, phi, z)
        # every true pT > 0.8 GeV pair on a mapped module pair inside its ranges is an edge
        t = true_edges(np.where(a["pt"] > 0.8, a["particle_id"], 0), r)
        inside = _brute_force(mm, a["module_id"], r, phi, z)
        true_inside = [p for p in map(tuple, t.T.tolist()) if p in inside]
        assert len(true_inside) > 50  # (of ~450: a 3-event map has holes)
        assert set(true_inside) <= got


def test_module_map_round_trips_and_refuses_other_files(simulated_map, tmp_path: Path):
    mm, _ = simulated_map
    path = mm.save(tmp_path / "map.npz")
    again = ModuleMap.load(path)
    for name in ("module_ids", "phi_ref", "pairs", "ranges", "counts"):
        np.testing.assert_array_equal(getattr(again, name), getattr(mm, name))
        assert getattr(again, name).dtype == getattr(mm, name).dtype
    assert again.quantities == mm.quantities and again.digest() == mm.digest()
    assert dict(again.build) == json.loads(json.dumps(dict(mm.build)))
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ExaTrkXConfigError, match="bad.npz: not a module map"):
        ModuleMap.load(bad)
    with pytest.raises(FileNotFoundError, match="module map not found"):
        ModuleMap.load(tmp_path / "missing.npz")


def test_a_map_on_a_grid_only_widens_and_round_trips_smaller(simulated_map, tmp_path: Path):
    mm, evs = simulated_map
    small = mm.on_grid(8)
    lo, hi = mm.ranges[:, :, 0], mm.ranges[:, :, 1]
    assert (small.ranges[:, :, 0] <= lo).all() and (small.ranges[:, :, 1] >= hi).all()
    # by at most one step of the layer pair's grid (plus the float32 rounding)
    g = small.grid.origin_step[small.grid.layer_pair]
    step = g[:, :, 1]
    assert (lo - small.ranges[:, :, 0] <= step * 1.001 + 1e-6 * np.abs(lo)).all()
    assert (small.ranges[:, :, 1] - hi <= step * 1.001 + 1e-6 * np.abs(hi)).all()
    assert small.grid.codes.dtype == np.uint8 and small.build["range_bits"] == 8
    # every edge of the float32 map is still an edge, and a few more may be
    for a, f in evs[:2]:
        r, phi, z = coordinates(f, FEATURES)
        n = r.size
        full = mm.edges(a["module_id"], r, phi, z)
        grid = small.edges(a["module_id"], r, phi, z)
        assert np.isin(full[0] * n + full[1], grid[0] * n + grid[1]).all()
        assert grid.shape[1] <= 1.5 * full.shape[1]
    again = ModuleMap.load(small.save(tmp_path / "small.npz"))
    np.testing.assert_array_equal(again.ranges, small.ranges)
    np.testing.assert_array_equal(again.grid.codes, small.grid.codes)
    assert again.digest() == small.digest() != mm.digest()
    big = mm.save(tmp_path / "big.npz").stat().st_size
    assert (tmp_path / "small.npz").stat().st_size < 0.6 * big
    with pytest.raises(ExaTrkXConfigError, match="at most 8 bits"):
        mm.on_grid(12)


def _module_map_pipeline(mm: ModuleMap, **changes) -> Pipeline:
    cfg = replace(PipelineConfig(graph=PipelineConfig().graph), graph_construction="module_map",
                  **changes)
    return Pipeline.from_config(cfg, seed=1, module_map=mm)


def test_pipeline_folder_records_the_map_and_checks_its_checksum(simulated_map, tmp_path):
    mm, evs = simulated_map
    pipe = _module_map_pipeline(mm)
    pipe.save(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert files == {"filter.pt", "gnn.pt", MODULE_MAP_FILE, "config.json"}  # no embedding
    record = json.loads((tmp_path / "config.json").read_text())["model_files"]
    assert record[MODULE_MAP_FILE]["stage"] == "graph"
    loaded = Pipeline.from_directory(tmp_path)
    assert loaded.embedding is None and loaded.module_map.digest() == mm.digest()
    a, f = evs[0]
    np.testing.assert_array_equal(loaded.run(f, module_ids=a["module_id"]).labels,
                                  pipe.run(f, module_ids=a["module_id"]).labels)
    # another map in place of the recorded one is refused at load, naming the file
    ModuleMap.from_events([MapEvent(a["module_id"], f, a["particle_id"], a["pt"])], FEATURES
                          ).save(tmp_path / MODULE_MAP_FILE)
    with pytest.raises(ExaTrkXConfigError,
                       match=f"{MODULE_MAP_FILE}: not the graph model config.json was written"):
        Pipeline.from_directory(tmp_path)


def test_contract_of_a_module_map_pipeline(simulated_map):
    mm, evs = simulated_map
    pipe = _module_map_pipeline(mm)
    cfg = pipe.config
    assert pipeline_stages(cfg) == ("graph", "filter", "gnn", "tracks")
    assert pipeline_stages(PipelineConfig())[0] == "embed"
    inputs, _ = stage_specs("graph", cfg)
    assert list(inputs) == ["FEATURES", MODULE_IDS] and inputs[MODULE_IDS].dtype == "UINT64"
    assert list(stage_specs("pipeline", cfg)[0]) == ["FEATURES", MODULE_IDS]
    assert list(stage_specs("batched", cfg)[0]) == ["FEATURES", MODULE_IDS, "ROW_SPLITS"]
    with pytest.raises(SpecError, match="no 'embed' stage"):
        stage_specs("embed", cfg)
    a, f = evs[1]
    with pytest.raises(ValueError, match="needs MODULE_IDS"):
        run_pipeline(pipe, f)
    with pytest.raises(ValueError, match=r"MODULE_IDS has shape \[3\]"):
        run_stage(pipe, "graph", {"FEATURES": f, MODULE_IDS: a["module_id"][:3]})
    # the stages chained (as the ensemble and S3) give the whole pipeline's labels
    np.testing.assert_array_equal(run_chain(pipe, f, a["module_id"]),
                                  run_pipeline(pipe, f, module_ids=a["module_id"]))


def test_module_map_config_is_checked():
    with pytest.raises(ExaTrkXConfigError, match="graph_construction must be one of"):
        PipelineConfig(graph_construction="knn")
    with pytest.raises(ExaTrkXConfigError, match="needs a module map"):
        Pipeline.from_config(PipelineConfig(graph_construction="module_map"))
    with pytest.raises(ExaTrkXConfigError, match="quantities"):
        ModuleMapConfig(quantities=("dphi", "curl"))
    with pytest.raises(ExaTrkXConfigError, match="margin must be >= 0"):
        ModuleMapConfig(margin=-1.0)
    cfg = PipelineConfig(graph_construction="module_map")
    assert PipelineConfig.from_dict(cfg.to_dict()) == cfg
    assert PipelineConfig.from_dict({k: v for k, v in PipelineConfig().to_dict().items()
                                     if k != "graph_construction"}).graph_construction == \
        "metric_learning"  # config.json from before the option


def test_pipeline_with_a_module_map_tracks_a_mu50_event():
    """A map built as `train --graph-construction module_map` builds it (few events here),
    with the shipped filter and GNN: a pileup-50 event gives real tracks."""
    ship = Pipeline.from_directory(Path(__file__).resolve().parents[2] / "data" / "models")
    mm = build_module_map(12, 200.0, 77, FEATURES, progress=False)
    assert mm.build["sample"]["events"] == 12 and mm.n_pairs > 50_000
    pipe = Pipeline(None, ship.filter, ship.gnn, replace(ship.config,
                                                         graph_construction="module_map"),
                    module_map=mm)
    (a, f), = _events("hnl", 50, 4321, 1)
    res = pipe.run(f, return_intermediates=True, module_ids=a["module_id"])
    assert res.labels.shape == (f.shape[0],) and res.embedding is None
    r = f[:, 0].astype(np.float64)
    n = r.size
    t = true_edges(np.where(a["pt"] > 1.0, a["particle_id"], 0), r)
    found = np.isin(np.minimum(*t) * n + np.maximum(*t),
                    np.minimum(*res.edges) * n + np.maximum(*res.edges)).mean()
    assert found > 0.8  # pT > 1 GeV doublets in the graph (0.86: a 12-event map)
    assert res.edges.shape[1] < 10 * n  # a sparse graph
    m = track_metrics(res.labels, a["particle_id"], pt=a["pt"], pt_min=1.0)
    assert m.n_particles > 50 and m.efficiency > 0.3  # shipped GNN, not trained on maps


def test_training_with_a_module_map(tmp_path: Path):
    """`train --graph-construction module_map`: the map first, then the filter and GNN on
    its graphs; the folder loads and tracks (tiny sample, a few epochs)."""
    from sonic_exatrkx.jobs.training import TrainingJob, run_training

    job = TrainingJob(
        output=tmp_path, pileups=(0.0,), events=4, pileup_events=0, sectors=1, seed=5,
        epochs=(0, 3, 3), pt_min=0.0, lr=1e-2, radius=0.7, graph_radius=None, margin=1.0,
        max_k=32, neighbour_budget=None, embedding_dim=8, embedding_hidden=16,
        filter_hidden=16, gnn_hidden=16, gnn_iterations=2, filter_cut=0.1, gnn_cut=0.5,
        filter_max_degree=0, track_builder="junction_removal", geometry=True, threads=1,
        progress=False, graph_construction="module_map", module_map_events=3,
        module_map_pileup=20.0)
    report = run_training(job)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"filter.pt", "gnn.pt", MODULE_MAP_FILE, "config.json", "training.json"} <= files
    assert "embedding.pt" not in files
    summary = json.loads((tmp_path / "training.json").read_text())
    assert summary["config"]["graph_construction"] == "module_map"
    assert summary["module_map"]["sample"]["events"] == 3 and summary["module_map"]["pairs"]
    assert "module_map" in summary["seconds"]
    assert report.edge_metrics["graph"].n_pred > 0
    pipe = Pipeline.from_directory(tmp_path)
    assert pipe.config.track_builder == "junction_removal" and pipe.module_map is not None
    (a, f), = _events("hnl", 0, 6, 1)
    labels = pipe.run(f, module_ids=a["module_id"]).labels
    assert labels.shape == (f.shape[0],) and labels.max() > 0


def test_a_training_job_splits_the_edge_budget_over_the_sectors():
    """`train --filter-max-edges N --sectors S`: config.json gets N, and each training
    event (a sector of a pileup event) trains the GNN on at most ceil(N / S) edges."""
    from dataclasses import replace as dc_replace

    from sonic_exatrkx.jobs.training import TrainingJob

    job = TrainingJob(
        output=Path("unused"), pileups=(0.0, 200.0), events=1, pileup_events=1, sectors=8,
        seed=5, epochs=(0, 1, 1), pt_min=0.8, lr=1e-2, radius=0.7, graph_radius=None,
        margin=1.0, max_k=32, neighbour_budget=None, embedding_dim=8, embedding_hidden=16,
        filter_hidden=16, gnn_hidden=16, gnn_iterations=2, filter_cut=0.05, gnn_cut=0.5,
        filter_max_degree=0, track_builder="best_outgoing", geometry=True, threads=1,
        progress=False, graph_construction="module_map", filter_max_edges=250_001)
    cfg, tcfg, saved = job.configs()
    assert cfg.filter.max_edges == saved.filter.max_edges == 250_001
    assert tcfg.gnn_input_max_edges == 31_251
    assert dc_replace(job, filter_max_edges=0).configs()[1].gnn_input_max_edges == 0
