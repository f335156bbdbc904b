"""Read ahead and write behind: readers and writers off the algorithms' threads, with the
outputs, commits, errors and process codes of the inline event loop."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sonic_exatrkx.framework import (
    Algorithm,
    AlgorithmError,
    ConfigurationError,
    EventCommits,
    ProcessCode,
    ReadHandle,
    Sequencer,
    Writer,
)
from tests.framework.test_commits import SumWriter
from tests.framework.toy_algorithms import CodeAt, CountingReader, ListWriter, RaiseAt, Square

HANDSHAKE_S = 30.0  # generous: only a broken event loop waits this long


def toy_job(tmp_path, name, *, extra=(), writers=(), reader=None, **seq_kw):
    out = tmp_path / name
    seq = Sequencer(output_dir=out, progress=False, **seq_kw)
    seq.add_reader(reader or CountingReader(0, 12))
    seq.add_algorithm(Square(sleep=0.005))  # later events finish first
    for alg in extra:
        seq.add_algorithm(alg)
    seq.add_writer(ListWriter(out / "out.txt"))
    for writer in writers:
        seq.add_writer(writer)
    return seq, out


@pytest.mark.parametrize(("threads", "in_flight", "read_ahead", "write_behind"), [
    (1, 1, 1, 0), (1, 1, 0, 1), (1, 1, 2, 2), (2, 2, 3, 1), (2, 5, 1, 4), (3, 8, 8, 8)])
def test_outputs_identical_to_the_inline_loop(tmp_path, threads, in_flight, read_ahead,
                                              write_behind):
    inline, ref = toy_job(tmp_path, "inline", num_threads=1, max_in_flight=1, read_ahead=0,
                          write_behind=0)
    inline.run()
    seq, out = toy_job(tmp_path, "run", num_threads=threads, max_in_flight=in_flight,
                       read_ahead=read_ahead, write_behind=write_behind)
    summary = seq.run()
    assert summary.processed == 12
    assert (out / "out.txt").read_bytes() == (ref / "out.txt").read_bytes()


class ThreadNames(Algorithm):
    """Records the thread each event ran on (as a reader's or a writer's neighbour)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.threads: set[str] = set()

    def execute(self, ctx):
        self.threads.add(threading.current_thread().name.rsplit("_", 1)[0])


class ReaderThreads(CountingReader):
    def __init__(self, **kw):
        super().__init__(0, 6, **kw)
        self.threads: set[str] = set()

    def execute(self, ctx):
        self.threads.add(threading.current_thread().name.rsplit("_", 1)[0])
        return super().execute(ctx)


