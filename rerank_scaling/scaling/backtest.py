"""Backtest forecast estimators on real ladders: hide the largest sizes, forecast them, score.

For every ladder (one input table, or each value of its ``ladder`` column),
metric, objective, supervision, budget and eval set:

* **size hold-outs**: hide the largest 1, and separately the largest 2, sizes; fit
  each size estimator on the rest (every run, all its checkpoints available to the
  estimator) and forecast the hidden sizes' mean final value;
* **exposure hold-outs**: per model (seeds pooled), hide its last 1 and last 2
  checkpoints and forecast them from the earlier ones.

Each estimator of :mod:`.estimators` is scored per case (one target) on error
``predicted - actual``, whether the ``level`` interval covers the actual, the
interval width and the interval score; the baseline row is plain
``scipy.optimize.curve_fit`` of ``a + b*x^c`` on the same points.  ``z`` errors
divide by the case's measured run-to-run noise so metrics on different scales
can be averaged.  A group whose every value is the same (a metric no model changes, such as
recall@100 after reranking the top 20) is not a case: there is nothing to forecast.

:func:`calibrate` turns the residuals into a conformal width rule: the
``level`` quantile (finite-sample corrected) of ``|error| / half-width`` over the
backtest cases; multiplying an estimator's half-widths by it gives intervals with
that coverage on ladders like these.  :func:`calibration_check` estimates the
coverage honestly by leaving one ladder (or, with one ladder, one metric) out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import estimators as E
from rerank_scaling.scaling.baselines import inside, interval_score
from rerank_scaling.scaling.table import as_table, group_columns, load_results, run_values
from rerank_scaling.scaling.util import jsonable

HOLDOUTS = (1, 2)
BASELINES = ("curve-fit", "carry-forward", "loglinear")  # never candidates for the default
MAX_FAILED = 0.10  # an estimator failing more of its size targets than this is not eligible
EXACT = 1e-9  # a reference MAE this small is "exact" (a constant metric fitted to rounding error)
MIN_FIT_LEVELS = 3  # fewer fitted sizes / checkpoints: the case is skipped (no 3-parameter law fits)


@dataclass(frozen=True)
class WidthRule:
    """Conformal widening: ``lower' = pred - factor*(pred - lower)``, ``upper' = pred + factor*(upper - pred)``."""

    estimator: str
    level: float
    factor: float
    n: int

    def apply(self, pred, lower, upper):
        pred, lower, upper = (np.asarray(v, float) for v in (pred, lower, upper))
        return pred - self.factor * (pred - lower), pred + self.factor * (upper - pred)

    def to_dict(self) -> dict:
        return jsonable(dict(estimator=self.estimator, level=self.level, factor=self.factor, n=self.n))


@dataclass
class Backtest:
    cases: pl.DataFrame  # one row per (case, target, estimator)
    summary: pl.DataFrame  # one row per (axis, holdout, estimator)
    level: float

    def to_dict(self) -> dict:
        ladders = sorted(self.cases["ladder"].unique().to_list()) if self.cases.height else []
        return jsonable({"level": self.level, "ladders": ladders, "summary": self.summary.to_dicts(),
                         "cases": self.cases.to_dicts()})


def _ladders(tables, ladder_names=None) -> list[tuple[str, pl.DataFrame]]:
    out = []
    for i, t in enumerate(tables):
        if isinstance(t, (str, Path)):
            p = Path(t)
            name = p.name if p.is_dir() else (p.parent.name if p.stem == "results" else p.stem)
            df = load_results(p)
        else:
            name, df = f"table{i + 1}", as_table(t)
        if ladder_names is not None:
            name = ladder_names[i]
        if "ladder" in df.columns:
            for (lad,), sub in df.group_by(["ladder"], maintain_order=True):
                out.append((f"{name}/{lad}", sub))
        else:
            out.append((name, df))
    return out


def constant(values) -> bool:
    """Every value of a group the same (to ``EXACT``, relative): a metric no model changes -- recall@100
    after reranking the top 20 -- has nothing to forecast, and its zero-width intervals' coverage would
    be decided by floating-point rounding, so the backtest skips such groups."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return v.size > 0 and float(np.ptp(v)) <= EXACT * max(1.0, float(np.max(np.abs(v))))


def _size_cases(ladder: str, df: pl.DataFrame, metric: str, holdout: int) -> list[E.Case]:
    keys = group_columns(df)
    cases = []
    for key_values, rows in df.group_by(keys, maintain_order=True):
        if constant(rows["value"]):
            continue
        sizes = np.unique(rows["params"].to_numpy().astype(float))
        if sizes.size - holdout < MIN_FIT_LEVELS:
            continue
        cases.append(E.size_case(ladder, metric, dict(zip(keys, key_values)), rows, sizes[-holdout - 1], holdout))
    return cases


