"""Forecast estimators scored by the backtest (:mod:`.backtest`), each a named option.

An estimator takes a list of :class:`Case` (one ladder, metric and hold-out; the cases differ in
objective / eval set / model) and returns, per case, a forecast distribution: an object with
``point`` (the forecast at the case's targets) and ``interval(level, kappa)``. The engine's
estimators return :class:`.engine.Predictive` (``kappa`` scales its misspecification term, the width
the backtest calibrates on real ladders); the others return :class:`Fixed` intervals, computed at
one level, which ``kappa`` does not change (their calibration is a conformal factor).

Size estimators (targets: the hidden largest sizes, at their final exposure):

=====================  =======================================================================
``mixture``            the engine (:mod:`.engine`): Bayesian mixture over ``a + b*x^c`` (exponent
                       grid) and ``a + b*ln x`` on the metric's scale (logit / log), monotone,
                       predictive of the mean of the target's runs
``mixture-pooled``     the same, the noise variance moderated across the metric's groups of one
                       ladder (empirical Bayes, :func:`.engine.moderated_prior`)
``mixture-shared``     ``mixture-pooled``, and groups that differ only in objective share the exponent's
                       posterior (each keeps its own level, slope and noise)
``loglinear-scaled``   the engine with the log-linear component alone
``curve-fit``          baseline: ``scipy.optimize.curve_fit`` of ``a + b*N^c`` on every run's final
                       value, delta-method intervals (:mod:`.baselines`)
``carry-forward``      baseline: the largest fitted size's mean, noise interval
``loglinear``          baseline: OLS ``a + b*ln N``
``auto``               the law ``forecast --law auto`` fits: ``a + b*N^c`` (log-linear below 4
                       sizes), bootstrap bias correction, wild/cell bootstrap intervals (the
                       default before 2026-12-02)
``averaged``           one point per size: mean over seeds and the last ``k`` checkpoints;
                       parametric bootstrap from the measured noise (the default 2026-12-02)
``pooled-objectives``  ``a_g + b_g*N^c``, one exponent shared across the objectives of a group
=====================  =======================================================================

Exposure estimators (targets: each model's hidden last checkpoints): ``mixture``,
``curve-fit``, ``carry-forward``, ``loglinear``, ``data`` (``a + b*D^c``, bias-corrected;
``a + b*ln D`` below 4 checkpoints).

Which estimator is the default is decided in one place, :mod:`.calibration` (written by the
backtest's nested choice, :func:`.backtest.choose`), never here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import baselines, engine
from rerank_scaling.scaling.evidence import LAST_K, noise_estimate
from rerank_scaling.scaling.fit import fit_law
from rerank_scaling.scaling.metrics import direction as metric_direction
from rerank_scaling.scaling.metrics import natural_bound
from rerank_scaling.scaling.selection import choose_law
from rerank_scaling.scaling.table import GROUP_COLUMNS, run_values

# pooled-objectives shares the exponent among the cases that differ only in objective
POOL_ACROSS_OBJECTIVES = tuple(k for k in GROUP_COLUMNS if k != "objective")
# the engine's estimators, simplest first: the order the default rule breaks ties in (backtest.choose)
ENGINE = ("loglinear-scaled", "mixture", "mixture-pooled", "mixture-shared")


@dataclass
class Case:
    """One hold-out of one group: fitted rows and the hidden targets."""

    ladder: str
    metric: str
    key: dict  # objective, eval_set, supervision, budget (those present); + params for exposure cases
    axis: str  # "size" or "exposure"
    holdout: int  # how many largest sizes / last checkpoints are hidden
    rows: pl.DataFrame  # every fitted checkpoint row (run, params, exposure, value)
    final: pl.DataFrame  # one row per fitted run: run, params, value (its final fitted checkpoint)
    target_x: np.ndarray  # sizes (size axis) or exposures (exposure axis)
    target_d: np.ndarray  # final exposure of the targets (size axis), = target_x on the exposure axis
    actual: np.ndarray
    horizon: np.ndarray  # 1 = next level, 2 = the one after
    extra: dict = field(default_factory=dict)
    target_m: np.ndarray | None = None  # runs averaged in each actual (1 = a new run, the forecast's default)

    def __post_init__(self):
        if self.target_m is None:
            self.target_m = np.ones(self.target_x.size)

    @property
    def direction(self) -> int:
        return metric_direction(self.metric)

    def levels(self) -> tuple[np.ndarray, np.ndarray]:
        """Fitted points: (size or exposure, value), one per run (or checkpoint)."""
        if self.axis == "size":
            return self.final["params"].to_numpy().astype(float), self.final["value"].to_numpy().astype(float)
        return self.rows["exposure"].to_numpy().astype(float), self.rows["value"].to_numpy().astype(float)

    def series(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per fitted run with >= 2 checkpoints: its (exposures, values) in exposure order."""
        rows = self.rows.filter(pl.col("exposure").is_not_null())
        out = []
        for _, s in rows.group_by("run", maintain_order=True):
            if s.height >= 2:
                s = s.sort("exposure")
                out.append((s["exposure"].to_numpy().astype(float), s["value"].to_numpy().astype(float)))
        return out

    def noise(self):
        if "noise" not in self.extra:
            x, y = self.levels()
            self.extra["noise"] = noise_estimate(x, y, self.series())
        return self.extra["noise"]

    def seeds_per_size(self) -> float:
        """Mean number of runs per fitted size (1 = one run per size: noise unmeasured by seeds)."""
        x, _ = self.levels()
        if self.axis != "size" or x.size == 0:
            return 1.0
        return float(x.size / np.unique(x).size)


