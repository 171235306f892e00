"""Benchmark the scaling-law analyzer on a 192-run synthetic study.

    .venv/bin/python -m benchmarks.analyzer_bench [--bootstrap 1000]

Study: 3 objectives x 8 sizes (4M..1B) x 4 budgets x 2 seeds = 192 runs, 8
checkpoints each, 4 metrics.  Stages: forecast (ndcg@10, fit <= 150M), size
verdicts (4 metrics), exposure verdicts (4 metrics, per-model fits), allocation
(joint law).  Each line prints our wall time and, for the size-law stages, a
naive reference: the same cell bootstrap done as a loop of single-start
``scipy.optimize.curve_fit`` calls, timed on a subsample of refits and
extrapolated to the same number of refits.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy.optimize import curve_fit

from benchmarks.synthetic import synthetic_table
from rerank_scaling.scaling import allocate, exposure_verdicts, forecast, verdicts
from rerank_scaling.scaling.calibration import FALLBACK, default_estimator, width_rule
from rerank_scaling.scaling.estimate import estimator_forecasts
from rerank_scaling.scaling.table import normalise, run_values, select_metric


def naive_refit_seconds(table, metric: str, cut: float, n_refits: int = 200, seed: int = 0) -> tuple[float, float]:
    """Seconds per refit and failure rate of a plain curve_fit bootstrap loop."""
    vals = run_values(select_metric(table, metric))
    vals = vals.filter(vals["params"] <= cut)
    groups = list(vals.group_by(["objective", "budget"], maintain_order=True))
    rng = np.random.default_rng(seed)
    fails, t0 = 0, time.perf_counter()
    for i in range(n_refits):
        _, g = groups[i % len(groups)]
        N, y = g["params"].to_numpy().astype(float), g["value"].to_numpy()
        idx = rng.integers(0, N.size, N.size)  # resample runs (cells)
        try:
            curve_fit(lambda n, a, b, c: a + b * n**c, N[idx], y[idx], p0=(y.max(), -1.0, -0.3), maxfev=2000)
        except (RuntimeError, ValueError, TypeError):
            fails += 1
    return (time.perf_counter() - t0) / n_refits, fails / n_refits


def timed(fn):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--exposure-bootstrap", type=int, default=200)
    args = parser.parse_args()
    B = args.bootstrap
    table, t_build = timed(lambda: normalise(synthetic_table(budgets=(30_000, 100_000, 300_000, 1_000_000),
                                                             seeds=(0, 1))))
    n_runs = table.filter(table["model"] != "bm25")["run"].n_unique()
    print(f"study: {n_runs} runs (3 objectives x 8 sizes x 4 budgets x 2 seeds, 8 checkpoints, "
          f"4 metrics), {table.height} rows, built in {t_build:.2f} s")
    per_refit, fail = naive_refit_seconds(table, "ndcg@10", 150e6)
    print(f"naive reference: single-start curve_fit = {per_refit * 1e3:.2f} ms per refit "
          f"({fail:.0%} of refits failed to converge)")

    total = 0.0
    name = default_estimator() or FALLBACK
    rule = width_rule(name)
    rows, dt = timed(lambda: estimator_forecasts(table, "ndcg@10", 150e6, name, width_rule=rule))
    groups = len({(r["objective"], r["budget"]) for r in rows})
    naive = groups * B * per_refit
    total += dt
    print(f"forecast ndcg@10, default estimator {name}: {groups} groups: {dt:.2f} s "
          f"(a naive curve_fit bootstrap of {B} resamples each ~{naive:.1f} s, {naive / dt:.0f}x)")
    law_rows, dt = timed(lambda: forecast(table, "ndcg@10", 150e6, n_boot=B))
    total += dt
    print(f"forecast ndcg@10, law:auto: {groups} fits x {B} resamples: {dt:.2f} s")

    vs, dt = timed(lambda: verdicts(table, 150e6))
    fits = sum(v.n_fits for v in vs)
    naive = fits * B * per_refit
    total += dt
    print(f"size verdicts, 4 metrics, default estimator: {fits} fits: {dt:.2f} s "
          f"(a naive curve_fit bootstrap of {B} resamples each ~{naive:.1f} s, {naive / dt:.0f}x)")

    ev, dt = timed(lambda: exposure_verdicts(table))
    fits = sum(v.n_fits for v in ev)
    naive = fits * args.exposure_bootstrap * per_refit
    total += dt
    print(f"exposure verdicts, 4 metrics: {fits} per-model fits: {dt:.2f} s "
          f"(a naive curve_fit bootstrap of {args.exposure_bootstrap} resamples each ~{naive:.1f} s, "
          f"{naive / dt:.0f}x)")

    al, dt = timed(lambda: allocate(table, "ndcg@10", 3e17, n_boot=B))
    total += dt
    print(f"allocate ndcg@10 (joint law on {table.height // 4} checkpoints): {len(al)} fits x {B} resamples: {dt:.2f} s")
    from rerank_scaling.scaling.backtest import backtest

    sub = table.filter((table["metric"] == "ndcg@10") & (table["budget"] == 100_000))
    bt, dt = timed(lambda: backtest(sub, n_boot=200, exposure=False))
    total += dt
    print(f"backtest ndcg@10, one budget, hide 1 and 2 sizes: {bt.cases.height} case-estimator rows, "
          f"{bt.summary.height} estimators x hold-outs, 200 resamples: {dt:.2f} s")
    print(f"total analysis wall time: {total:.2f} s")
    again, _ = naive_refit_seconds(table, "ndcg@10", 150e6, seed=1)
    print(f"naive reference re-timed after the run: {again * 1e3:.2f} ms per refit "
          f"(vs {per_refit * 1e3:.2f} ms before; the machine is shared, ratios above use the first)")
    ok = sum(bool(v.extrapolates) for v in vs)
    rel = [r["error"] / r["actual"] for r in rows if r["actual"]]
    print(f"sanity: {ok}/{len(vs)} size verdicts extrapolate; mean signed rel. error of ndcg@10 forecasts "
          f"{np.mean(rel):+.2%}, interval coverage {np.mean([r['covered'] for r in rows if r['actual']]):.0%}")


if __name__ == "__main__":
    main()
