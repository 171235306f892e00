"""The chain law: a retrieve-then-rerank chain's quality from the reranker's size, the depth and the first stage.

A chain (rows with ``stage == "chain"`` in the tidy table, :mod:`rerank_scaling.results`) is a first stage
``f`` whose top ``k`` candidates a reranker of ``N`` parameters reorders. Its quality ``y`` (ndcg@10 by
default, any ranking metric) is modelled as

    y = y0_f + s(N) * max(U(r_fk) - y0_f, 0),     s(N) = 1 - b * (N / N_ref)^(-c),     U(r) = r^gamma

* ``y0_f``: the first stage alone (its depth-0 row), measured;
* ``r_fk``: the first stage's recall at ``k`` (``fs-recall``), measured: the share of the relevant
  documents the reranker can reach;
* ``U(r)``: what a perfect reranker makes of a pool of recall ``r`` (1 at ``r = 1``; ``gamma`` < 1 for a
  metric that a few relevant documents on top already satisfy, such as MRR), never below the first
  stage's own value (a perfect reranker does not hurt);
* ``s(N)``: the reranker's *skill*, the share of the way from the first stage's own order (``s = 0``) to
  the pool's ceiling (``s = 1``) it goes; a saturating power law in ``N`` towards the perfect reranker,
  negative for a reranker worse than the first stage's order.

Three parameters (``b``, ``c``, ``gamma``) are shared by every first stage and depth of a reranker
condition (family, objective, supervision, data budget, eval set), so two or three reranker sizes fit it: the first
stages and depths pin ``gamma``, the sizes pin ``b`` and ``c``. The fit is least squares, profiled over a
grid of ``(c, gamma)`` with ``b`` in closed form (no optimiser, no local minima).

Intervals come from a two-level residual bootstrap: each replicate gives every reranker run one
effect (normal, at the scale of the runs' mean residuals, corrected for the size law's two parameters:
a reranker that came out well is well over all its chains), shakes each chain's own residual
(Rademacher signs), refits, and adds a new chain's deviation (a new run effect plus a random chain
residual). The interval is the replicates' spread around the fit, widened
by ``t_df / z`` with ``df`` = reranker sizes - 2 (the size law's parameters) when that is at least one.
With two sizes the size trend has no residual: a run effect is then taken as large as a chain's scatter
(an assumption, said in :attr:`ChainFit.note`). Why this form: scaling/README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import stats

from rerank_scaling.errors import UserError
from rerank_scaling.scaling.metrics import bounds as metric_bounds
from rerank_scaling.scaling.metrics import kind as metric_kind
from rerank_scaling.scaling.table import CHAIN, as_table, is_chain
from rerank_scaling.scaling.util import jsonable

RECALL = "fs-recall"
COSTS = ("chain-flops", "chain-ms", "chain-ms-batched")
DEFAULT_METRIC = "ndcg@10"
RERANKER_KEYS = ("family", "objective", "supervision", "budget", "eval_set")  # a reranker condition
C_GRID = np.geomspace(0.02, 3.0, 40)
GAMMA_GRID = np.linspace(0.2, 3.0, 29)
FORMULA = "y = y0 + (1 - b*(N/N_ref)^-c) * max(r^gamma - y0, 0)"


def chain_rows(table) -> pl.DataFrame:
    """The chain rows of a table or study folder (validated); :class:`UserError` when it has none."""
    df = as_table(table, chains=True)
    if "stage" not in df.columns or df.filter(is_chain(df)).height == 0:
        where = f"{table}: " if not isinstance(table, pl.DataFrame) else ""
        raise UserError(f"{where}no chain rows (stage == '{CHAIN}'): run a study with a [chain] section "
                        "(first stages x rerankers x depths) first")
    missing = [c for c in ("first_stage", "depth") if c not in df.columns]
    if missing:
        raise UserError(f"chain rows without a '{missing[0]}' column")
    return df.filter(is_chain(df))


def chain_points(table, metric: str = DEFAULT_METRIC, eval_set: str | None = None) -> pl.DataFrame:
    """One row per measured chain and eval set: the reranker's condition and run, ``params`` (N),
    ``first_stage``, ``depth``, ``y`` (the metric), ``recall`` (fs-recall at the depth), ``y0`` (the first
    stage alone), the measured costs present, and ``first_stage_params``. Depth-0 rows (first stage alone)
    are kept with ``params`` 0. :class:`UserError` names a missing metric, eval set or first stage alone."""
    if metric == RECALL or metric in COSTS or metric_kind(metric) != "quality":
        raise UserError(f"metric '{metric}' is not a quality metric of the chain (e.g. {DEFAULT_METRIC}, map@100, "
                        "mrr@10): the chain law forecasts quality")
    rows = chain_rows(table)
    have = sorted(rows["metric"].unique().to_list())
    if metric not in have:
        raise UserError(f"metric '{metric}' is not measured on the chains (they have: {', '.join(have)})")
    if RECALL not in have:
        raise UserError(f"the chain rows have no '{RECALL}' (the first stage's recall at the depth)")
    if eval_set is not None:
        sets = sorted(rows["eval_set"].unique().to_list())
        if eval_set not in sets:
            raise UserError(f"eval set '{eval_set}' has no chain rows (they have: {', '.join(sets)})")
        rows = rows.filter(pl.col("eval_set") == eval_set)
    # a chain's reranker at its final checkpoint (the contract writes one; an older step would count twice)
    keys = ["run", "first_stage", "depth", "eval_set"]
    rows = rows.filter(pl.col("exposure").fill_null(-1) == pl.col("exposure").fill_null(-1).max().over(keys))
    wanted = [metric, RECALL, *[c for c in COSTS if c in have]]
    cond = [k for k in RERANKER_KEYS if k in rows.columns and k != "eval_set"]
    first = ["params", "model", *cond, *[c for c in ("first_stage_params",) if c in rows.columns]]
    wide = (rows.filter(pl.col("metric").is_in(wanted))
            .group_by(keys, maintain_order=True)
            .agg(*[pl.col(c).first() for c in first],
                 *[pl.col("value").filter(pl.col("metric") == m).first().alias(m) for m in wanted]))
    wide = wide.rename({metric: "y", RECALL: "recall"}).with_columns(pl.col("depth").cast(pl.Int64))
    # the first stage alone, once per eval set (written once, or beside every reranker: the same measurement)
    alone_rows = (wide.filter(pl.col("depth") == 0).group_by("first_stage", "eval_set", maintain_order=True)
                  .agg(pl.all().exclude(["y", "recall", *wanted[2:]]).first(),
                       *[pl.col(c).mean() for c in ("y", "recall", *wanted[2:])]))
    alone = alone_rows.select("first_stage", "eval_set", pl.col("y").alias("y0"))
    chains = wide.filter(pl.col("depth") > 0)
    wide = pl.concat([alone_rows.select(wide.columns), chains], how="vertical_relaxed")
    lacking = chains.join(alone, on=["first_stage", "eval_set"], how="anti")
    if lacking.height:
        r = lacking.row(0, named=True)
        raise UserError(f"first stage '{r['first_stage']}' has chains on '{r['eval_set']}' but no row of it alone "
                        f"(depth 0): the chain law measures the reranker's gain over it")
    out = wide.join(alone, on=["first_stage", "eval_set"], how="left")
    bad = out.filter((pl.col("depth") > 0) & (pl.col("y").is_null() | pl.col("recall").is_null()))
    if bad.height:
        r = bad.row(0, named=True)
        what = "recall" if r["recall"] is None else metric
        raise UserError(f"chain {r['first_stage']} -> {r['run']} @ {r['depth']} ({r['eval_set']}): no "
                        f"{'fs-recall' if what == 'recall' else what} row")
    return out.sort("eval_set", "first_stage", "params", "depth", "run")


def ceiling(recall, gamma):
    return np.power(np.clip(np.asarray(recall, dtype=float), 0.0, 1.0), gamma)


def _design(N, recall, y0, n_ref, c_grid, g_grid):
    """``z[c, g, n] = x^-c * gap`` and ``gap[g, n] = max(U - y0, 0)``: the law is ``y0 + gap - b * z``."""
    x = np.asarray(N, dtype=float) / n_ref
    gap = np.maximum(ceiling(recall, g_grid[:, None]) - np.asarray(y0, dtype=float), 0.0)  # [G, n]
    z = np.power(x, -c_grid[:, None])[:, None, :] * gap[None, :, :]  # [C, G, n]
    return z, gap


def _best(y, z, gap, y0):
    """Least squares over a ``(c, gamma)`` grid, ``b`` in closed form; returns (i_c, i_g, b) of the best."""
    target = (np.asarray(y0) + gap)[None, :, :] - np.asarray(y)  # = b * z  [1, G, n] vs [C, G, n]
    zz = np.einsum("cgn,cgn->cg", z, z)
    b = np.einsum("cgn,cgn->cg", z, np.broadcast_to(target, z.shape)) / np.where(zz > 0, zz, 1.0)
    rss = np.einsum("cgn->cg", (target - b[..., None] * z) ** 2)
    i = np.unravel_index(np.nanargmin(rss), rss.shape)
    return int(i[0]), int(i[1]), float(b[i])


def _profile(y, N, recall, y0, n_ref, coarse):
    """The coarse grid's best, then a fine grid one coarse step either side of it: ``(b, c, gamma, edge)``."""
    z, gap = coarse
    ic, ig, _ = _best(y, z, gap, y0)
    edge = ic in (0, C_GRID.size - 1) or ig in (0, GAMMA_GRID.size - 1)
    c_fine = np.geomspace(C_GRID[max(ic - 1, 0)], C_GRID[min(ic + 1, C_GRID.size - 1)], 11)
    g_fine = np.linspace(GAMMA_GRID[max(ig - 1, 0)], GAMMA_GRID[min(ig + 1, GAMMA_GRID.size - 1)], 11)
    jc, jg, b = _best(y, *_design(N, recall, y0, n_ref, c_fine, g_fine), y0)
    return b, float(c_fine[jc]), float(g_fine[jg]), edge