def size_case(ladder: str, metric: str, key: dict, rows: pl.DataFrame, cut: float, holdout: int = 0,
              extra_targets=()) -> Case:
    """The size case of one group: runs with ``params <= cut`` fitted; every larger size in ``rows`` a
    target (its runs' mean final value the actual, their count ``target_m``), plus ``extra_targets``
    sizes with no actual (NaN, ``target_m`` 1), forecast at the largest known final exposure."""
    fitted = rows.filter(pl.col("params") <= cut)
    final = run_values(fitted)
    tv = run_values(rows.filter(pl.col("params") > cut))
    tgt = (tv.group_by("params").agg(pl.col("value").mean(), pl.col("exposure").mean(), pl.len().alias("m"))
           .sort("params"))
    x = tgt["params"].to_numpy().astype(float)
    d = tgt["exposure"].to_numpy().astype(float) if tgt["exposure"].is_not_null().all() else np.full(x.size, np.nan)
    actual = tgt["value"].to_numpy().astype(float)
    m = tgt["m"].to_numpy().astype(float)
    extra = np.array(sorted(float(p) for p in extra_targets if float(p) > cut and float(p) not in set(x)), float)
    if extra.size:
        known = np.concatenate([d, final["exposure"].to_numpy().astype(float)]) if "exposure" in final.columns else d
        known = known[np.isfinite(known)]
        x = np.concatenate([x, extra])
        d = np.concatenate([d, np.full(extra.size, known.max() if known.size else np.nan)])
        actual = np.concatenate([actual, np.full(extra.size, np.nan)])
        m = np.concatenate([m, np.ones(extra.size)])
        order = np.argsort(x, kind="stable")
        x, d, actual, m = x[order], d[order], actual[order], m[order]
    return Case(ladder, metric, key, "size", holdout, fitted, final, x, d, actual, np.arange(1, x.size + 1),
                target_m=m)


