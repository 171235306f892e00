"""Does a metric extrapolate?  Held-out checks over model size and over exposure.

A check fits on the "small" part of the data, forecasts the held-out part and
decides, per (metric, family, objective, supervision, eval set), with three tests that
each name their numbers in :attr:`Verdict.reason`:

(a) **it moves** -- the span of the fitted levels' means exceeds the metric's
    run-to-run noise: the studentized range ``q`` (see :mod:`.evidence`) is above
    its 95% quantile.  Otherwise the verdict is ``not informative`` (a constant
    or saturated metric, or one whose trend is lost in noise): a small error
    there says nothing about extrapolation.
(b) **it beats the naive forecasts** -- the mean absolute held-out error is below
    that of carrying the largest fitted value forward, and not above that of the
    log-linear extension ``a + b*ln x`` (see :mod:`.baselines`).
(c) **its intervals are calibrated and useful** -- at least ``min_coverage`` of
    the held-out actuals lie inside the ``level`` prediction interval, and the
    mean interval score (width + ``2/alpha`` x miss) is no worse than that of the
    carry-forward interval built from the measured noise.

``status`` is ``extrapolates`` (a, b, c pass), ``does not extrapolate`` (a passes,
b or c fails), ``not informative`` (a fails) or ``not judged`` (nothing held out,
nothing fitted).  ``extrapolates`` is True / False / False / None.  With
``max_rel_error`` set, (b) also needs mean |relative error| <= it.  Without
intervals (too few points to bootstrap) (c) is skipped and the reason says so;
when the noise cannot be measured (a) is skipped likewise.

Relative errors are ``(pred - actual)/|actual|``; ``mean_rel_error`` keeps the sign.

* :func:`verdicts` -- size check: fit runs with ``params <= fit_max_params``, forecast
  the larger models (as :func:`forecast.forecast`).
* :func:`exposure_verdicts` -- exposure check: for each model (seeds pooled), fit the
  data law on checkpoints with ``D <= fit_fraction * D_max`` and forecast the later ones.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import baselines
from rerank_scaling.scaling.estimate import run_estimator, size_cases
from rerank_scaling.scaling.evidence import MOVES_LEVEL, Movement, moves, noise_estimate
from rerank_scaling.scaling.fit import fit_many
from rerank_scaling.scaling.forecast import fit_groups, group_label
from rerank_scaling.scaling.table import CONDITION_KEYS, as_table, group_columns, select_metric
from rerank_scaling.scaling.util import jsonable

DEFAULT_MAX_REL_ERROR = None  # off: the rule is relative to noise and baselines, not a fixed percentage
DEFAULT_MIN_COVERAGE = 0.5
VERDICT_KEYS = CONDITION_KEYS
STATUSES = ("extrapolates", "does not extrapolate", "not informative", "not judged")


@dataclass(frozen=True)
class Verdict:
    kind: str  # "size" or "exposure"
    metric: str
    objective: str
    eval_set: str
    extrapolates: bool | None
    reason: str
    n_targets: int
    mean_abs_rel_error: float | None
    max_abs_rel_error: float | None
    mean_rel_error: float | None
    coverage: float | None
    r2: float | None
    residual_rmse: float | None
    law: str
    supervision: str | None = None
    family: str | None = None  # the model family, where the table has one
    n_fits: int = 0
    residuals: tuple[float, ...] = ()
    max_rel_error: float | None = DEFAULT_MAX_REL_ERROR
    min_coverage: float = DEFAULT_MIN_COVERAGE
    level: float = 0.9
    status: str = "not judged"
    # (a) movement against noise
    span: float | None = None
    noise_sd: float | None = None
    noise_source: str | None = None
    moves_q: float | None = None
    moves_threshold: float | None = None
    moves: bool | None = None
    # (b) held-out error against the naive forecasts
    mae: float | None = None
    mae_carry_forward: float | None = None
    mae_loglinear: float | None = None
    # (c) intervals
    interval_score: float | None = None
    interval_score_carry_forward: float | None = None
    median_width: float | None = None
    checks: dict = field(default_factory=dict)  # name -> True/False/None for a, b, c

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


@dataclass
class Unit:
    """One fit's evidence: its movement and its held-out targets with the baselines'."""

    movement: Movement
    pred: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    actual: np.ndarray
    carry: np.ndarray
    carry_lo: np.ndarray
    carry_hi: np.ndarray
    loglin: np.ndarray


def make_unit(levels, values, series, pred, lo, hi, actual, targets, level: float) -> Unit:
    """Evidence of one fit on ``(levels, values)`` (one point per run) forecasting ``targets``."""
    levels, values = np.asarray(levels, float), np.asarray(values, float)
    noise = noise_estimate(levels, values, series)
    mv = moves(levels, values, noise)
    targets = np.asarray(targets, float)
    carry, c_lo, c_hi = baselines.carry_forward(levels, values, targets, noise.sd, noise.df, level)
    loglin, _, _ = baselines.loglinear(levels, values, targets, level)
    arr = [np.asarray(v, float).reshape(-1) for v in (pred, lo, hi, actual)]
    return Unit(mv, *arr, carry, c_lo, c_hi, loglin)


def _f(v) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def judge(units: list[Unit], level: float, min_coverage: float, max_rel_error: float | None,
          axis: str = "sizes") -> dict:
    """Status, reason and numbers of a verdict from its units (see module doc)."""
    out: dict = {"checks": {}}
    if not units:
        return {**out, "status": "not judged", "extrapolates": None, "reason": "nothing fitted"}
    mvs = [u.movement for u in units]
    known = [m for m in mvs if m.moves is not None]
    first = mvs[0]
    out.update(span=_f(float(np.mean([m.span for m in mvs]))), noise_sd=_f(first.noise.sd),
               noise_source=first.noise.source, moves_q=_f(float(np.median([m.q for m in known]))) if known else None,
               moves_threshold=_f(float(np.median([m.threshold for m in known]))) if known else None)
    if len(units) == 1 or all(m.constant for m in mvs):
        move_text = first.describe(axis) + (f" (all {len(units)} fits)" if len(units) > 1 else "")
    else:
        move_text = (f"{sum(bool(m.moves) for m in known)}/{len(units)} fits move beyond noise (median q "
                     f"{out['moves_q'] if out['moves_q'] is not None else float('nan'):.3g} vs "
                     f"{out['moves_threshold'] if out['moves_threshold'] is not None else float('nan'):.3g}; "
                     f"first: {first.describe(axis)})")
    is_moving = None if not known else (sum(bool(m.moves) for m in known) * 2 > len(known))
    if all(m.constant for m in mvs):
        is_moving = False
    out["moves"] = is_moving
    out["checks"]["moves"] = is_moving

    cat = {k: np.concatenate([getattr(u, k) for u in units]) for k in
           ("pred", "lo", "hi", "actual", "carry", "carry_lo", "carry_hi", "loglin")}
    has = np.isfinite(cat["actual"]) & np.isfinite(cat["pred"])
    n = int(has.sum())
    out["n_targets"] = n
    flat_text = f"not informative: {move_text}" + ("" if first.constant else " -- the trend is within run-to-run noise")
    if n == 0:
        if is_moving is False:
            return {**out, "status": "not informative", "extrapolates": False, "reason": flat_text}
        return {**out, "status": "not judged", "extrapolates": None,
                "reason": f"nothing held out to check; {move_text}"}
    y, pred = cat["actual"][has], cat["pred"][has]
    err = np.abs(pred - y)
    mae, mae_c = float(err.mean()), float(np.abs(cat["carry"][has] - y).mean())
    ll = cat["loglin"][has]
    mae_l = float(np.abs(ll - y).mean()) if np.all(np.isfinite(ll)) else math.nan
    out.update(mae=_f(mae), mae_carry_forward=_f(mae_c), mae_loglinear=_f(mae_l))
    beats_c = mae < mae_c
    beats_l = not math.isfinite(mae_l) or mae <= mae_l * (1 + 1e-9) + 1e-15
    ok_b = beats_c and beats_l
    b_text = (f"MAE {mae:.3g} vs carry-forward {mae_c:.3g} ({'<' if beats_c else '>='}) and log-linear "
              f"{mae_l:.3g} ({'<=' if beats_l else '>'})")
    rel = (pred - y) / np.where(y == 0, np.nan, np.abs(y))
    rel = rel[np.isfinite(rel)]
    if rel.size:
        b_text += f", mean |rel err| {np.mean(np.abs(rel)):.1%}"
        if max_rel_error is not None:
            ok_rel = float(np.mean(np.abs(rel))) <= max_rel_error
            ok_b = ok_b and ok_rel
            b_text += f" {'<=' if ok_rel else '>'} {max_rel_error:.1%}"
    out["checks"]["beats_baselines"] = ok_b
    lo, hi = cat["lo"][has], cat["hi"][has]
    fin = np.isfinite(lo) & np.isfinite(hi)
    if fin.any():
        covered = baselines.inside(lo[fin], hi[fin], y[fin])
        cov = float(covered.mean())
        score = float(baselines.interval_score(lo[fin], hi[fin], y[fin], level).mean())
        c_lo, c_hi = cat["carry_lo"][has][fin], cat["carry_hi"][has][fin]
        score_c = (float(baselines.interval_score(c_lo, c_hi, y[fin], level).mean())
                   if np.all(np.isfinite(c_lo)) else math.nan)
        ok_cov = cov >= min_coverage
        ok_score = not math.isfinite(score_c) or score <= score_c
        ok_c = ok_cov and ok_score
        out.update(coverage=cov, interval_score=_f(score), interval_score_carry_forward=_f(score_c),
                   median_width=_f(float(np.median(hi[fin] - lo[fin]))))
        c_text = (f"{int(covered.sum())}/{covered.size} inside the {level:.0%} interval "
                  f"({'>=' if ok_cov else '<'} {min_coverage:.0%}), interval score {score:.3g} vs carry-forward "
                  f"{score_c:.3g} ({'<=' if ok_score else '>'})")
    else:
        ok_c, out["coverage"] = None, None
        c_text = "no intervals (too few points to bootstrap): judged on the error alone"
    out["checks"]["intervals"] = ok_c
    if rel.size:
        out.update(mean_abs_rel_error=float(np.mean(np.abs(rel))), max_abs_rel_error=float(np.max(np.abs(rel))),
                   mean_rel_error=float(np.mean(rel)))
    if is_moving is False:  # small errors on a flat metric say nothing: numbers shown, not judged on them
        return {**out, "status": "not informative", "extrapolates": False,
                "reason": f"{flat_text}; (error: {b_text}; intervals: {c_text})"}
    ok = ok_b and ok_c is not False
    status = "extrapolates" if ok else "does not extrapolate"
    if is_moving is None:
        move_text = "movement not tested: " + move_text
    reason = f"{status}: moves: {move_text}; error: {b_text}; intervals: {c_text}"
    return {**out, "status": status, "extrapolates": bool(ok), "reason": reason}


def _verdict(kind, metric, key, fits, units, law, max_rel_error, min_coverage, level, reason: str | None = None,
             axis: str = "sizes") -> Verdict:
    j = judge(units, level, min_coverage, max_rel_error, axis)
    if reason is not None:
        j.update(reason=reason, status="not judged", extrapolates=None)
    resid = np.concatenate([f.residuals for f in fits]) if fits else np.array([])
    r2s = [f.r2 for f in fits if np.isfinite(f.r2)]
    fields = {k: j.get(k) for k in ("status", "extrapolates", "reason", "span", "noise_sd", "noise_source", "moves_q",
                                    "moves_threshold", "moves", "mae", "mae_carry_forward", "mae_loglinear",
                                    "interval_score", "interval_score_carry_forward", "median_width", "coverage",
                                    "mean_abs_rel_error", "max_abs_rel_error", "mean_rel_error")}
    return Verdict(
        kind=kind, metric=metric, objective=str(key.get("objective")), eval_set=str(key.get("eval_set")),
        n_targets=int(j.get("n_targets", 0)), r2=float(np.mean(r2s)) if r2s else None,
        residual_rmse=float(np.sqrt(np.mean(resid**2))) if resid.size else None, law=law,
        supervision=key.get("supervision"), family=key.get("family"), n_fits=len(fits), residuals=tuple(float(r) for r in resid),
        max_rel_error=max_rel_error, min_coverage=min_coverage, level=level, checks=j.get("checks", {}), **fields,
    )


def _metrics(df: pl.DataFrame, metrics) -> list[str]:
    if metrics is None:
        return sorted(df.filter(~pl.col("baseline"))["metric"].unique().to_list())
    return [m.strip() for m in metrics if m.strip()]


def _match(df: pl.DataFrame, key: dict) -> pl.DataFrame:
    for k, v in key.items():
        if k in df.columns:
            df = df.filter(pl.col(k).is_null() if v is None else pl.col(k) == v)
    return df


def checkpoint_series(rows: pl.DataFrame) -> list[np.ndarray]:
    """Per run, its values in exposure order (only runs with >= 2 checkpoints with an exposure)."""
    rows = rows.filter(pl.col("exposure").is_not_null())
    if rows.height == 0:
        return []
    out = []
    for _, sub in rows.sort("exposure").group_by("run", maintain_order=True):
        if sub.height >= 2:
            out.append(sub["value"].to_numpy().astype(float))
    return out


def verdicts(
    table,
    fit_max_params: float,
    metrics=None,
    eval_set: str | None = None,
    law: str = "auto",
    level: float = 0.9,
    n_boot: int = 1000,
    max_rel_error: float | None = DEFAULT_MAX_REL_ERROR,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    seed: int = 0,
    estimator: str | None = None,
    width_rule=None,
    **options,
) -> list[Verdict]:
    """Size check per (metric, objective, supervision, eval set); ``metrics=None`` = all.

    With ``estimator`` (a name of :data:`.estimators.SIZE_ESTIMATORS`, e.g. the calibrated default of
    :mod:`.calibration`) the held-out forecasts and intervals are that estimator's, widened by
    ``width_rule`` when given, instead of ``law``'s."""
    df = as_table(table)
    if estimator is not None:
        return _estimator_verdicts(df, fit_max_params, _metrics(df, metrics), eval_set, estimator, width_rule,
                                   level, n_boot, seed, max_rel_error, min_coverage)
    out = []
    for metric in _metrics(df, metrics):
        try:
            groups = fit_groups(df, metric, fit_max_params, eval_set=eval_set, law=law, level=level,
                                n_boot=n_boot, seed=seed, **options)
        except UserError as exc:  # this metric cannot be fitted: say so, keep judging the others
            out.append(_verdict("size", metric, {"objective": "-", "eval_set": eval_set or "-"}, [], [],
                                law, max_rel_error, min_coverage, level, reason=str(exc)))
            continue
        rows = select_metric(df, metric, eval_set)
        by_key: dict[tuple, list] = {}
        for g in groups:
            by_key.setdefault(tuple(g.key.get(k) for k in VERDICT_KEYS), []).append(g)
        for key_t, gs in by_key.items():
            units = []
            for g in gs:
                fitted = _match(rows, g.key).filter(pl.col("run").is_in(g.points["run"].to_list()))
                checked = [f for f in g.forecasts if f.actual is not None]
                units.append(make_unit(
                    g.points["params"].to_numpy(), g.points["value"].to_numpy(), checkpoint_series(fitted),
                    [f.predicted for f in checked], [f.lower for f in checked], [f.upper for f in checked],
                    [f.actual for f in checked], [f.params for f in checked], level))
            laws = sorted({g.fit.law.name for g in gs})
            out.append(_verdict("size", metric, dict(zip(VERDICT_KEYS, key_t)), [g.fit for g in gs], units,
                                "/".join(laws), max_rel_error, min_coverage, level))
    return out


