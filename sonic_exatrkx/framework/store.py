"""Per-event whiteboard: typed, write-once keys."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterator
from typing import Any

from sonic_exatrkx.framework.errors import DuplicateKeyError, MissingKeyError, StoreTypeError


def nearest_names(key: str, names: list[str], n: int = 3) -> list[str]:
    """Closest names to `key`, for 'did you mean' messages."""
    return difflib.get_close_matches(key, names, n=n, cutoff=0.5)


class EventStore:
    """Holds one event's data objects; each key is written once, then only read.

    Write-once keys make the data flow explicit and safe with several events (and so
    several stores) in flight on a thread pool.
    """

    def __init__(self, event: int) -> None:
        self.event = event
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()

    def put(self, key: str, value: Any, kind: type | tuple[type, ...] = object) -> None:
        if not isinstance(value, kind):
            raise StoreTypeError(
                f"event {self.event}: key '{key}' must hold {_type_name(kind)}, "
                f"got {type(value).__name__}"
            )
        with self._lock:
            if key in self._data:
                raise DuplicateKeyError(
                    f"event {self.event}: key '{key}' is already in the event store "
                    "(keys are write-once)"
                )
            self._data[key] = value

    def get(self, key: str, kind: type | tuple[type, ...] = object) -> Any:
        try:
            value = self._data[key]
        except KeyError:
            names = sorted(self._data)
            near = nearest_names(key, names)
            hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
            raise MissingKeyError(
                f"event {self.event}: no key '{key}' in the event store{hint} "
                f"(existing keys: {', '.join(names) or 'none'})"
            ) from None
        if not isinstance(value, kind):
            raise StoreTypeError(
                f"event {self.event}: key '{key}' holds {type(value).__name__}, "
                f"not {_type_name(kind)}"
            )
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._data))

    def keys(self) -> list[str]:
        return sorted(self._data)


def _type_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__
