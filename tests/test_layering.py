"""The package layering stated in ARCHITECTURE.md holds in the code.

The allowed imports and the torch-free modules are read from ARCHITECTURE.md's
table, so the document and the code cannot drift apart silently.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rerank_scaling"
HEAVY = ("torch", "transformers", "lightning")


def _table() -> dict[str, tuple[set[str], str]]:
    """package -> (packages it may import, torch-free cell) from ARCHITECTURE.md."""
    rows = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        may = cells[2]
        allowed = set() if may == "—" else {m.strip() for m in may.split(",")}
        rows[name] = (allowed, cells[3])
    return rows


TABLE = _table()


def _component(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Every rerank_scaling.X and third-party top-level name imported anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_package_is_in_the_table():
    components = {_component(p) for p in _modules()} - {"__init__", "__main__"}
    assert components == set(TABLE), "ARCHITECTURE.md's table and the package disagree"


def test_imports_follow_the_table():
    everything = set(TABLE)
    bad = []
    for path in _modules():
        me = _component(path)
        if me in ("__init__", "__main__"):
            continue
        allowed, _ = TABLE[me]
        if allowed == {"everything above"}:
            names = list(TABLE)
            allowed = set(names[: names.index(me)])
        for name in _imports(path):
            if not name.startswith("rerank_scaling."):
                continue
            other = name.split(".")[1]
            # an entry `package.module` allows that module only (models may import config.fields, not config)
            one_module = any(name == f"rerank_scaling.{a}" or name.startswith(f"rerank_scaling.{a}.")
                             for a in allowed if "." in a)
            if other != me and other in everything and other not in allowed and not one_module:
                bad.append(f"{path.relative_to(ROOT)} imports {name} ({me} may import: {', '.join(sorted(allowed))})")
    assert not bad, "\n".join(bad)


def test_analysis_side_imports_no_training_stack():
    """report/ and scaling/ import neither torch nor the grid nor the pipeline, not even lazily."""
    bad = []
    for path in _modules():
        if _component(path) not in ("report", "scaling"):
            continue
        for name in _imports(path):
            if name.split(".")[0] in HEAVY or name.startswith(("rerank_scaling.grid", "rerank_scaling.pipeline")):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def _torch_free_modules() -> list[str]:
    out = []
    for path in _modules():
        me = _component(path)
        if me in ("__init__", "__main__"):
            continue
        cell = TABLE[me][1]
        rel = path.relative_to(PACKAGE).with_suffix("")
        name = ".".join(("rerank_scaling", *rel.parts)).removesuffix(".__init__")
        short = rel.parts[-1]
        if cell == "yes" or (cell != "no" and f"`{short}`" in cell):
            out.append(name)
    return out


def test_torch_free_modules_load_without_torch():
    modules = _torch_free_modules()
    assert "rerank_scaling.report.build" in modules and "rerank_scaling.scaling.cli" in modules
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("argv", [["--help"], ["grid", "status", "{study}"], ["forecast", "--help"]])
def test_light_commands_import_no_torch(argv, tmp_path):
    """Commands that do no heavy work answer without loading torch (they answer in well under a second)."""
    study = tmp_path / "study"
    (study / "cells" / "minilm-1L__listwise__human__ball__s0").mkdir(parents=True)
    argv = [a.format(study=study) for a in argv]
    code = (
        "import json, sys\n"
        "from rerank_scaling.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stderr.strip().splitlines()[-1]) == []
    assert re.search(r"usage|minilm-1L", out.stdout)
