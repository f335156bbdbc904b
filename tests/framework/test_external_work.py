"""External work (acquire/produce): pending events do not hold worker threads."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sonic_exatrkx.framework import AlgorithmError, ProcessCode, ReadHandle, Sequencer, Writer
from tests.framework.toy_algorithms import CoroutineWork, CountingReader, TimerWork

DELAY = 0.1


class CollectExternal(Writer):
    def __init__(self):
        super().__init__()
        self.inp = ReadHandle(self, "external", int)
        self.seen: list[tuple[int, int]] = []

    def execute(self, ctx):
        self.seen.append((ctx.event, self.inp(ctx)))
        return ProcessCode.SUCCESS


def run_timer_job(in_flight: int, threads: int = 1):
    seq = Sequencer(num_threads=threads, max_in_flight=in_flight, progress=False)
    seq.add_reader(CountingReader(0, 16))
    work = TimerWork(DELAY)
    seq.add_algorithm(work)
    out = CollectExternal()
    seq.add_writer(out)
    start = time.perf_counter()
    summary = seq.run()
    return time.perf_counter() - start, work, out, summary


def test_sixteen_events_in_flight_overlap_their_external_work():
    # One worker thread only: if it waited on the timer, 16 events would take 1.6 s.
    wall, work, out, summary = run_timer_job(in_flight=16, threads=1)
    serial = 16 * DELAY
    print(f"external-work overlap: {wall:.3f} s for 16 x {DELAY:.1f} s (serial {serial:.1f} s)")
    assert wall < serial / 3
    assert work.max_concurrent >= 8
    assert out.seen == [(e, 10 * e) for e in range(16)]
    assert summary.timing.rows["TimerWork:external"].calls == 16


def test_one_in_flight_runs_external_work_serially():
    wall, work, out, _ = run_timer_job(in_flight=1)
    assert work.max_concurrent == 1
    assert wall >= 16 * DELAY
    assert [e for e, _ in out.seen] == list(range(16))


def test_execute_may_return_a_coroutine():
    seq = Sequencer(num_threads=1, max_in_flight=8, progress=False)
    seq.add_reader(CountingReader(0, 8))
    seq.add_algorithm(CoroutineWork(DELAY))
    start = time.perf_counter()
    summary = seq.run()
    assert summary.processed == 8
    assert time.perf_counter() - start < 8 * DELAY / 2


def test_external_results_are_identical_to_serial():
    _, _, serial, _ = run_timer_job(in_flight=1)
    _, _, parallel, _ = run_timer_job(in_flight=16, threads=2)
    assert serial.seen == parallel.seen
    assert np.array_equal(np.array(serial.seen), np.array(parallel.seen))


class FailingWork(TimerWork):
    """External work whose result is an error for one event (a server error)."""

    def acquire(self, ctx):
        fut = super().acquire(ctx)
        if ctx.event != 5:
            return fut
        failed = type(fut)()
        fut.add_done_callback(lambda _f: failed.set_exception(ConnectionError("server gone")))
        return failed


def test_failed_external_work_names_algorithm_and_event():
    seq = Sequencer(num_threads=1, max_in_flight=4, progress=False)
    seq.add_reader(CountingReader(0, 8))
    seq.add_algorithm(FailingWork(0.01, name="Remote"))
    seq.add_writer(CollectExternal())
    with pytest.raises(AlgorithmError, match="'Remote' failed on event 5: ConnectionError"):
        seq.run()


def test_failed_external_work_can_be_recorded_and_the_rest_written():
    seq = Sequencer(num_threads=1, max_in_flight=4, progress=False, continue_on_error=True)
    seq.add_reader(CountingReader(0, 8))
    seq.add_algorithm(FailingWork(0.01, name="Remote"))
    out = CollectExternal()
    seq.add_writer(out)
    summary = seq.run()
    assert [e for e, _ in out.seen] == [0, 1, 2, 3, 4, 6, 7]
    assert [(f.event, f.algorithm) for f in summary.failed] == [(5, "Remote")]
