"""Tables, truth chain, files: schemas, read-back identity, determinism, ROOT, plot."""

from __future__ import annotations

import filecmp

import numpy as np
import pandas as pd
import pytest

from sonic_exatrkx.io import schema
from sonic_exatrkx.io.acts_csv import attach_truth, read_event
from sonic_exatrkx.sim import (
    STEMS,
    SimulationConfig,
    plot_event,
    simulate_event,
    simulate_events,
    write_events,
)

SCHEMAS = {"spacepoint": schema.SPACEPOINT, "hits": schema.HITS,
           "particles": schema.PARTICLES, "measurements": schema.MEASUREMENTS,
           "measurement-simhit-map": schema.MEASUREMENT_SIMHIT_MAP}
SMALL = SimulationConfig(sample="hnl", pileup=0, seed=5, hnl_underlying_event=20)


@pytest.fixture(scope="module")
def pileup_event() -> dict[str, pd.DataFrame]:
    return simulate_event(SimulationConfig(sample="ttbar-like", pileup=10, seed=2), 4)


def test_tables_have_exactly_the_io_schemas(pileup_event) -> None:
    assert tuple(pileup_event) == STEMS
    for stem, table in pileup_event.items():
        assert list(table.columns) == list(SCHEMAS[stem].columns), stem
        for column, dtype in SCHEMAS[stem].columns.items():
            assert table[column].dtype == dtype, (stem, column)


def test_truth_chain_is_consistent(pileup_event) -> None:
    sp, meas = pileup_event["spacepoint"], pileup_event["measurements"]
    hits, parts = pileup_event["hits"], pileup_event["particles"]
    link = pileup_event["measurement-simhit-map"]
    n = len(sp)
    assert np.array_equal(meas.measurement_id, np.arange(n))
    assert np.array_equal(sp.measurement_id_1, meas.measurement_id)
    assert np.array_equal(sp.measurement_id_2, sp.measurement_id_1)  # one measurement / sp
    assert np.array_equal(sp.geometry_id_1, meas.geometry_id)
    assert np.array_equal(sp.geometry_id_2, sp.geometry_id_1)
    assert link.measurement_id.is_unique and link.hit_id.is_unique
    assert link.hit_id.max() < len(hits)
    # a measurement sits on the module of its hit
    assert np.array_equal(meas.geometry_id.to_numpy()[link.measurement_id],
                          hits.geometry_id.to_numpy()[link.hit_id])
    pid = attach_truth(sp, link, hits)
    assert np.isin(pid[pid != 0], parts.particle_id).all()
    assert hits.particle_id.isin(parts.particle_id).all()
    assert parts.particle_id.is_unique and parts.particle_id.is_monotonic_increasing
    # noise: measurements without a simhit-map entry, about noise_fraction of all
    noise = ~np.isin(meas.measurement_id, link.measurement_id)
    assert np.array_equal(noise, pid == 0)
    assert 0.10 < noise.mean() < 0.20
    # inefficiency: ~2 % of hits have no measurement
    assert 0.005 < 1 - len(link) / len(hits) < 0.04
    # measurements are sorted by module, as ACTS writes them
    assert meas.geometry_id.is_monotonic_increasing
    assert hits.geometry_id.is_monotonic_increasing


def test_variances_follow_the_smearing(pileup_event) -> None:
    meas, sp = pileup_event["measurements"], pileup_event["spacepoint"]
    assert np.all(meas.var_local0 > 0) and np.all(meas.var_local1 > 0)
    assert np.allclose(sp.var_r + sp.var_z, meas.var_local1)


def test_batched_events_equal_events_simulated_alone() -> None:
    batch = dict(simulate_events(SMALL, [0, 1, 2, 3]))
    for event in (0, 3):
        alone = simulate_event(SMALL, event)
        for stem in STEMS:
            pd.testing.assert_frame_equal(alone[stem], batch[event][stem], check_exact=True)


def test_files_read_back_identical(tmp_path) -> None:
    assert write_events(SMALL, tmp_path, 2, skip=5, progress=False) == [5, 6]
    for event in (5, 6):
        memory = simulate_event(SMALL, event)
        files = read_event(tmp_path, event, kinds=STEMS)
        for stem in STEMS:
            a, b = memory[stem], files[stem]
            assert list(a.columns) == list(b.columns)
            for column in a.columns:
                assert a[column].dtype == b[column].dtype, (stem, column)
                assert np.array_equal(a[column].to_numpy(), b[column].to_numpy()), (stem,
                                                                                   column)


def _same_files(a, b) -> bool:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not errors
    return not mismatch


def test_same_seed_gives_byte_identical_files_and_events_are_independent(tmp_path) -> None:
    write_events(SMALL, tmp_path / "a", 3, progress=False)
    write_events(SMALL, tmp_path / "b", 3, progress=False)
    assert _same_files(tmp_path / "a", tmp_path / "b")
    # event 2 generated alone (a grid shard) is the same file as in the full run
    write_events(SMALL, tmp_path / "shard", 1, skip=2, progress=False)
    for stem in STEMS:
        name = f"event000000002-{stem}.csv"
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "shard" / name, shallow=False)


def test_different_seed_or_event_gives_different_events() -> None:
    a = simulate_event(SMALL, 0)
    b = simulate_event(SMALL.replace(seed=6), 0)
    c = simulate_event(SMALL, 1)
    for other in (b, c):
        assert not a["particles"].equals(other["particles"])
        assert not a["spacepoint"].equals(other["spacepoint"])


def test_root_output_has_spacepoints_and_truth(tmp_path) -> None:
    import uproot  # a declared dependency: a broken import must fail, not skip

    write_events(SMALL, tmp_path, 2, root=True, progress=False)
    with uproot.open(tmp_path / "spacepoints.root") as f:
        tree = f["spacePoints"]
        arrays = tree.arrays(["event_id", "measurement_id", "x", "particle_id"], library="np")
    n = [len(simulate_event(SMALL, e)["spacepoint"]) for e in (0, 1)]
    assert len(arrays["x"]) == sum(n)
    assert np.array_equal(np.bincount(arrays["event_id"]), n)
    ev0 = simulate_event(SMALL, 0)
    truth = attach_truth(ev0["spacepoint"], ev0["measurement-simhit-map"], ev0["hits"])
    assert np.array_equal(arrays["particle_id"][: n[0]], truth)


def test_plot_event_writes_a_png(tmp_path) -> None:
    ev = simulate_event(SMALL, 0)
    path = plot_event(ev, tmp_path / "display.png", geometry=SMALL.geometry, title="test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
