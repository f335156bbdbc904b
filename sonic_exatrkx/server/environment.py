"""Find and prepare the Triton server shipped in the ``nvidia-pytriton`` wheel.

The wheel carries a ready ``tritonserver`` binary and the Python backend, but the backend's
stub process (``triton_python_backend_stub``) only sits in ``python_backend_stubs/<X.Y>/``:
it has to be copied into ``backends/python/`` for the running Python's minor version, or every
Python model fails to load with "triton_python_backend_stub is not found". The stub also
links the *system* ``libpython3.X.so.1.0`` (Debian/Ubuntu package ``libpython3.X``), not the
interpreter of the virtual environment. This module checks and fixes both, and reports what
is usable for ``sonic-exatrkx serve --check``.
"""

from __future__ import annotations

import filecmp
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

STUB_NAME = "triton_python_backend_stub"
INSTALL_HINT = "pip install -c constraints.txt -e '.[triton]'"


class TritonEnvironmentError(RuntimeError):
    """The Triton server from nvidia-pytriton is missing or cannot run here."""


class CheckResult(NamedTuple):
    """One line of ``serve --check``: what was checked, whether it is usable, and why."""

    item: str
    ok: bool
    detail: str


def python_version_tag() -> str:
    """``"3.11"``-style tag of the running interpreter (the stub must match it)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def venv_bin_dir() -> Path:
    """The environment's ``bin`` directory; put first on the server's PATH.

    The stub finds the environment's site-packages through ``python3`` on PATH, so without
    this every Python model fails with ``No module named 'numpy'``. Deliberately not
    ``.resolve()``d: a venv's ``python`` is a symlink to the base interpreter.
    """
    return Path(sys.executable).parent


def find_tritonserver_dir() -> Path:
    """The ``pytriton/tritonserver`` directory, found without importing pytriton itself."""
    try:
        spec = importlib.util.find_spec("pytriton")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise TritonEnvironmentError(
            "the Triton server is not installed: the 'nvidia-pytriton' package (module "
            f"'pytriton') is missing from {sys.executable}. Install the extra with: {INSTALL_HINT}"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    if not root.is_dir():
        raise TritonEnvironmentError(
            f"nvidia-pytriton is installed but ships no server at {root}; reinstall it with: "
            f"{INSTALL_HINT}"
        )
    return root


def tritonserver_binary(root: Path | None = None) -> Path:
    """Path of the ``tritonserver`` executable; raises with a fix when unusable."""
    root = root or find_tritonserver_dir()
    binary = root / "bin" / "tritonserver"
    if not binary.is_file():
        raise TritonEnvironmentError(f"no tritonserver binary at {binary}; reinstall with: "
                                     f"{INSTALL_HINT}")
    if not os.access(binary, os.X_OK):
        raise TritonEnvironmentError(f"{binary} is not executable (chmod +x it, or reinstall)")
    return binary


def backends_dir(root: Path | None = None) -> Path:
    """The ``--backend-directory`` to pass to the server."""
    return (root or find_tritonserver_dir()) / "backends"


def stub_source(root: Path | None = None, version: str | None = None) -> Path:
    """The wheel's stub for Python ``version`` (default: the running one)."""
    root = root or find_tritonserver_dir()
    version = version or python_version_tag()
    src = root / "python_backend_stubs" / version / STUB_NAME
    if not src.is_file():
        available = sorted(p.name for p in (root / "python_backend_stubs").glob("*") if p.is_dir())
        raise TritonEnvironmentError(
            f"nvidia-pytriton has no Python-backend stub for Python {version} (it has: "
            f"{', '.join(available) or 'none'}); use one of those Python versions for the venv"
        )
    return src


def installed_stub(root: Path | None = None) -> Path:
    """Where the server looks for the stub: ``backends/python/triton_python_backend_stub``."""
    return backends_dir(root) / "python" / STUB_NAME


