"""D on the data-budget axis (``fit --data budget``): the joint law fitted on runs that differ in
budget, and Fang et al.'s data law per model, recovered from tables made by those laws."""

import json

import numpy as np
import polars as pl
import pytest

from rerank_scaling.cli import main
from rerank_scaling.errors import UserError
from rerank_scaling.scaling import fit_groups

SIZES = (1e6, 2e6, 4e6, 8e6, 16e6)
BUDGETS = (25, 50, 100, 200, 400)


def budget_table(value, noise=0.002, seed=0) -> pl.DataFrame:
    """One run per (size, budget), two checkpoints at the same examples seen in every run (fixed steps):
    the last one holds ``value(N, budget)``, the first one is worse by a budget-free 0.3."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in SIZES:
        for b in BUDGETS:
            final = float(value(n, b) + rng.normal(0, noise))
            for step, y in ((10, final + 0.3), (20, final)):
                rows.append(dict(objective="infonce", supervision="human", model=f"m{n:g}", run=f"m{n:g}-b{b}",
                                 params=n, budget=b, step=step, examples_seen=16 * step, metric="ce-corpus@64",
                                 value=y))
    return pl.DataFrame(rows)


def joint_fang(A=2e6, alpha=0.4, B=60.0, beta=0.5, delta=1.0):
    return lambda n, d: ((A / n) ** (alpha / beta) + B / d) ** beta + delta


def test_joint_law_on_budgets_recovers_fangs_parameters(tmp_path, capsys):
    path = tmp_path / "t.parquet"
    budget_table(joint_fang()).write_parquet(path)
    assert main(["fit", str(path), "--metric", "ce-corpus@64", "--law", "joint-fang", "--data", "budget",
                 "--bootstrap", "100", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)  # one group: runs that differ only in budget are fitted together
    assert "budget" not in row and row["n_points"] == len(SIZES) * len(BUDGETS)  # final values, not checkpoints
    assert row["params"]["alpha"] == pytest.approx(0.4, abs=0.06)
    assert row["params"]["beta"] == pytest.approx(0.5, abs=0.06)
    assert row["params"]["delta"] == pytest.approx(1.0, abs=0.05)
    for name in ("alpha", "beta"):
        lo, hi = row["intervals"][name]
        assert lo < row["params"][name] < hi
    assert row["r2"] > 0.99


def test_exposure_axis_keeps_budgets_apart(tmp_path, capsys):
    """On the exposure axis every budget is its own group and D is examples seen (the same in every run)."""
    groups = fit_groups(budget_table(joint_fang()), "ce-corpus@64", np.inf, law="joint", n_boot=0)
    assert sorted(g.key["budget"] for g in groups) == sorted(float(b) for b in BUDGETS)
    assert all(g.fit.n_points == 2 * len(SIZES) for g in groups)


def test_data_law_per_model_recovers_beta(tmp_path, capsys):
    """y = (B/D)^beta + delta_N at each size: data-fang fitted per model finds beta = 0.35 and B = 40 in
    every model, and delta_N falling with N."""
    table = budget_table(lambda n, d: (40.0 / d) ** 0.35 + (3e6 / n) ** 0.3 + 1.0, noise=0.001)
    path = tmp_path / "t.csv"
    table.write_csv(path)
    assert main(["fit", str(path), "--metric", "ce-corpus@64", "--law", "data-fang", "--data", "budget",
                 "--bootstrap", "100", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == [f"m{n:g}" for n in SIZES]
    for r, n in zip(rows, SIZES):
        assert r["params"]["beta"] == pytest.approx(0.35, abs=0.05)
        assert r["params"]["B"] == pytest.approx(40.0, rel=0.3)
        assert r["params"]["delta"] == pytest.approx((3e6 / n) ** 0.3 + 1.0, abs=0.03)
        lo, hi = r["intervals"]["beta"]
        assert lo < r["params"]["beta"] < hi


def test_budget_axis_needs_two_budgets():
    one = budget_table(joint_fang()).filter(pl.col("budget") == 100)
    with pytest.raises(UserError, match=r"data axis 'budget' needs runs at two budgets or more.*\(100\)"):
        fit_groups(one, "ce-corpus@64", np.inf, law="joint-fang", data_axis="budget", n_boot=0)
    with pytest.raises(UserError, match="unknown data axis 'steps'"):
        fit_groups(one, "ce-corpus@64", np.inf, law="joint-fang", data_axis="steps", n_boot=0)
