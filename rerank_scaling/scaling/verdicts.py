"""Does a metric extrapolate?  Held-out checks over model size and over exposure.

A check fits on the "small" part of the data, forecasts the held-out part and
decides, per (metric, objective, supervision, eval set):

    extrapolates  <=>  mean |relative error| <= max_rel_error   (default 3%)
                  and  coverage of the held-out actuals by the
                       level-prediction intervals >= min_coverage (default 50%)

``None`` when nothing was held out.  Relative errors are ``(pred - actual)/|actual|``;
``mean_rel_error`` keeps the sign (negative = forecasts below actual).

* :func:`verdicts` -- size check: fit runs with ``params <= fit_max_params``, forecast
  the larger models (as :func:`forecast.forecast`).
* :func:`exposure_verdicts` -- exposure check: for each model (seeds pooled), fit the
  data law on checkpoints with ``D <= fit_fraction * D_max`` and forecast the later ones.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.scaling.fit import fit_many
from rerank_scaling.scaling.forecast import fit_groups, group_label
from rerank_scaling.scaling.table import as_table, group_columns, select_metric

DEFAULT_MAX_REL_ERROR = 0.03
DEFAULT_MIN_COVERAGE = 0.5
VERDICT_KEYS = ("objective", "supervision", "eval_set")


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
    n_fits: int = 0
    residuals: tuple[float, ...] = ()
    max_rel_error: float = DEFAULT_MAX_REL_ERROR
    min_coverage: float = DEFAULT_MIN_COVERAGE
    level: float = 0.9

    def to_dict(self) -> dict:
        out = asdict(self)
        out["residuals"] = list(self.residuals)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def _judge(rel: np.ndarray, covered: np.ndarray, max_rel_error: float, min_coverage: float, level: float):
    if rel.size == 0:
        return None, "nothing held out to check", None, None, None, None
    mare, worst, mean = float(np.mean(np.abs(rel))), float(np.max(np.abs(rel))), float(np.mean(rel))
    ok_err = mare <= max_rel_error
    reason = f"mean |rel err| {mare:.1%} {'<=' if ok_err else '>'} {max_rel_error:.1%}, "
    if covered.size:
        cov = float(np.mean(covered))
        ok_cov = cov >= min_coverage
        reason += (f"{int(np.sum(covered))}/{covered.size} actuals inside the {level:.0%} interval "
                   f"({'>=' if ok_cov else '<'} {min_coverage:.0%})")
    else:  # too few points for intervals: judged on the error alone
        cov, ok_cov = None, True
        reason += "no intervals (too few points to bootstrap)"
    return bool(ok_err and ok_cov), reason + f"; mean signed {mean:+.1%}", mare, worst, mean, cov


def _verdict(kind, metric, key, fits, rel, covered, law, max_rel_error, min_coverage, level,
             reason: str | None = None) -> Verdict:
    ok, why, mare, worst, mean, cov = _judge(np.asarray(rel), np.asarray(covered, dtype=bool),
                                             max_rel_error, min_coverage, level)
    reason = reason or why
    resid = np.concatenate([f.residuals for f in fits]) if fits else np.array([])
    r2s = [f.r2 for f in fits if np.isfinite(f.r2)]
    return Verdict(
        kind=kind, metric=metric, objective=str(key.get("objective")), eval_set=str(key.get("eval_set")),
        extrapolates=ok, reason=reason, n_targets=len(rel), mean_abs_rel_error=mare, max_abs_rel_error=worst,
        mean_rel_error=mean, coverage=cov, r2=float(np.mean(r2s)) if r2s else None,
        residual_rmse=float(np.sqrt(np.mean(resid**2))) if resid.size else None, law=law,
        supervision=key.get("supervision"), n_fits=len(fits), residuals=tuple(float(r) for r in resid),
        max_rel_error=max_rel_error, min_coverage=min_coverage, level=level,
    )


def _metrics(df: pl.DataFrame, metrics) -> list[str]:
    if metrics is None:
        return sorted(df.filter(~pl.col("baseline"))["metric"].unique().to_list())
    return [m.strip() for m in metrics if m.strip()]


def verdicts(
    table,
    fit_max_params: float,
    metrics=None,
    eval_set: str | None = None,
    law: str = "auto",
    level: float = 0.9,
    n_boot: int = 1000,
    max_rel_error: float = DEFAULT_MAX_REL_ERROR,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    seed: int = 0,
    **options,
) -> list[Verdict]:
    """Size check per (metric, objective, supervision, eval set); ``metrics=None`` = all."""
    df = as_table(table)
    out = []
    for metric in _metrics(df, metrics):
        try:
            groups = fit_groups(df, metric, fit_max_params, eval_set=eval_set, law=law, level=level,
                                n_boot=n_boot, seed=seed, **options)
        except UserError as exc:  # this metric cannot be fitted: say so, keep judging the others
            out.append(_verdict("size", metric, {"objective": "-", "eval_set": eval_set or "-"}, [], [], [],
                                law, max_rel_error, min_coverage, level, reason=str(exc)))
            continue
        by_key: dict[tuple, list] = {}
        for g in groups:
            by_key.setdefault(tuple(g.key.get(k) for k in VERDICT_KEYS), []).append(g)
        for key_t, gs in by_key.items():
            checked = [f for g in gs for f in g.forecasts if f.actual is not None]
            laws = sorted({g.fit.law.name for g in gs})
            out.append(_verdict(
                "size", metric, dict(zip(VERDICT_KEYS, key_t)), [g.fit for g in gs],
                [f.rel_error for f in checked if f.rel_error is not None],
                [f.covered for f in checked if f.covered is not None], "/".join(laws),
                max_rel_error, min_coverage, level,
            ))
    return out


def exposure_verdicts(
    table,
    metrics=None,
    eval_set: str | None = None,
    fit_fraction: float = 0.5,
    law: str = "auto",
    level: float = 0.9,
    n_boot: int = 200,
    max_rel_error: float = DEFAULT_MAX_REL_ERROR,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    seed: int = 0,
    bias_correct: bool = True,
) -> list[Verdict]:
    """Exposure check: fit ``D <= fit_fraction * D_max`` per model, forecast later checkpoints.

    ``law``: ``auto`` (data law ``a + b*D^c``, or ``a + b*ln D`` with < 4 early
    checkpoints), ``data`` or ``data-loglinear``.
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
        jobs: dict[str, list[tuple[dict, dict, pl.DataFrame]]] = {}
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
            jobs.setdefault(name, []).append((key, problem, late))
        per_key: dict[tuple, tuple[list, list, list, set]] = {}
        for li, (name, items) in enumerate(jobs.items()):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits = fit_many(name, [pr for _, pr, _ in items], metric=metric, n_boot=n_boot, level=level,
                                seed=seed + 1000 * mi + li)
            for (key, _, late), fit in zip(items, fits):
                if isinstance(fit, UserError):
                    continue
                d_late = late["exposure"].to_numpy().astype(float)
                actual = late["value"].to_numpy().astype(float)
                ones = np.ones_like(d_late)
                if fit.draws is not None and fit.draws.theta.shape[0] and fit.df >= 1:
                    pred = fit.forecast(ones, d_late, bias_corrected=bias_correct)
                    lo, hi = fit.interval(ones, d_late, bias_corrected=bias_correct)
                    cov = list((lo <= actual) & (actual <= hi))
                else:
                    pred, cov = fit.predict(ones, d_late), []
                rel = (pred - actual) / np.where(actual == 0, np.nan, np.abs(actual))
                vkey = tuple(key.get(k) for k in VERDICT_KEYS)
                fits_k, rels, covs, laws = per_key.setdefault(vkey, ([], [], [], set()))
                fits_k.append(fit)
                rels.extend(float(r) for r in rel if np.isfinite(r))
                covs.extend(cov)
                laws.add(name)
        for vkey, (fits_k, rels, covs, laws) in per_key.items():
            out.append(_verdict("exposure", metric, dict(zip(VERDICT_KEYS, vkey)), fits_k, rels, covs,
                                "/".join(sorted(laws)), max_rel_error, min_coverage, level))
    return out
