"""`run --io-process`: the job's readers and writers in a child process give the outputs
of the in-process job, and a killed job leaves no child behind and resumes as before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app
from sonic_exatrkx.framework import EventCommits
from sonic_exatrkx.jobs import Manifest
from tests.jobs.outputs import assert_same_outputs

runner = CliRunner()


def test_io_process_job_equals_the_in_process_job(batch_events, unsharded, tmp_path):
    out = tmp_path / "job"
    result = runner.invoke(app, ["run", "-i", str(batch_events), "-o", str(out),
                                 "--threads", "2", "--io-process"])
    assert result.exit_code == 0, result.output
    assert "24 events processed" in result.output
    assert "pT > 1 GeV:" in result.output  # the performance summary, written by the child
    assert_same_outputs(unsharded, out)


def test_a_killed_io_process_job_leaves_no_child_and_resumes(batch_events, unsharded,
                                                             tmp_path):
    out = tmp_path / "job"
    job = subprocess.Popen(
        [sys.executable, "-m", "sonic_exatrkx", "run", "-i", str(batch_events), "-o",
         str(out), "--threads", "1", "--io-process"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    commits = EventCommits(out / "commits")
    deadline = time.monotonic() + 120
    children: list[psutil.Process] = []
    try:
        while not commits.events() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        children = psutil.Process(job.pid).children(recursive=True)
        os.kill(job.pid, signal.SIGKILL)
    finally:
        job.wait(30)
    assert children, "the job had no I/O process"
    _, alive = psutil.wait_procs(children, timeout=30)  # the child sees its pipe close
    for proc in alive:  # pragma: no cover - only when the test fails
        proc.kill()
    assert not alive, f"I/O process {[p.pid for p in alive]} outlived its killed job"
    done = commits.events()
    assert 0 < len(done) < 24, f"killed after {len(done)} of 24 events"
    result = runner.invoke(app, ["run", "-i", str(batch_events), "-o", str(out),
                                 "--threads", "2", "--io-process"])
    assert result.exit_code == 0, result.output
    assert_same_outputs(unsharded, out)
    assert Manifest.read(out).complete and Manifest.read(out).done == list(range(24))
