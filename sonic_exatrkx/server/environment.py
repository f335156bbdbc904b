"""Find and prepare the Triton server shipped in the ``nvidia-pytriton`` wheel.

The wheel carries a ready ``tritonserver`` binary and the Python backend, but the backend's
stub process (``triton_python_backend_stub``) only sits in ``python_backend_stubs/<X.Y>/``:
the server looks for it next to ``libtriton_python.so`` in ``<backend-directory>/python/``,
or every Python model fails to load with "triton_python_backend_stub is not found". Rather
than write into the installed wheel (site-packages may be read-only, shared, or checked by a
package manager), the first server start builds a backend directory in the user's cache
(``$XDG_CACHE_HOME/sonic-exatrkx``, default ``~/.cache/sonic-exatrkx``): links to the wheel's
backend files plus a copy of the stub for this Python, laid out as in site-packages so that
the stub's ``$ORIGIN``-relative RPATH finds the wheel's bundled libraries, and the server is
pointed at it. (The copy also takes the Python backend's ``chmod`` of a stub that does not
start, which would otherwise change the wheel's file.)
The stub also links the *system* ``libpython3.X.so.1.0`` (Debian/Ubuntu package
``libpython3.X``), not the interpreter of the virtual environment. This module prepares the
first and checks both, and reports what is usable for ``sonic-exatrkx serve --check`` (which
changes nothing).
"""

from __future__ import annotations

import filecmp
import hashlib
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


def wheel_backends_dir(root: Path | None = None) -> Path:
    """The wheel's own ``backends`` folder (read, never written)."""
    return (root or find_tritonserver_dir()) / "backends"


def cache_dir() -> Path:
    """This user's sonic-exatrkx cache: ``$XDG_CACHE_HOME/sonic-exatrkx``, by default
    ``~/.cache/sonic-exatrkx``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sonic-exatrkx"


def _mirror(root: Path, version: str | None) -> tuple[Path, Path]:
    """(site-packages, its mirror in the cache for this wheel and Python)."""
    key = hashlib.sha256(str(root.absolute()).encode()).hexdigest()[:12]
    return (root.absolute().parent.parent,
            cache_dir() / "triton" / f"{key}-py{version or python_version_tag()}")


def backends_dir(root: Path | None = None, version: str | None = None) -> Path:
    """The ``--backend-directory`` to pass to the server: ``pytriton/tritonserver/backends``
    in a mirror of site-packages in :func:`cache_dir` (one per wheel, by its path, and
    Python version), prepared by :func:`ensure_python_stub`."""
    root = root or find_tritonserver_dir()
    site, mirror = _mirror(root, version)
    return mirror / wheel_backends_dir(root).absolute().relative_to(site)


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


def installed_stub(root: Path | None = None, version: str | None = None) -> Path:
    """Where the server looks for the stub: ``<backends_dir>/python/<STUB_NAME>``."""
    return backends_dir(root, version) / "python" / STUB_NAME


def _link(target: Path, link: Path) -> None:
    """``link`` -> ``target``, replaced atomically unless it already points there."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def ensure_python_stub(root: Path | None = None, version: str | None = None) -> Path:
    """Prepare :func:`backends_dir` and return the stub in it (at a server's start).

    The folder links every backend of the wheel; its ``python/`` links the wheel's
    Python-backend files and holds a copy of the stub for this Python. The copy is atomic
    (a temporary file in the same directory, then a rename), so two servers starting at
    once never see a half-written executable, and is redone when the wheel's stub changed.
    Nothing is written into the wheel.
    """
    root = root or find_tritonserver_dir()
    src = stub_source(root, version)
    wheel = wheel_backends_dir(root)
    if not (wheel / "python" / "libtriton_python.so").is_file():
        raise TritonEnvironmentError(f"the Python backend is missing from {wheel / 'python'}; "
                                     f"reinstall with: {INSTALL_HINT}")
    dst = installed_stub(root, version)
    site, mirror = _mirror(root, version)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        for libs in site.glob("*pytriton*.libs"):  # the stub's RPATH: $ORIGIN/../../../../
            _link(libs, mirror / libs.name)
        for backend in wheel.iterdir():
            if backend.name != "python" and backend.is_dir():
                _link(backend.absolute(), dst.parent.parent / backend.name)
        for item in (wheel / "python").iterdir():
            if item.name not in (STUB_NAME, "__pycache__"):
                _link(item.absolute(), dst.parent / item.name)
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            return dst
        fd, tmp = tempfile.mkstemp(prefix=f".{STUB_NAME}.", dir=dst.parent)
    except OSError as exc:
        raise TritonEnvironmentError(
            f"cannot prepare the Triton backend folder {dst.parent} ({exc.strerror or exc}); "
            "set XDG_CACHE_HOME to a writable folder") from exc
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

    backend = wheel_backends_dir(root) / "python" / "libtriton_python.so"
    results.append(CheckResult("python backend", backend.is_file(),
                               str(backend) if backend.is_file() else f"missing: {backend}"))

    try:
        src = stub_source(root, version)
        dst = installed_stub(root)
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            results.append(CheckResult(f"python {version} stub", True, f"installed at {dst}"))
        else:
            writable = _writable(dst.parent)
            results.append(CheckResult(
                f"python {version} stub", writable,
                f"{src} (copied into {dst.parent} when a server starts)" if writable else
                f"{dst.parent} cannot be created (set XDG_CACHE_HOME to a writable folder)"))
        ok, detail = check_stub_libraries(dst if dst.is_file() else src, version)
        results.append(CheckResult(f"libpython{version}", ok, detail))
    except TritonEnvironmentError as exc:
        results.append(CheckResult(f"python {version} stub", False, str(exc)))

    numpy_ok = importlib.util.find_spec("numpy") is not None
    results.append(CheckResult("numpy for python models", numpy_ok,
                               f"importable from {venv_bin_dir()} (put first on the server's PATH)"
                               if numpy_ok else "numpy is not installed in this environment"))
    return results + _client_checks()


def _writable(folder: Path) -> bool:
    """Whether ``folder`` exists writable or could be created (its nearest existing
    ancestor is writable); creates nothing."""
    for path in (folder, *folder.parents):
        if path.exists():
            return path.is_dir() and os.access(path, os.W_OK | os.X_OK)
    return False


def _client_checks() -> list[CheckResult]:
    """tritonclient plus the packages its grpc and http extras pull in."""
    missing = [m for m in ("tritonclient", "grpc", "geventhttpclient")
               if importlib.util.find_spec(m) is None]
    return [CheckResult("tritonclient[grpc,http]", not missing,
                        "importable" if not missing else
                        f"missing {', '.join(missing)}; install with: {INSTALL_HINT}")]