def ensure_python_stub(root: Path | None = None, version: str | None = None) -> Path:
    """Install the stub for this Python into ``backends/python/`` unless already there.

    Atomic (copy to a temporary file in the same directory, then rename), so two servers
    starting at once never see a half-written executable. Replaces a stub of another
    Python version left by an earlier copy.
    """
    root = root or find_tritonserver_dir()
    src = stub_source(root, version)
    dst = installed_stub(root)
    if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
        return dst
    if not (dst.parent / "libtriton_python.so").is_file():
        raise TritonEnvironmentError(f"the Python backend is missing from {dst.parent}; "
                                     f"reinstall with: {INSTALL_HINT}")
    fd, tmp = tempfile.mkstemp(prefix=f".{STUB_NAME}.", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            shutil.copyfileobj(inp, out)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def missing_libraries(binary: Path) -> list[str] | None:
    """Shared libraries ``ldd`` cannot resolve for ``binary``; ``None`` when ldd is absent."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        res = subprocess.run([ldd, str(binary)], capture_output=True, text=True, timeout=30,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [line.split("=>")[0].strip() for line in res.stdout.splitlines()
            if "not found" in line]


def check_stub_libraries(stub: Path, version: str | None = None) -> tuple[bool, str]:
    """Whether the stub's shared libraries (above all the system libpython) resolve."""
    version = version or python_version_tag()
    missing = missing_libraries(stub)
    if missing is None:
        return True, "ldd not available; libraries not checked"
    if not missing:
        return True, f"all libraries found (needs system libpython{version}.so.1.0)"
    lib_missing = [m for m in missing if m.startswith("libpython")]
    if lib_missing:
        return False, (f"{', '.join(lib_missing)} not found: the stub needs the system Python "
                       f"library; install it with: apt-get install libpython{version}")
    return False, f"missing libraries: {', '.join(missing)}"


def check_environment() -> list[CheckResult]:
    """Everything ``serve`` needs, checked without changing anything.

    A missing stub copy is fine (the launcher installs it), as long as the wheel has one for
    this Python and it links.
    """
    results: list[CheckResult] = []
    version = python_version_tag()
    try:
        root = find_tritonserver_dir()
    except TritonEnvironmentError as exc:
        results.append(CheckResult("nvidia-pytriton", False, str(exc)))
        return results + _client_checks()
    results.append(CheckResult("nvidia-pytriton", True, str(root)))

    try:
        binary = tritonserver_binary(root)
        missing = missing_libraries(binary)
        if missing:
            results.append(CheckResult("tritonserver binary", False,
                                       f"{binary}: missing libraries {', '.join(missing)}"))
        else:
            results.append(CheckResult("tritonserver binary", True, str(binary)))
    except TritonEnvironmentError as exc:
        results.append(CheckResult("tritonserver binary", False, str(exc)))

    backend = backends_dir(root) / "python" / "libtriton_python.so"
    results.append(CheckResult("python backend", backend.is_file(),
                               str(backend) if backend.is_file() else f"missing: {backend}"))

    try:
        src = stub_source(root, version)
        dst = installed_stub(root)
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            results.append(CheckResult(f"python {version} stub", True, f"installed at {dst}"))
        else:
            results.append(CheckResult(f"python {version} stub", True,
                                       f"{src} (copied into {dst.parent} when a server starts)"))
        ok, detail = check_stub_libraries(dst if dst.is_file() else src, version)
        results.append(CheckResult(f"libpython{version}", ok, detail))
    except TritonEnvironmentError as exc:
        results.append(CheckResult(f"python {version} stub", False, str(exc)))

    numpy_ok = importlib.util.find_spec("numpy") is not None
    results.append(CheckResult("numpy for python models", numpy_ok,
                               f"importable from {venv_bin_dir()} (put first on the server's PATH)"
                               if numpy_ok else "numpy is not installed in this environment"))
    return results + _client_checks()


def _client_checks() -> list[CheckResult]:
    """tritonclient plus the packages its grpc and http extras pull in."""
    missing = [m for m in ("tritonclient", "grpc", "geventhttpclient")
               if importlib.util.find_spec(m) is None]
    return [CheckResult("tritonclient[grpc,http]", not missing,
                        "importable" if not missing else
                        f"missing {', '.join(missing)}; install with: {INSTALL_HINT}")]
