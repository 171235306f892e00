"""Every experiment file the repository ships loads and validates (no data is read)."""

from pathlib import Path

import pytest

from rerank_scaling.config import load_experiment

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*REPO.glob("experiments/*.toml"), *REPO.glob("reports/ladders/*/experiment.toml")])


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(REPO)) for p in SHIPPED])
def test_shipped_experiment_loads(path):
    exp = load_experiment(path)
    assert exp.cells and len({c.run_id for c in exp.cells}) == len(exp.cells)
    assert any(e.in_domain for e in exp.evals)


def test_the_default_study_compares_the_reference_objectives():
    exp = load_experiment(REPO / "experiments" / "demo.toml")
    assert {c.objective for c in exp.cells} == {"pointwise", "pairwise", "listnet"}
    assert len({c.size for c in exp.cells}) >= 4
