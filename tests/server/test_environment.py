"""Locating the pytriton server and installing the Python-backend stub."""

from __future__ import annotations

import filecmp
import sys

import pytest

from sonic_exatrkx.server import environment as env
from sonic_exatrkx.server import free_ports


def test_missing_pytriton_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytriton", None)  # as if not installed
    with pytest.raises(env.TritonEnvironmentError) as err:
        env.find_tritonserver_dir()
    assert "pip install -c constraints.txt -e '.[triton]'" in str(err.value)
    results = env.check_environment()
    assert results[0].item == "nvidia-pytriton" and not results[0].ok


@pytest.mark.triton
def test_stub_for_this_python_is_installed_idempotently(
        triton_available: None, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the set-up lives in the user cache
    root = env.find_tritonserver_dir()
    dst = env.ensure_python_stub(root)
    assert dst == env.backends_dir(root) / "python" / env.STUB_NAME
    assert dst.is_relative_to(tmp_path / "sonic-exatrkx")
    src = root / "python_backend_stubs" / env.python_version_tag() / env.STUB_NAME
    assert filecmp.cmp(src, dst, shallow=False)
    mtime = dst.stat().st_mtime_ns
    assert env.ensure_python_stub(root) == dst
    assert dst.stat().st_mtime_ns == mtime  # not rewritten when already right
    ok, detail = env.check_stub_libraries(dst)
    assert ok, detail


@pytest.mark.triton
def test_unknown_python_version_lists_available(triton_available: None) -> None:
    with pytest.raises(env.TritonEnvironmentError, match="no Python-backend stub for Python 2.7"):
        env.stub_source(version="2.7")


def test_free_ports_are_distinct_and_bindable() -> None:
    import socket

    ports = free_ports("127.0.0.1", 3)
    assert len(set(ports)) == 3
    for p in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))
