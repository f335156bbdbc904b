"""Event-loop semantics: event slices, process codes, errors, ordering, determinism."""

from __future__ import annotations

import csv
import logging

import pytest

from sonic_exatrkx.framework import (
    AlgorithmError,
    ConfigurationError,
    JobAborted,
    ProcessCode,
    Sequencer,
)
from tests.framework.toy_algorithms import CodeAt, CountingReader, ListWriter, RaiseAt, Square


def make_job(tmp_path, *, extra=(), **seq_kw) -> tuple[Sequencer, ListWriter]:
    seq = Sequencer(output_dir=tmp_path, progress=False, **seq_kw)
    seq.add_reader(CountingReader(0, 10))
    seq.add_algorithm(Square())
    for alg in extra:
        seq.add_algorithm(alg)
    writer = ListWriter(tmp_path / "out.txt")
    seq.add_writer(writer)
    return seq, writer


def test_all_events_in_order(tmp_path):
    seq, writer = make_job(tmp_path)
    summary = seq.run()
    assert summary.processed == 10
    assert writer.events == list(range(10))
    assert summary.events == list(range(10))


@pytest.mark.parametrize(("skip", "events", "expected"), [(3, 4, [3, 4, 5, 6]), (8, None, [8, 9]),
                                                         (0, 0, [])])
def test_skip_and_events_select_a_slice(tmp_path, skip, events, expected):
    seq, writer = make_job(tmp_path, skip=skip, events=events)
    summary = seq.run()
    assert writer.events == expected
    assert summary.processed == len(expected)


def test_readers_intersect_their_ranges(tmp_path):
    seq = Sequencer(output_dir=tmp_path, progress=False)
    seq.add_reader(CountingReader(0, 6, key="a", name="A"))
    seq.add_reader(CountingReader(4, 12, key="b", name="B"))
    assert seq.event_numbers() == [4, 5]


def test_disjoint_readers_are_a_configuration_error(tmp_path):
    seq = Sequencer(output_dir=tmp_path, progress=False)
    seq.add_reader(CountingReader(0, 3, key="a", name="A"))
    seq.add_reader(CountingReader(5, 8, key="b", name="B"))
    with pytest.raises(ConfigurationError, match="no event in common.*A: 0..2.*B: 5..7"):
        seq.run()


def test_skip_past_the_end_is_an_error(tmp_path):
    seq, _ = make_job(tmp_path, skip=20, events=5)
    with pytest.raises(ConfigurationError, match="skip=20 leaves no events"):
        seq.run()


def test_skip_code_stops_only_that_event(tmp_path):
    seq, writer = make_job(tmp_path, extra=[CodeAt({2, 5}, ProcessCode.SKIP)])
    summary = seq.run()
    assert writer.events == [0, 1, 3, 4, 6, 7, 8, 9]
    assert summary.skipped == 2
    assert summary.processed == 8


def test_abort_stops_the_job_with_an_error(tmp_path):
    seq, writer = make_job(tmp_path, extra=[CodeAt({4}, ProcessCode.ABORT, name="Stopper")],
                           num_threads=1, max_in_flight=1)
    with pytest.raises(JobAborted, match="'Stopper' aborted the job on event 4"):
        seq.run()
    assert writer.events == [0, 1, 2, 3]


@pytest.mark.parametrize("in_flight", [1, 3, 8])
def test_end_drops_that_event_and_all_later_ones(tmp_path, in_flight):
    seq, writer = make_job(tmp_path, extra=[CodeAt({6}, ProcessCode.END)],
                           num_threads=2, max_in_flight=in_flight)
    summary = seq.run()
    assert writer.events == [0, 1, 2, 3, 4, 5]
    assert summary.ended_at == 6


def test_exception_names_algorithm_and_event(tmp_path):
    seq, _ = make_job(tmp_path, extra=[RaiseAt({7}, name="Fragile")])
    with pytest.raises(AlgorithmError) as info:
        seq.run()
    assert info.value.algorithm == "Fragile"
    assert info.value.event == 7
    assert "algorithm 'Fragile' failed on event 7: ValueError: bad value in event 7" in str(
        info.value
    )
    assert isinstance(info.value.__cause__, ValueError)


def test_continue_on_error_records_failed_events(tmp_path, caplog):
    seq, writer = make_job(tmp_path, extra=[RaiseAt({1, 7}, name="Fragile")],
                           continue_on_error=True)
    with caplog.at_level(logging.WARNING):
        summary = seq.run()
    assert writer.events == [0, 2, 3, 4, 5, 6, 8, 9]
    assert [(f.event, f.algorithm) for f in summary.failed] == [(1, "Fragile"), (7, "Fragile")]
    rows = list(csv.DictReader((tmp_path / "failed_events.csv").read_text().splitlines()))
    assert [r["event"] for r in rows] == ["1", "7"]
    assert "bad value in event 7" in rows[1]["error"]
    assert "2 events failed" in caplog.text


def test_timing_csv_has_every_algorithm(tmp_path):
    seq, _ = make_job(tmp_path)
    summary = seq.run()
    lines = (tmp_path / "timing.csv").read_text().splitlines()
    rows = {r["identifier"]: r for r in csv.DictReader(lines)}
    assert set(rows) == {"CountingReader", "Square", "ListWriter"}
    for r in rows.values():
        total, per_event = float(r["time_total_s"]), float(r["time_perevent_s"])
        assert total >= 0
        assert per_event == pytest.approx(total / 10, rel=1e-3, abs=1e-9)
    assert "10 events processed, 0 skipped, 0 failed" in summary.line()


@pytest.mark.parametrize(("threads", "in_flight"), [(1, 1), (2, 2), (2, 7), (4, 16)])
def test_output_identical_for_any_threads_and_in_flight(tmp_path, threads, in_flight):
    reference_dir = tmp_path / "ref"
    seq, _ = make_job(reference_dir, num_threads=1, max_in_flight=1)
    seq.run()
    out_dir = tmp_path / "run"
    seq = Sequencer(output_dir=out_dir, progress=False, num_threads=threads,
                    max_in_flight=in_flight)
    seq.add_reader(CountingReader(0, 10))
    seq.add_algorithm(Square(sleep=0.01))  # events finish out of order
    seq.add_writer(ListWriter(out_dir / "out.txt"))
    seq.run()
    assert (out_dir / "out.txt").read_bytes() == (reference_dir / "out.txt").read_bytes()


def test_validated_configuration():
    with pytest.raises(ConfigurationError, match="skip must be >= 0"):
        Sequencer(skip=-1)
    with pytest.raises(ConfigurationError, match="max_in_flight must be an integer >= 1"):
        Sequencer(max_in_flight=-2)
    with pytest.raises(ConfigurationError, match="no reader is configured"):
        Sequencer(progress=False).run()
