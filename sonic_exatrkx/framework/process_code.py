"""Return codes of an algorithm's `execute`, as in ACTS."""

from __future__ import annotations

from enum import Enum


class ProcessCode(Enum):
    """What the event loop does after an algorithm ran on one event.

    SUCCESS: go on with the next algorithm of this event.
    SKIP: stop this event's chain (writers included); other events go on.
    ABORT: stop the whole job; the run fails with a non-zero exit.
    END: no more events: this event is dropped and no later event is started or written.
    """

    SUCCESS = 0
    SKIP = 1
    ABORT = 2
    END = 3
