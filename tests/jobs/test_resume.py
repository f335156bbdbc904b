"""A job killed at any point (SIGKILL) and started again on its output folder goes on
where it stopped and ends with the outputs of an uninterrupted run; other settings are
refused unless the user starts over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app
from sonic_exatrkx.framework import EventCommits
from sonic_exatrkx.jobs import Manifest
from tests.jobs.outputs import assert_same_outputs

runner = CliRunner()


def start_job(events, out):
    return subprocess.Popen(
        [sys.executable, "-m", "sonic_exatrkx", "run", "-i", str(events), "-o", str(out),
         "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_sigkilled_job_resumes_and_equals_an_uninterrupted_run(batch_events, unsharded,
                                                                  tmp_path):
    out = tmp_path / "job"
    job = start_job(batch_events, out)
    commits = EventCommits(out / "commits")
    deadline = time.monotonic() + 120
    try:
        while not commits.events() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(job.pid, signal.SIGKILL)
    finally:
        job.wait(30)
    done = commits.events()
    assert 0 < len(done) < 24, f"killed after {len(done)} of 24 events"
    assert not Manifest.read(out).complete
    assert not (out / "tracks.root").exists()  # end-of-job files appear only at the end
    result = runner.invoke(app, ["run", "-i", str(batch_events), "-o", str(out),
                                 "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert f"{24 - len(done)} events processed (+{len(done)} restored from an earlier run)" \
        in result.output
    assert_same_outputs(unsharded, out)
    assert Manifest.read(out).complete and Manifest.read(out).done == list(range(24))


def test_a_finished_job_run_again_redoes_nothing(batch_events, tmp_path):
    out = tmp_path / "job"
    for expected in ("4 events processed,", "0 events processed (+4 restored"):
        result = runner.invoke(app, ["run", "-i", str(batch_events), "-o", str(out),
                                     "--events", "4"])
        assert result.exit_code == 0 and expected in result.output, result.output
        if expected.startswith("4"):
            files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files  # untouched


def test_other_settings_are_refused_unless_starting_over(batch_events, tmp_path):
    out = tmp_path / "job"
    first = runner.invoke(app, ["run", "-i", str(batch_events), "-o", str(out), "--events", "3"])
    assert first.exit_code == 0, first.output
    other = runner.invoke(app, ["run", "-i", str(batch_events), "-o", str(out), "--events", "5"])
    assert other.exit_code == 1
    assert f"{out} holds the outputs of a job with other settings (events: 3 -> 5)" \
        in other.output and "--start-over" in other.output
    again = runner.invoke(app, ["run", "-i", str(batch_events), "-o", str(out), "--events", "5",
                                "--start-over"])
    assert again.exit_code == 0 and "5 events processed," in again.output, again.output
    assert len(list((out / "tracks").glob("*.csv"))) == 5


def test_outputs_without_a_manifest_are_not_mixed_with_a_new_run(batch_events, tmp_path):
    out = tmp_path / "job"
    (out / "tracks").mkdir(parents=True)
    stale = out / "tracks" / "event000000007-tracks.csv"
    stale.write_text("track_id\n")
    (out / "timing.csv").write_text("an earlier run's timing\n")
    result = runner.invoke(app, ["run", "-i", str(batch_events), "-o", str(out),
                                 "--events", "3"])
    assert result.exit_code == 1
    assert "holds job outputs (tracks, timing.csv) but no manifest.json" in result.output
    assert stale.exists() and (out / "timing.csv").read_text() == "an earlier run's timing\n"
    again = runner.invoke(app, ["run", "-i", str(batch_events), "-o", str(out), "--events", "3",
                                "--start-over"])
    assert again.exit_code == 0, again.output
    assert not stale.exists() and len(list((out / "tracks").glob("*.csv"))) == 3