class WriterThreads(Writer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.inp = ReadHandle(self, "squared", np.ndarray)
        self.threads: set[str] = set()

    def execute(self, ctx):
        self.threads.add(threading.current_thread().name.rsplit("_", 1)[0])


@pytest.mark.parametrize(("ahead", "behind", "expected"), [
    (2, 2, ("sequencer-read", "sequencer", "sequencer-write")),
    (0, 0, ("sequencer", "sequencer", "sequencer"))])
def test_readers_and_writers_run_on_their_own_threads(tmp_path, ahead, behind, expected):
    reader, algorithm, writer = ReaderThreads(), ThreadNames(), WriterThreads()
    seq, _ = toy_job(tmp_path, "t", reader=reader, extra=[algorithm], writers=[writer],
                     num_threads=2, read_ahead=ahead, write_behind=behind)
    seq.run()
    assert (reader.threads, algorithm.threads, writer.threads) == tuple({t} for t in expected)


class WaitFor(Algorithm):
    """On event ``at``, waits until ``flag`` is set (by another stage of a later event)."""

    def __init__(self, at: int, flag: threading.Event, **kw):
        super().__init__(**kw)
        self.at, self.flag = at, flag
        self.saw = False

    def execute(self, ctx):
        if ctx.event == self.at:
            self.saw = self.flag.wait(HANDSHAKE_S)


class ReaderSignals(CountingReader):
    def __init__(self, at: int, flag: threading.Event, **kw):
        super().__init__(0, 8, **kw)
        self.at, self.flag = at, flag

    def execute(self, ctx):
        super().execute(ctx)
        if ctx.event == self.at:
            self.flag.set()


def test_events_are_read_while_an_earlier_event_is_in_the_algorithms(tmp_path):
    flag = threading.Event()
    waiting = WaitFor(0, flag)  # event 0 waits for the reader to have read event 2
    seq, _ = toy_job(tmp_path, "ahead", reader=ReaderSignals(2, flag), extra=[waiting],
                     num_threads=1, max_in_flight=1, read_ahead=2, write_behind=0)
    assert seq.run().processed == 8
    assert waiting.saw


class WriterWaits(Writer):
    def __init__(self, at: int, flag: threading.Event, **kw):
        super().__init__(**kw)
        self.inp = ReadHandle(self, "squared", np.ndarray)
        self.at, self.flag = at, flag
        self.saw = False

    def execute(self, ctx):
        if ctx.event == self.at:
            self.saw = self.flag.wait(HANDSHAKE_S)


class Signals(Algorithm):
    def __init__(self, at: int, flag: threading.Event, **kw):
        super().__init__(**kw)
        self.at, self.flag = at, flag

    def execute(self, ctx):
        if ctx.event == self.at:
            self.flag.set()


def test_algorithms_go_on_while_an_earlier_event_is_written(tmp_path):
    flag = threading.Event()
    writer = WriterWaits(0, flag)  # event 0's writer waits for event 2's algorithms
    seq, out = toy_job(tmp_path, "behind", extra=[Signals(2, flag)], writers=[writer],
                       num_threads=1, max_in_flight=1, read_ahead=0, write_behind=2)
    assert seq.run().processed == 12
    assert writer.saw
    assert [int(line.split()[0]) for line in (out / "out.txt").read_text().splitlines()] \
        == list(range(12))


class CommitWatcher(Writer):
    """Checks, while writing each event, that it is not committed yet and every earlier
    event is (commits come after an event's writers, in event order)."""

    def __init__(self, commits: EventCommits, **kw):
        super().__init__(**kw)
        self.inp = ReadHandle(self, "squared", np.ndarray)
        self.commits = commits
        self.seen: list[tuple[int, list[int]]] = []

    def execute(self, ctx):
        self.seen.append((ctx.event, self.commits.events()))


def test_an_event_is_committed_after_its_writers_and_in_order(tmp_path):
    commits = EventCommits(tmp_path / "commits")
    watcher = CommitWatcher(commits)
    seq, _ = toy_job(tmp_path, "c", writers=[watcher], commits=commits, num_threads=2,
                     max_in_flight=4, read_ahead=3, write_behind=3)
    seq.run()
    assert [(e, done) for e, done in watcher.seen] == [(e, list(range(e))) for e in range(12)]
    assert commits.events() == list(range(12))


def commit_job(tmp_path, out, *, extra=(), **seq_kw):
    seq = Sequencer(progress=False, num_threads=2, max_in_flight=3,
                    commits=EventCommits(tmp_path / "commits"), **seq_kw)
    seq.add_reader(CountingReader(0, 10))
    seq.add_algorithm(Square(sleep=0.005))
    for alg in extra:
        seq.add_algorithm(alg)
    writer = SumWriter(out)
    seq.add_writer(writer)
    return seq, writer


@pytest.mark.parametrize("behind", [0, 3])
def test_a_failed_job_commits_every_event_before_the_failure_and_resumes(tmp_path, behind):
    commit_job(tmp_path / "ref", tmp_path / "reference.txt")[0].run()
    first, _ = commit_job(tmp_path, tmp_path / "out.txt", extra=[RaiseAt({6}, name="Fragile")],
                          read_ahead=2, write_behind=behind)
    with pytest.raises(AlgorithmError) as info:
        first.run()
    assert (info.value.algorithm, info.value.event) == ("Fragile", 6)
    assert EventCommits(tmp_path / "commits").events() == list(range(6))  # exactly these
    again, writer = commit_job(tmp_path, tmp_path / "out.txt")
    summary = again.run()
    assert writer.executed == list(range(6, 10)) and summary.resumed == 6
    assert (tmp_path / "out.txt").read_text() == (tmp_path / "reference.txt").read_text()


class FailingWriter(Writer):
    def __init__(self, at: int, **kw):
        super().__init__(**kw)
        self.inp = ReadHandle(self, "squared", np.ndarray)
        self.at = at

    def execute(self, ctx):
        if ctx.event == self.at:
            raise OSError(f"disk full writing event {ctx.event}")


def test_a_failing_writer_names_itself_and_its_event_and_later_events_are_not_written(
        tmp_path):
    commits = EventCommits(tmp_path / "commits")
    seq, out = toy_job(tmp_path, "w", writers=[FailingWriter(4, name="Disk")], commits=commits,
                       num_threads=2, max_in_flight=4, read_ahead=2, write_behind=4)
    with pytest.raises(AlgorithmError, match="algorithm 'Disk' failed on event 4: OSError"):
        seq.run()
    assert commits.events() == [0, 1, 2, 3]
    assert [int(line.split()[0]) for line in (out / "out.txt").read_text().splitlines()] \
        == [0, 1, 2, 3, 4]  # ListWriter ran on event 4 before Disk failed on it


class BadReader(CountingReader):
    """Raises on some events and skips others, as a reader of malformed files does."""

    def __init__(self, raises: set[int], skips: set[int], **kw):
        super().__init__(0, 10, **kw)
        self.raises, self.skips = raises, skips

    def execute(self, ctx):
        if ctx.event in self.raises:
            raise ValueError(f"event{ctx.event:09d}-spacepoint.csv line 3: bad value")
        if ctx.event in self.skips:
            return ProcessCode.SKIP
        return super().execute(ctx)


def test_reader_errors_and_skips_with_read_ahead(tmp_path):
    commits = EventCommits(tmp_path / "commits")
    seq, out = toy_job(tmp_path, "r", reader=BadReader({3}, {5}, name="Reader"),
                       commits=commits, continue_on_error=True, num_threads=1, read_ahead=3,
                       write_behind=2)
    summary = seq.run()
    assert [(f.event, f.algorithm) for f in summary.failed] == [(3, "Reader")]
    assert "line 3: bad value" in summary.failed[0].error
    assert summary.skipped == 1 and summary.processed == 8
    assert commits.status(5) == "skipped" and 3 not in commits.events()
    assert [int(line.split()[0]) for line in (out / "out.txt").read_text().splitlines()] \
        == [0, 1, 2, 4, 6, 7, 8, 9]
    seq, _ = toy_job(tmp_path, "r2", reader=BadReader({3}, set(), name="Reader"),
                     read_ahead=3)
    with pytest.raises(AlgorithmError, match="algorithm 'Reader' failed on event 3"):
        seq.run()


@pytest.mark.parametrize("code", [ProcessCode.END, ProcessCode.ABORT])
def test_end_and_abort_with_read_ahead_and_write_behind(tmp_path, code):
    seq, out = toy_job(tmp_path, "e", extra=[CodeAt({6}, code, name="Stopper")],
                       num_threads=2, max_in_flight=3, read_ahead=4, write_behind=4)
    if code is ProcessCode.ABORT:
        with pytest.raises(Exception, match="'Stopper' aborted the job on event 6"):
            seq.run()
    else:
        assert seq.run().ended_at == 6
    assert [int(line.split()[0]) for line in (out / "out.txt").read_text().splitlines()] \
        == list(range(6))


def test_read_ahead_and_write_behind_are_validated():
    for name in ("read_ahead", "write_behind"):
        with pytest.raises(ConfigurationError, match=f"{name} must be an integer >= 0"):
            Sequencer(**{name: -1})


def test_the_reco_chain_writes_the_inline_loops_bytes(tmp_path):
    """Tracks CSV and performance.json of the real chain (CSV reader with truth, track
    finding, CSV/ROOT writers, performance) equal those of the inline, one-thread loop."""
    from algorithms.chains import add_reco_chain
    from sonic_exatrkx.sim import SimulationConfig, write_events

    events = tmp_path / "events"
    write_events(SimulationConfig(sample="hnl", pileup=0, seed=5), events, 6, progress=False)
    outputs = {}
    for name, kw in {"inline": dict(num_threads=1, read_ahead=0, write_behind=0),
                     "ahead": dict(num_threads=2, max_in_flight=3)}.items():
        out = tmp_path / name
        seq = Sequencer(output_dir=out, progress=False, commits=EventCommits(out / "commits"),
                        **kw)
        add_reco_chain(seq, events, out, plots=False)
        assert seq.run().processed == 6
        outputs[name] = {p.relative_to(out): p.read_bytes() for p in
                         [*sorted((out / "tracks").glob("*.csv")), out / "performance.json"]}
    assert len(outputs["inline"]) == 7 and outputs["ahead"] == outputs["inline"]


class ShuffledWork(Algorithm):
    """External work finishing in a shuffled order, failing or skipping some events."""

    def __init__(self, seed: int, fail: set[int], skip: set[int], **kw):
        super().__init__(**kw)
        self.delay = dict(enumerate(np.random.default_rng(seed).uniform(0, 0.01, 40)))
        self.fail, self.skip = fail, skip

    def execute(self, ctx):
        from concurrent.futures import Future

        fut: Future = Future()

        def done():
            if ctx.event in self.fail:
                fut.set_exception(ConnectionError(f"lost event {ctx.event}"))
            else:
                fut.set_result(ProcessCode.SKIP if ctx.event in self.skip else None)

        threading.Timer(self.delay[ctx.event], done).start()
        return fut


@pytest.mark.parametrize("seed", range(6))
def test_out_of_order_completion_never_stalls_and_keeps_the_order(tmp_path, seed):
    rng = np.random.default_rng(seed)
    fail, skip = {int(e) for e in rng.choice(40, 3)}, {int(e) for e in rng.choice(40, 3)}
    skip -= fail
    commits = EventCommits(tmp_path / "commits")
    seq, out = toy_job(tmp_path, "s", reader=CountingReader(0, 40),
                       extra=[ShuffledWork(seed, fail, skip, name="Remote")], commits=commits,
                       continue_on_error=True, num_threads=int(rng.integers(1, 4)),
                       max_in_flight=int(rng.integers(1, 12)),
                       read_ahead=int(rng.integers(0, 4)), write_behind=int(rng.integers(0, 4)))
    done = threading.Thread(target=seq.run, daemon=True)
    done.start()
    done.join(HANDSHAKE_S)
    assert not done.is_alive(), "the event loop stalled"
    written = [int(line.split()[0]) for line in (out / "out.txt").read_text().splitlines()]
    assert written == sorted(set(range(40)) - fail - skip)
    assert commits.events() == sorted(set(range(40)) - fail)