def law_value(N, recall, y0, b, c, gamma, n_ref):
    x = np.asarray(N, dtype=float) / n_ref
    skill = 1.0 - b * np.power(x, -c)
    y0 = np.asarray(y0, dtype=float)
    return y0 + skill * np.maximum(ceiling(recall, gamma) - y0, 0.0)


@dataclass(frozen=True)
class ChainFit:
    """The chain law fitted to one reranker condition: parameters, the bootstrap's, the fit's residuals."""

    metric: str
    key: dict
    b: float
    c: float
    gamma: float
    n_ref: float
    rmse: float
    r2: float
    n_chains: int
    n_runs: int
    sizes: tuple[float, ...]
    level: float
    boot: np.ndarray = field(repr=False)  # [B, 3] (b, c, gamma) of the replicates
    noise: np.ndarray = field(repr=False)  # [B] a new chain's deviation
    note: str = ""

    @property
    def df(self) -> int:
        return len(self.sizes) - 2

    def predict(self, N, recall, y0) -> np.ndarray:
        return law_value(N, recall, y0, self.b, self.c, self.gamma, self.n_ref)

    def skill(self, N) -> np.ndarray:
        return 1.0 - self.b * np.power(np.asarray(N, dtype=float) / self.n_ref, -self.c)

    def interval(self, N, recall, y0, level: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(forecast, lower, upper)`` for chains at ``(N, recall, y0)``, inside the metric's bounds."""
        level = self.level if level is None else level
        N, recall, y0 = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in (N, recall, y0)))
        point = self.predict(N, recall, y0)
        lo_b, hi_b = metric_bounds(self.metric)
        lo_b = -np.inf if lo_b is None else lo_b
        hi_b = np.inf if hi_b is None else hi_b
        if self.boot.shape[0] == 0:
            return np.clip(point, lo_b, hi_b), np.full_like(point, np.nan), np.full_like(point, np.nan)
        draws = law_value(N[None, :], recall[None, :], y0[None, :], self.boot[:, :1], self.boot[:, 1:2],
                          self.boot[:, 2:3], self.n_ref) + self.noise[:, None]
        dev = draws - draws.mean(axis=0)
        tail = 100 * (1 - level) / 2
        q_lo, q_hi = np.percentile(dev, [tail, 100 - tail], axis=0)
        factor = 1.0
        if self.df >= 1:
            factor = stats.t.ppf(0.5 + level / 2, self.df) / stats.norm.ppf(0.5 + level / 2)
        return (np.clip(point, lo_b, hi_b), np.clip(point + factor * q_lo, lo_b, hi_b),
                np.clip(point + factor * q_hi, lo_b, hi_b))

    def intervals(self) -> dict[str, tuple[float, float]]:
        if self.boot.shape[0] == 0:
            return {}
        tail = 100 * (1 - self.level) / 2
        return {name: tuple(float(v) for v in np.percentile(self.boot[:, i], [tail, 100 - tail]))
                for i, name in enumerate(("b", "c", "gamma"))}

    def to_dict(self) -> dict:
        return jsonable({**self.key, "metric": self.metric, "formula": FORMULA,
                         "params": {"b": self.b, "c": self.c, "gamma": self.gamma, "N_ref": self.n_ref},
                         "intervals": {k: list(v) for k, v in self.intervals().items()}, "level": self.level,
                         "rmse": self.rmse, "r2": self.r2, "chains": self.n_chains, "runs": self.n_runs,
                         "sizes": list(self.sizes), "note": self.note})


