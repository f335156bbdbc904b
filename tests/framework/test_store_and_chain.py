"""The event store and the configuration-time check of the algorithm chain."""

from __future__ import annotations

import numpy as np
import pytest

from sonic_exatrkx.framework import (
    Algorithm,
    ConfigurationError,
    DuplicateKeyError,
    EventStore,
    MissingKeyError,
    ReadHandle,
    Sequencer,
    StoreTypeError,
    WriteHandle,
)
from tests.framework.toy_algorithms import CountingReader, ListWriter, Square


def test_store_is_write_once_and_typed():
    store = EventStore(3)
    store.put("spacepoints", np.zeros(3), np.ndarray)
    with pytest.raises(DuplicateKeyError, match="event 3: key 'spacepoints' is already"):
        store.put("spacepoints", np.ones(3))
    with pytest.raises(StoreTypeError, match="must hold int, got str"):
        store.put("count", "seven", int)
    with pytest.raises(StoreTypeError, match="holds ndarray, not dict"):
        store.get("spacepoints", dict)
    assert store.get("spacepoints", np.ndarray).shape == (3,)


def test_missing_key_lists_nearest_names():
    store = EventStore(12)
    for key in ("spacepoints", "spacepoint_features", "particles"):
        store.put(key, 1)
    with pytest.raises(MissingKeyError) as info:
        store.get("spacepoint")
    msg = str(info.value)
    assert "event 12: no key 'spacepoint'" in msg
    assert "did you mean 'spacepoints', 'spacepoint_features'" in msg
    assert "existing keys: particles, spacepoint_features, spacepoints" in msg


def test_empty_key_rejected_at_construction():
    with pytest.raises(ConfigurationError, match="non-empty string"):
        Square(inp="")


def test_consumer_without_producer_names_the_key_and_suggests(tmp_path):
    seq = Sequencer(progress=False)
    seq.add_reader(CountingReader(key="spacepoints"))
    seq.add_algorithm(Square(inp="spacepoint", name="Finder"))
    with pytest.raises(ConfigurationError,
                       match="'Finder' reads 'spacepoint', which no algorithm writes; "
                             "did you mean 'spacepoints'"):
        seq.run()


def test_consumer_before_producer_names_both(tmp_path):
    seq = Sequencer(progress=False)
    seq.add_reader(CountingReader())
    seq.add_algorithm(Square(inp="squared", out="fourth", name="Consumer"))
    seq.add_algorithm(Square(name="Producer"))
    with pytest.raises(ConfigurationError,
                       match="'Consumer' reads 'squared', but its producer 'Producer' comes "
                             "later in the chain"):
        seq.check_chain()


def test_writer_before_its_producer_algorithm_is_fine_because_writers_run_last(tmp_path):
    seq = Sequencer(progress=False, output_dir=tmp_path)
    seq.add_reader(CountingReader(0, 2))
    seq.add_writer(ListWriter(tmp_path / "o.txt"))
    seq.add_algorithm(Square())
    assert seq.run().processed == 2


def test_two_producers_of_one_key(tmp_path):
    seq = Sequencer(progress=False)
    seq.add_reader(CountingReader())
    seq.add_algorithm(Square(name="First"))
    seq.add_algorithm(Square(name="Second"))
    with pytest.raises(ConfigurationError, match="'Second' and 'First' both write 'squared'"):
        seq.check_chain()


def test_declared_types_must_be_compatible():
    class WantsDict(Algorithm):
        def __init__(self):
            super().__init__()
            self.inp = ReadHandle(self, "data", dict)

    seq = Sequencer(progress=False)
    seq.add_reader(CountingReader())
    seq.add_algorithm(WantsDict())
    with pytest.raises(ConfigurationError, match="reads 'data' as dict but 'CountingReader' "
                                                 "writes it as ndarray"):
        seq.check_chain()


def test_duplicate_names_and_wrong_kinds_rejected():
    seq = Sequencer(progress=False)
    seq.add_reader(CountingReader())
    with pytest.raises(ConfigurationError, match="two algorithms are named 'CountingReader'"):
        seq.add_reader(CountingReader(key="other"))
    with pytest.raises(ConfigurationError, match="must be an Algorithm"):
        seq.add_algorithm(CountingReader(name="R2"))


def test_handles_write_and_read_through_the_store():
    class Producer(Algorithm):
        def __init__(self):
            super().__init__()
            self.out = WriteHandle(self, "n", int)

    alg = Producer()
    assert [h.key for h in alg.writes] == ["n"]
    assert alg.reads == ()
