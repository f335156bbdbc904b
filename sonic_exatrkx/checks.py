"""Validation of count settings (threads, layers, epochs, events...), one rule and one
message format for every layer.

A leaf module: it imports nothing from the project, so every layer may use it (see
tests/test_layers.py). A count is an integer, Python or numpy, never a bool (``True``
is not "one thread") nor a float (``2.0`` hides a unit or a typo).
"""

from __future__ import annotations

from numbers import Integral

__all__ = ["check_count", "count_problem"]


def count_problem(value: object, minimum: int = 1) -> str | None:
    """Why `value` is not an integer >= `minimum` (``"must be an integer >= 1, got 0"``),
    or None when it is one; for error types that take the message in parts."""
    if isinstance(value, Integral) and not isinstance(value, bool) and value >= minimum:
        return None
    return f"must be an integer >= {minimum}, got {value!r}"


def check_count(
    value: object, what: str, *, minimum: int = 1, error: type[Exception] = ValueError
) -> None:
    """Raise ``error("<what> must be an integer >= <minimum>, got <value>")`` unless
    `value` is an integer >= `minimum`."""
    problem = count_problem(value, minimum)
    if problem is not None:
        raise error(f"{what} {problem}")
