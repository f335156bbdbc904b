"""Job assembly above the algorithms: where a job's inference runs and the local Triton
server a job starts when it has none (a framework service)."""

from sonic_exatrkx.jobs.placement import (
    Placement,
    exatrkx_keywords,
    local_exatrkx_server,
    placement,
    sequencer_threads,
)

__all__ = ["Placement", "exatrkx_keywords", "local_exatrkx_server", "placement",
           "sequencer_threads"]