def _estimator_verdicts(df, fit_max_params, metrics, eval_set, estimator, width_rule, level, n_boot, seed,
                        max_rel_error, min_coverage) -> list[Verdict]:
    name = estimator + (" (calibrated)" if width_rule is not None else "")
    out = []
    for metric in metrics:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cases, _ = size_cases(df, metric, fit_max_params, eval_set=eval_set)
                results = run_estimator(estimator, cases, level=level, n_boot=n_boot, seed=seed,
                                        width_rule=width_rule)
        except UserError as exc:
            out.append(_verdict("size", metric, {"objective": "-", "eval_set": eval_set or "-"}, [], [],
                                name, max_rel_error, min_coverage, level, reason=str(exc)))
            continue
        by_key: dict[tuple, list[Unit]] = {}
        for case, (pred, lo, hi, _, _) in zip(cases, results):
            known = np.isfinite(case.actual)
            x, y = case.levels()
            by_key.setdefault(tuple(case.key.get(k) for k in VERDICT_KEYS), []).append(make_unit(
                x, y, case.series(), pred[known], lo[known], hi[known], case.actual[known], case.target_x[known],
                level))
        for key_t, units in by_key.items():
            out.append(_verdict("size", metric, dict(zip(VERDICT_KEYS, key_t)), [], units, name, max_rel_error,
                                min_coverage, level))
    return out