def _exposure_cases(ladder: str, df: pl.DataFrame, metric: str, holdout: int) -> list[E.Case]:
    df = df.filter(pl.col("exposure").is_not_null() & (pl.col("exposure") > 0))
    if df.height == 0:
        return []
    keys = group_columns(df)
    cases = []
    for key_values, rows in df.group_by(keys, maintain_order=True):
        if constant(rows["value"]):
            continue
        key = dict(zip(keys, key_values))
        per_model = []
        for (params,), model_rows in rows.group_by(["params"], maintain_order=True):
            ds = np.unique(model_rows["exposure"].to_numpy().astype(float))
            if ds.size - holdout < MIN_FIT_LEVELS:
                continue
            cut = ds[-holdout - 1]
            fitted = model_rows.filter(pl.col("exposure") <= cut)
            tgt = (model_rows.filter(pl.col("exposure") > cut).group_by("exposure")
                   .agg(pl.col("value").mean()).sort("exposure"))
            x = tgt["exposure"].to_numpy().astype(float)
            per_model.append(E.Case(ladder, metric, {**key, "params": float(params)}, "exposure", holdout, fitted,
                                    run_values(fitted), x, x, tgt["value"].to_numpy().astype(float),
                                    np.arange(1, x.size + 1)))
        if per_model:
            group_rows = pl.concat([c.rows for c in per_model])
            for c in per_model:
                c.extra["group_rows"] = group_rows
        cases.extend(per_model)
    return cases


def backtest(
    tables,
    *,
    metrics=None,
    estimators=None,
    exposure_estimators=None,
    holdouts=HOLDOUTS,
    exposure: bool = True,
    level: float = 0.9,
    n_boot: int = 200,
    seed: int = 0,
    ladder_names=None,
) -> Backtest:
    """Backtest on ``tables`` (paths or DataFrames with the columns :func:`load_results` accepts)."""
    if isinstance(tables, (str, Path, pl.DataFrame)):
        tables = [tables]
    size_names = list(estimators or E.SIZE_ESTIMATORS)
    exp_names = list(exposure_estimators or E.EXPOSURE_ESTIMATORS)
    for name in size_names:
        if name not in E.SIZE_ESTIMATORS:
            raise UserError(f"unknown estimator '{name}' (choose from {', '.join(E.SIZE_ESTIMATORS)})")
    for name in exp_names:
        if name not in E.EXPOSURE_ESTIMATORS:
            raise UserError(f"unknown exposure estimator '{name}' (choose from {', '.join(E.EXPOSURE_ESTIMATORS)})")
    opts = dict(level=level, n_boot=n_boot, seed=seed)
    records: list[dict] = []
    for ladder, df in _ladders(tables, ladder_names):
        rer = df.filter(~pl.col("baseline"))
        names = sorted(rer["metric"].unique().to_list()) if metrics is None else [m.strip() for m in metrics]
        for metric in names:
            rows = rer.filter(pl.col("metric") == metric)
            if rows.height == 0:
                continue
            for h in holdouts:
                batches = [("size", _size_cases(ladder, rows, metric, h), size_names, E.SIZE_ESTIMATORS)]
                if exposure:
                    batches.append(("exposure", _exposure_cases(ladder, rows, metric, h), exp_names,
                                    E.EXPOSURE_ESTIMATORS))
                for axis, cases, est_names, registry in batches:
                    if not cases:
                        continue
                    for est in est_names:
                        opts.pop("_joint_cache", None)
                        results = registry[est](cases, opts)
                        for case, (pred, lo, hi) in zip(cases, results):
                            records.extend(_records(case, est, pred, lo, hi, level))
    cases_df = pl.DataFrame(records, infer_schema_length=None) if records else pl.DataFrame()
    return Backtest(cases_df, summarise(cases_df, level) if records else pl.DataFrame(), level)