@dataclass
class Fixed:
    """An interval an estimator computed at one level (``kappa`` does not apply to it)."""

    pred: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    level: float = 0.9

    @property
    def point(self) -> np.ndarray:
        return np.asarray(self.pred, float)

    def interval(self, level: float, kappa: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        if not math.isclose(level, self.level):
            raise UserError(f"this estimator's intervals were computed at level {self.level:g}, not {level:g}")
        return np.asarray(self.lo, float), np.asarray(self.hi, float)


def _fixed(result, level: float) -> Fixed:
    return Fixed(*(np.asarray(v, float) for v in result), level=level)


def _nan(case: Case, level: float) -> Fixed:
    n = np.full(case.target_x.size, np.nan)
    return Fixed(n, n.copy(), n.copy(), level)


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn()
        except (UserError, ValueError, np.linalg.LinAlgError, FloatingPointError):
            return None


# --- the engine -------------------------------------------------------------------------------


def engine_est(linear_only: bool = False, pooled: bool = False, shared: bool = False):
    """An estimator of :mod:`.engine`: per case the predictive of the mean of the target's runs.
    ``pooled``: the noise variance's prior is moderated across the cases of one (ladder, metric,
    hold-out) batch, the groups a user's table has of that metric. ``shared``: cases that differ only in
    objective share the exponent's posterior (each keeps its own level, slope and noise)."""

    def many(cases: list[Case], opts) -> list:
        prior = engine.FLAT
        if pooled:
            fits = [engine.residual_fit(*c.levels(), c.metric) for c in cases]
            prior = engine.moderated_prior([f[0] for f in fits], [f[1] for f in fits])
        shared_w: dict[int, np.ndarray | None] = {}
        if shared:
            parts: dict[tuple, list[int]] = {}
            for i, c in enumerate(cases):
                parts.setdefault(tuple(c.key.get(k) for k in POOL_ACROSS_OBJECTIVES), []).append(i)
            for idx in parts.values():
                comps = [engine.components(*engine.points(*cases[i].levels(), cases[i].metric)[:2], prior=prior)
                         for i in idx]
                lw = engine.shared_evidence(comps)
                shared_w.update({i: lw for i in idx})
        out = []
        for i, c in enumerate(cases):
            x, y = c.levels()
            p = _quiet(lambda: engine.predictive(x, y, c.target_x, c.metric, c.direction, m_new=c.target_m,
                                                 linear_only=linear_only, prior=prior, seed=opts["seed"] + i,
                                                 n_draws=opts.get("n_draws", engine.N_DRAWS),
                                                 shared_log_w=shared_w.get(i)))
            out.append(p if p is not None else _nan(c, opts["level"]))
        return out

    return many


# --- baselines -----------------------------------------------------------------------------


def curve_fit_est(case: Case, opts) -> Fixed:
    x, y = case.levels()
    return _fixed(baselines.plain_curve_fit(x, y, case.target_x, case.direction, opts["level"]), opts["level"])


def carry_est(case: Case, opts) -> Fixed:
    x, y = case.levels()
    nz = case.noise()
    return _fixed(baselines.carry_forward(x, y, case.target_x, nz.sd, nz.df, opts["level"]), opts["level"])


def loglinear_est(case: Case, opts) -> Fixed:
    x, y = case.levels()
    return _fixed(baselines.loglinear(x, y, case.target_x, opts["level"]), opts["level"])


# --- earlier defaults, fitted laws with a bootstrap --------------------------------------------


def _law_forecast(law, N, y, cells, targets, opts, metric, bias_corrected=True, D=None, target_d=None):
    def run():
        fit = fit_law(law, N, y, D=D, metric=metric, cells=cells, n_boot=opts["n_boot"], level=opts["level"],
                      seed=opts["seed"])
        pred = fit.forecast(targets, target_d, bias_corrected=bias_corrected) if fit.draws is not None and \
            fit.draws.theta.shape[0] else fit.predict(targets, target_d)
        if fit.draws is not None and fit.draws.theta.shape[0]:
            lo, hi = fit.interval(targets, target_d, bias_corrected=bias_corrected)
        else:
            lo = hi = np.full(np.size(targets), np.nan)
        return np.asarray(pred, float), np.asarray(lo, float), np.asarray(hi, float)

    out = _quiet(run)
    return None if out is None else Fixed(*out, level=opts["level"])


def _size_points(case: Case):
    f = case.final
    return f["params"].to_numpy().astype(float), f["value"].to_numpy().astype(float), f["run"].to_numpy()


def law_est(requested: str):
    """The size law ``requested`` (``auto``, ``cv`` or a law name), as ``forecast --law`` fits it:
    bootstrap bias correction and wild/cell bootstrap intervals."""

    def est(case: Case, opts) -> Fixed:
        N, y, cells = _size_points(case)
        choice = _quiet(lambda: choose_law(requested, N, y, case.metric))
        if choice is None:
            return _nan(case, opts["level"])
        out = _law_forecast(choice.law, N, y, cells, case.target_x, opts, case.metric)
        return _nan(case, opts["level"]) if out is None else out

    return est


def joint_est(law: str):
    """A joint law (``joint``, ``joint-fang``) on every checkpoint of the fitted runs, each target forecast
    at its final exposure (the largest fitted one when unknown)."""

    def est(case: Case, opts) -> Fixed:
        rows = case.rows.filter(pl.col("exposure").is_not_null() & (pl.col("exposure") > 0))
        if rows.height == 0 or rows["params"].n_unique() < 2:
            return _nan(case, opts["level"])
        d = np.where(np.isfinite(case.target_d), case.target_d, float(rows["exposure"].max()))
        out = _law_forecast(law, rows["params"].to_numpy().astype(float), rows["value"].to_numpy().astype(float),
                            rows["run"].to_numpy(), case.target_x, opts, case.metric,
                            D=rows["exposure"].to_numpy().astype(float), target_d=d)
        return _nan(case, opts["level"]) if out is None else out

    return est


def _late(rows: pl.DataFrame, k: int) -> pl.DataFrame:
    return (rows.sort("exposure").group_by("run", maintain_order=True).tail(k)
            if rows["exposure"].is_not_null().any() else rows)


def averaged_est(case: Case, opts) -> Fixed:
    """One point per size (mean over runs of the mean of their last k checkpoints), refitted on
    parametric replicates drawn from the measured noise; intervals for a new run's value."""
    from rerank_scaling.scaling.bootstrap import BootstrapDraws
    from rerank_scaling.scaling.fit import point_fit, with_draws
    from rerank_scaling.scaling.solver import batched_lm

    late = _late(case.rows, opts.get("k", LAST_K))
    per_run = late.group_by("run", maintain_order=True).agg(pl.col("params").first(), pl.col("value").mean())
    per_size = per_run.group_by("params").agg(pl.col("value").mean(), pl.len().alias("m")).sort("params")
    N, y, m = (per_size[c].to_numpy().astype(float) for c in ("params", "value", "m"))
    run_sd = noise_estimate(per_run["params"].to_numpy(), per_run["value"].to_numpy(), case.series())
    if not math.isfinite(run_sd.sd) or N.size < 2:
        return _nan(case, opts["level"])
    law = "size" if N.size >= 4 else "loglinear"

    def run():
        fit, pr = point_fit(law, N, y, metric=case.metric)
        rng = np.random.default_rng(opts["seed"])
        B = opts["n_boot"]
        fitted = pr.fun(pr.theta[None, :])[0]
        Y = fitted + rng.normal(size=(B, N.size)) * (run_sd.sd / np.sqrt(m))
        theta, cost = batched_lm(lambda th, rows: pr.law.model(th, pr.lx, pr.lz, pr.ctx),
                                 np.repeat(pr.theta[None, :], B, 0), pr.lo, pr.hi, Y, np.ones_like(Y))
        keep = np.isfinite(cost)
        noise = rng.normal(size=int(keep.sum())) * run_sd.sd
        fit = with_draws(fit, BootstrapDraws(theta[keep], noise, "parametric"))
        draws = fit.draws_at(case.target_x, kind="prediction")
        point = fit.forecast(case.target_x)
        from scipy import stats

        lvl = opts["level"]
        factor = stats.t.ppf(0.5 + lvl / 2, max(run_sd.df, 1)) / stats.norm.ppf(0.5 + lvl / 2)
        dev = draws - draws.mean(axis=0)
        q_lo, q_hi = np.percentile(dev, [50 * (1 - lvl), 100 - 50 * (1 - lvl)], axis=0)
        return Fixed(point, point + factor * q_lo, point + factor * q_hi, lvl)

    out = _quiet(run)
    return _nan(case, opts["level"]) if out is None else out


# --- partial pooling: one exponent shared by several groups ---------------------------------

_C_GRID = -np.geomspace(0.01, 2.9, 160)


def _profile(t: np.ndarray, Y: np.ndarray, s: int, bound: float | None):
    """For every exponent on the grid, the best (a, g) of ``a - s*g*exp(c*t)`` per replicate row
    of ``Y[B, n]`` (g >= 0, asymptote not past ``bound``).  Returns cost[B, K], a[B, K], g[B, K]."""
    U = np.exp(np.outer(_C_GRID, t))  # [K, n]
    um = U.mean(axis=1)
    ym = Y.mean(axis=1, keepdims=True)  # [B, 1]
    var_u = np.mean((U - um[:, None]) ** 2, axis=1)  # [K]
    cov = (Y - ym) @ (U - um[:, None]).T / t.size  # [B, K]
    b = cov / np.where(var_u > 0, var_u, 1.0)
    a = ym - b * um
    g = -s * b
    flat = g <= 0
    a = np.where(flat, ym, a)
    g = np.where(flat, 0.0, g)
    if bound is not None:
        over = (s * (a - bound)) > 0
        if over.any():
            a = np.where(over, bound, a)
            num = np.einsum("kn,bn->bk", U, s * (bound - Y))
            g = np.where(over, np.maximum(num / np.sum(U * U, axis=1), 0.0), g)
    pred = a[:, :, None] - s * g[:, :, None] * U[None, :, :]
    cost = np.sum((Y[:, None, :] - pred) ** 2, axis=2)
    return cost, a, g


def pooled_fit(groups: list[tuple[np.ndarray, np.ndarray]], s: int, bound: float | None, Ys=None):
    """Shared exponent over ``groups`` of (log-size, y); ``Ys`` optional replicates [B, n] per group."""
    Ys = Ys or [y[None, :] for _, y in groups]
    costs, As, Gs = zip(*(_profile(t, Y, s, bound) for (t, _), Y in zip(groups, Ys)))
    total = np.sum(costs, axis=0)  # [B, K]
    k = np.argmin(total, axis=1)
    rows = np.arange(total.shape[0])
    return _C_GRID[k], [A[rows, k] for A in As], [G[rows, k] for G in Gs]


def pooled_est(cases: list[Case], opts, by: tuple[str, ...] = ()) -> list[Fixed]:
    out: list[Fixed | None] = [None] * len(cases)
    parts: dict[tuple, list[int]] = {}
    for i, c in enumerate(cases):
        parts.setdefault(tuple(c.key.get(k) for k in by), []).append(i)
    for idx in parts.values():
        members = [cases[i] for i in idx]
        res = _quiet(lambda: _pooled_members(members, opts))
        for j, i in enumerate(idx):
            out[i] = Fixed(*res[j], level=opts["level"]) if res is not None else _nan(cases[i], opts["level"])
    return out


def _pooled_members(cases: list[Case], opts) -> list[tuple]:
    from scipy import stats

    s = cases[0].direction
    data = []
    for c in cases:
        N, y, cells = _size_points(c)
        ref = float(np.exp(np.mean(np.log(N))))
        bound = natural_bound(c.metric)
        if bound == 1.0 and np.max(y) > 1.0:
            bound = 100.0 if np.max(y) <= 100 else None
        data.append((np.log(N / ref), y, cells, ref, bound))
    if any(np.unique(t).size < 2 for t, *_ in data):
        raise UserError("too few sizes to pool")
    bound = data[0][4]
    groups = [(t, y) for t, y, *_ in data]
    c_hat, a_hat, g_hat = pooled_fit(groups, s, bound)
    n_tot = sum(y.size for _, y in groups)
    p = 2 * len(groups) + 1
    df = n_tot - p
    inflate = math.sqrt(n_tot / df) if df > 0 else math.nan
    rng = np.random.default_rng(opts["seed"])
    B = opts["n_boot"]
    webb = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
    Ys, resid_all, fitted = [], [], []
    for gi, (t, y, cells, _, _) in enumerate(data):
        f = a_hat[gi][0] - s * g_hat[gi][0] * np.exp(c_hat[0] * t)
        r = (y - f) * (inflate if math.isfinite(inflate) else 1.0)
        _, cell_idx = np.unique(cells, return_inverse=True)
        v = rng.choice(webb, size=(B, int(cell_idx.max()) + 1))[:, cell_idx]
        Ys.append(f + v * r)
        resid_all.append(r)
        fitted.append(f)
    if B < 1:  # no bootstrap: the point forecasts alone
        points = [a_hat[gi][0] - s * g_hat[gi][0] * np.exp(c_hat[0] * np.log(c.target_x / d[3]))
                  for gi, (c, d) in enumerate(zip(cases, data))]
        return [(p, np.full(p.size, np.nan), np.full(p.size, np.nan)) for p in points]
    cb, ab, gb = pooled_fit(groups, s, bound, Ys)
    pool = np.concatenate(resid_all)
    lvl = opts["level"]
    factor = (stats.t.ppf(0.5 + lvl / 2, df) / stats.norm.ppf(0.5 + lvl / 2)) if df >= 1 else math.inf
    tail = 50 * (1 - lvl)
    results = []
    for gi, (c, (t, y, cells, ref, _)) in enumerate(zip(cases, data)):
        tn = np.log(c.target_x / ref)
        point = a_hat[gi][0] - s * g_hat[gi][0] * np.exp(c_hat[0] * tn)
        draws = ab[gi][:, None] - s * gb[gi][:, None] * np.exp(cb[:, None] * tn[None, :])
        draws = draws + (rng.choice([-1.0, 1.0], B) * pool[rng.integers(0, pool.size, B)])[:, None]
        dev = draws - draws.mean(axis=0)
        q_lo, q_hi = np.percentile(dev, [tail, 100 - tail], axis=0)
        results.append((point, point + factor * q_lo, point + factor * q_hi))
    return results


# --- exposure axis ---------------------------------------------------------------------------


def data_est(case: Case, opts) -> Fixed:
    """The data law ``a + b*D^c`` (``a + b*ln D`` below 4 checkpoints) per model, bias-corrected."""
    D, y = case.levels()
    law = "data" if np.unique(D).size >= 4 else "data-loglinear"
    out = _law_forecast(law, np.ones_like(D), y, case.rows["run"].to_numpy(), np.ones(case.target_x.size), opts,
                        case.metric, D=D, target_d=case.target_x)
    return _nan(case, opts["level"]) if out is None else out


def _each(fn):
    def many(cases, opts):
        return [fn(c, opts) for c in cases]

    return many


SIZE_ESTIMATORS = {
    "mixture": engine_est(),
    "mixture-pooled": engine_est(pooled=True),
    "mixture-shared": engine_est(pooled=True, shared=True),
    "loglinear-scaled": engine_est(linear_only=True),
    "curve-fit": _each(curve_fit_est),
    "carry-forward": _each(carry_est),
    "loglinear": _each(loglinear_est),
    "auto": _each(law_est("auto")),
    "averaged": _each(averaged_est),
    "pooled-objectives": lambda cases, opts: pooled_est(cases, opts, POOL_ACROSS_OBJECTIVES),
}
EXPOSURE_ESTIMATORS = {
    "mixture": engine_est(),
    "curve-fit": _each(curve_fit_est),
    "carry-forward": _each(carry_est),
    "loglinear": _each(loglinear_est),
    "data": _each(data_est),
}
ESTIMATORS = {"size": tuple(SIZE_ESTIMATORS), "exposure": tuple(EXPOSURE_ESTIMATORS)}
LAW_PREFIX = "law:"  # law:size, law:fang, law:auto, ... : a fitted size law as an estimator (forecast --law)


def size_estimator(name: str):
    """The size estimator ``name``: one of :data:`SIZE_ESTIMATORS`, or ``law:NAME`` for the law ``NAME``
    as ``forecast --law`` fits it: a size law (``auto``, ``cv``, ``size``, ``fang``, ``loglinear``,
    ``bounded``) on the fitted runs' final values, or a joint law (``joint``, ``joint-fang``) on their
    checkpoints, forecast at each target's final exposure."""
    if name in SIZE_ESTIMATORS:
        return SIZE_ESTIMATORS[name]
    if name.startswith(LAW_PREFIX):
        from rerank_scaling.scaling.laws import JOINT_LAWS
        from rerank_scaling.scaling.selection import CHOICES

        law = name[len(LAW_PREFIX):]
        if law in CHOICES:
            return _each(law_est(law))
        if law in JOINT_LAWS:
            return _each(joint_est(law))
    raise UserError(f"unknown estimator '{name}' (choose from {', '.join(SIZE_ESTIMATORS)}, or law:NAME)")
BASELINES = ("curve-fit", "carry-forward", "loglinear")  # compared against, never the default
BASELINE = "curve-fit"
