"""The layer arrows of the design: a layer never imports a layer above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> what it may import from this project (besides itself).
ALLOWED = {
    "sonic_exatrkx.framework": set(),
    "sonic_exatrkx.io": set(),
    "sonic_exatrkx.sim": {"sonic_exatrkx.io"},
    "sonic_exatrkx.exatrkx": set(),
    "sonic_exatrkx.server": {"sonic_exatrkx.exatrkx"},
    "sonic_exatrkx.sonic": {"sonic_exatrkx.framework", "sonic_exatrkx.io",
                            "sonic_exatrkx.exatrkx"},
    "algorithms": {"sonic_exatrkx.framework", "sonic_exatrkx.io", "sonic_exatrkx.exatrkx",
                   "sonic_exatrkx.sonic", "sonic_exatrkx.sim", "sonic_exatrkx.paths"},
    "sonic_exatrkx.jobs": {"sonic_exatrkx.framework", "sonic_exatrkx.io",
                           "sonic_exatrkx.exatrkx", "sonic_exatrkx.sonic", "sonic_exatrkx.sim",
                           "sonic_exatrkx.server", "sonic_exatrkx.paths", "algorithms"},
    "sonic_exatrkx.bench": {"sonic_exatrkx.framework", "sonic_exatrkx.io",
                            "sonic_exatrkx.exatrkx", "sonic_exatrkx.sonic",
                            "sonic_exatrkx.server", "sonic_exatrkx.sim", "sonic_exatrkx.jobs",
                            "sonic_exatrkx.paths", "algorithms"},
    # The CLI may import every layer; it is here so that no layer imports it back.
    "sonic_exatrkx.cli": {"sonic_exatrkx.framework", "sonic_exatrkx.io",
                          "sonic_exatrkx.exatrkx", "sonic_exatrkx.sonic",
                          "sonic_exatrkx.server", "sonic_exatrkx.sim", "sonic_exatrkx.jobs",
                          "sonic_exatrkx.bench", "sonic_exatrkx.paths", "algorithms"},
}
PROJECT = ("sonic_exatrkx", "algorithms")
#: Leaf modules of the package that import nothing from the project: every layer may use them.
LEAVES = {"sonic_exatrkx.paths", "sonic_exatrkx.checks",
          "sonic_exatrkx"}  # the package root holds only the version


def imported_modules(path: Path) -> set[str]:
    package = list(path.relative_to(ROOT).parent.parts)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add(node.module or "")
            else:  # relative: resolve against this file's package
                base = package[: len(package) - node.level + 1]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
    return {n for n in names if n.split(".")[0] in PROJECT}


def test_leaf_modules_import_nothing_from_the_project():
    for leaf in LEAVES:
        module = ROOT.joinpath(*leaf.split("."))
        path = module / "__init__.py" if module.is_dir() else module.with_suffix(".py")
        assert path.exists(), path
        assert not imported_modules(path), f"{path} must stay a leaf"


def owner(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "sonic_exatrkx" and len(parts) > 1 else parts[0]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_lower_layers(package):
    folder = ROOT.joinpath(*package.split("."))
    files = sorted(folder.rglob("*.py"))
    assert files, f"no files in {folder}"
    bad = []
    for path in files:
        for module in imported_modules(path):
            target = owner(module)
            if target != package and target not in ALLOWED[package] | LEAVES:
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, "layer violations:\n" + "\n".join(bad)