def _records(case: E.Case, est: str, pred, lo, hi, level: float) -> list[dict]:
    noise = case.noise().sd
    out = []
    for j in range(case.target_x.size):
        p, lo_j, hi_j, y = float(pred[j]), float(lo[j]), float(hi[j]), float(case.actual[j])
        ok = math.isfinite(p)
        fin = ok and math.isfinite(lo_j) and math.isfinite(hi_j)
        err = p - y if ok else math.nan
        out.append(dict(
            ladder=case.ladder, metric=case.metric, axis=case.axis, holdout=case.holdout,
            horizon=int(case.horizon[j]), objective=str(case.key.get("objective")),
            eval_set=str(case.key.get("eval_set", "default")), supervision=case.key.get("supervision"),
            budget=case.key.get("budget"), params=float(case.key["params"]) if case.axis == "exposure"
            else float(case.target_x[j]), exposure=float(case.target_d[j]), estimator=est, actual=y,
            predicted=p, lower=lo_j, upper=hi_j, error=err,
            z=err / noise if ok and math.isfinite(noise) and noise > 0 else math.nan,
            covered=bool(inside(lo_j, hi_j, y)) if fin else None, width=hi_j - lo_j if fin else math.nan,
            interval_score=float(interval_score([lo_j], [hi_j], [y], level)[0]) if fin else math.nan,
            noise_sd=noise,
        ))
    return out


def summarise(cases: pl.DataFrame, level: float, by=("axis", "holdout", "estimator")) -> pl.DataFrame:
    """Per ``by`` group: cases, failures, MAE, median |error|, bias, mean |z|, coverage, median width, interval score,
    and MAE on the cases every estimator forecast (``mae_common``)."""
    by = list(by)
    if cases.height == 0:
        return pl.DataFrame()
    ident = ["ladder", "metric", "axis", "holdout", "objective", "eval_set", "params", "exposure"]
    n_est = cases.group_by("axis").agg(pl.col("estimator").n_unique().alias("_n"))
    ok = cases.filter(pl.col("predicted").is_not_nan())
    common = (ok.group_by(ident).agg(pl.len().alias("_k")).join(n_est, on="axis")
              .filter(pl.col("_k") == pl.col("_n")).drop("_k", "_n"))
    common_rows = ok.join(common, on=ident, how="semi")
    fin = pl.col("width").is_not_nan()
    summary = (
        cases.group_by(by, maintain_order=True)
        .agg(
            pl.len().alias("n"),
            pl.col("predicted").is_nan().sum().alias("n_failed"),
            pl.col("error").filter(pl.col("error").is_not_nan()).abs().mean().alias("mae"),
            pl.col("error").filter(pl.col("error").is_not_nan()).abs().median().alias("median_abs_error"),
            pl.col("error").filter(pl.col("error").is_not_nan()).mean().alias("bias"),
            pl.col("z").filter(pl.col("z").is_not_nan()).abs().mean().alias("mean_abs_z"),
            pl.col("covered").cast(pl.Float64).mean().alias("coverage"),
            pl.col("width").filter(fin).median().alias("median_width"),
            pl.col("interval_score").filter(fin).mean().alias("interval_score"),
            fin.sum().alias("n_intervals"),
        )
        .join(common_rows.group_by(by).agg(pl.col("error").abs().mean().alias("mae_common"),
                                           pl.col("z").abs().mean().alias("mean_abs_z_common"),
                                           pl.len().alias("n_common")), on=by, how="left")
        .sort(by)
    )
    return summary.with_columns(pl.lit(level).alias("level"))


def calibrate(cases: pl.DataFrame, estimator: str, level: float = 0.9, axis: str | None = "size") -> WidthRule:
    """Conformal width rule from backtest ``cases`` of ``estimator``: the ``ceil((n+1) level)/n``
    empirical quantile of ``|error| / half-width`` on the actual's side (split-conformal; ``inf``
    when too few cases for that level)."""
    sub = cases.filter(pl.col("estimator") == estimator)
    if axis is not None:
        sub = sub.filter(pl.col("axis") == axis)
    scores = conformal_scores(sub)
    n = scores.size
    if n == 0:
        raise UserError(f"no backtest cases with finite intervals for estimator '{estimator}'")
    k = math.ceil((n + 1) * level)
    factor = math.inf if k > n else float(np.sort(scores)[k - 1])
    return WidthRule(estimator, level, factor, n)


