"""Readers and writers in the I/O process: the outputs, commits, errors and writer state of
the in-process event loop, from a real child process."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from sonic_exatrkx.framework import (
    AlgorithmError,
    EventCommits,
    ReadHandle,
    Sequencer,
    Writer,
)
from sonic_exatrkx.framework.io_process import IOProcessError
from tests.framework.test_commits import SumWriter
from tests.framework.toy_algorithms import CountingReader, ListWriter, Square


class PidWriter(Writer):
    """Records the process it writes in; dies (no cleanup, as a killed process) at
    ``die_at``; raises at ``raise_at``."""

    def __init__(self, die_at: int | None = None, raise_at: int | None = None):
        super().__init__(name="PidWriter")
        self.inp = ReadHandle(self, "squared", np.ndarray)
        self.die_at, self.raise_at = die_at, raise_at
        self.pids: set[int] = set()
        self.lock = threading.Lock()  # locks travel as new locks

    def execute(self, ctx):
        if ctx.event == self.die_at:
            os._exit(7)
        if ctx.event == self.raise_at:
            raise ValueError(f"disk full at event {ctx.event}")
        with self.lock:
            self.pids.add(os.getpid())


def job(out, *, io_process, commits=None, writer=None, events=None):
    seq = Sequencer(output_dir=out, progress=False, num_threads=2, max_in_flight=3,
                    io_process=io_process, events=events,
                    commits=EventCommits(commits) if commits else None)
    seq.add_reader(CountingReader(0, 12))
    seq.add_algorithm(Square(sleep=0.002))  # later events finish first
    seq.add_writer(ListWriter(out / "out.txt"))
    seq.add_writer(SumWriter(out / "sums.txt"))
    seq.add_writer(writer or PidWriter())
    return seq


def test_outputs_commits_and_writer_state_equal_the_in_process_loop(tmp_path):
    ref = job(tmp_path / "ref", io_process=False, commits=tmp_path / "ref-commits")
    ref.run()
    seq = job(tmp_path / "io", io_process=True, commits=tmp_path / "io-commits")
    summary = seq.run()
    assert summary.processed == 12
    for name in ("out.txt", "sums.txt"):
        assert (tmp_path / "io" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    # the commits were written by the child, with the same contents
    a, b = EventCommits(tmp_path / "ref-commits"), EventCommits(tmp_path / "io-commits")
    assert a.events() == b.events() == list(range(12))
    for event in range(12):
        sa, sb = a.load(event), b.load(event)
        assert sa[0] == sb[0] == "done"
        np.testing.assert_array_equal(sa[1]["SumWriter"]["sum"], sb[1]["SumWriter"]["sum"])
    # the parent's writers hold the child's state: what ran where
    list_writer, sum_writer, pid_writer = seq.writers
    assert list_writer.events == list(range(12))
    assert [e for e, _ in sum_writer.rows] == list(range(12))
    assert len(pid_writer.pids) == 1 and os.getpid() not in pid_writer.pids
    assert ref.writers[2].pids == {os.getpid()}


def test_a_resumed_job_restores_its_writers_in_the_child(tmp_path):
    commits = tmp_path / "commits"
    first = job(tmp_path / "a", io_process=True, commits=commits, events=5)
    assert first.run().processed == 5
    again = job(tmp_path / "a", io_process=True, commits=commits)
    summary = again.run()
    assert (summary.resumed, summary.processed) == (5, 7)
    ref = job(tmp_path / "ref", io_process=False)
    ref.run()
    sums = [(tmp_path / name / "sums.txt").read_bytes() for name in ("a", "ref")]
    assert sums[0] == sums[1]


def test_an_error_in_the_child_names_the_writer_and_event(tmp_path):
    seq = job(tmp_path / "io", io_process=True, commits=tmp_path / "commits",
              writer=PidWriter(raise_at=4))
    with pytest.raises(AlgorithmError, match=r"'PidWriter' failed on event 4: ValueError: "
                                             r"disk full at event 4"):
        seq.run()
    # the events before it are written and committed, it and later ones are not
    assert EventCommits(tmp_path / "commits").events() == [0, 1, 2, 3]


def test_a_child_that_dies_is_one_error_naming_the_writer_not_a_hang(tmp_path):
    seq = job(tmp_path / "io", io_process=True, writer=PidWriter(die_at=3))
    with pytest.raises(AlgorithmError, match=r"'PidWriter' failed on event 3: "
                                             r"IOProcessError: the I/O process .* hosting "
                                             r"'PidWriter' stopped during its write "
                                             r"\(exit code 7\)"):
        seq.run()


def test_algorithms_that_cannot_go_to_the_child_are_refused(tmp_path):
    class Local(Writer):  # a class defined in a function does not pickle
        def execute(self, ctx):
            pass

    seq = Sequencer(progress=False, io_process=True)
    seq.add_reader(CountingReader(0, 3))
    seq.add_writer(Local())
    with pytest.raises(IOProcessError, match="cannot host 'CountingReader', 'Local'.*"
                                             "run without io_process"):
        seq.run()
