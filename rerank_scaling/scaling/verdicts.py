"""Does a metric extrapolate?  Held-out checks over model size and over exposure.

A check fits the default forecast estimator (:mod:`.calibration`; its intervals calibrated on real
ladders) on the "small" part of the data, forecasts the held-out part and decides, per (metric,
family, objective, supervision, eval set), with four tests that each name their numbers in
:attr:`Verdict.reason`:

(a) **noise is measured** -- from seeds, or from the scatter of at least 3 late checkpoints per run
    around their trend (:mod:`.evidence`). Without it nothing can tell a trend from noise: the
    verdict is ``not testable`` (the forecast's numbers are still shown).
(b) **it moves, meaningfully and the right way** -- the span of the fitted levels' means exceeds
    run-to-run noise (studentized range ``q`` above its 95% quantile) *and* the minimum meaningful
    effect (:func:`min_effect`: 0.01 of a bounded metric's range -- one point of NDCG -- else 1% of
    its level), and the log-linear trend points the metric's way (up for NDCG, down for entropy).
    Constant, flat-in-noise or below-effect metrics are ``not informative``; one that moves the wrong
    way ``does not extrapolate``.
(c) **the forecast holds** -- at least ``min_coverage`` of the held-out actuals lie inside the
    forecast's ``level`` interval; otherwise ``does not extrapolate``.
(d) **the forecast says something** -- its one-sided 90% bound lies beyond the last fitted level's
    mean (its central 80% interval excludes it: it forecasts a change) or its ``level`` interval is
    within the minimum effect on both sides (it forecasts a plateau precisely); a forecast too
    uncertain to tell from carrying the last value forward is ``not informative``.

``extrapolates`` is True for ``extrapolates``, False for ``does not extrapolate`` / ``not
informative``, None for ``not testable`` / ``not judged``. The error against carrying the largest
fitted value forward and against the log-linear extension is reported, not judged on: on one
held-out size it is a coin toss whenever the step is below noise (benchmarks/verdict_power.py).

* :func:`verdicts` -- size check: fit runs with ``params <= fit_max_params``, forecast the larger models.
* :func:`exposure_verdicts` -- exposure check: for each model (seeds pooled), fit checkpoints with
  ``D <= fit_fraction * D_max`` and forecast the later ones.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl
from scipy import stats

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import baselines
from rerank_scaling.scaling import estimators as E
from rerank_scaling.scaling.backtest import raw_interval
from rerank_scaling.scaling.engine import MIN_EFFECT, Predictive, min_effect
from rerank_scaling.scaling.estimate import distributions, size_cases
from rerank_scaling.scaling.evidence import MOVES_LEVEL, Movement, moves, noise_estimate
from rerank_scaling.scaling.table import CONDITION_KEYS, as_table, group_columns, run_values, select_metric
from rerank_scaling.scaling.util import jsonable

DEFAULT_MAX_REL_ERROR = None  # off: the rule is relative to noise and the minimum effect, not a fixed percentage
DEFAULT_MIN_COVERAGE = 0.5
VERDICT_KEYS = CONDITION_KEYS
STATUSES = ("extrapolates", "does not extrapolate", "not informative", "not testable", "not judged")
INNER_LEVEL = 0.8  # "forecasts a change": the central 80% interval (one-sided 90%) excludes the last fitted value


def rule(min_coverage: float = DEFAULT_MIN_COVERAGE, level: float = 0.9) -> str:
    """The verdict rule in words (the CLI and the report print this one text)."""
    from rerank_scaling.scaling.evidence import LATE, MIN_LATE

    return (f"A metric *extrapolates* in a group when (a) its run-to-run noise is measured: two seeds at a size, or "
            f"at least {MIN_LATE} checkpoints in the last {1 - LATE:.0%} of every run's training (else *not "
            "testable*); (b) it moves: the span of its fitted levels exceeds that noise (studentized range q above "
            "its 95% quantile) and the minimum meaningful effect, the metric's way (else *not informative*); (c) at "
            f"least {min_coverage:.0%} of the held-out actuals fall inside the {level:.0%} interval (else *does not "
            "extrapolate*); (d) the forecast says something: its one-sided 90% bound lies beyond the last fitted "
            "value, or the whole interval is within the minimum effect (else *not informative*).")


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
    # (a, b) noise and movement
    span: float | None = None
    noise_sd: float | None = None
    noise_source: str | None = None
    moves_q: float | None = None
    moves_threshold: float | None = None
    moves: bool | None = None
    min_effect: float | None = None
    # held-out error, for information
    mae: float | None = None
    mae_carry_forward: float | None = None
    mae_loglinear: float | None = None
    # (c, d) intervals
    interval_score: float | None = None
    interval_score_carry_forward: float | None = None
    median_width: float | None = None
    checks: dict = field(default_factory=dict)  # name -> True/False/None for each test

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
    effect: float = math.nan  # the minimum meaningful effect of this metric
    rightway: bool | None = None  # the fitted levels' log-linear trend points the metric's way
    inner_lo: np.ndarray | None = None  # the INNER_LEVEL interval: does the forecast exclude the last value?
    inner_hi: np.ndarray | None = None


def make_unit(levels, values, series, pred, lo, hi, actual, targets, level: float, metric: str = "",
              direction: int = 1, inner=None) -> Unit:
    """Evidence of one fit on ``(levels, values)`` (one point per run) forecasting ``targets``; ``inner`` the
    forecast's ``INNER_LEVEL`` interval (default: the ``level`` one narrowed as a normal's would be)."""
    levels, values = np.asarray(levels, float), np.asarray(values, float)
    noise = noise_estimate(levels, values, series)
    mv = moves(levels, values, noise)
    targets = np.asarray(targets, float)
    carry, c_lo, c_hi = baselines.carry_forward(levels, values, targets, noise.sd, noise.df, level)
    loglin, _, _ = baselines.loglinear(levels, values, targets, level)
    arr = [np.asarray(v, float).reshape(-1) for v in (pred, lo, hi, actual)]
    rightway = None
    if np.unique(levels).size >= 2:
        t = np.log(levels)
        slope = float(np.polyfit(t, values, 1)[0])
        rightway = slope * direction > 0
    if inner is None:
        shrink = stats.norm.ppf(0.5 + INNER_LEVEL / 2) / stats.norm.ppf(0.5 + level / 2)
        inner = (arr[0] - shrink * (arr[0] - arr[1]), arr[0] + shrink * (arr[2] - arr[0]))
    return Unit(mv, *arr, carry, c_lo, c_hi, loglin, min_effect(metric, values) if metric else math.nan, rightway,
                *(np.asarray(v, float).reshape(-1) for v in inner))


def _f(v) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def judge(units: list[Unit], level: float, min_coverage: float, max_rel_error: float | None = None,
          axis: str = "sizes") -> dict:
    """Status, reason and numbers of a verdict from its units (see module doc)."""
    out: dict = {"checks": {}}
    if not units:
        return {**out, "status": "not judged", "extrapolates": None, "reason": "nothing fitted"}
    mvs = [u.movement for u in units]
    first = mvs[0]
    effect = float(np.nanmedian([u.effect for u in units])) if any(math.isfinite(u.effect) for u in units) else 0.0
    measured = [m for m in mvs if m.noise.measured and m.moves is not None]
    out.update(span=_f(float(np.mean([m.span for m in mvs]))), noise_sd=_f(first.noise.sd),
               noise_source=first.noise.source, min_effect=_f(effect),
               moves_q=_f(float(np.median([m.q for m in measured]))) if measured else None,
               moves_threshold=_f(float(np.median([m.threshold for m in measured]))) if measured else None)
    many = f" ({len(units)} fits)" if len(units) > 1 else ""

    # held-out numbers (shown whatever the status)
    cat = {k: np.concatenate([getattr(u, k) for u in units]) for k in
           ("pred", "lo", "hi", "actual", "carry", "carry_lo", "carry_hi", "loglin", "inner_lo", "inner_hi")}
    last = np.concatenate([np.full(u.pred.size, u.carry[0] if u.carry.size else np.nan) for u in units])
    has = np.isfinite(cat["actual"]) & np.isfinite(cat["pred"])
    n = int(has.sum())
    out["n_targets"] = n
    err_text, c_text = "nothing held out", "no intervals"
    ok_cov = informative = None
    if n:
        y, pred = cat["actual"][has], cat["pred"][has]
        mae, mae_c = float(np.abs(pred - y).mean()), float(np.abs(cat["carry"][has] - y).mean())
        ll = cat["loglin"][has]
        mae_l = float(np.abs(ll - y).mean()) if np.all(np.isfinite(ll)) else math.nan
        out.update(mae=_f(mae), mae_carry_forward=_f(mae_c), mae_loglinear=_f(mae_l))
        err_text = f"MAE {mae:.3g} (carry-forward {mae_c:.3g}, log-linear {mae_l:.3g})"
        rel = (pred - y) / np.where(y == 0, np.nan, np.abs(y))
        rel = rel[np.isfinite(rel)]
        if rel.size:
            out.update(mean_abs_rel_error=float(np.mean(np.abs(rel))), max_abs_rel_error=float(np.max(np.abs(rel))),
                       mean_rel_error=float(np.mean(rel)))
            err_text += f", mean |rel err| {np.mean(np.abs(rel)):.1%}"
            if max_rel_error is not None:
                ok_rel = float(np.mean(np.abs(rel))) <= max_rel_error
                out["checks"]["rel_error"] = ok_rel
                err_text += f" {'<=' if ok_rel else '>'} {max_rel_error:.1%}"
        lo, hi = cat["lo"][has], cat["hi"][has]
        fin = np.isfinite(lo) & np.isfinite(hi)
        if fin.any():
            covered = baselines.inside(lo[fin], hi[fin], y[fin])
            cov = float(covered.mean())
            ok_cov = cov >= min_coverage
            p, lf = pred[fin], last[has][fin]
            # informative: its one-sided 90% bound is beyond the last fitted mean (the central 80% interval
            # excludes it), or its 90% interval is within the minimum effect on both sides
            excludes = (lf < cat["inner_lo"][has][fin]) | (lf > cat["inner_hi"][has][fin])
            tight = (p - lo[fin] <= effect) & (hi[fin] - p <= effect)
            informative = bool(np.mean(excludes | tight) >= 0.5)
            c_lo, c_hi = cat["carry_lo"][has][fin], cat["carry_hi"][has][fin]
            score = float(baselines.interval_score(lo[fin], hi[fin], y[fin], level).mean())
            score_c = (float(baselines.interval_score(c_lo, c_hi, y[fin], level).mean())
                       if np.all(np.isfinite(c_lo)) else math.nan)
            half = float(np.median((hi[fin] - lo[fin]) / 2))
            out.update(coverage=cov, interval_score=_f(score), interval_score_carry_forward=_f(score_c),
                       median_width=_f(float(np.median(hi[fin] - lo[fin]))))
            c_text = (f"{int(covered.sum())}/{covered.size} inside the {level:.0%} interval "
                      f"({'>=' if ok_cov else '<'} {min_coverage:.0%}); interval +-{half:.3g} "
                      + (f"forecasts a change (its {INNER_LEVEL:.0%} interval excludes the last fitted value)"
                         if excludes.mean() >= 0.5 else
                         f"within the minimum effect {effect:.3g}" if tight.mean() >= 0.5 else
                         f"wider than the forecast change and the minimum effect {effect:.3g}"))
    out["checks"].update(covered=ok_cov, informative=informative)
    held = f"error: {err_text}; intervals: {c_text}"

    if all(m.constant for m in mvs):
        out["checks"]["moves"] = False
        return {**out, "status": "not informative", "extrapolates": False, "moves": False,
                "reason": f"not informative: {first.describe(axis)}{many}"}
    if not measured:
        out["checks"]["noise_measured"] = False
        return {**out, "status": "not testable", "extrapolates": None, "moves": None,
                "reason": f"not testable: noise not measured ({first.noise.describe()}); add seeds or >= 3 late "
                          f"checkpoints per run; {held}"}
    out["checks"]["noise_measured"] = True
    beyond = sum(bool(m.moves) for m in measured) * 2 > len(measured)
    big = float(np.mean([m.span for m in measured])) >= effect
    rightway = [u.rightway for u in units if u.rightway is not None]
    right = not rightway or sum(rightway) * 2 >= len(rightway)
    move_text = (first.describe(axis) if len(units) == 1 else
                 f"{sum(bool(m.moves) for m in measured)}/{len(measured)} fits move beyond noise (median q "
                 f"{out['moves_q']:.3g} vs {out['moves_threshold']:.3g})")
    move_text += f"; span {out['span']:.3g} {'>=' if big else '<'} minimum effect {effect:.3g}"
    out["moves"] = bool(beyond and big)
    out["checks"]["moves"] = out["moves"]
    out["checks"]["right_way"] = right
    if not (beyond and big):
        return {**out, "status": "not informative", "extrapolates": False,
                "reason": f"not informative: {move_text}{many} -- the trend is "
                          + ("within run-to-run noise" if not beyond else "below the minimum effect")}
    if not right:
        return {**out, "status": "does not extrapolate", "extrapolates": False,
                "reason": f"does not extrapolate: moves the wrong way (the metric "
                          f"{'falls' if units[0].rightway is False else 'moves'} with {axis[:-1]}); {move_text}"}
    if n == 0:
        return {**out, "status": "not judged", "extrapolates": None, "reason": f"nothing held out to check; {move_text}"}
    if ok_cov is None:
        return {**out, "status": "not judged", "extrapolates": None, "reason": f"no forecast interval; {held}"}
    if not ok_cov or out["checks"].get("rel_error") is False:
        status, ok = "does not extrapolate", False
    elif not informative:
        status, ok = "not informative", False
    else:
        status, ok = "extrapolates", True
    return {**out, "status": status, "extrapolates": ok, "reason": f"{status}: moves: {move_text}; {held}"}


def _verdict(kind, metric, key, units, law, max_rel_error, min_coverage, level, reason: str | None = None,
             axis: str = "sizes", resid=()) -> Verdict:
    j = judge(units, level, min_coverage, max_rel_error, axis)
    if reason is not None:
        j.update(reason=reason, status="not judged", extrapolates=None)
    resid = np.asarray(resid, float)
    fields = {k: j.get(k) for k in ("status", "extrapolates", "reason", "span", "noise_sd", "noise_source", "moves_q",
                                    "moves_threshold", "moves", "min_effect", "mae", "mae_carry_forward",
                                    "mae_loglinear", "interval_score", "interval_score_carry_forward",
                                    "median_width", "coverage", "mean_abs_rel_error", "max_abs_rel_error",
                                    "mean_rel_error")}
    return Verdict(
        kind=kind, metric=metric, objective=str(key.get("objective")), eval_set=str(key.get("eval_set")),
        n_targets=int(j.get("n_targets", 0)), r2=None,
        residual_rmse=float(np.sqrt(np.mean(resid**2))) if resid.size else None, law=law,
        supervision=key.get("supervision"), family=key.get("family"), n_fits=len(units),
        residuals=tuple(float(r) for r in resid), max_rel_error=max_rel_error, min_coverage=min_coverage,
        level=level, checks=j.get("checks", {}), **fields,
    )


def _metrics(df: pl.DataFrame, metrics) -> list[str]:
    if metrics is None:
        return sorted(df.filter(~pl.col("baseline"))["metric"].unique().to_list())
    return [m.strip() for m in metrics if m.strip()]


def checkpoint_series(rows: pl.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per run, its (exposures, values) in exposure order (only runs with >= 2 checkpoints with an exposure)."""
    rows = rows.filter(pl.col("exposure").is_not_null())
    out = []
    for _, sub in rows.sort("exposure").group_by("run", maintain_order=True):
        if sub.height >= 2:
            out.append((sub["exposure"].to_numpy().astype(float), sub["value"].to_numpy().astype(float)))
    return out