def fit_chain_law(points: pl.DataFrame, metric: str = DEFAULT_METRIC, *, key: dict | None = None,
                  level: float = 0.9, n_boot: int = 300, seed: int = 0) -> ChainFit:
    """Fit the chain law to the measured chains of one reranker condition (rows of :func:`chain_points`
    with depth > 0); see the module doc. :class:`UserError` with fewer than two reranker sizes."""
    pts = points.filter(pl.col("depth") > 0)
    key = key or {}
    sizes = tuple(sorted(float(v) for v in pts["params"].unique().to_list()))
    label = ", ".join(f"{k}={v}" for k, v in key.items() if v is not None) or metric
    if len(sizes) < 2:
        raise UserError(f"chain law ({label}): needs rerankers of two sizes or more, the chains have "
                        f"{len(sizes)}")
    N = pts["params"].to_numpy().astype(float)
    y, r, y0 = (pts[c].to_numpy().astype(float) for c in ("y", "recall", "y0"))
    n_ref = float(np.exp(np.mean(np.log(sizes))))
    coarse = _design(N, r, y0, n_ref, C_GRID, GAMMA_GRID)
    b, c, gamma, edge = _profile(y, N, r, y0, n_ref, coarse)
    fitted = law_value(N, r, y0, b, c, gamma, n_ref)
    resid = y - fitted
    sst = float(np.sum((y - y.mean()) ** 2))
    runs = pts["run"].to_numpy()
    run_ids, run_idx = np.unique(runs, return_inverse=True)
    # two levels of residual: each run's mean (its reranker came out well or badly) and the chain's own
    run_mean = np.bincount(run_idx, weights=resid) / np.bincount(run_idx)
    within = resid - run_mean[run_idx]
    n_runs, n = run_ids.size, y.size
    within = within * math.sqrt(n / max(n - n_runs - 1, 1))
    if len(sizes) > 2:  # the size law's two parameters absorb part of the run effects: undo it
        run_scale = float(np.sqrt(np.sum(run_mean ** 2) / max(n_runs - 2, 1)))
    else:  # no residual left at the run level: take a run effect as large as a chain's scatter
        run_scale = float(np.sqrt(np.mean(within ** 2)))
    rng = np.random.default_rng(seed)
    boot = np.empty((0, 3))
    noise = np.empty(0)
    if n_boot > 0:
        v = rng.normal(0.0, run_scale, size=(n_boot, n_runs))
        eta = rng.choice([-1.0, 1.0], size=(n_boot, n))
        ystar = fitted + v[:, run_idx] + eta * within
        boot = np.array([_profile(ystar[j], N, r, y0, n_ref, coarse)[:3] for j in range(n_boot)])
        noise = rng.normal(0.0, run_scale, n_boot) + rng.choice([-1.0, 1.0], size=n_boot) * within[
            rng.integers(0, n, n_boot)]
    notes = []
    if len(sizes) == 2:
        notes.append("two reranker sizes: the size trend leaves no residual, so a reranker's deviation from it is "
                     "assumed as large as a chain's scatter (an assumption, not a measurement)")
    if edge:
        notes.append(f"a fitted exponent is at the edge of its grid (c = {c:.3g}, gamma = {gamma:.3g})")
    return ChainFit(metric=metric, key=dict(key), b=b, c=c, gamma=gamma, n_ref=n_ref,
                    rmse=float(np.sqrt(np.mean(resid ** 2))), r2=1.0 - float(np.sum(resid ** 2)) / sst if sst > 0
                    else float("nan"), n_chains=int(n), n_runs=int(n_runs), sizes=sizes, level=level, boot=boot,
                    noise=noise, note="; ".join(notes))


