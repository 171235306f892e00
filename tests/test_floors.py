"""Declared dependencies are what the code imports, and their floors are pinnable (``.ci/floors``).

Every third-party module a file of ``rerank_scaling`` imports (at the top or
inside a function) belongs to a distribution ``pyproject.toml`` declares (a
dependency, or an optional group for the extras' modules), and every declared
dependency is imported somewhere -- so a package the code stopped using
(``pyarrow``: polars reads and writes parquet itself) or started using
(``numba``, ``safetensors``) is caught. ``.ci/floors`` installs each floor from
PyPI and runs a smoke subset; ``.ci/floor_pins.py`` is checked to pin every one.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    import re

    return re.split(r"[<>=!~;\[ ]", requirement, 1)[0].strip().lower().replace("_", "-")


def _imports() -> dict[str, set[str]]:
    """Top-level module names imported anywhere in the package -> the files importing them."""
    out: dict[str, set[str]] = {}
    for path in (REPO / "rerank_scaling").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                out.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return out


def test_every_import_is_declared_and_every_declaration_imported():
    declared = {_name(r) for r in PROJECT["dependencies"]}
    optional = {_name(r) for group in PROJECT["optional-dependencies"].values() for r in group}
    owners = md.packages_distributions()
    third_party = {m: files for m, files in _imports().items()
                   if m not in sys.stdlib_module_names and m != "rerank_scaling"}
    used = set()
    for module, files in sorted(third_party.items()):
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        assert dists, f"{module} (imported by {sorted(files)[0]}) is not installed from any distribution"
        assert dists & (declared | optional), f"{module} ({sorted(dists)}) is imported by {sorted(files)} " \
                                              "but not declared in pyproject.toml"
        used |= dists
    unused = declared - used
    assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"


def test_floor_pins_cover_every_floor():
    out = subprocess.run([sys.executable, str(REPO / ".ci" / "floor_pins.py")], capture_output=True, text=True,
                         check=True).stdout.split()
    floors = [r for r in PROJECT["dependencies"] if ">=" in r and _name(r) != "torch"]
    assert len([p for p in out if "==" in p]) == len(floors)
    for r in floors:
        assert f"{r.split('>=')[0].strip()}=={r.split('>=')[1].strip()}" in out
    torch = subprocess.run([sys.executable, str(REPO / ".ci" / "floor_pins.py"), "--only", "torch"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert torch == next(r.split(">=")[1] for r in PROJECT["dependencies"] if _name(r) == "torch")
