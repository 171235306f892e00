"""Backtest forecast estimators on real ladders: hide the largest sizes, forecast them, score.

For every ladder (one input table, or each value of its ``ladder`` column), metric, objective,
supervision, budget and eval set:

* **size hold-outs**: hide the largest 1, and separately the largest 2, sizes; fit each size
  estimator on the rest (every run, all its checkpoints available to the estimator) and forecast
  the hidden sizes' mean final value (over their runs: the predictive is of that mean);
* **exposure hold-outs** (``exposure=True``): per model (seeds pooled), hide its last 1 and last 2
  checkpoints and forecast them from the earlier ones.

Ladders have a **role**: ``scaling`` ladders (published ladders of models that do scale) calibrate
the widths and choose the default; ``control`` ladders (ours on a 2-core CPU, whose larger models
score alike) are negative controls, scored with widths fitted on the scaling ladders alone and
reported apart. A group whose every value is the same (recall@100 after reranking the top 20) is
not a case: there is nothing to forecast.

**Calibration, one ladder left out.** Each estimator has one width parameter: the engine's
misspecification scale ``kappa`` (:mod:`.engine`), else a conformal factor on its half-widths.
It is the smallest value on a grid whose coverage, averaged over ladders (each ladder's targets
weigh as one ladder), reaches ``level``. Every scaling ladder's intervals are those of the
parameter fitted **without that ladder**; control ladders get the one fitted on all scaling
ladders. So the coverage, width and interval score the backtest prints are out of sample.

**The default, chosen inside the loop** (:func:`choose`): candidates (the engine's estimators by
default) are scored by the interval score at ``level`` relative to carry-forward's on the same
target (``rel_is``, lower is better; proper, as the normaliser does not depend on the forecast),
floored at the metric's minimum meaningful effect (:func:`.engine.min_effect`), averaged per ladder,
then over ladders. The rule picks the simplest candidate within one standard
error (over ladders, paired) of the best. Its out-of-sample score comes from nesting: for each
scaling ladder, the rule (with widths re-fitted) runs on the other ladders and its pick is scored
on the left-out one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import estimators as E
from rerank_scaling.scaling.baselines import inside, interval_score
from rerank_scaling.scaling.engine import Predictive, min_effect
from rerank_scaling.scaling.table import as_table, group_columns, load_results, run_values
from rerank_scaling.scaling.util import jsonable

HOLDOUTS = (1, 2)
EXACT = 1e-9  # relative spread below which a group is constant (a metric no model changes)
MIN_FIT_LEVELS = 3  # fewer fitted sizes / checkpoints: the case is skipped
KAPPA_GRID = np.concatenate([[0.0], np.geomspace(0.01, 20.0, 90)])
FACTOR_GRID = np.geomspace(0.05, 50.0, 120)
REFERENCE = "carry-forward"  # the interval score every estimator's is divided by (floored at the minimum effect)
ROLES = ("scaling", "control")


@dataclass(frozen=True)
class WidthRule:
    """The calibrated width of one estimator: ``kind="kappa"`` the engine's misspecification scale,
    ``kind="factor"`` a conformal factor on half-widths (``lower' = pred - factor*(pred - lower)``)."""

    estimator: str
    level: float
    factor: float
    n: int
    kind: str = "factor"
    axis: str = "size"

    def apply(self, pred, lower, upper):
        pred, lower, upper = (np.asarray(v, float) for v in (pred, lower, upper))
        return pred - self.factor * (pred - lower), pred + self.factor * (upper - pred)

    def interval(self, dist, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The calibrated interval of a forecast distribution of this estimator."""
        level = self.level if level is None else level
        if self.kind == "kappa":
            return dist.interval(level, self.factor)
        lo, hi = dist.interval(level)
        return self.apply(dist.point, lo, hi)

    def to_dict(self) -> dict:
        return jsonable(dict(estimator=self.estimator, level=self.level, factor=self.factor, n=self.n,
                             kind=self.kind, axis=self.axis))


def raw_interval(dist, level: float) -> tuple[np.ndarray, np.ndarray]:
    """An estimator's own interval: the engine's without the misspecification term."""
    return dist.interval(level, 0.0) if isinstance(dist, Predictive) else dist.interval(level)


@dataclass
class Backtest:
    cases: pl.DataFrame  # one row per (case target, estimator)
    summary: pl.DataFrame  # one row per (axis, holdout, estimator), scaling ladders
    level: float
    rules: dict = field(default_factory=dict)  # (estimator, axis) -> WidthRule fitted on every scaling ladder
    choice: dict | None = None  # the nested default choice (:func:`choose`)
    _state: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        ladders = sorted(self.cases["ladder"].unique().to_list()) if self.cases.height else []
        return jsonable({"level": self.level, "ladders": ladders, "summary": self.summary.to_dicts(),
                         "rules": [r.to_dict() for r in self.rules.values()], "choice": self.choice,
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
        for (params,), model_rows in rows.group_by(["params"], maintain_order=True):
            ds = np.unique(model_rows["exposure"].to_numpy().astype(float))
            if ds.size - holdout < MIN_FIT_LEVELS:
                continue
            cut = ds[-holdout - 1]
            fitted = model_rows.filter(pl.col("exposure") <= cut)
            tgt = (model_rows.filter(pl.col("exposure") > cut).group_by("exposure")
                   .agg(pl.col("value").mean(), pl.len().alias("m")).sort("exposure"))
            x = tgt["exposure"].to_numpy().astype(float)
            cases.append(E.Case(ladder, metric, {**key, "params": float(params)}, "exposure", holdout, fitted,
                                run_values(fitted), x, x, tgt["value"].to_numpy().astype(float),
                                np.arange(1, x.size + 1), target_m=tgt["m"].to_numpy().astype(float)))
    return cases


@dataclass
class _Runs:
    """Every target of one (estimator, axis): where it comes from and how to re-interval it."""

    rows: list[dict]  # one per target: the case's identity and numbers
    dists: list  # per target: (distribution, column)
    level: float = 0.9
    scores: dict = field(default_factory=dict)  # grid index -> (lo, hi, score) arrays, cached


def backtest(
    tables,
    *,
    controls=(),
    metrics=None,
    estimators=None,
    exposure_estimators=None,
    holdouts=HOLDOUTS,
    exposure: bool = False,
    level: float = 0.9,
    n_boot: int = 200,
    seed: int = 0,
    ladder_names=None,
    candidates=None,
) -> Backtest:
    """Backtest on ``tables`` (scaling ladders) and ``controls`` (negative-control ladders): paths or
    DataFrames with the columns :func:`load_results` accepts. ``candidates`` (default: the engine's
    estimators that were run) are the estimators the default is chosen among."""
    if isinstance(tables, (str, Path, pl.DataFrame)):
        tables = [tables]
    if isinstance(controls, (str, Path, pl.DataFrame)):
        controls = [controls]
    size_names = list(estimators or E.SIZE_ESTIMATORS)
    exp_names = list(exposure_estimators or E.EXPOSURE_ESTIMATORS)
    for name in size_names:
        if name not in E.SIZE_ESTIMATORS:
            raise UserError(f"unknown estimator '{name}' (choose from {', '.join(E.SIZE_ESTIMATORS)})")
    for name in exp_names:
        if name not in E.EXPOSURE_ESTIMATORS:
            raise UserError(f"unknown exposure estimator '{name}' (choose from {', '.join(E.EXPOSURE_ESTIMATORS)})")
    for names in (size_names, exp_names):
        if REFERENCE not in names:
            names.append(REFERENCE)
    opts = dict(level=level, n_boot=n_boot, seed=seed, n_draws=1000)
    ladders = [(name, df, "scaling") for name, df in _ladders(list(tables), ladder_names)]
    ladders += [(name, df, "control") for name, df in _ladders(list(controls))]
    if len({name for name, _, _ in ladders}) < len(ladders):
        raise UserError("two ladders have the same name: give their tables different file names")
    runs: dict[tuple[str, str], _Runs] = {}
    for ladder, df, role in ladders:
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
                        dists = registry[est](cases, opts)
                        r = runs.setdefault((est, axis), _Runs([], [], level))
                        for case, dist in zip(cases, dists):
                            for j, row in enumerate(_identity(case, role)):
                                r.rows.append(row)
                                r.dists.append((dist, j))
    bt = Backtest(pl.DataFrame(), pl.DataFrame(), level)
    if not runs:
        return bt
    bt._state = {"runs": runs, "level": level}
    ref = {(a, _target_key(row)): v for (e, a), r in runs.items() if e == REFERENCE
           for row, v in zip(r.rows, _scores(r, None, level, raw=True)[2])}
    frames = []
    for (est, axis), r in runs.items():
        rule = fit_rule(r, est, axis, level, _scaling(r))
        bt.rules[(est, axis)] = rule
        frames.append(_frame(r, est, axis, level, ref))
    bt.cases = pl.concat(frames, how="diagonal_relaxed")
    bt.summary = summarise(bt.cases.filter(pl.col("role") == "scaling"), level)
    cands = [c for c in (candidates or E.ENGINE) if (c, "size") in runs]
    if cands and len(ladders_of(bt.cases, "scaling", "size")) >= 3:
        bt.choice = choose(bt, cands)
    return bt


def _identity(case: E.Case, role: str) -> list[dict]:
    """One row per target of ``case``: what it is and what it measures (no forecast yet)."""
    x, _ = case.levels()
    top = float(np.max(x)) if x.size else math.nan
    noise = case.noise()
    seeds = case.seeds_per_size()
    out = []
    for j in range(case.target_x.size):
        out.append(dict(
            ladder=case.ladder, role=role, metric=case.metric, axis=case.axis, holdout=case.holdout,
            horizon=int(case.horizon[j]), objective=str(case.key.get("objective")),
            eval_set=str(case.key.get("eval_set", "default")), supervision=case.key.get("supervision"),
            budget=case.key.get("budget"), family=case.key.get("family"),
            params=float(case.key["params"]) if case.axis == "exposure" else float(case.target_x[j]),
            exposure=float(case.target_d[j]), actual=float(case.actual[j]),
            distance=float(np.log(case.target_x[j] / top)) if top > 0 else math.nan,
            n_fit_levels=int(np.unique(x).size), seeds=round(seeds, 2),
            regime=("seeds" if seeds > 1 else "one run") + f", {case.holdout} hidden",
            noise_sd=noise.sd, noise_source=noise.source, min_effect=min_effect(case.metric, case.levels()[1]),
        ))
    return out


def _target_key(row: dict) -> tuple:
    """What identifies a target across estimators (NaN, e.g. an unknown exposure, as None: NaN != NaN)."""
    return tuple(None if isinstance(v, float) and math.isnan(v) else v
                 for v in (row[k] for k in ("ladder", "metric", "holdout", "objective", "eval_set", "supervision",
                                            "budget", "family", "params", "exposure")))


def _scaling(r: _Runs) -> np.ndarray:
    return np.array([row["role"] == "scaling" for row in r.rows])


def ladders_of(cases: pl.DataFrame, role: str, axis: str) -> list[str]:
    sub = cases.filter((pl.col("role") == role) & (pl.col("axis") == axis))
    return sorted(sub["ladder"].unique().to_list())


# --- width calibration -----------------------------------------------------------------------


def _is_engine(r: _Runs) -> bool:
    return bool(r.dists) and isinstance(r.dists[0][0], Predictive)


def _grid(r: _Runs) -> np.ndarray:
    return KAPPA_GRID if _is_engine(r) else FACTOR_GRID


def _covered_on_grid(r: _Runs, level: float) -> np.ndarray:
    """``[K, T]``: is target T's actual inside its interval at the grid's K-th width parameter."""
    if "covered" in r.scores:
        return r.scores["covered"]
    grid = _grid(r)
    out = np.zeros((grid.size, len(r.rows)), bool)
    tail = (1 - level) / 2
    if _is_engine(r):
        members: dict[int, list[int]] = {}
        for i, (dist, _) in enumerate(r.dists):
            members.setdefault(id(dist), []).append(i)
        for idx in members.values():
            dist = r.dists[idx[0]][0]
            if not isinstance(dist, Predictive):
                continue
            cols = [r.dists[i][1] for i in idx]
            ys = np.array([r.rows[i]["actual"] for i in idx])
            zy = dist.scale.to(ys)
            base = (dist.law + dist.noise)[:, cols]  # [S, q]
            tot = base[None] + grid[:, None, None] * (dist.reach[cols][None, None, :] * dist.e[:, cols][None])
            pit = np.einsum("s,ksq->kq", dist.w, (tot <= zy[None, None, :]).astype(float))  # [K, q]
            fin = np.isfinite(ys)
            out[:, np.array(idx)[fin]] = ((pit >= tail) & (pit <= 1 - tail))[:, fin]
    else:
        for i, (dist, j) in enumerate(r.dists):
            y = r.rows[i]["actual"]
            p = float(dist.point[j])
            lo, hi = (float(v[j]) for v in dist.interval(level))
            if not (math.isfinite(y) and math.isfinite(p) and math.isfinite(lo) and math.isfinite(hi)):
                continue
            half = hi - p if y >= p else p - lo
            s = 0.0 if abs(y - p) <= 1e-9 * max(1.0, abs(y)) else (abs(y - p) / half if half > 0 else math.inf)
            out[:, i] = s <= grid
    r.scores["covered"] = out
    return out


def fit_index(r: _Runs, level: float, train: np.ndarray) -> int:
    """Grid index of the smallest width parameter whose coverage over the ``train`` targets, averaged
    over their ladders, reaches ``level`` (the largest on the grid when none does)."""
    cov = _covered_on_grid(r, level)
    lad = np.array([row["ladder"] for row in r.rows])
    usable = train & np.array([math.isfinite(row["actual"]) for row in r.rows]) & _has_forecast(r)
    names = np.unique(lad[usable])
    if names.size == 0:
        return 0
    per = np.stack([cov[:, usable & (lad == name)].mean(axis=1) for name in names])  # [L, K]
    ok = np.flatnonzero(per.mean(axis=0) >= level - 1e-12)
    return int(ok[0]) if ok.size else len(_grid(r)) - 1


def _has_forecast(r: _Runs) -> np.ndarray:
    """Targets with a finite forecast and a finite interval (the ones a width can be fitted on)."""
    if "has" not in r.scores:
        lo, hi, _ = _scores(r, None, r.level, raw=True)
        r.scores["has"] = np.array([math.isfinite(float(d.point[j])) for d, j in r.dists]) & np.isfinite(lo) \
            & np.isfinite(hi)
    return r.scores["has"]


def fit_rule(r: _Runs, est: str, axis: str, level: float, train: np.ndarray) -> WidthRule:
    k = fit_index(r, level, train)
    kind = "kappa" if _is_engine(r) else "factor"
    return WidthRule(est, level, float(_grid(r)[k]), int((train & _has_forecast(r)).sum()), kind, axis)


def _scores(r: _Runs, k: int | None, level: float, raw: bool = False):
    """``(lo, hi, interval score)`` per target at grid index ``k`` (``raw``: the estimator's own)."""
    key = "raw" if raw else k
    if key not in r.scores:
        grid = _grid(r)
        lo, hi = np.full(len(r.rows), np.nan), np.full(len(r.rows), np.nan)
        seen: dict[int, tuple] = {}
        for i, (dist, j) in enumerate(r.dists):
            if id(dist) not in seen:
                if raw:
                    seen[id(dist)] = raw_interval(dist, level)
                elif isinstance(dist, Predictive):
                    seen[id(dist)] = dist.interval(level, float(grid[k]))
                else:
                    seen[id(dist)] = WidthRule("", level, float(grid[k]), 0).apply(dist.point, *dist.interval(level))
            lo[i], hi[i] = seen[id(dist)][0][j], seen[id(dist)][1][j]
        y = np.array([row["actual"] for row in r.rows])
        with np.errstate(invalid="ignore"):
            score = interval_score(lo, hi, y, level)
        r.scores[key] = (lo, hi, score)
    return r.scores[key]


def _frame(r: _Runs, est: str, axis: str, level: float, ref: dict) -> pl.DataFrame:
    """The rows of one estimator: raw and out-of-fold calibrated intervals and their scores."""
    lad = np.array([row["ladder"] for row in r.rows])
    scaling = _scaling(r)
    fold_k: dict[str, int] = {}
    for name in np.unique(lad):
        train = scaling & (lad != name)
        fold_k[name] = fit_index(r, level, train if train.any() else scaling)
    lo_raw, hi_raw, _ = _scores(r, None, level, raw=True)
    grid = _grid(r)
    recs = []
    for i, row in enumerate(r.rows):
        dist, j = r.dists[i]
        k = fold_k[row["ladder"]]
        lo, hi, s = (v[i] for v in _scores(r, k, level))
        p, y = float(dist.point[j]), row["actual"]
        ok = math.isfinite(p)
        fin = ok and math.isfinite(lo) and math.isfinite(hi)
        err = p - y if ok else math.nan
        noise = row["noise_sd"]
        ref_is = ref.get((axis, _target_key(row)), math.nan)
        recs.append({**row, "estimator": est, "predicted": p, "lower": float(lo), "upper": float(hi),
                     "raw_lower": float(lo_raw[i]), "raw_upper": float(hi_raw[i]), "width_param": float(grid[k]),
                     "error": err, "z": err / noise if ok and math.isfinite(noise) and noise > 0 else math.nan,
                     "covered": bool(inside(lo, hi, y)) if fin else None,
                     "width": float(hi - lo) if fin else math.nan,
                     "interval_score": float(s) if fin else math.nan,
                     "rel_is": float(s / max(ref_is, row["min_effect"])) if fin and math.isfinite(ref_is)
                     else math.nan})
    return pl.DataFrame(recs, infer_schema_length=None)


def summarise(cases: pl.DataFrame, level: float, by=("axis", "holdout", "estimator")) -> pl.DataFrame:
    """Per ``by`` group: cases, failures, MAE, median |error|, bias, mean |z|, coverage, median width,
    interval score, relative interval score (vs carry-forward), and MAE on the cases every estimator
    forecast (``mae_common``)."""
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
    good = pl.col("error").is_not_nan()
    summary = (
        cases.group_by(by, maintain_order=True)
        .agg(
            pl.len().alias("n"),
            pl.col("predicted").is_nan().sum().alias("n_failed"),
            pl.col("error").filter(good).abs().mean().alias("mae"),
            pl.col("error").filter(good).abs().median().alias("median_abs_error"),
            pl.col("error").filter(good).mean().alias("bias"),
            pl.col("z").filter(pl.col("z").is_not_nan()).abs().mean().alias("mean_abs_z"),
            pl.col("covered").cast(pl.Float64).mean().alias("coverage"),
            pl.col("width").filter(fin).median().alias("median_width"),
            pl.col("interval_score").filter(fin).mean().alias("interval_score"),
            pl.col("rel_is").filter(pl.col("rel_is").is_not_nan()).mean().alias("rel_is"),
            fin.sum().alias("n_intervals"),
        )
        .join(common_rows.group_by(by).agg(pl.col("error").abs().mean().alias("mae_common"),
                                           pl.col("z").abs().mean().alias("mean_abs_z_common"),
                                           pl.len().alias("n_common")), on=by, how="left")
        .sort(by)
    )
    return summary.with_columns(pl.lit(level).alias("level"))


def per_ladder(cases: pl.DataFrame, estimator: str, axis: str = "size", by=("ladder",)) -> pl.DataFrame:
    """Coverage, median width, MAE and mean relative interval score of ``estimator`` per ladder (or per
    ``by``), out of fold: each scaling ladder's widths were fitted without it."""
    sub = cases.filter((pl.col("estimator") == estimator) & (pl.col("axis") == axis) & pl.col("predicted").is_not_nan())
    return (sub.group_by(["role", *by], maintain_order=True)
            .agg(pl.len().alias("n"), pl.col("covered").cast(pl.Float64).mean().alias("coverage"),
                 pl.col("width").median().alias("median_width"), pl.col("error").abs().mean().alias("mae"),
                 pl.col("rel_is").mean().alias("rel_is"))
            .sort(["role", *by], descending=[True] + [False] * len(by)))


# --- the default, chosen inside the loop ---------------------------------------------------


def _ladder_scores(bt: Backtest, est: str, train: list[str], test: list[str]) -> dict[str, float]:
    """Mean ``rel_is`` of ``est`` per ladder of ``test``, each scored with the width fitted on ``train``
    minus that ladder (``train`` itself when the ladder is not in it)."""
    r = bt._state["runs"][(est, "size")]
    level = bt._state["level"]
    lad = np.array([row["ladder"] for row in r.rows])
    ref = bt._state.setdefault("ref", {})
    if not ref:
        rr = bt._state["runs"][(REFERENCE, "size")]
        ref.update({_target_key(row): s for row, s in zip(rr.rows, _scores(rr, None, level, raw=True)[2])})
    ref_is = bt._state.setdefault(("ref_is", est), np.array([max(ref.get(_target_key(row), math.nan),
                                                                 row["min_effect"]) for row in r.rows]))
    out = {}
    for name in test:
        fit_on = np.isin(lad, [t for t in train if t != name])
        k = fit_index(r, level, fit_on)
        s = _scores(r, k, level)[2]
        sel = (lad == name) & np.isfinite(s) & np.isfinite(ref_is) & (ref_is > 0)
        out[name] = float(np.mean(s[sel] / ref_is[sel])) if sel.any() else math.nan
    return out


def pick(per: dict[str, dict[str, float]], candidates: list[str]) -> str:
    """The rule on per-ladder scores (``per[candidate][ladder]``, lower is better): the simplest candidate
    (``candidates`` is ordered simplest first) whose mean paired difference to the best candidate's
    scores is within one standard error of that difference (over ladders)."""
    mean = {c: float(np.nanmean(list(per[c].values()))) for c in candidates}
    best = min(candidates, key=lambda c: mean[c] if math.isfinite(mean[c]) else math.inf)
    ladders = list(per[best])
    for c in candidates:
        if c == best:
            return c
        d = np.array([per[c].get(name, math.nan) - per[best][name] for name in ladders])
        d = d[np.isfinite(d)]
        if d.size >= 2 and float(d.mean()) <= float(np.std(d, ddof=1) / math.sqrt(d.size)):
            return c
    return best


def _rule(bt: Backtest, candidates: list[str], ladders: list[str]) -> tuple[str, dict]:
    """The rule on ``ladders``: each candidate's left-one-ladder-out score per ladder, then :func:`pick`."""
    per = {c: _ladder_scores(bt, c, ladders, ladders) for c in candidates}
    return pick(per, candidates), per


def choose(bt: Backtest, candidates: list[str]) -> dict:
    """The default among ``candidates`` (simplest first), and the out-of-sample score of the rule that
    picks it (nested: the rule re-run without each scaling ladder, its pick scored on that ladder)."""
    ladders = ladders_of(bt.cases, "scaling", "size")
    pick, per = _rule(bt, candidates, ladders)
    outer = {}
    for name in ladders:
        inner = [lad for lad in ladders if lad != name]
        inner_pick, _ = _rule(bt, candidates, inner)
        outer[name] = (inner_pick, _ladder_scores(bt, inner_pick, inner, [name])[name])
    scores = np.array([s for _, s in outer.values()])
    mean = {c: float(np.nanmean(list(v.values()))) for c, v in per.items()}
    order = sorted(candidates, key=lambda c: mean[c])
    runner = next((c for c in order if c != pick), None)
    margin = se = math.nan
    if runner is not None:
        d = np.array([per[runner][n] - per[pick][n] for n in ladders])
        d = d[np.isfinite(d)]
        margin = float(d.mean()) if d.size else math.nan
        se = float(np.std(d, ddof=1) / math.sqrt(d.size)) if d.size >= 2 else math.nan
    return jsonable(dict(
        default=pick, candidates=list(candidates), ladders=ladders, score=mean[pick],
        runner_up=runner, runner_up_score=mean.get(runner, math.nan), margin=margin, margin_se=se,
        nested_score=float(np.nanmean(scores)), nested_score_se=float(np.nanstd(scores, ddof=1) / math.sqrt(scores.size))
        if scores.size >= 2 else math.nan, nested_picks={n: p for n, (p, _) in outer.items()},
        nested_per_ladder={n: s for n, (_, s) in outer.items()},
        per_ladder={c: v for c, v in per.items()}, mean={c: mean[c] for c in candidates},
    ))


def calibration_record(bt: Backtest, estimator: str, axis: str = "size") -> dict:
    """What ``calibration.json`` keeps of one estimator: its width rule fitted on every scaling ladder
    and its out-of-fold coverage per ladder and per regime."""
    rule = bt.rules[(estimator, axis)]
    sub = bt.cases.filter((pl.col("estimator") == estimator) & (pl.col("axis") == axis)
                          & pl.col("covered").is_not_null())
    scaling = sub.filter(pl.col("role") == "scaling")

    def cov(df: pl.DataFrame, by: str) -> dict:
        return {str(k): {"coverage": float(v["covered"].cast(pl.Float64).mean()), "n": v.height,
                         "median_width": float(v["width"].median())}
                for (k,), v in df.group_by([by], maintain_order=True)}

    return jsonable(dict(
        **rule.to_dict(), coverage_left_out=float(scaling["covered"].cast(pl.Float64).mean()) if scaling.height
        else math.nan, median_width_left_out=float(scaling["width"].median()) if scaling.height else math.nan,
        per_ladder=cov(sub, "ladder"), per_regime=cov(scaling, "regime"),
        mae=float(scaling["error"].abs().mean()) if scaling.height else math.nan,
    ))


def trust_record(bt: Backtest, estimator: str) -> dict:
    """The default's record on the scaling ladders, out of fold: coverage, median width, and its mean
    and median absolute error beside carry-forward's and plain curve fitting's on the same targets."""
    sub = bt.cases.filter((pl.col("role") == "scaling") & (pl.col("axis") == "size"))
    mine = sub.filter((pl.col("estimator") == estimator) & pl.col("predicted").is_not_nan())
    ident = ["ladder", "metric", "holdout", "objective", "eval_set", "params"]
    out = dict(estimator=estimator, level=bt.level, ladders=ladders_of(bt.cases, "scaling", "size"), n=mine.height,
               coverage=float(mine["covered"].cast(pl.Float64).mean()) if mine.height else math.nan,
               median_width=float(mine["width"].median()) if mine.height else math.nan,
               mae=float(mine["error"].abs().mean()) if mine.height else math.nan,
               median_abs_error=float(mine["error"].abs().median()) if mine.height else math.nan)
    for other, key in (("carry-forward", "carry_forward"), ("curve-fit", "curve_fit")):
        theirs = sub.filter((pl.col("estimator") == other) & pl.col("predicted").is_not_nan())
        both = mine.select(*ident, pl.col("error").alias("e1")).join(
            theirs.select(*ident, pl.col("error").alias("e2")), on=ident)
        out[f"mae_{key}"] = float(both["e2"].abs().mean()) if both.height else math.nan
        out[f"median_abs_error_{key}"] = float(both["e2"].abs().median()) if both.height else math.nan
        out[f"mae_vs_{key}"] = float(both["e1"].abs().mean()) if both.height else math.nan
    return jsonable(out)


def calibration_json(bt: Backtest, source: str = "") -> dict:
    """What ``rerank_scaling/scaling/calibration.json`` holds (see :mod:`.calibration`)."""
    rules: dict[str, dict] = {}
    for (est, axis) in bt.rules:
        rules.setdefault(axis, {})[est] = calibration_record(bt, est, axis)
    choice = dict(bt.choice or {})
    default = choice.get("default")
    return jsonable(dict(
        default=default, level=bt.level, source=source or "rerank-scaling backtest (reports/ladders/analyse.sh)",
        scaling_ladders=ladders_of(bt.cases, "scaling", "size"), controls=ladders_of(bt.cases, "control", "size"),
        choice={k: choice.get(k) for k in ("candidates", "score", "runner_up", "runner_up_score", "margin",
                                           "margin_se", "nested_score", "nested_score_se", "nested_picks", "mean")},
        rules=rules, trust=trust_record(bt, default) if default else None,
    ))
