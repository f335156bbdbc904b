"""The shared count check: one rule and one message for every layer."""

from __future__ import annotations

import numpy as np
import pytest

from sonic_exatrkx.checks import check_count, count_problem


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint32(1)])
def test_integers_from_the_minimum_pass(value) -> None:
    assert count_problem(value) is None
    check_count(value, "threads")


@pytest.mark.parametrize("value", [0, -2, True, 2.0, "3", None])
def test_anything_else_is_refused_with_one_message(value) -> None:
    with pytest.raises(ValueError) as err:
        check_count(value, "Thing: threads")
    assert str(err.value) == f"Thing: threads must be an integer >= 1, got {value!r}"


def test_minimum_and_error_type() -> None:
    check_count(0, "skip", minimum=0)
    with pytest.raises(KeyError):
        check_count(-1, "skip", minimum=0, error=KeyError)
    assert count_problem(-1, minimum=0) == "must be an integer >= 0, got -1"