def _resolve(estimator: str | None, width_rule, law: str | None, axis: str = "size"):
    """The estimator judged and its width rule: ``law`` (raw intervals), else ``estimator`` (default:
    the calibrated default of :mod:`.calibration`), else the engine uncalibrated."""
    from rerank_scaling.scaling import calibration

    if law is not None and estimator is None:
        return f"law:{law}", None
    if estimator is None:
        estimator = calibration.default_estimator() or "mixture"
        if width_rule is None:
            width_rule = calibration.width_rule(estimator, axis=axis)
    return estimator, width_rule


def _label(estimator: str, rule) -> str:
    return estimator + (" (calibrated)" if rule is not None else "")


def verdicts(
    table,
    fit_max_params: float,
    metrics=None,
    eval_set: str | None = None,
    law: str | None = None,
    level: float = 0.9,
    n_boot: int = 1000,
    max_rel_error: float | None = DEFAULT_MAX_REL_ERROR,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    seed: int = 0,
    estimator: str | None = None,
    width_rule=None,
) -> list[Verdict]:
    """Size check per (metric, family, objective, supervision, eval set); ``metrics=None`` = all.

    The forecasts judged are ``estimator``'s (a name of :data:`.estimators.SIZE_ESTIMATORS`), widened
    by ``width_rule``; without either, the calibrated default of :mod:`.calibration`; with ``law``
    (and no estimator), that law's raw bootstrap intervals."""
    df = as_table(table)
    name, rule = _resolve(estimator, width_rule, law)
    label = _label(name, rule)
    out = []
    for metric in _metrics(df, metrics):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cases, _ = size_cases(df, metric, fit_max_params, eval_set=eval_set)
                dists = distributions(name, cases, level=level, n_boot=n_boot, seed=seed)
        except UserError as exc:
            out.append(_verdict("size", metric, {"objective": "-", "eval_set": eval_set or "-"}, [], label,
                                max_rel_error, min_coverage, level, reason=str(exc)))
            continue
        by_key: dict[tuple, list[Unit]] = {}
        for case, dist in zip(cases, dists):
            known = np.isfinite(case.actual)
            lo, hi = _interval(dist, rule, level)
            inner = _inner(dist, rule)
            x, y = case.levels()
            by_key.setdefault(tuple(case.key.get(k) for k in VERDICT_KEYS), []).append(make_unit(
                x, y, case.series(), dist.point[known], lo[known], hi[known], case.actual[known],
                case.target_x[known], level, metric, case.direction,
                None if inner is None else (inner[0][known], inner[1][known])))
        for key_t, units in by_key.items():
            out.append(_verdict("size", metric, dict(zip(VERDICT_KEYS, key_t)), units, label, max_rel_error,
                                min_coverage, level))
    return out


