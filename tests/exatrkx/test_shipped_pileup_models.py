"""The shipped pileup models (``data/models-pileup``: a compact module map, a filter and a
GNN trained on ttbar-like events up to mu=200): small files and the bar of issue 17 on a
small fixed held-out sample (served: ``tests/sonic/test_module_map_served.py``).

The bars are below the benchmark figures (``docs/models.md``: 5 held-out events per
pileup) because two mu=50 events and one mu=200 event hold few particles; they fail
when the set stops tracking dense events, not on a fluctuation.
"""

from __future__ import annotations

import json

import pytest

from sonic_exatrkx.exatrkx import Pipeline
from sonic_exatrkx.exatrkx.metrics import merge_events, track_metrics
from sonic_exatrkx.exatrkx.module_map import MODULE_MAP_FILE, ModuleMap
from sonic_exatrkx.jobs.training import simulate_arrays
from sonic_exatrkx.paths import data_dir

MODELS = data_dir() / "models-pileup"
#: Not a training (1000-1002), map (1100), validation (777-779) or benchmark (12345-) seed.
TEST_SEED = 4242


@pytest.fixture(scope="module")
def shipped() -> Pipeline:
    return Pipeline.from_directory(MODELS, num_threads=2)


def _pt_above_1(pipe: Pipeline, mu: float, n: int):
    events = list(simulate_arrays(mu, TEST_SEED, n, sample="ttbar-like"))
    labels = [pipe.run(pipe.features(a["x"], a["y"], a["z"]), module_ids=a["module_id"]).labels
              for a in events]
    lab, pid, pt = merge_events(events, labels)
    return track_metrics(lab, pid, pt=pt, pt_min=1.0)


def test_shipped_pileup_files_are_small_and_the_map_compact() -> None:
    files = {p.name: p.stat().st_size for p in MODELS.iterdir() if p.is_file()}
    for name in ("filter.pt", "gnn.pt", MODULE_MAP_FILE, "config.json", "README.md"):
        assert name in files, f"{name} missing from {MODELS}"
    assert "embedding.pt" not in files
    assert sum(files.values()) < 3_000_000
    config = json.loads((MODELS / "config.json").read_text())
    assert config["graph_construction"] == "module_map"
    mm = ModuleMap.load(MODELS / MODULE_MAP_FILE)
    assert mm.grid is not None and mm.build["range_bits"] == 8
    assert mm.n_pairs > 100_000  # a map of hundreds of dense events, not a toy


# (pileup, events, fewest pT > 1 GeV particles, efficiency >=, fakes <=, duplicates <=);
# measured on these events: mu=50 0.959 / 0.002 / 0.009 (587 particles), mu=200 0.956 /
# 0.011 / 0.010 (910); the targets, met on the 5-event benchmark (docs/models.md):
# mu=50 95 % / 2 % / 2 %, mu=200 90 % / 5 % / 3 %
BARS = [(50.0, 2, 400, 0.92, 0.03, 0.03), (200.0, 1, 600, 0.88, 0.04, 0.03)]


@pytest.mark.parametrize(("mu", "n", "particles", "efficiency", "fakes", "duplicates"), BARS)
def test_tracks_on_held_out_pileup_events(shipped: Pipeline, mu: float, n: int,
                                          particles: int, efficiency: float, fakes: float,
                                          duplicates: float) -> None:
    hi = _pt_above_1(shipped, mu, n)
    assert hi.n_particles >= particles
    assert hi.efficiency >= efficiency, hi
    assert hi.fake_rate <= fakes, hi
    assert hi.duplicate_rate <= duplicates, hi