def exposure_verdicts(
    table,
    metrics=None,
    eval_set: str | None = None,
    fit_fraction: float = 0.5,
    law: str = "auto",
    level: float = 0.9,
    n_boot: int = 200,
    max_rel_error: float | None = DEFAULT_MAX_REL_ERROR,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    seed: int = 0,
    bias_correct: bool = True,
) -> list[Verdict]:
    """Exposure check: fit ``D <= fit_fraction * D_max`` per model, forecast later checkpoints.

    ``law``: ``auto`` (data law ``a + b*D^c``, or ``a + b*ln D`` with < 4 early
    checkpoints), ``data`` or ``data-loglinear``.  Movement (a) is measured per
    model over its early checkpoints; the carry-forward baseline is the last early
    checkpoint's mean, the log-linear one ``a + b*ln D`` on the early checkpoints.
    """
    if law not in ("auto", "data", "data-loglinear"):
        raise UserError(f"unknown exposure law '{law}' (choose auto, data or data-loglinear)")
    df = as_table(table)
    if df["exposure"].is_null().all():
        raise UserError("exposure check needs an examples_seen or step column")
    out = []
    for mi, metric in enumerate(_metrics(df, metrics)):
        sub = select_metric(df, metric, eval_set).filter(pl.col("exposure").is_not_null() & (pl.col("exposure") > 0))
        keys = group_columns(sub)
        jobs: dict[str, list[tuple[dict, dict, pl.DataFrame, pl.DataFrame]]] = {}
        for key_values, model_rows in sub.group_by([*keys, "params"], maintain_order=True):
            key = dict(zip([*keys, "params"], key_values))
            d_max = float(model_rows["exposure"].max())
            early = model_rows.filter(pl.col("exposure") <= fit_fraction * d_max)
            late = model_rows.filter(pl.col("exposure") > fit_fraction * d_max)
            n_d = early["exposure"].n_unique()
            if late.height == 0 or n_d < 2:
                continue
            name = law if law != "auto" else ("data" if n_d >= 4 else "data-loglinear")
            D = early["exposure"].to_numpy().astype(float)
            problem = dict(N=np.ones_like(D), y=early["value"].to_numpy().astype(float), D=D,
                           cells=early["run"].to_numpy(), strata=np.ones_like(D),
                           label=group_label(metric, key) + " (exposure)")
            jobs.setdefault(name, []).append((key, problem, late, model_rows))
        per_key: dict[tuple, tuple[list, list, set]] = {}
        for li, (name, items) in enumerate(jobs.items()):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits = fit_many(name, [pr for _, pr, _, _ in items], metric=metric, n_boot=n_boot, level=level,
                                seed=seed + 1000 * mi + li)
            for (key, problem, late, model_rows), fit in zip(items, fits):
                if isinstance(fit, UserError):
                    continue
                d_late = late["exposure"].to_numpy().astype(float)
                actual = late["value"].to_numpy().astype(float)
                ones = np.ones_like(d_late)
                if fit.draws is not None and fit.draws.theta.shape[0] and fit.df >= 1:
                    pred = fit.forecast(ones, d_late, bias_corrected=bias_correct)
                    lo, hi = fit.interval(ones, d_late, bias_corrected=bias_correct)
                else:
                    pred = fit.predict(ones, d_late)
                    lo = hi = np.full(d_late.size, np.nan)
                unit = make_unit(problem["D"], problem["y"], checkpoint_series(model_rows), pred, lo, hi, actual,
                                 d_late, level)
                vkey = tuple(key.get(k) for k in VERDICT_KEYS)
                fits_k, units, laws = per_key.setdefault(vkey, ([], [], set()))
                fits_k.append(fit)
                units.append(unit)
                laws.add(name)
        for vkey, (fits_k, units, laws) in per_key.items():
            out.append(_verdict("exposure", metric, dict(zip(VERDICT_KEYS, vkey)), fits_k, units,
                                "/".join(sorted(laws)), max_rel_error, min_coverage, level, axis="exposures"))
    return out


__all__ = ["DEFAULT_MAX_REL_ERROR", "DEFAULT_MIN_COVERAGE", "MOVES_LEVEL", "STATUSES", "Verdict", "exposure_verdicts",
           "judge", "make_unit", "verdicts"]