def exposure_cases(df: pl.DataFrame, metric: str, fit_fraction: float, eval_set: str | None = None) -> list[E.Case]:
    """Per model (seeds pooled): checkpoints with ``D <= fit_fraction * D_max`` fitted, the later ones targets."""
    sub = select_metric(df, metric, eval_set).filter(pl.col("exposure").is_not_null() & (pl.col("exposure") > 0))
    keys = group_columns(sub)
    cases = []
    for key_values, model_rows in sub.group_by([*keys, "params"], maintain_order=True):
        key = dict(zip([*keys, "params"], key_values))
        d_max = float(model_rows["exposure"].max())
        early = model_rows.filter(pl.col("exposure") <= fit_fraction * d_max)
        late = model_rows.filter(pl.col("exposure") > fit_fraction * d_max)
        if late.height == 0 or early["exposure"].n_unique() < 2:
            continue
        tgt = late.group_by("exposure").agg(pl.col("value").mean(), pl.len().alias("m")).sort("exposure")
        x = tgt["exposure"].to_numpy().astype(float)
        cases.append(E.Case("table", metric, key, "exposure", 0, early, run_values(early), x, x,
                            tgt["value"].to_numpy().astype(float), np.arange(1, x.size + 1),
                            target_m=tgt["m"].to_numpy().astype(float)))
    return cases


