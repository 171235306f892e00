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


def test_the_drscale_study_has_fangs_axes():
    """Sizes x nested budgets x two annotation qualities, bi-encoders with random corpus negatives."""
    exp = load_experiment(REPO / "experiments" / "dense-drscale.toml")
    assert {c.family for c in exp.cells} == {"bi-encoder"} and {c.objective for c in exp.cells} == {"infonce-corpus"}
    assert len({c.size for c in exp.cells}) == 6 and {c.supervision for c in exp.cells} == {"human", "ict"}
    assert len({c.budget for c in exp.cells}) == 4 and "ce-corpus@256" in exp.cells[0].ce_variants

