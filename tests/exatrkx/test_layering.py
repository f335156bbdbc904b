"""sonic_exatrkx.exatrkx stays a plain library: no framework, SONIC, server or Triton code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FORBIDDEN = (
    "sonic_exatrkx.framework",
    "sonic_exatrkx.sonic",
    "sonic_exatrkx.server",
    "sonic_exatrkx.cli",
    "tritonclient",
    "pytriton",
)


def test_exatrkx_imports_no_framework_or_triton_code() -> None:
    code = (
        "import sys, sonic_exatrkx.exatrkx, sonic_exatrkx.exatrkx.training, "
        "sonic_exatrkx.exatrkx.metrics\n"
        f"bad = [m for m in sys.modules if m.startswith({FORBIDDEN!r})]\n"
        "print(bad)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(root), "PATH": ""},
    )
    assert out.stdout.strip() == "[]", out.stdout
