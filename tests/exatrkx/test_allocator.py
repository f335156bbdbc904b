"""The glibc malloc settings: they take effect, and the user's own settings win."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the malloc settings exist only on Linux with glibc",
)

# Count glibc's mmap-ed blocks (mallinfo2().hblks) across freeing and re-allocating 8 MiB,
# after the pipeline has run once on a few space points.
_PROBE = """
import ctypes, sys
import numpy as np
from sonic_exatrkx.exatrkx import Pipeline, PipelineConfig

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
pipe = Pipeline.from_config(PipelineConfig(num_threads=int(sys.argv[1])))
rng = np.random.default_rng(0)
pipe(rng.uniform(-500, 500, 20), rng.uniform(-500, 500, 20), rng.uniform(-500, 500, 20))
before = libc.mallinfo2().hblks
block = ctypes.create_string_buffer(8 << 20)
print(libc.mallinfo2().hblks - before)
"""


def _mmapped_blocks(env: dict[str, str], threads: int = 1) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, str(threads)], env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    return int(out.stdout.split()[-1])


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                "GLIBC_TUNABLES"):
        env.pop(key, None)
    return env


def test_pipeline_keeps_large_blocks_in_the_heap() -> None:
    assert _mmapped_blocks(_clean_env()) == 0


def test_users_malloc_environment_is_left_alone() -> None:
    env = _clean_env() | {"MALLOC_TOP_PAD_": "0"}
    assert _mmapped_blocks(env) == 1  # glibc's default: 8 MiB comes from mmap


def test_keep_freed_memory_reports_whether_it_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    from sonic_exatrkx.exatrkx import allocator

    monkeypatch.setattr(allocator, "_state", {})
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1")
    assert allocator.keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    assert allocator.keep_freed_memory() is False  # decided once per process
    monkeypatch.setattr(allocator, "_state", {})
    assert allocator.keep_freed_memory() is True
