"""glibc ``malloc`` settings suited to the pipeline's allocation pattern.

Every stage allocates and frees tensors of 0.1-30 MiB per event. With glibc's defaults
many blocks that size are ``mmap``-ed (the threshold starts at 128 KiB and adapts only to
sizes already freed) and the heap top is trimmed at 128 KiB, so memory goes back to the
kernel on free and the next event page-faults it in again. Raising the ``mmap`` threshold
and the trim threshold keeps that memory in the heap for reuse. On this 2-core machine
that took a mu=0 event's GNN from 29 to 24 ms and the filter of a mu=200 event from 2.3
to 1.4 s, with the same output bits, and lowered the mu=200 peak RSS (1.96 to 1.43 GiB:
less fragmentation). Blocks above glibc's 32 MiB ceiling of that threshold (a mu=200
event's module-map candidates, edge lists and filter inputs) would still be ``mmap``-ed,
so ``mmap`` is switched off altogether (``M_MMAP_MAX`` 0: every block comes from the
heap) and the heap keeps up to 1 GiB of free memory at its top (about a mu=200 event's
working set). On this VM, where memory handed back to the kernel is expensive to fault in
again (kernel time up to several seconds per mu=200 event), that took the module-map
graph of a mu=200 event from 1.23 to 0.71 s and the whole event from 2.23 to 1.69 s (10
held-out ttbar-like events, two threads), peak RSS 1.37 to 1.25 GiB, and mu=0 from 17.6
to 16.1 ms. PyTorch's CPU tuning guides reach the same result by preloading jemalloc or
tcmalloc. The price: between events a process holds on to up to its peak tensor memory
(per ``malloc`` arena, i.e. per busy thread) instead of returning it.

The settings are process-wide, like the thread counts, and are applied once per process by
:meth:`~sonic_exatrkx.exatrkx.pipeline.Pipeline.prepare` unless the user already tuned
``malloc`` through the environment (``MALLOC_*_`` / ``GLIBC_TUNABLES``), or the process
is not on glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import threading

# mallopt parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4

MIB = 1 << 20
#: Largest block served from the heap were mmap on (glibc's own ceiling on 64-bit: 32 MiB).
MMAP_THRESHOLD = 32 * MIB
#: Free memory at the heap's top kept instead of returned to the kernel.
TRIM_THRESHOLD = 1024 * MIB
#: Extra memory requested each time the heap grows.
TOP_PAD = 64 * MIB

_ENV_KEYS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
             "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES")
_lock = threading.Lock()
_state: dict[str, bool] = {}


def user_tuned_malloc() -> bool:
    """Whether the environment already sets glibc ``malloc`` parameters."""
    return any(key in os.environ for key in _ENV_KEYS)


def _mallopt() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    fn = getattr(libc, "mallopt", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_int]
        fn.restype = ctypes.c_int
    return fn


def keep_freed_memory() -> bool:
    """Apply the settings above once per process; ``True`` when they are in force.

    Returns ``False`` (and changes nothing) off glibc or when the environment tunes
    ``malloc`` itself.
    """
    with _lock:
        if "applied" not in _state:
            mallopt = None if user_tuned_malloc() else _mallopt()
            ok = mallopt is not None and all(
                mallopt(param, value) == 1
                for param, value in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                     (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                                     (M_TOP_PAD, TOP_PAD), (M_MMAP_MAX, 0))
            )
            _state["applied"] = ok
        return _state["applied"]
