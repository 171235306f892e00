"""Forecast with any estimator, its interval calibrated by its width rule.

``forecast`` (and ``--estimator NAME``) runs the estimator the backtest scored (:mod:`.estimators`,
or ``law:NAME`` for a fitted law) on every group of a metric: runs with ``params <= fit_max_params``
are fitted, every larger size in the table (and each ``predict_params`` size) is forecast. Estimators
that pool evidence across groups (``mixture-pooled``, ``pooled-objectives``) see all groups of the
metric at once, as in the backtest. A :class:`~.backtest.WidthRule` gives the calibrated interval
(the engine's misspecification scale, or a conformal factor; :mod:`.calibration` keeps the ones
fitted on real ladders).

A size with runs in the table is forecast as the mean of its runs (the number it is compared with);
a ``predict_params`` size as one new run.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import estimators as E
from rerank_scaling.scaling.backtest import MIN_FIT_LEVELS, raw_interval
from rerank_scaling.scaling.baselines import inside
from rerank_scaling.scaling.table import as_table, group_columns, select_metric


def size_cases(table, metric: str, fit_max_params: float, *, eval_set: str | None = None,
               objective: str | None = None, predict_params=()) -> tuple[list[E.Case], dict]:
    """The size cases of every group of ``metric`` (runs with ``params <= fit_max_params`` fitted, every
    larger size and each ``predict_params`` size a target), and the model name of each size."""
    df = select_metric(as_table(table), metric, eval_set)
    if objective is not None:
        df = df.filter(pl.col("objective") == objective)
        if df.height == 0:
            raise UserError(f"objective '{objective}' has no rows for {metric}")
    keys = group_columns(df)
    models = {float(p): m for p, m in df.select("params", "model").unique().iter_rows()} if "model" in df.columns else {}
    cases = []
    for key_values, rows in df.group_by(keys, maintain_order=True):
        key = dict(zip(keys, key_values))
        fitted_sizes = rows.filter(pl.col("params") <= fit_max_params)["params"].n_unique()
        if fitted_sizes < MIN_FIT_LEVELS:
            label = ", ".join([metric] + [f"{k}={v}" for k, v in key.items() if v is not None])
            warnings.warn(f"skipped: {label}: {fitted_sizes} size(s) <= {fit_max_params:g}, an estimator needs "
                          f"{MIN_FIT_LEVELS}")
            continue
        case = E.size_case("table", metric, key, rows, fit_max_params, extra_targets=predict_params)
        if case.target_x.size:
            cases.append(case)
    if not cases:
        raise UserError(f"{metric}: no group has runs with params <= {fit_max_params:g} and a larger size to "
                        "forecast (add --predict-params)")
    return cases, models


def distributions(estimator: str, cases: list[E.Case], *, level: float = 0.9, n_boot: int = 1000,
                  seed: int = 0) -> list:
    """Per case, ``estimator``'s forecast distribution (``point``, ``interval(level, kappa)``)."""
    fn = E.size_estimator(estimator)
    return fn(cases, dict(level=level, n_boot=n_boot, seed=seed))


def run_estimator(estimator: str, cases: list[E.Case], *, level: float = 0.9, n_boot: int = 1000, seed: int = 0,
                  width_rule=None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per case: ``(pred, lower, upper, raw_lower, raw_upper)`` of ``estimator``, the interval the one of
    ``width_rule`` when given."""
    out = []
    for dist in distributions(estimator, cases, level=level, n_boot=n_boot, seed=seed):
        lo, hi = raw_interval(dist, level)
        lo_w, hi_w = width_rule.interval(dist, level) if width_rule is not None else (lo, hi)
        out.append((np.asarray(dist.point, float), np.asarray(lo_w, float), np.asarray(hi_w, float),
                    np.asarray(lo, float), np.asarray(hi, float)))
    return out


def estimator_forecasts(table, metric: str, fit_max_params: float, estimator: str, *, eval_set: str | None = None,
                        objective: str | None = None, level: float = 0.9, predict_params=(), n_boot: int = 1000,
                        seed: int = 0, width_rule=None) -> list[dict]:
    """One row per (group, target size): key columns, params, predicted, lower, upper (calibrated by
    ``width_rule`` when given), raw_lower/raw_upper, actual (NaN for ``predict_params`` sizes), error,
    covered, n_actual_runs, the noise the fit had (measured from seeds or not), estimator, calibrated."""
    cases, models = size_cases(table, metric, fit_max_params, eval_set=eval_set, objective=objective,
                               predict_params=predict_params)
    results = run_estimator(estimator, cases, level=level, n_boot=n_boot, seed=seed, width_rule=width_rule)
    out = []
    for case, (pred, lo_w, hi_w, lo, hi) in zip(cases, results):
        noise = case.noise()
        seeds = case.seeds_per_size()
        noise_text = (f"measured from seeds (sd {noise.sd:.3g})" if noise.source == "seeds" else
                      "unmeasured: one run per size (the fit's residual scatter stands in)")
        for j, x in enumerate(case.target_x):
            p, y = float(pred[j]), float(case.actual[j])
            known = math.isfinite(y)
            fin = math.isfinite(p) and math.isfinite(float(lo_w[j])) and math.isfinite(float(hi_w[j]))
            out.append({"eval_set": "default", **case.key, "model": models.get(float(x)), "metric": metric,
                        "params": float(x), "predicted": p,
                        "lower": float(lo_w[j]), "upper": float(hi_w[j]), "raw_lower": float(lo[j]),
                        "raw_upper": float(hi[j]), "actual": y if known else None,
                        "error": p - y if known and math.isfinite(p) else None,
                        "covered": bool(inside(lo_w[j], hi_w[j], y)) if known and fin else None,
                        "n_actual_runs": int(case.target_m[j]) if known else 0,
                        "estimator": estimator, "calibrated": width_rule is not None, "level": level,
                        "n_fit_runs": int(case.final.height), "n_fit_sizes": int(np.unique(case.levels()[0]).size),
                        "seeds_per_size": seeds, "noise": noise_text})
    return out