def conditions(points: pl.DataFrame) -> list[tuple[dict, pl.DataFrame]]:
    """The reranker conditions of the chains (family, objective, supervision, budget, eval set), each with its
    chain points (depth > 0) and the first stages alone (depth 0) of its eval set."""
    keys = [k for k in RERANKER_KEYS if k in points.columns]
    chains = points.filter(pl.col("depth") > 0)
    out = []
    for values, sub in chains.group_by(keys, maintain_order=True):
        key = dict(zip(keys, values))
        alone = points.filter((pl.col("depth") == 0) & (pl.col("eval_set") == key["eval_set"]))
        out.append((key, pl.concat([alone.select(sub.columns), sub], how="vertical_relaxed")))
    return sorted(out, key=lambda kv: tuple(str(v) for v in kv[0].values()))


def fit_chains(table, metric: str = DEFAULT_METRIC, *, eval_set: str | None = None, level: float = 0.9,
               n_boot: int = 300, seed: int = 0, max_params: float | None = None) -> list[tuple[ChainFit, pl.DataFrame]]:
    """The chain law of every reranker condition (rerankers up to ``max_params`` when given), with its points."""
    points = chain_points(table, metric, eval_set)
    out = []
    for i, (key, sub) in enumerate(conditions(points)):
        fitted = sub if max_params is None else sub.filter((pl.col("depth") == 0) | (pl.col("params") <= max_params))
        out.append((fit_chain_law(fitted, metric, key=key, level=level, n_boot=n_boot, seed=seed + i), sub))
    return out


