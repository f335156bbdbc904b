"""Install honesty: every package the code and the tests import is declared in pyproject,
and checking or starting a Triton server writes nothing into site-packages (the
Python-backend set-up lives in the user's cache)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from sonic_exatrkx.server import environment as env

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("sonic_exatrkx", "algorithms", "tests", "examples")
OURS = {"sonic_exatrkx", "algorithms", "tests", "__future__"}
#: Imported but not installable from an index, with the reason.
PROVIDED = {
    "triton_python_backend_utils": "put on the path by the Triton server inside a served model",
}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> set[str]:
    """Names in [project] dependencies and every optional-dependencies list."""
    text = (ROOT / "pyproject.toml").read_text()
    specs: list[str] = []
    for block in re.findall(r"^dependencies = \[(.*?)^\]", text, flags=re.S | re.M):
        specs += re.findall(r'"([^"]+)"', block)
    extras = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    specs += re.findall(r'"([^"]+)"', extras)
    return {_normalize(re.split(r"[\[<>=!~ ;]", spec, maxsplit=1)[0]) for spec in specs}


def third_party_imports() -> dict[str, str]:
    """Top-level module -> the first file importing it, over the scanned folders."""
    found: dict[str, str] = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OURS:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared():
    declared = declared_distributions()
    assert {"numpy", "torch", "typer", "nvidia-pytriton", "pytest", "psutil"} <= declared
    mapping = packages_distributions()
    missing = []
    for module, where in sorted(third_party_imports().items()):
        if module in PROVIDED:
            continue
        dists = {_normalize(d) for d in mapping.get(module, [module])}
        if not dists & declared:
            missing.append(f"{module} (imported in {where}; distribution {sorted(dists)})")
    assert not missing, "declare in pyproject.toml: " + "; ".join(missing)


def tree_state(*folders: Path) -> dict[str, tuple[int, int, int]]:
    """path -> (mtime_ns, mode, size) of everything under ``folders`` (links not
    followed)."""
    state = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in [*dirnames, *filenames]:
                st = os.lstat(os.path.join(dirpath, name))
                state[os.path.join(dirpath, name)] = (st.st_mtime_ns, st.st_mode, st.st_size)
        st = os.lstat(folder)
        state[str(folder)] = (st.st_mtime_ns, st.st_mode, st.st_size)
    return state


@pytest.fixture
def wheel(triton_available: None) -> list[Path]:
    """The installed pytriton package and its bundled libraries."""
    root = env.find_tritonserver_dir()
    site = root.parent.parent
    return [root.parent, *site.glob("*pytriton*.libs")]


@pytest.mark.triton
def test_serve_check_changes_nothing(wheel, tmp_path):
    before = tree_state(*wheel)
    cache = tmp_path / "cache"
    result = subprocess.run([sys.executable, "-m", "sonic_exatrkx", "serve", "--check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "copied into " + str(cache) in result.stdout
    assert tree_state(*wheel) == before
    assert not cache.exists()  # a check writes nothing at all


@pytest.mark.triton
def test_server_start_prepares_the_backend_in_the_user_cache(wheel, tmp_path, monkeypatch):
    """A real server starts from the cache's backend folder, and site-packages is the same
    file for file (mtime, mode, size) afterwards."""
    import numpy as np
    import tritonclient.grpc as grpcclient

    from sonic_exatrkx.server import TritonServer
    from tests.server.conftest import write_scale_repo

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo = write_scale_repo(tmp_path / "repo", instances=1, ensemble=False)
    before = tree_state(*wheel)
    with TritonServer(repo, env_threads=1, ready_timeout=120,
                      log_file=tmp_path / "server.log") as server:
        assert f"--backend-directory={tmp_path / 'cache'}" in " ".join(server.command())
        client = grpcclient.InferenceServerClient(server.grpc_url)
        tensor = grpcclient.InferInput("INPUT", [1, 3], "FP32")
        tensor.set_data_from_numpy(np.ones((1, 3), np.float32))
        out = client.infer("scale", [tensor]).as_numpy("OUTPUT")
        client.close()
    np.testing.assert_array_equal(out, np.full((1, 3), 2, np.float32))
    assert tree_state(*wheel) == before
    stub = env.installed_stub()
    assert stub.is_relative_to(tmp_path / "cache") and os.access(stub, os.X_OK)
