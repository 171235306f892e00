"""Forecast larger models from a size law fitted to the smaller ones.

Runs are grouped by family, objective, supervision, eval set and budget (those present);
within a group, every run (seed) with ``params <= fit_max_params`` is one point
(its value at the end of training, see :func:`table.run_values`) and one
bootstrap cell.  Each larger model in the group is predicted and compared with
its actual value (the mean over its runs).

Errors are ``predicted - actual``: ``error`` and ``rel_error`` are signed (a
negative mean = forecasts biased low), ``abs_error`` is ``|error|``.
``lower``/``upper`` bound a *new run* of that model at ``level`` (prediction
interval), see :meth:`FitResult.interval`.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.scaling.baselines import inside
from rerank_scaling.scaling.fit import FitResult, fit_law
from rerank_scaling.scaling.laws import DATA_LAWS, JOINT_LAWS
from rerank_scaling.scaling.selection import CHOICES, LawChoice, choose_law
from rerank_scaling.scaling.table import DATA_AXES, as_table, budget_axis, group_columns, run_values, select_metric
from rerank_scaling.scaling.util import jsonable

FORECAST_LAWS = (*CHOICES, *JOINT_LAWS)
FIT_LAWS = (*FORECAST_LAWS, *DATA_LAWS)  # data laws are fitted per model (no size forecast)


@dataclass(frozen=True)
class Forecast:
    objective: str
    model: str
    params: float
    metric: str
    eval_set: str
    predicted: float
    lower: float
    upper: float
    actual: float | None
    abs_error: float | None
    rel_error: float | None
    law: str
    law_reason: str
    level: float
    error: float | None = None
    covered: bool | None = None
    supervision: str | None = None
    budget: float | None = None
    family: str | None = None  # the model family, where the table has one
    raw_predicted: float | None = None  # law fit before the bias correction
    n_actual_runs: int = 0
    n_fit_runs: int = 0
    n_fit_sizes: int = 0
    fit_max_params: float = 0.0
    bootstrap: str | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class GroupFit:
    """One fitted group: its key, the chosen law, the fit and its forecasts."""

    key: dict
    metric: str
    choice: LawChoice
    fit: FitResult
    points: pl.DataFrame  # the run values that were fitted
    forecasts: tuple[Forecast, ...]


def group_label(metric: str, key: dict) -> str:
    parts = [metric] + [f"{k}={v}" for k, v in key.items() if v is not None and not (k == "eval_set" and v == "default")]
    return ", ".join(parts)


def _groups(vals: pl.DataFrame, by_model: bool = False) -> list[tuple[dict, pl.DataFrame]]:
    keys = group_columns(vals) + (["model"] if by_model else [])
    out = []
    for key_values, sub in vals.group_by(keys, maintain_order=True):
        out.append((dict(zip(keys, key_values)), sub))
    return out


def fit_groups(
    table,
    metric: str,
    fit_max_params: float,
    *,
    eval_set: str | None = None,
    law: str = "auto",
    level: float = 0.9,
    n_boot: int = 1000,
    seed: int = 0,
    evidence: str = "final",
    late_fraction: float = 0.7,
    loss: str = "linear",
    bias_correct: bool = True,
    bootstrap_scheme: str = "auto",
    predict_params=(),
    objective: str | None = None,
    data_axis: str = "exposure",
) -> list[GroupFit]:
    """Fit every group of ``metric`` on runs with ``params <= fit_max_params``.

    ``data_axis`` is what D means for the joint and data laws: ``"exposure"``
    (every checkpoint of a run is a point at its examples seen) or ``"budget"``
    (each run's final value is one point at its data budget, the number of
    annotated training queries; runs that differ only in budget then share a
    group). Data laws (:data:`DATA_LAWS`) are fitted per model and forecast
    nothing. Groups that cannot be fitted are skipped with a warning; if none
    can, the first group's :class:`UserError` is raised.
    """
    df = select_metric(as_table(table), metric, eval_set)
    if objective is not None:
        df = df.filter(pl.col("objective") == objective)
        if df.height == 0:
            raise UserError(f"objective '{objective}' has no rows for {metric}")
    if law not in FIT_LAWS:
        raise UserError(f"unknown law '{law}' (choose from {', '.join(FIT_LAWS)})")
    if data_axis not in DATA_AXES:
        raise UserError(f"unknown data axis '{data_axis}' (choose from {', '.join(DATA_AXES)})")
    joint, data = law in JOINT_LAWS, law in DATA_LAWS
    if (joint or data) and data_axis == "exposure" and df["exposure"].is_null().all():
        raise UserError(f"law '{law}' needs training exposure (an examples_seen or step column)")
    vals = run_values(df, evidence, late_fraction)
    if data_axis == "budget":
        vals = budget_axis(vals)
    results: list[GroupFit] = []
    errors: list[UserError] = []
    for gi, (key, sub) in enumerate(_groups(vals, by_model=data)):
        label = group_label(metric, key)
        train = sub.filter(pl.col("params") <= fit_max_params)
        if train.height == 0:
            errors.append(UserError(f"{label}: no runs with params <= {fit_max_params:g} to fit"))
            continue
        N = train["params"].to_numpy().astype(float)
        y = train["value"].to_numpy().astype(float)
        pts, D = train, None
        if (joint or data) and data_axis == "budget":  # each run's final value at its budget
            D = train["exposure"].to_numpy().astype(float)
        elif joint or data:  # every checkpoint of the fitted runs is a point (N, D, y)
            pts = _match_key(df, key).filter(pl.col("run").is_in(train["run"].to_list())
                                             & pl.col("exposure").is_not_null() & (pl.col("exposure") > 0))
            N, D = pts["params"].to_numpy().astype(float), pts["exposure"].to_numpy().astype(float)
            y = pts["value"].to_numpy().astype(float)
        try:
            if joint or data:
                where = (f"the final values of {train.height} runs at their data budgets" if data_axis == "budget"
                         else f"{pts.height} checkpoints of {train.height} runs")
                then = "" if data else (", forecast at each larger model's final " + (
                    "budget" if data_axis == "budget" else "exposure"))
                choice = LawChoice(law, f"{law}: requested; fitted on {where}{then}", ())
            else:
                choice = choose_law(law, N, y, metric)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit = fit_law(
                    choice.law, N, y, D=D, metric=metric, cells=pts["run"].to_numpy(), loss=loss,
                    n_boot=n_boot, level=level, bootstrap_scheme=bootstrap_scheme, seed=seed + gi, label=label,
                )
        except UserError as exc:
            errors.append(exc)
            continue
        notes = tuple(str(w.message) for w in caught)
        results.append(GroupFit(key, metric, choice, fit, train, () if data else _predict_group(
            key, metric, sub, fit, choice, fit_max_params, predict_params, bias_correct, notes)))
    if not results:
        if errors:
            raise errors[0]
        raise UserError(f"{metric}: nothing to fit")
    for exc in errors:
        warnings.warn(f"skipped: {exc}", stacklevel=2)
    return results


def _match_key(df: pl.DataFrame, key: dict) -> pl.DataFrame:
    for k, v in key.items():
        if k in df.columns:
            df = df.filter(pl.col(k).is_null() if v is None else pl.col(k) == v)
    return df


def _predict_group(key, metric, sub, fit, choice, cut, predict_params, bias_correct, notes) -> tuple[Forecast, ...]:
    bigger = (
        sub.filter(pl.col("params") > cut)
        .group_by("model", "params")
        .agg(pl.col("value").mean().alias("actual"), pl.len().alias("n"), pl.col("exposure").mean().alias("d"))
        .sort("params")
    )
    d_fit = sub.filter(pl.col("params") <= cut)["exposure"].max()
    targets = [(r["model"], float(r["params"]), float(r["actual"]), int(r["n"]), r["d"])
               for r in bigger.iter_rows(named=True)]
    known = {t[1] for t in targets}
    targets += [(f"N={p:.3g}", float(p), None, 0, d_fit) for p in predict_params if float(p) not in known]
    if not targets:
        return ()
    targets.sort(key=lambda t: t[1])
    sizes = np.array([t[1] for t in targets])
    D = None
    if "D" in fit.law.inputs:  # joint laws: each target at its final exposure (the largest fitted one if unknown)
        D = np.array([float(t[4]) if t[4] is not None else float(d_fit) for t in targets])
    has_boot = fit.draws is not None and fit.draws.theta.shape[0] > 0
    raw = fit.predict(sizes, D)
    point = fit.forecast(sizes, D, bias_corrected=bias_correct) if has_boot else raw
    if has_boot:
        lower, upper = fit.interval(sizes, D, bias_corrected=bias_correct)
    else:
        lower = upper = np.full(sizes.size, np.nan)
    out = []
    for i, (model, params, actual, n_act, _) in enumerate(targets):
        pred = float(point[i])
        err = None if actual is None else pred - actual
        rel = None if actual is None or actual == 0 else err / abs(actual)
        covered = None if actual is None or not has_boot else bool(inside(lower[i], upper[i], actual))
        out.append(Forecast(
            objective=str(key.get("objective")), model=model, params=params, metric=metric,
            eval_set=str(key.get("eval_set", "default")), predicted=pred, lower=float(lower[i]),
            upper=float(upper[i]), actual=actual, abs_error=None if err is None else abs(err),
            rel_error=rel, law=fit.law.name, law_reason=choice.reason, level=fit.level, error=err,
            covered=covered, supervision=key.get("supervision"), budget=key.get("budget"),
            family=key.get("family"), raw_predicted=float(raw[i]), n_actual_runs=n_act, n_fit_runs=fit.n_cells,
            n_fit_sizes=fit.n_distinct, fit_max_params=float(cut), bootstrap=fit.bootstrap_scheme,
            warnings=notes,
        ))
    return tuple(out)


def forecast(
    table,
    metric: str,
    fit_max_params: float,
    eval_set: str | None = None,
    law: str = "auto",
    level: float = 0.9,
    n_boot: int = 1000,
    seed: int = 0,
    **options,
) -> list[Forecast]:
    """Predict every model larger than ``fit_max_params`` (per objective/eval set/budget).

    ``table`` is a DataFrame or a path; ``options`` are those of :func:`fit_groups`
    (``evidence``, ``late_fraction``, ``loss``, ``bias_correct``, ``bootstrap_scheme``,
    ``predict_params``, ``objective``).
    """
    groups = fit_groups(table, metric, fit_max_params, eval_set=eval_set, law=law, level=level,
                        n_boot=n_boot, seed=seed, **options)
    return [f for g in groups for f in g.forecasts]
