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


def _module(path: Path) -> str:
    return ".".join(("rerank_scaling", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def _module_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere (lazily too; not under ``if TYPE_CHECKING``):
    ``from rerank_scaling.x import y`` is an edge to ``x.y`` when that is a module, else to ``x``."""
    modules = {_module(p): p for p in _modules()}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        edges = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                edges.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                             for a in node.names)
        graph[name] = {e for e in edges if e in modules} - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on.discard(component[-1])
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    """No module imports one that imports it back, lazily or not; nor does any package, counting a module the
    table names on its own (``config.fields``: what families declare their settings with) as its own unit."""
    graph = _module_graph()
    assert _cycles(graph) == []
    units = sorted({a for allowed, _ in TABLE.values() for a in allowed if "." in a}, key=len, reverse=True)

    def unit(module: str) -> str:
        rest = module.removeprefix("rerank_scaling.")
        return next((u for u in units if rest == u or rest.startswith(u + ".")), rest.split(".")[0])

    packages: dict[str, set[str]] = {}
    for module, edges in graph.items():
        packages.setdefault(unit(module), set()).update(unit(e) for e in edges if unit(e) != unit(module))
    assert _cycles(packages) == []


def test_no_family_imports_another_familys_module():
    """What families share lives in models.base (and packed, decoder, backbone); a family module reaches
    another family only through the registry (query-distill loads its bi-encoder teacher by name)."""
    from rerank_scaling.models import FAMILIES

    families = {info.target.partition(":")[0] for info in FAMILIES.values()}
    assert len(families) == len(FAMILIES) >= 5
    graph = _module_graph()
    bad = [f"{m} imports {sorted(graph[m] & families)}" for m in sorted(families) if graph[m] & families]
    assert not bad, "\n".join(bad)


def test_metric_kinds_are_declared_not_matched():
    """A metric's direction, bounds and kind are declared (evaluation/registry.py and the modules it lists),
    and read by name; neither the registry, its declaring modules nor the analyzer's reader use patterns."""
    from rerank_scaling.evaluation.registry import DECLARING

    readers = ["rerank_scaling.evaluation.registry", "rerank_scaling.scaling.metrics", *DECLARING]
    paths = {_module(p): p for p in _modules()}
    bad = [m for m in readers if {"re", "fnmatch", "glob"} & _imports(paths[m])]
    assert not bad, f"metric names matched by patterns in {bad}"


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


@pytest.mark.parametrize("first", ["rerank_scaling.models", "rerank_scaling.objectives", "rerank_scaling.config",
                                   "rerank_scaling.evaluation.registry", "rerank_scaling.scaling.metrics"])
def test_each_registry_imports_first_on_its_own(first):
    """The registries import each other lazily: whichever a process imports first, it loads (the family registry
    imports config.fields, whose package reads the family registry only when a file or config is read)."""
    code = (f"import {first}\nfrom rerank_scaling.config import RunConfig, load_experiment\n"
            "RunConfig.from_dict({'family': 'late-interaction', 'objective': 'infonce', 'projection': 8})\n"
            "load_experiment('experiments/late-interaction-demo.toml')\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)


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
