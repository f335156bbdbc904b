"""The job's closing lines tell the truth: every output named is in the folder, a served
run says why it has no per-stage edge figures, timing lines say what they measure, and no
time is negative."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sonic_exatrkx.jobs import RecoJobConfig, run_reco_job


def listed(lines: list[str]) -> tuple[Path, list[str]]:
    """The folder and the names of the summary's outputs line."""
    (line,) = [x for x in lines if x.startswith("outputs in ")]
    folder, names = line.removeprefix("outputs in ").split(": ", 1)
    return Path(folder), [re.sub(r" \(\d+ files\)$", "", n) for n in names.split(", ")]


def assert_listed_outputs_exist(lines: list[str]) -> list[str]:
    folder, names = listed(lines)
    for name in names:
        path = folder / name.rstrip("/")
        assert path.is_dir() if name.endswith("/") else path.is_file(), name
    return names


def assert_no_negative_time(text: str) -> None:
    assert not re.search(r"-\d+(\.\d+)? ?(ms|s)\b", text), text


def test_local_run_summary(batch_events, tmp_path):
    out = tmp_path / "local"
    result = run_reco_job(RecoJobConfig(input=batch_events, output=out, events=3, threads=2),
                          say=lambda _m: None)
    lines = result.lines()
    text = "\n".join(lines)
    names = assert_listed_outputs_exist(lines)
    assert names == ["tracks/", "tracks.root", "performance.txt", "performance.json",
                     "efficiency_vs_pt.png", "efficiency_vs_eta.png", "edge_scores.png",
                     "timing.csv"]
    assert "3 events processed, 0 skipped, 0 failed in " in lines[0]
    assert " s of event loop (" in lines[0] and "slowest algorithm: ExaTrkXTrackFinding" in lines[0]
    assert lines[1].startswith("whole job ") and "loading the models" in lines[1]
    assert "Triton" not in lines[1]
    for service_word in ("round trip", "helper thread", "Triton", "requests", "server"):
        assert service_word not in text, service_word
    assert f"3 events ({batch_events.name})" in text
    assert "all particles:" in text and "pT > 1 GeV:" in text
    assert "filter (score > 0.1):" in text and "GNN (score > 0.5):" in text
    assert DEFINITIONS not in text  # the definitions stay in performance.txt
    assert DEFINITIONS in (out / "performance.txt").read_text()
    assert_no_negative_time(text)


DEFINITIONS = "definitions:"


@pytest.mark.triton
def test_served_run_summary(triton_available, batch_events, tmp_path):
    """A served run (the job starts its own Triton server) lists only what it wrote: no
    edge score plot; it says why the stage figures are absent."""
    from algorithms.exatrkx_track_finding import TrackFindingConfig

    out = tmp_path / "served"
    result = run_reco_job(RecoJobConfig(input=batch_events, output=out, events=3, cores=2,
                                        finder=TrackFindingConfig(inference="triton")),
                          say=lambda _m: None)
    lines = result.lines()
    text = "\n".join(lines)
    names = assert_listed_outputs_exist(lines)
    assert "edge_scores.png" not in names and not (out / "edge_scores.png").exists()
    assert {"tracks/", "tracks.root", "performance.txt", "efficiency_vs_pt.png"} <= set(names)
    assert ("edge efficiency and purity per stage: not measured in a served run (service "
            "option custom: the server runs every stage and answers with the track labels "
            "only)") in text
    assert "slowest step: ExaTrkXTrackFinding waiting for its external work" in lines[0]
    assert "starting and stopping the Triton server" in lines[1]
    assert "round trip per request (sent to answered) p50" in text
    assert "ms from dispatch to answer per event" in text
    assert "not measured" in (out / "performance.txt").read_text()
    assert_no_negative_time(text)
