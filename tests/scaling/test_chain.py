"""The chain law (scaling/chain.py), its backtest and allocate --pipeline (scaling/pipeline.py), on synthetic
chain tables drawn from the law with known parameters (benchmarks/synthetic_chains.py)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import polars as pl
import pytest

from benchmarks.synthetic_chains import RERANKERS, chain_table
from rerank_scaling.errors import UserError
from rerank_scaling.scaling.chain import backtest_chains, chain_points, fit_chains
from rerank_scaling.scaling.estimate import estimator_forecasts
from rerank_scaling.scaling.pipeline import plan_pipeline, recall_at
from rerank_scaling.scaling.table import as_table, without_chains

TRUE = dict(b=0.93, c=0.6, gamma=1.0, n_ref=3e6)


def true_skill(N):
    return 1.0 - TRUE["b"] * (np.asarray(N) / TRUE["n_ref"]) ** (-TRUE["c"])


@pytest.fixture(scope="module")
def table():
    return chain_table(seed=1, **{k: TRUE[k] for k in ("b", "c", "gamma")}, n_ref=TRUE["n_ref"])


def test_law_recovers_known_parameters(table):
    (fit, pts), = fit_chains(table, n_boot=100)
    assert pts.filter(pl.col("depth") > 0).height == 3 * 7 * 3
    assert abs(fit.c - TRUE["c"]) < 0.1
    assert abs(fit.gamma - TRUE["gamma"]) < 0.1
    # b depends on the fit's N_ref: compare the skill curve itself, at and beyond the sizes
    sizes = np.array([*RERANKERS, 2 * RERANKERS[-1]])
    assert np.max(np.abs(fit.skill(sizes) - true_skill(sizes))) < 0.03
    assert fit.r2 > 0.98
    lo, hi = fit.intervals()["c"]
    assert lo <= fit.c <= hi


def test_noise_free_table_is_fitted_exactly():
    t = chain_table(seed=2, run_sd=0.0, chain_sd=0.0, b=0.8, c=0.3, gamma=0.7)
    (fit, _), = fit_chains(t, n_boot=0)
    assert fit.rmse < 2e-3
    assert abs(fit.c - 0.3) < 0.03 and abs(fit.gamma - 0.7) < 0.03


def test_backtest_largest_reranker_on_synthetic(table):
    bt = backtest_chains(table, n_boot=200)
    assert bt.cases.height == 21 and set(bt.cases["params"].to_list()) == {int(RERANKERS[-1])}
    assert bt.mae < 0.012  # the rerank gain is ~0.08; carrying the first stage forward misses it
    assert bt.mae < bt.mae_first_stage / 4
    assert bt.coverage >= 0.7
    assert (bt.cases["lower"] <= bt.cases["predicted"]).all() and (bt.cases["predicted"] <= bt.cases["upper"]).all()


def test_backtest_first_stage_hides_each_in_turn(table):
    bt = backtest_chains(table, hide="first-stage", n_boot=50)
    assert bt.cases["hidden"].n_unique() == 7 and bt.cases.height == 63
    assert bt.mae < 0.01


def test_misspecified_law_is_caught_by_the_backtest():
    """A table whose largest reranker breaks the trend (worse than the 2L): the backtest shows the miss."""
    t = chain_table(seed=3)
    top = int(RERANKERS[-1])
    t = t.with_columns(value=pl.when((pl.col("params") == top) & (pl.col("metric") == "ndcg@10"))
                       .then(pl.col("value") - 0.05).otherwise(pl.col("value")))
    bt = backtest_chains(t, n_boot=100)
    assert bt.mae > 0.03 and bt.coverage < 0.3


def test_chain_rows_change_no_forecast(table):
    """Every other analysis drops the chain rows: the forecast of a table with them equals the one without."""
    from benchmarks.synthetic import synthetic_table

    base = synthetic_table(objectives=("listwise",), checkpoints=2, metrics=("ndcg@10",), seed=4)
    chains = table.filter(pl.col("stage") == "chain").with_columns(objective=pl.lit("listwise"))
    both = pl.concat([base.with_columns(stage=pl.lit(None, pl.Utf8)), chains], how="diagonal_relaxed")
    plain = both.filter(pl.col("stage").is_null())  # the same columns, no chain row
    assert as_table(both).height == as_table(base).height
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = estimator_forecasts(plain, "ndcg@10", 150e6, "mixture", n_boot=50)
        b = estimator_forecasts(both, "ndcg@10", 150e6, "mixture", n_boot=50)
        c = estimator_forecasts(base, "ndcg@10", 150e6, "mixture", n_boot=50)
    assert a and a == b
    assert [r["predicted"] for r in c] == [r["predicted"] for r in b]
    # an already-normalised table with chain rows is filtered too, and an older table (no stage column) is unchanged
    normalised = as_table(both, chains=True)
    assert normalised.filter(pl.col("stage") == "chain").height == chains.height
    assert without_chains(normalised).height == as_table(base).height
    assert as_table(normalised).height == as_table(base).height


def test_no_chain_rows_is_one_line_error():
    from benchmarks.synthetic import synthetic_table

    with pytest.raises(UserError, match="no chain rows"):
        chain_points(synthetic_table(objectives=("listwise",), checkpoints=1, metrics=("ndcg@10",)))


def test_missing_first_stage_alone_is_named(table):
    t = table.filter(~((pl.col("first_stage") == "bm25") & (pl.col("depth") == 0)))
    with pytest.raises(UserError, match="first stage 'bm25'.*depth 0"):
        chain_points(t)


def test_recall_between_and_beyond_measured_depths():
    assert recall_at([10, 20, 50, 100], [0.4, 0.5, 0.7, 0.8], 20) == (0.5, "measured")
    r, how = recall_at([10, 20, 50, 100], [0.4, 0.5, 0.7, 0.8], 30)
    assert 0.5 < r < 0.7 and "interpolated" in how
    assert recall_at([10, 100], [0.4, 0.8], 200)[0] == 0.8
    assert recall_at([10, 100], [0.4, 0.8], 5)[0] == pytest.approx(0.2)


def _hand_table():
    """Two first stages, two reranker sizes, depths 10/20; costs in ms chosen by hand."""
    rows = []
    alone = {"bm25": (0.30, 0.80, 1.0), "dense": (0.35, 0.85, 3.0)}
    for fs, (y0, r100, ms) in alone.items():
        for m, v in (("ndcg@10", y0), ("fs-recall", r100), ("chain-ms", ms)):
            rows.append(dict(first_stage=fs, depth=0, run=f"alone-{fs}", model="none", params=0, objective="none",
                             metric=m, value=v))
    recall = {("bm25", 10): 0.4, ("bm25", 20): 0.55, ("dense", 10): 0.5, ("dense", 20): 0.6}
    for N, skill in ((1e6, 0.2), (4e6, 0.5)):
        for (fs, k), r in recall.items():
            y0, _, ms = alone[fs]
            y = y0 + skill * max(r - y0, 0)
            for m, v in (("ndcg@10", y), ("fs-recall", r), ("chain-ms", ms + 1e-6 * N * k)):
                rows.append(dict(first_stage=fs, depth=k, run=f"rr-{N:g}", model=f"rr-{N:g}", params=N,
                                 objective="listnet", metric=m, value=v))
    df = pl.DataFrame(rows).with_columns(stage=pl.lit("chain"), eval_set=pl.lit("set"))
    return df


def test_allocate_picks_the_best_feasible_chain():
    t = _hand_table()
    plan, = plan_pipeline(t, budget=45.0, depths=(10, 20), size_factors=(), n_boot=50)
    # feasible: everything up to rr-4e6 @ 10 (41 ms on bm25, 43 on dense); rr-1e6 @ 20 = 21/23 ms
    costs = {(c.first_stage, c.params, c.depth): c.cost for c in (plan.best, *plan.runner_ups)}
    assert all(v <= 45.0 for v in costs.values())
    assert (plan.best.first_stage, plan.best.params, plan.best.depth) == ("dense", 4e6, 10)
    assert plan.best.measured == pytest.approx(0.35 + 0.5 * 0.15)
    assert plan.best.predicted == pytest.approx(plan.best.measured, abs=0.01)
    assert plan.best_measured == plan.best  # here the law's choice is the best measured chain under the budget
    # the frontier rises in quality as cost rises, and starts at the cheapest chain (BM25 alone)
    q = [c.predicted for c in plan.frontier]
    assert plan.frontier[0].first_stage == "bm25" and plan.frontier[0].params == 0
    assert q == sorted(q) and [c.cost for c in plan.frontier] == sorted(c.cost for c in plan.frontier)
    # a larger budget buys the deeper chain
    plan, = plan_pipeline(t, budget=100.0, depths=(10, 20), size_factors=(), n_boot=50)
    assert (plan.best.first_stage, plan.best.params, plan.best.depth) == ("dense", 4e6, 20)


def test_allocate_errors():
    t = _hand_table()
    with pytest.raises(UserError, match=r"below the cheapest chain \(bm25: 1\)"):
        plan_pipeline(t, budget=0.5, n_boot=10)
    with pytest.raises(UserError, match="no 'chain-flops'"):
        plan_pipeline(t, budget=1e9, cost="flops", n_boot=10)
    with pytest.raises(UserError, match="metric 'map@100'"):
        plan_pipeline(t, budget=50, metric="map@100", n_boot=10)
    with pytest.raises(UserError, match="'chain-ms' is not a quality metric"):
        plan_pipeline(t, budget=50, metric="chain-ms", n_boot=10)
    with pytest.raises(UserError, match="no 'chain-ms' row"):
        plan_pipeline(t.filter(~((pl.col("depth") == 0) & (pl.col("metric") == "chain-ms")
                                 & (pl.col("first_stage") == "dense"))), budget=50, n_boot=10)


def test_allocate_pipeline_cli(tmp_path, capsys):
    from rerank_scaling.cli import main

    path = tmp_path / "chains.parquet"
    chain_table(seed=5).write_parquet(path)
    assert main(["allocate", "--pipeline", str(path), "--budget-ms", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["best"]["cost"] <= 2 and len(out[0]["runner_ups"]) == 4 and out[0]["frontier"]
    assert main(["allocate", "--pipeline", str(path), "--budget-flops", "1e9"]) == 0
    assert "Pareto frontier" in capsys.readouterr().out
    assert main(["allocate", "--pipeline", str(path)]) == 2
    assert "one budget" in capsys.readouterr().err
    assert main(["backtest", "--chains", str(path), "--json"]) == 0
    bt = json.loads(capsys.readouterr().out)
    assert bt[0]["chains"] == 21 and bt[0]["coverage"] is not None


def test_cli_mirrors_the_analyzer():
    from rerank_scaling.scaling.chain import HIDE
    from rerank_scaling.scaling.cli import CHAIN_HIDE

    assert CHAIN_HIDE == HIDE
