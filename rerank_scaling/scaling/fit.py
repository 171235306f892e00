"""Fit one scaling law to points, with a cell bootstrap: :func:`fit_law`.

Points are ``(N, D, y)`` arrays plus the run (``cells``) each point belongs to;
see :mod:`rerank_scaling.scaling.laws` for the conventions on N, D and signs and
:mod:`rerank_scaling.scaling.bootstrap` for the resampling.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats

from rerank_scaling.errors import UserError
from rerank_scaling.scaling.bootstrap import BootstrapDraws, Problem, bootstrap_many
from rerank_scaling.scaling.laws import Law, LawContext, get_law
from rerank_scaling.scaling.metrics import direction as metric_direction
from rerank_scaling.scaling.metrics import natural_bound
from rerank_scaling.scaling.solver import LOSSES, multistart


class FewPointsWarning(UserWarning):
    """Fewer distinct points than parameters + 2: the fit is barely determined."""


class ConvergenceWarning(UserWarning):
    """The best start stopped at the evaluation limit."""


@dataclass(frozen=True)
class FitResult:
    """A fitted law.  ``params`` are in raw units of :attr:`Law.formula`;
    ``param_intervals`` come from the bootstrap (empty without one)."""

    law: Law
    metric: str
    direction: int
    ctx: LawContext
    theta: np.ndarray
    params: dict[str, float]
    param_intervals: dict[str, tuple[float, float]]
    r2: float
    residuals: np.ndarray
    rmse: float
    n_points: int
    n_distinct: int
    n_cells: int
    level: float
    label: str = ""
    warnings: tuple[str, ...] = ()
    draws: BootstrapDraws | None = field(default=None, repr=False)

    @property
    def bootstrap_scheme(self) -> str | None:
        return None if self.draws is None else self.draws.scheme

    def _logs(self, N, D) -> tuple[np.ndarray, np.ndarray]:
        n = np.atleast_1d(np.asarray(N, dtype=float))
        lx = np.log(n / self.ctx.n_ref)
        if "D" in self.law.inputs:
            if D is None:
                raise UserError(f"law '{self.law.name}' needs training exposure D to predict")
            lz = np.log(np.broadcast_to(np.asarray(D, dtype=float), n.shape) / self.ctx.d_ref)
        else:
            lz = np.zeros_like(lx)
        return lx, lz

    def predict(self, N, D=None) -> np.ndarray:
        """Law value at sizes ``N`` (and exposures ``D`` for data/joint laws).

        For data-only laws pass the exposures as ``D`` (``N`` only sets the shape)."""
        if self.law.inputs == ("D",) and D is not None:
            N = np.broadcast_to(np.asarray(N, dtype=float), np.shape(D))
        lx, lz = self._logs(N, D)
        return self.law.predict(self.theta, lx, lz, self.ctx)

    @property
    def df(self) -> int:
        """Residual degrees of freedom: fitted points minus parameters."""
        return self.n_points - self.law.n_params

    def draws_at(self, N, D=None, kind: str = "prediction") -> np.ndarray:
        """Bootstrap draws ``[B, m]`` of the law (``kind="mean"``) or of a new run."""
        if self.draws is None or self.draws.theta.shape[0] == 0:
            raise ValueError("fit has no bootstrap draws (use n_boot > 0)")
        if self.law.inputs == ("D",) and D is not None:
            N = np.broadcast_to(np.asarray(N, dtype=float), np.shape(D))
        lx, lz = self._logs(N, D)
        out = self.law.predict(self.draws.theta, lx, lz, self.ctx)
        if kind == "prediction":
            out = out + self.draws.noise[:, None]
        return out

    def bias(self, N, D=None) -> np.ndarray:
        """Bootstrap estimate of the estimator's bias at ``N``: mean refit minus fit."""
        return self.draws_at(N, D, "mean").mean(axis=0) - self.predict(N, D)

    def forecast(self, N, D=None, bias_corrected: bool = True) -> np.ndarray:
        """Point forecast; bias-corrected (``fit - bias``) when a bootstrap exists."""
        point = self.predict(N, D)
        if bias_corrected and self.draws is not None and self.draws.theta.shape[0]:
            point = point - self.bias(N, D)
        return point

    def interval(
        self, N, D=None, level: float | None = None, kind: str = "prediction",
        bias_corrected: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Interval ``(lower[m], upper[m])`` at ``level`` (default: the fit's).

        The bootstrap's deviations from their mean (skew kept) are placed around
        :meth:`forecast` and widened by ``t_{df}/z`` so that a residual scale
        estimated from few runs is not taken as known (the factor tends to 1 as
        runs accumulate; with ``df < 1`` the interval is infinite).
        """
        level = self.level if level is None else level
        draws = self.draws_at(N, D, kind)
        dev = (draws - draws.mean(axis=0)) * self.draws.spread
        tail = 100 * (1 - level) / 2
        q_lo, q_hi = np.percentile(dev, [tail, 100 - tail], axis=0)
        z = stats.norm.ppf(0.5 + level / 2)
        factor = stats.t.ppf(0.5 + level / 2, self.df) / z if self.df >= 1 else np.inf
        point = self.forecast(N, D, bias_corrected)
        return point + factor * q_lo, point + factor * q_hi


def make_context(metric: str, N, D, y, direction: int | None = None) -> LawContext:
    """Reference sizes are geometric means; a [0, 1] metric stored in percent gets bound 100."""
    y = np.asarray(y, dtype=float)
    s = metric_direction(metric) if direction is None else direction
    bound = natural_bound(metric)
    if bound == 1.0 and np.nanmax(y) > 1.0:
        bound = 100.0 if np.nanmax(y) <= 100.0 else None
    d_ref = float(np.exp(np.mean(np.log(D)))) if D is not None else 1.0
    return LawContext(
        direction=s,
        n_ref=float(np.exp(np.mean(np.log(N)))),
        d_ref=d_ref,
        y_lo=float(np.min(y)),
        y_hi=float(np.max(y)),
        bound=bound,
    )


def _distinct(law: Law, N: np.ndarray, D: np.ndarray | None) -> int:
    keys = [N if name == "N" else D for name in law.inputs]
    return np.unique(np.column_stack(keys), axis=0).shape[0]


def fit_law(
    law: str | Law,
    N,
    y,
    *,
    D=None,
    metric: str = "value",
    direction: int | None = None,
    cells=None,
    strata=None,
    loss: str = "linear",
    f_scale: float | None = None,
    n_boot: int = 0,
    level: float = 0.9,
    bootstrap_scheme: str = "auto",
    seed: int = 0,
    label: str = "",
) -> FitResult:
    """Fit ``law`` to points ``(N, D, y)``; optionally bootstrap it.

    ``cells`` labels the run of each point (default: each point its own run) and
    ``strata`` the group kept fixed by the ``cells`` bootstrap (default: the size N).
    ``loss="huber"`` uses ``f_scale`` (default 1.345 robust sigma of the residuals
    of a first least-squares fit).  ``label`` (e.g. "ndcg@10, objective=listwise")
    names the fit in errors and warnings.

    Raises :class:`UserError` when there are fewer distinct points than
    parameters, or when no start converges; warns (:class:`FewPointsWarning`)
    when there are fewer than parameters + 2.
    """
    fit, problem = point_fit(law, N, y, D=D, metric=metric, direction=direction, cells=cells, strata=strata,
                             loss=loss, f_scale=f_scale, level=level, label=label)
    if n_boot > 0:
        (draws,) = bootstrap_many([problem], n_boot=n_boot, scheme=bootstrap_scheme, loss=loss, seed=seed)
        fit = with_draws(fit, draws)
    return fit


def fit_many(
    law: str | Law,
    problems: list[dict],
    *,
    metric: str = "value",
    loss: str = "linear",
    n_boot: int = 0,
    level: float = 0.9,
    bootstrap_scheme: str = "auto",
    seed: int = 0,
) -> list[FitResult | UserError]:
    """Fit one law to many point sets (dicts of :func:`fit_law` keywords: ``N``, ``y``,
    ``D``, ``cells``, ``strata``, ``label``) and bootstrap them all in one batch.

    A point set that cannot be fitted yields its :class:`UserError` in place of a fit.
    """
    law = get_law(law)
    results: list[FitResult | UserError] = []
    fitted: list[tuple[int, Problem]] = []
    for i, kw in enumerate(problems):
        try:
            fit, problem = point_fit(law, metric=metric, loss=loss, level=level, **kw)
        except UserError as exc:
            results.append(exc)
            continue
        results.append(fit)
        fitted.append((i, problem))
    if n_boot > 0 and fitted:
        # one batch per (direction, bound): the batched model shares them
        batches: dict[tuple, list[tuple[int, Problem]]] = {}
        for i, pr in fitted:
            batches.setdefault((pr.ctx.direction, pr.ctx.bound), []).append((i, pr))
        for b, members in enumerate(batches.values()):
            draws = bootstrap_many([pr for _, pr in members], n_boot=n_boot, scheme=bootstrap_scheme,
                                   loss=loss, seed=seed + b)
            for (i, _), d in zip(members, draws):
                results[i] = with_draws(results[i], d)
    return results


def with_draws(fit: FitResult, draws: BootstrapDraws) -> FitResult:
    """Attach bootstrap draws and the parameter intervals they imply."""
    intervals = {}
    if draws.theta.shape[0]:
        pub = fit.law.public(draws.theta, fit.ctx)
        center = np.median(pub, axis=0)
        pub = center + (pub - center) * draws.spread
        tail = 100 * (1 - fit.level) / 2
        for k, pname in enumerate(fit.law.param_names):
            lo_q, hi_q = np.percentile(pub[:, k], [tail, 100 - tail])
            intervals[pname] = (float(lo_q), float(hi_q))
    return replace(fit, draws=draws, param_intervals=intervals)


def point_fit(
    law: str | Law,
    N,
    y,
    *,
    D=None,
    metric: str = "value",
    direction: int | None = None,
    cells=None,
    strata=None,
    loss: str = "linear",
    f_scale: float | None = None,
    level: float = 0.9,
    label: str = "",
) -> tuple[FitResult, Problem]:
    """The multi-start fit of :func:`fit_law` without bootstrap, plus the problem
    the bootstrap needs."""
    law = get_law(law)
    if loss not in LOSSES:
        raise UserError(f"unknown loss '{loss}' (choose from {', '.join(LOSSES)})")
    name = label or metric
    N = np.asarray(N, dtype=float)
    y = np.asarray(y, dtype=float)
    if "D" in law.inputs:
        if D is None:
            raise UserError(f"{name}: law '{law.name}' needs training exposure (examples_seen or step)")
        D = np.asarray(D, dtype=float)
    else:
        D = None
    ok = np.isfinite(y) & np.isfinite(N) & (N > 0)
    if D is not None:
        ok &= np.isfinite(D) & (D > 0)
    N, y = N[ok], y[ok]
    D = D[ok] if D is not None else None
    cells = np.arange(y.size) if cells is None else np.asarray(cells)[ok]
    strata = N if strata is None else np.asarray(strata)[ok]

    n_distinct = _distinct(law, N, D) if y.size else 0
    if n_distinct < law.n_params:
        raise UserError(
            f"{name}: law '{law.name}' has {law.n_params} parameters but only "
            f"{n_distinct} distinct points to fit"
        )
    notes: list[str] = []
    if n_distinct < law.n_params + 2:
        msg = (
            f"{name}: law '{law.name}' fitted to {n_distinct} distinct points for "
            f"{law.n_params} parameters; the forecast is barely determined"
        )
        notes.append(msg)
        warnings.warn(msg, FewPointsWarning, stacklevel=3)

    ctx = make_context(metric, N, D, y, direction)
    if not law.applicable(ctx):
        raise UserError(f"{name}: law '{law.name}' needs a metric with a natural bound")
    lx = np.log(N / ctx.n_ref)
    lz = np.log(D / ctx.d_ref) if D is not None else np.zeros_like(lx)
    lo, hi = law.bounds(ctx)

    def fun(theta):
        return law.model(theta[None, :], lx, lz, ctx)[0]

    starts = law.init_grid(lx, lz, y, ctx)
    solved = multistart(fun, y, starts, lo, hi)
    if loss == "huber":
        if f_scale is None:
            r0 = y - fun(solved.theta)
            sigma = 1.4826 * np.median(np.abs(r0 - np.median(r0)))
            f_scale = 1.345 * max(sigma, 1e-6 * ctx.span)
        solved = multistart(fun, y, np.vstack([solved.theta, starts]), lo, hi, loss="huber", f_scale=f_scale)
    if not np.isfinite(solved.cost):
        raise UserError(
            f"{name}: law '{law.name}' did not converge from any of {solved.n_starts} starting points"
        )
    if not solved.converged:
        msg = (
            f"{name}: law '{law.name}' stopped at the evaluation limit (flat valley, e.g. "
            f"the log-linear limit of a saturating law); using the best of {solved.n_starts} starts"
        )
        notes.append(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)
    theta = solved.theta
    resid = y - fun(theta)
    sst = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / sst if sst > 0 else float("nan")
    params = dict(zip(law.param_names, (float(v) for v in law.public(theta, ctx))))
    fit = FitResult(
        law=law, metric=metric, direction=ctx.direction, ctx=ctx, theta=theta, params=params,
        param_intervals={}, r2=r2, residuals=resid, rmse=float(np.sqrt(np.mean(resid**2))),
        n_points=int(y.size), n_distinct=n_distinct, n_cells=int(np.unique(cells).size), level=level,
        label=name, warnings=tuple(notes),
    )
    problem = Problem(law, ctx, lx, lz, y, cells, strata, theta, lo, hi, float(f_scale or 1.0))
    return fit, problem
