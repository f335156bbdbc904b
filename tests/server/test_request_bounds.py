"""Bounds on one request, without a server: the events-per-request check reads only the
length of ROW_SPLITS, and the heap trim after oversized requests."""

from __future__ import annotations

import numpy as np
import pytest

from sonic_exatrkx.server.batching import (
    DEFAULT_MAX_EVENTS_PER_REQUEST,
    TooManyEventsError,
    check_event_count,
    check_row_splits,
    run_batched,
)
from sonic_exatrkx.server.memory import DEFAULT_TRIM_ABOVE_BYTES, malloc_trim, should_trim

from .conftest import MAX_SPACEPOINTS


def unreadable_splits(n_entries: int) -> np.ndarray:
    """An int64 vector of ``n_entries`` zeros that no O(n) step can handle: one element,
    stride 0, so np.diff or a copy would need ``8 * n_entries`` bytes (8 TB here)."""
    return np.broadcast_to(np.zeros(1, np.int64), (n_entries,))


def test_event_count_is_checked_before_reading_the_offsets() -> None:
    splits = unreadable_splits(10**12 + 1)
    message = (f"request has {10**12} events (ROW_SPLITS of {10**12 + 1} entries), more than "
               f"this model's MAX_EVENTS_PER_REQUEST={DEFAULT_MAX_EVENTS_PER_REQUEST}")
    for check in (lambda: check_event_count(splits, DEFAULT_MAX_EVENTS_PER_REQUEST),
                  lambda: check_row_splits(splits, 0, DEFAULT_MAX_EVENTS_PER_REQUEST)):
        with pytest.raises(TooManyEventsError) as err:
            check()
        assert str(err.value).startswith(message)


def test_run_batched_refuses_before_any_work(exatrkx_models) -> None:
    _, pipe = exatrkx_models
    empty = np.zeros((0, pipe.config.features.width), np.float32)
    with pytest.raises(TooManyEventsError, match="MAX_EVENTS_PER_REQUEST=64"):
        run_batched(pipe, empty, MAX_SPACEPOINTS, unreadable_splits(10**12 + 1))
    with pytest.raises(TooManyEventsError, match="request has 3 events"):
        run_batched(pipe, empty, row_splits=np.zeros(4, np.int64), max_events=2)


def test_the_bound_itself() -> None:
    at_bound = np.zeros(DEFAULT_MAX_EVENTS_PER_REQUEST + 1, np.int64)
    assert check_row_splits(at_bound, 0, DEFAULT_MAX_EVENTS_PER_REQUEST).size == 65
    with pytest.raises(TooManyEventsError, match="request has 65 events"):
        check_row_splits(np.zeros(66, np.int64), 0, DEFAULT_MAX_EVENTS_PER_REQUEST)
    assert check_row_splits(np.zeros(66, np.int64), 0, None).size == 66  # no bound
    with pytest.raises(ValueError, match="must be 1-D"):  # shape errors keep their message
        check_row_splits(np.zeros((1, 66), np.int64), 0, DEFAULT_MAX_EVENTS_PER_REQUEST)


def test_heap_trim_after_oversized_requests() -> None:
    assert not should_trim(DEFAULT_TRIM_ABOVE_BYTES, DEFAULT_TRIM_ABOVE_BYTES)
    assert should_trim(DEFAULT_TRIM_ABOVE_BYTES + 1, DEFAULT_TRIM_ABOVE_BYTES)
    assert not should_trim(10**9, 0)  # 0: never
    # 1,000,001 offsets (the denial-of-service request) are over the default threshold,
    # a pileup-200 event (~100k space points x 3 features) is not
    assert should_trim(8 * 1_000_001, DEFAULT_TRIM_ABOVE_BYTES)
    assert not should_trim(100_000 * 3 * 4, DEFAULT_TRIM_ABOVE_BYTES)
    blocks = [bytearray(1 << 16) for _ in range(2000)]  # ~130 MB of heap blocks, freed
    del blocks
    assert isinstance(malloc_trim(), bool)  # glibc here: a real call; elsewhere False
