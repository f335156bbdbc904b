"""Give a served model's freed memory back to the kernel after an oversized request.

The pipeline keeps freed tensor memory in the heap for the next event (glibc ``mallopt``
settings of :mod:`sonic_exatrkx.exatrkx.allocator`): right for a stream of similar events,
wrong after one request far larger than the rest, whose peak would stay in the stub's RSS
for good (the issue measured +390 MB). After such a request the model calls glibc's
``malloc_trim(0)``, which returns the free pages of every arena; the next ordinary event
finds its usual working set again within a few allocations.

"Oversized": the request's input tensors hold more than ``TRIM_ABOVE_BYTES`` bytes (the
model parameter; :data:`DEFAULT_TRIM_ABOVE_BYTES` by default), served or refused. The
default is above a pileup-200 event (~100k space points x 3 features x 4 bytes
= 1.2 MB), so a stream of typical events keeps the heap's reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
from collections.abc import Callable

__all__ = ["DEFAULT_TRIM_ABOVE_BYTES", "malloc_trim", "should_trim"]

#: Input bytes of a request above which the model trims the heap afterwards (4 MiB).
DEFAULT_TRIM_ABOVE_BYTES = 4 << 20


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None off glibc (musl, macOS) or where it is missing."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    fn = getattr(libc, "malloc_trim", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def malloc_trim() -> bool:
    """Return the heap's free memory to the kernel; ``True`` when glibc released some,
    ``False`` when none could be released or the C library has no ``malloc_trim``."""
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False


def should_trim(request_bytes: int, threshold: int) -> bool:
    """Whether a request of ``request_bytes`` input bytes is oversized (see the module
    docstring); ``threshold`` 0 turns trimming off."""
    return 0 < threshold < request_bytes