def exposure_verdicts(
    table,
    metrics=None,
    eval_set: str | None = None,
    fit_fraction: float = 0.5,
    law: str | None = None,
    level: float = 0.9,
    n_boot: int = 200,
    max_rel_error: float | None = DEFAULT_MAX_REL_ERROR,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    seed: int = 0,
    estimator: str | None = None,
    width_rule=None,
) -> list[Verdict]:
    """Exposure check: per model, fit the checkpoints with ``D <= fit_fraction * D_max`` and forecast
    the later ones; movement is measured per model over its early checkpoints, and the carry-forward
    baseline is the last early checkpoint's mean. The estimator is the calibrated default's exposure
    counterpart (the engine on the exposure axis), ``law`` ``data``/``data-loglinear`` the data law."""
    if law not in (None, "auto", "data", "data-loglinear"):
        raise UserError(f"unknown exposure law '{law}' (choose auto, data or data-loglinear)")
    df = as_table(table)
    if df["exposure"].is_null().all():
        raise UserError("exposure check needs an examples_seen or step column")
    if law is not None and estimator is None:
        name, rule = "data", None
    else:
        name, rule = _resolve(estimator, width_rule, None, axis="exposure")
        if name not in E.EXPOSURE_ESTIMATORS:
            name, rule = "mixture", None
    label = _label(name, rule)
    opts = dict(level=level, n_boot=n_boot, seed=seed)
    out = []
    for metric in _metrics(df, metrics):
        cases = exposure_cases(df, metric, fit_fraction, eval_set)
        if not cases:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dists = E.EXPOSURE_ESTIMATORS[name](cases, opts)
        by_key: dict[tuple, list[Unit]] = {}
        for case, dist in zip(cases, dists):
            lo, hi = _interval(dist, rule, level)
            x, y = case.levels()
            by_key.setdefault(tuple(case.key.get(k) for k in VERDICT_KEYS), []).append(make_unit(
                x, y, case.series(), dist.point, lo, hi, case.actual, case.target_x, level, metric,
                case.direction, _inner(dist, rule)))
        for vkey, units in by_key.items():
            out.append(_verdict("exposure", metric, dict(zip(VERDICT_KEYS, vkey)), units, label, max_rel_error,
                                min_coverage, level, axis="exposures"))
    return out


def _interval(dist, rule, level):
    """The judged interval: the calibrated one, or the estimator's own."""
    return rule.interval(dist, level) if rule is not None else raw_interval(dist, level)


def _inner(dist, rule):
    """The engine's exact ``INNER_LEVEL`` interval (its calibrated misspecification term included); None
    for other estimators (:func:`make_unit` narrows their interval as a normal's)."""
    if not isinstance(dist, Predictive):
        return None
    kappa = rule.factor if rule is not None and rule.kind == "kappa" else 0.0
    return dist.interval(INNER_LEVEL, kappa)


__all__ = ["rule", "DEFAULT_MAX_REL_ERROR", "DEFAULT_MIN_COVERAGE", "MIN_EFFECT", "MOVES_LEVEL", "STATUSES", "Verdict",
           "exposure_verdicts", "judge", "make_unit", "min_effect", "verdicts"]
