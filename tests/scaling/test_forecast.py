"""Forecasts on synthetic studies with known truth."""

import warnings

import numpy as np
import polars as pl
import pytest

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import fit_groups, forecast
from benchmarks.synthetic import synthetic_table, truth


def test_forecast_recovers_truth_on_grid(study):
    rows = forecast(study, "ndcg@10", 150e6, n_boot=200)
    # 3 objectives x 2 budgets x (400M, 1B)
    assert len(rows) == 12
    for r in rows:
        t = truth("ndcg@10", r.objective)
        expected = t.mean(r.params, 2 * r.budget)  # final checkpoint: 2 epochs of the budget
        assert abs(r.predicted - expected) < 0.02, r
        assert r.lower < r.predicted < r.upper
        assert r.actual is not None and r.n_actual_runs == 2
        assert r.error == pytest.approx(r.predicted - r.actual)
        assert r.abs_error == pytest.approx(abs(r.error))
        assert r.rel_error == pytest.approx(r.error / abs(r.actual))
        assert r.n_fit_runs == 12 and r.n_fit_sizes == 6
        assert "auto" in r.law_reason and "leave-largest-out" in r.law_reason
    coverage = np.mean([r.covered for r in rows])
    assert coverage >= 0.75


def test_contrastive_entropy_forecasts_decrease(study):
    rows = forecast(study, "ce@64", 150e6, n_boot=100, objective="listwise")
    by_budget = {}
    for r in rows:
        by_budget.setdefault(r.budget, []).append(r)
    for rs in by_budget.values():
        rs.sort(key=lambda r: r.params)
        assert rs[1].predicted < rs[0].predicted  # 1B below 400M: lower is better
    groups = fit_groups(study, "ce@64", 150e6, n_boot=0, objective="listwise")
    assert all(g.fit.direction == -1 and g.fit.params["b"] > 0 for g in groups)


def test_small_user_table_and_extra_sizes(small_user_table):
    rows = forecast(small_user_table, "ndcg@10", 150e6, n_boot=200, predict_params=[3e9])
    assert [r.model for r in rows] == ["ce-400m", "ce-1b", "N=3e+09"]
    assert rows[-1].actual is None and rows[-1].error is None and rows[-1].covered is None
    assert rows[0].budget is None and rows[0].supervision is None
    assert any("barely determined" in w for w in rows[0].warnings)  # 4 sizes for 3 parameters
    assert rows[0].to_dict()["actual"] == pytest.approx(rows[0].actual)


def test_law_options(small_user_table):
    for law in ("size", "fang", "loglinear", "bounded", "cv"):
        rows = forecast(small_user_table, "ndcg@10", 400e6, law=law, n_boot=50)
        assert len(rows) == 1 and np.isfinite(rows[0].predicted)
    raw = forecast(small_user_table, "ndcg@10", 400e6, n_boot=100, bias_correct=False)[0]
    assert raw.predicted == pytest.approx(raw.raw_predicted)
    with pytest.raises(UserError, match="unknown law"):
        forecast(small_user_table, "ndcg@10", 400e6, law="magic")


def test_refuses_when_too_few_sizes(small_user_table):
    with pytest.raises(UserError, match=r"ndcg@10, objective=listwise: law 'loglinear' has 2 parameters but only 1"):
        forecast(small_user_table, "ndcg@10", 20e6, n_boot=10)


def test_few_sizes_fall_back_to_loglinear(small_user_table):
    rows = forecast(small_user_table, "ndcg@10", 70e6, n_boot=50)  # 3 sizes
    assert rows[0].law == "loglinear" and "only 3 sizes" in rows[0].law_reason


def test_eval_sets_are_separate_groups():
    a = synthetic_table(objectives=("listwise",), checkpoints=2, metrics=("map",), eval_set="dl19", seed=1)
    b = synthetic_table(objectives=("listwise",), checkpoints=2, metrics=("map",), eval_set="beir", seed=2)
    both = pl.concat([a, b])
    rows = forecast(both, "map", 150e6, n_boot=20)
    assert sorted({r.eval_set for r in rows}) == ["beir", "dl19"]
    only = forecast(both, "map", 150e6, eval_set="beir", n_boot=20)
    assert {r.eval_set for r in only} == {"beir"}
    with pytest.raises(UserError, match="eval set 'x' not in the table"):
        forecast(both, "map", 150e6, eval_set="x")


def test_late_evidence_runs(study):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = forecast(study, "map", 150e6, n_boot=50, evidence="late", objective="pairwise")
    assert len(rows) == 4
