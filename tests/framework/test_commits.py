"""Per-event commits and shards: a killed job restarted on its commits, and shards merged
through them, give what one uninterrupted job gives."""

from __future__ import annotations

import numpy as np
import pytest

from sonic_exatrkx.framework import (
    AlgorithmError,
    ConfigurationError,
    EventCommits,
    ProcessCode,
    ReadHandle,
    Sequencer,
    Shard,
    Writer,
)
from tests.framework.toy_algorithms import CodeAt, CountingReader, RaiseAt, Square


class SumWriter(Writer):
    """An end-of-job output (sums per event, in event order) that needs every event."""

    def __init__(self, path):
        super().__init__(name="SumWriter")
        self.inp = ReadHandle(self, "squared", np.ndarray)
        self.path = path
        self.rows: list[tuple[int, float]] = []
        self.executed: list[int] = []

    def execute(self, ctx):
        self.executed.append(ctx.event)
        self.rows.append((ctx.event, float(self.inp(ctx).sum())))

    def checkpoint(self, ctx):
        return {"sum": np.array(self.rows[-1][1])}

    def restore(self, event, state):
        self.rows.append((event, float(state["sum"])))

    def finalize(self):
        self.path.write_text("".join(f"{e} {v:.9g}\n" for e, v in sorted(self.rows)))


def job(tmp_path, out, *, commits=None, shard=None, extra=()):
    seq = Sequencer(progress=False, num_threads=2, max_in_flight=3, shard=shard,
                    commits=EventCommits(commits) if commits else None)
    seq.add_reader(CountingReader(0, 10))
    seq.add_algorithm(Square())
    for alg in extra:
        seq.add_algorithm(alg)
    writer = SumWriter(out)
    seq.add_writer(writer)
    return seq, writer


def test_a_killed_job_resumes_from_its_commits(tmp_path):
    job(tmp_path, tmp_path / "reference.txt")[0].run()
    commits = tmp_path / "commits"
    first, _ = job(tmp_path, tmp_path / "out.txt", commits=commits, extra=[RaiseAt({6})])
    with pytest.raises(AlgorithmError):
        first.run()
    done = EventCommits(commits).events()
    assert done == list(range(len(done))) and 0 < len(done) < 10  # a prefix, not all
    again, writer = job(tmp_path, tmp_path / "out.txt", commits=commits)
    summary = again.run()
    assert writer.executed == list(range(len(done), 10))  # committed events not redone
    assert summary.resumed == len(done) and summary.processed == 10 - len(done)
    assert (tmp_path / "out.txt").read_text() == (tmp_path / "reference.txt").read_text()
    assert EventCommits(commits).events() == list(range(10))


def test_skipped_events_are_committed_as_skipped(tmp_path):
    commits = tmp_path / "commits"
    job(tmp_path, tmp_path / "a.txt", commits=commits,
        extra=[CodeAt({2}, ProcessCode.SKIP)])[0].run()
    assert EventCommits(commits).load(2)[0] == "skipped"
    again, writer = job(tmp_path, tmp_path / "b.txt", commits=commits,
                        extra=[CodeAt({2}, ProcessCode.SKIP)])
    summary = again.run()
    assert writer.executed == [] and summary.skipped == 1 and summary.resumed == 9
    assert (tmp_path / "a.txt").read_text() == (tmp_path / "b.txt").read_text()


def test_shards_partition_the_events_exactly_once():
    events = list(range(3, 20))
    blocks = [Shard(i, 4).select(events) for i in range(4)]
    assert sum(blocks, []) == events
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    assert Shard.parse(" 2 / 4 ") == Shard(2, 4) and str(Shard(2, 4)) == "2/4"
    for bad in ("4/4", "1", "-1/3", "a/b"):
        with pytest.raises(ConfigurationError, match="shard must be I/N"):
            Shard.parse(bad)


def test_shard_commits_merge_into_the_unsharded_output(tmp_path):
    job(tmp_path, tmp_path / "reference.txt")[0].run()
    for i in range(3):
        job(tmp_path, tmp_path / f"shard{i}.txt", commits=tmp_path / f"c{i}",
            shard=Shard(i, 3))[0].run()
    merged = SumWriter(tmp_path / "merged.txt")
    events = []
    for i in range(3):
        commits = EventCommits(tmp_path / f"c{i}")
        events += commits.events()
        for event in commits.events():
            status, states = commits.load(event)
            merged.restore(event, states["SumWriter"])
    merged.finalize()
    assert sorted(events) == list(range(10))
    assert (tmp_path / "merged.txt").read_text() == (tmp_path / "reference.txt").read_text()
