"""Each study in a tiny configuration against real components (the session Triton server,
or servers the study starts itself): it writes its raw CSV, JSON with the machine and every
setting, summary and plots, with the right rows and sane values. No timing assertions: the
figures are for the lead's quiet-machine run, not for the suite."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sonic_exatrkx.bench.studies import BenchError
from sonic_exatrkx.bench.suite import run_study, study_config
from tests.bench.conftest import check_folder

pytestmark = pytest.mark.triton


def _run(name, settings, tmp_path, **options):
    config = study_config(name, settings=settings, options=options)
    result = run_study(config, tmp_path)
    rows = pd.read_csv(tmp_path / name / "raw.csv")
    payload = json.loads((tmp_path / name / "result.json").read_text())
    return result, rows, payload


def test_throughput(served_settings, tmp_path):
    result, rows, payload = _run("throughput", served_settings, tmp_path,
                                 concurrency=(1, 2))
    check_folder(tmp_path / "throughput", ["throughput.png", "latency.png"])
    assert len(rows) == 2 * 4 * 2  # trials x paths x concurrency
    assert set(rows["path"]) == {"direct", "custom", "custom-batched", "ensemble"}
    assert (rows["events_per_s"] > 0).all() and (rows["events"] == 3).all()
    assert (rows["p50_ms"] <= rows["p99_ms"]).all()
    served = rows[rows["path"] != "direct"]
    assert served["labels_equal"].all()
    machine = payload["machine"]
    for key in ("cpu_model", "cores", "usable_cores", "gpus", "packages", "git", "python"):
        assert key in machine, key
    assert "torch" in machine["packages"]
    assert payload["settings"]["config"]["concurrency"] == [1, 2]
    assert payload["settings"]["settings"]["events"] == 3
    assert result.headline["custom / direct (best concurrency)"] > 0
    assert result.headline["custom-batched / direct (best concurrency)"] > 0
    assert result.headline["label mismatches"] == 0
    summary = (tmp_path / "throughput" / "summary.md").read_text()
    assert "| path | in flight | events/s |" in summary
    assert "![throughput.png](throughput.png)" in summary


def test_service_options(served_settings, tmp_path):
    result, rows, _ = _run("service-options", {**served_settings, "events": 2}, tmp_path)
    check_folder(tmp_path / "service-options", ["service_options.png"])
    total = rows[rows["stage"] == "total"]
    assert len(total) == 2 * 6 and (total["client_ms"] > 0).all()
    assert total["labels_equal"].all()
    by = {(r.option, r.stage): r for r in rows[rows["trial"] == 0].itertuples()}
    # served stages have a Triton side, counted per request; local ones do not
    assert by["S1", "embed"].server_requests == 2 and by["S1", "embed"].server_compute_ms > 0
    assert math.isnan(by["S1", "graph"].server_compute_ms) and by["S1", "graph"].client_ms > 0
    assert by["S4", "gnn"].server_compute_ms > 0  # the ensemble's composing model
    assert by["custom", "total"].server_compute_ms > 0
    assert not any(r.option == "custom" and r.stage != "total" for r in by.values())
    assert all(not math.isnan(by["S0", s].client_ms)
               for s in ("embed", "graph", "filter", "gnn", "tracks"))
    assert result.headline["S0 ms/event"] > 0


def test_threads(served_settings, tmp_path):
    result, rows, _ = _run("threads", served_settings, tmp_path, threads=(1, 2))
    check_folder(tmp_path / "threads", ["threads.png"])
    assert len(rows) == 2 * 2 * 3
    assert (rows["s_per_100_events"] > 0).all()
    assert np.allclose(rows["s_per_100_events"] * rows["events_per_s"], 100.0)
    assert "served / direct, 2 thread(s)" in result.headline
    # the session server has one instance: the study says so instead of hiding it
    assert any("1 instance(s)" in n for n in result.notes)


def test_latency_fraction_hidden(served_settings, tmp_path):
    result, rows, _ = _run("latency", {**served_settings, "events": 4, "trials": 1},
                           tmp_path, delays_ms=(0.0, 20.0), in_flight=4)
    check_folder(tmp_path / "latency", ["latency.png"])
    assert len(rows) == 3 * 2  # modes x delays (0 included)
    delayed = rows[rows["delay_ms"] > 0]
    assert ((delayed["hidden"] >= 0) & (delayed["hidden"] <= 1)).all()
    assert np.allclose(delayed["blocking_added_s"], 4 * 0.020)
    assert rows[rows["delay_ms"] == 0]["hidden"].isna().all()
    goal = next(n for n in result.notes if "goal >= 80 %" in n)
    hidden = round(100 * result.headline["async hidden at 20 ms"])
    assert goal.endswith("(goal >= 80 %: met)" if hidden >= 80 else "(goal >= 80 %: NOT met)")
    assert f"async hides {hidden} %" in goal
    assert result.headline["label mismatches"] == 0


def test_batching(served_settings, tmp_path):
    result, rows, _ = _run("batching", {**served_settings, "events": 4, "trials": 1},
                           tmp_path, events_per_request=(1, 2), concurrency=(2,))
    check_folder(tmp_path / "batching", ["batching.png"])
    # client-side 1 and 2 events per request, then server-side batching (one per request)
    assert list(rows["events_per_request"]) == [1, 2, 1]
    assert list(rows["batching"].str.startswith("server")) == [False, False, True]
    assert (rows["events_per_s"] > 0).all() and rows["labels_equal"].all()
    assert np.allclose(rows["p50_ms_per_event"] * rows["events_per_request"], rows["p50_ms"])
    assert "2 / 1 events per request, 2 in flight" in result.headline


def test_instances_starts_its_servers(triton_available, sonic_models, tmp_path):
    result, rows, payload = _run("instances", {"models": sonic_models, "events": 3,
                                               "trials": 2}, tmp_path, instances=(1, 2))
    check_folder(tmp_path / "instances", ["instances.png"])
    assert list(rows["instances"]) == [1, 1, 2, 2]
    assert list(rows["concurrency"]) == [2, 2, 4, 4]  # two per instance by default
    assert (rows["events_per_s"] > 0).all() and rows["labels_equal"].all()
    assert [s["instances"] for s in payload["settings"]["servers"]] == [1, 2]
    assert result.headline["2 / 1 instances (1 thread(s) each)"] > 0


def test_instances_of_a_given_server(served_settings, tmp_path):
    _, rows, _ = _run("instances", {**served_settings, "trials": 1}, tmp_path)
    assert list(rows["instances"]) == [1]  # read from the server's model config


def test_scaling(sonic_models, tmp_path):
    result, rows, _ = _run("scaling", {"models": sonic_models, "events": 1, "trials": 2},
                           tmp_path, pileups=(10.0, 0.0))
    check_folder(tmp_path / "scaling", ["scaling.png"])
    assert len(rows) == 2 * 2 * 6  # pileups x trials x (5 stages + total)
    assert list(dict.fromkeys(rows["pileup"])) == [0.0, 10.0]  # small events first
    assert (rows["time_ms"] > 0).all() and (rows["rss_rise_mib"] >= 0).all()
    assert (rows["peak_rss_mib"] > 0).all()
    sizes = rows.groupby("pileup")["space_points"].first()
    assert sizes[10.0] > sizes[0.0]
    total = rows[rows["stage"] == "total"]
    parts = rows[rows["stage"] != "total"].groupby(["trial", "pileup"])["time_ms"].sum()
    assert np.allclose(total.set_index(["trial", "pileup"])["time_ms"].sort_index(),
                       parts.sort_index())
    assert result.headline["mu=10 ms/event"] > 0


def test_a_server_that_does_not_answer_is_one_clear_error(sonic_models, tmp_path):
    config = study_config("throughput", settings={"models": sonic_models, "events": 1,
                                                  "trials": 1, "server": "127.0.0.1:1"})
    with pytest.raises(BenchError, match=r"server 127\.0\.0\.1:1 \(grpc\) does not answer"):
        run_study(config, tmp_path)