@dataclass(frozen=True)
class ChainBacktest:
    metric: str
    hidden: str  # what was hidden, in words
    level: float
    cases: pl.DataFrame  # one row per hidden chain: key, first stage, depth, N, actual, predicted, lower, upper
    notes: tuple[str, ...] = ()

    @property
    def mae(self) -> float:
        return float((self.cases["predicted"] - self.cases["actual"]).abs().mean()) if self.cases.height else math.nan

    @property
    def coverage(self) -> float:
        c = self.cases
        return float(((c["lower"] <= c["actual"]) & (c["actual"] <= c["upper"])).mean()) if c.height else math.nan

    @property
    def mae_first_stage(self) -> float:
        """Mean abs error of forecasting each hidden chain by its first stage alone (no reranker)."""
        return float((self.cases["y0"] - self.cases["actual"]).abs().mean()) if self.cases.height else math.nan

    def to_dict(self, cases: bool = True) -> dict:
        out = {"metric": self.metric, "hidden": self.hidden, "level": self.level, "chains": self.cases.height,
               "mae": self.mae, "coverage": self.coverage, "mae_first_stage_alone": self.mae_first_stage,
               "notes": list(self.notes)}
        if cases:
            out["cases"] = self.cases.to_dicts()
        return jsonable(out)


HIDE = ("largest-reranker", "first-stage")


def backtest_chains(table, metric: str = DEFAULT_METRIC, *, hide: str = "largest-reranker",
                    eval_set: str | None = None, level: float = 0.9, n_boot: int = 300,
                    seed: int = 0) -> ChainBacktest:
    """Hide chains, fit the chain law on the rest, forecast the hidden ones.

    ``hide="largest-reranker"``: every chain of the largest reranker size (per condition) is hidden.
    ``hide="first-stage"``: each first stage in turn (all its chains; its depth-0 row and recall stay
    known: they are the first stage alone, measured without any reranker). MAE and coverage are over
    every hidden chain."""
    if hide not in HIDE:
        raise UserError(f"--hide must be one of {', '.join(HIDE)}, got {hide!r}")
    points = chain_points(table, metric, eval_set)
    rows, notes = [], []
    for i, (key, sub) in enumerate(conditions(points)):
        label = ", ".join(f"{k}={v}" for k, v in key.items() if v is not None)
        chains = sub.filter(pl.col("depth") > 0)
        if hide == "largest-reranker":
            top = chains["params"].max()
            folds = [(f"N = {top:,.0f}", pl.col("params") == top)]
        else:
            folds = [(f"first stage {f}", pl.col("first_stage") == f)
                     for f in sorted(chains["first_stage"].unique().to_list())]
        for j, (what, hidden_expr) in enumerate(folds):
            hidden = chains.filter(hidden_expr)
            train = sub.filter((pl.col("depth") == 0) | ~hidden_expr)
            try:
                fit = fit_chain_law(train, metric, key=key, level=level, n_boot=n_boot, seed=seed + 101 * i + j)
            except UserError as exc:
                notes.append(f"{label}, {what}: {exc}")
                continue
            pred, lo, hi = fit.interval(hidden["params"], hidden["recall"], hidden["y0"])
            rows.append(hidden.select("run", "first_stage", "depth", "params", "y0", "recall",
                                      pl.col("y").alias("actual"))
                        .with_columns(**{k: pl.lit(v) for k, v in key.items()}, hidden=pl.lit(what),
                                      predicted=pl.Series(pred), lower=pl.Series(lo), upper=pl.Series(hi)))
    if not rows:
        raise UserError("chain backtest: nothing to forecast (" + ("; ".join(notes) or "no chains") + ")")
    what = ("the largest reranker size" if hide == "largest-reranker" else "each first stage in turn")
    return ChainBacktest(metric, what, level, pl.concat(rows, how="diagonal_relaxed"), tuple(notes))