def conformal_scores(sub: pl.DataFrame) -> np.ndarray:
    sub = sub.filter(pl.col("width").is_not_nan() & pl.col("predicted").is_not_nan())
    y, p = sub["actual"].to_numpy(), sub["predicted"].to_numpy()
    lo, hi = sub["lower"].to_numpy(), sub["upper"].to_numpy()
    half = np.where(y >= p, hi - p, p - lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.abs(y - p) / half
    return np.where(np.isfinite(s), s, np.where(np.abs(y - p) == 0, 0.0, np.inf))


def calibration_check(cases: pl.DataFrame, estimator: str, level: float = 0.9, axis: str = "size") -> dict:
    """Coverage and median width of ``estimator`` before and after conformal widening, each fold's
    rule fitted without that fold (folds: ladders, or metrics when there is one ladder)."""
    sub = cases.filter((pl.col("estimator") == estimator) & (pl.col("axis") == axis)
                       & pl.col("width").is_not_nan() & pl.col("predicted").is_not_nan())
    if sub.height == 0:
        raise UserError(f"no backtest cases with finite intervals for estimator '{estimator}'")
    fold_col = "ladder" if sub["ladder"].n_unique() > 1 else "metric"
    covered, widths = [], []
    for (fold,), test in sub.group_by([fold_col], maintain_order=True):
        train = sub.filter(pl.col(fold_col) != fold)
        if train.height == 0:
            continue
        rule = calibrate(train, estimator, level, axis)
        lo, hi = rule.apply(test["predicted"], test["lower"], test["upper"])
        y = test["actual"].to_numpy()
        covered.extend(inside(lo, hi, y).tolist())
        widths.extend((hi - lo).tolist())
    full = calibrate(sub, estimator, level, axis)
    return jsonable(dict(
        estimator=estimator, axis=axis, level=level, folds_by=fold_col, n=sub.height,
        coverage_raw=float(sub["covered"].cast(pl.Float64).mean()), median_width_raw=float(sub["width"].median()),
        coverage_calibrated=float(np.mean(covered)) if covered else math.nan,
        median_width_calibrated=float(np.median(widths)) if widths else math.nan,
        factor=full.factor,
    ))


def choose_default(cases: pl.DataFrame, reference: str = "loglinear", max_failed: float = MAX_FAILED) -> pl.DataFrame:
    """The pre-registered rule (scaling/README.md) that picks the default size estimator.

    On the size hold-outs of every ladder in ``cases``: per (ladder, metric, holdout) group,
    an estimator's *relative MAE* is its mean |error| over the targets it forecast divided by
    ``reference``'s (the log-linear extension: it never explodes, so the ratio is defined;
    groups where the reference is exact -- MAE <= ``EXACT``, e.g. recall@100 constant across sizes,
    fitted to rounding error -- or missing are skipped). Its *score* is the mean over
    ladders of the mean over that ladder's groups, so every ladder weighs the same whatever its
    number of metrics, and every metric the same whatever its scale. Baselines are not
    candidates; an estimator that fails (no forecast) on more than ``max_failed`` of its targets,
    or gives finite intervals on fewer than 90%, is not eligible. Rows sorted best first:
    estimator, score, one column per ladder, failed fraction, interval fraction, eligible.
    """
    size = cases.filter(pl.col("axis") == "size")
    if size.height == 0:
        raise UserError("no size hold-outs in the backtest: nothing to choose a default from")
    group = ["ladder", "metric", "holdout"]
    per_group = (size.group_by([*group, "estimator"])
                 .agg(pl.col("error").filter(pl.col("error").is_not_nan()).abs().mean().alias("mae")))
    ref = per_group.filter(pl.col("estimator") == reference).select(*group, pl.col("mae").alias("ref_mae"))
    if ref.height == 0:
        raise UserError(f"the backtest has no '{reference}' rows: run it with that estimator too")
    rel = (per_group.join(ref, on=group)
           .filter(pl.col("ref_mae").is_not_null() & (pl.col("ref_mae") > EXACT) & pl.col("mae").is_not_null())
           .with_columns((pl.col("mae") / pl.col("ref_mae")).alias("rel")))
    per_ladder = rel.group_by(["ladder", "estimator"]).agg(pl.col("rel").mean())
    ladders = sorted(per_ladder["ladder"].unique().to_list())
    score = per_ladder.group_by("estimator").agg(pl.col("rel").mean().alias("score"),
                                                 pl.col("ladder").n_unique().alias("n_ladders"))
    wide = per_ladder.pivot(on="ladder", index="estimator", values="rel").select("estimator", *ladders)
    health = size.group_by("estimator").agg(
        pl.col("predicted").is_nan().mean().alias("failed"),
        pl.col("width").is_not_nan().mean().alias("with_interval"))
    out = (score.join(wide, on="estimator").join(health, on="estimator")
           .with_columns((~pl.col("estimator").is_in(list(BASELINES)) & (pl.col("failed") <= max_failed)
                          & (pl.col("with_interval") >= 0.9) & (pl.col("n_ladders") == len(ladders)))
                         .alias("eligible"))
           .sort(["eligible", "score"], descending=[True, False]))
    return out
