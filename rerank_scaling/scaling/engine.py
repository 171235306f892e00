"""The forecasting engine: a Bayesian mixture over saturating laws, on the metric's own scale.

One model serves every forecast (size or exposure axis, any metric):

* **Scale.** Values are mapped to an unbounded scale first (:class:`Scale`): ``logit`` for a metric
  bounded on both sides as the metric registry declares it (ndcg, map, mrr, recall, p, accuracy;
  stored as [0, 1] or in percent; a retained fraction while it stays in its usual (0, 1)), ``log``
  for one bounded below by 0 (contrastive entropy, losses, costs), identity otherwise. Every forecast and interval is mapped back, so it stays inside the metric's range.
* **Laws.** On that scale ``z = a + b*u_c(t)`` with ``t = ln x`` (``x`` = size or exposure) and
  ``u_c(t) = exp(c*t)`` for exponents ``c`` on a fixed grid (``C_GRID``: 40 values log-spaced in
  ``|c|`` over [0.01, 2]) plus the log-linear limit ``u(t) = t``: the saturating power law
  ``a + b*x^c`` and its ``c -> 0`` limit, each linear in ``(a, b)`` once ``c`` is fixed.
* **Shape.** The slope ``b`` is constrained to the metric's direction (a metric that rises with
  scale never falls: every posterior draw is monotone in ``x``), so forecasts are non-decreasing in
  ``x`` for rising metrics and non-increasing for falling ones.
* **Posterior.** Flat prior on ``(a, b)`` restricted to the allowed half, ``p(sigma^2) ~ 1/sigma^2``
  (or a moderated prior shared by the groups of one metric, :func:`moderated_prior`), uniform prior
  over the grid. Given ``c`` the posterior is the textbook conjugate one, so each component's
  evidence is ``RSS_c^(-nu/2)`` and draws are exact: component, ``sigma^2`` (scaled inverse
  chi-square), ``b`` (truncated normal; the truncation is an importance weight), ``a`` (normal).
* **Predictive.** A draw of the target is the law at ``x`` plus a new run's noise
  (``sigma / sqrt(m)`` for the mean of ``m`` runs) plus a **misspecification term**
  ``kappa * h * |slope| * e``: ``h = ln(x / x_max)`` the extrapolation distance beyond the largest
  fitted size, ``|slope|`` the log-linear slope of the fitted points on this scale, ``e ~ N(0, 1)``.
  ``kappa`` is calibrated on real ladders (:mod:`.backtest`), not here: the law family cannot
  know how wrong it is beyond the data.

The point forecast is the posterior mean of the law at ``x`` mapped back (monotone in ``x``); the
interval is the central ``level`` quantile range of the predictive draws mapped back.

Everything is vectorised over components and draws; a group takes well under a millisecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from rerank_scaling.scaling.metrics import bounds, direction, usual_range

C_GRID = -np.geomspace(0.01, 2.0, 40)
N_DRAWS = 2000
EPS = 1e-4  # distance kept from a bound, as a fraction of the range, before the logit / log


@dataclass(frozen=True)
class Scale:
    """Map between a metric's values and the unbounded scale the laws are fitted on."""

    kind: str  # "logit", "log" or "identity"
    lo: float = 0.0
    hi: float = 1.0

    def to(self, y) -> np.ndarray:
        y = np.asarray(y, float)
        if self.kind == "logit":
            p = np.clip((y - self.lo) / (self.hi - self.lo), EPS, 1 - EPS)
            return np.log(p) - np.log1p(-p)
        if self.kind == "log":
            return np.log(np.maximum(y - self.lo, EPS * max(1.0, abs(self.lo))))
        return y

    def back(self, z) -> np.ndarray:
        z = np.asarray(z, float)
        if self.kind == "logit":
            return self.lo + (self.hi - self.lo) * special.expit(z)
        if self.kind == "log":
            return self.lo + np.exp(np.clip(z, -700, 700))
        return z

    def describe(self) -> str:
        if self.kind == "logit":
            return f"logit scale on [{self.lo:g}, {self.hi:g}]"
        if self.kind == "log":
            return f"log scale above {self.lo:g}"
        return "identity scale"


def scale_for(metric: str, values) -> Scale:
    """The scale of ``metric``, from the bounds the metric registry declares: logit within a range bounded
    on both sides (rank metrics, accuracies: [0, 1], or [0, 100] when stored in percent) or within the range
    an open-ended metric usually keeps while its values stay there (a retained fraction: (0, 1)); log above
    a lower bound otherwise (entropies, losses, costs; a student above its teacher); identity when open."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    lo, hi = bounds(metric)
    usual = usual_range(metric)
    if hi is None and usual is not None:
        lo, hi = usual if v.size and usual[0] <= v.min() and v.max() <= usual[1] else (lo, None)
    if lo is not None and hi is not None and v.size and v.min() >= lo:
        if v.max() <= hi:
            return Scale("logit", lo, hi)
        if (lo, hi) == (0.0, 1.0) and v.max() <= 100.0:  # stored in percent
            return Scale("logit", 0.0, 100.0)
    if lo is not None and (v.size == 0 or v.min() > lo) and (hi is None or direction(metric) < 0):
        return Scale("log", lo, math.inf)
    return Scale("identity", -math.inf, math.inf)


@dataclass(frozen=True)
class Prior:
    """Scaled-inverse-chi-square prior on the noise variance: ``nu0`` pseudo degrees of freedom at
    scale ``s0sq``; ``nu0 = 0`` is the flat ``1/sigma^2``."""

    nu0: float = 0.0
    s0sq: float = 0.0


FLAT = Prior()


@dataclass
class Components:
    """Per exponent (log-linear limit first): the conditional least-squares fit and its evidence."""

    u_mean: np.ndarray  # [K] centring of u over the fitted points
    u_sd: np.ndarray  # [K]
    sign: np.ndarray  # [K] +1 when u rises with t (log-linear), -1 for exp(c t)
    c: np.ndarray  # [K] exponent (0 = log-linear)
    a: float
    b: np.ndarray  # [K] slope on the standardised u
    rss: np.ndarray  # [K]
    log_w: np.ndarray  # [K] log posterior weight (before the sign truncation)
    n: int
    t_ref: float


def _u(c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``u_c(t)`` for every component: rows ``[K, len(t)]``."""
    out = np.exp(np.outer(c, t))
    lin = c == 0
    if lin.any():
        out[lin] = t[None, :]
    return out


def components(t, z, *, linear_only: bool = False, prior: Prior = FLAT) -> Components | None:
    """Fit every component of the mixture to points ``(t, z)`` (one per run); None when fewer than 3
    points or fewer than 2 distinct ``t`` (nothing to fit a slope and a noise to)."""
    t, z = np.asarray(t, float), np.asarray(z, float)
    n = z.size
    if n < 3 or np.unique(t).size < 2:
        return None
    t_ref = float(t.mean())
    tc = t - t_ref
    c = np.zeros(1) if linear_only else np.concatenate([[0.0], C_GRID])
    U = _u(c, tc)
    u_mean = U.mean(axis=1)
    u_sd = U.std(axis=1)
    ok = u_sd > 1e-12 * np.maximum(1.0, np.abs(u_mean))
    u_sd = np.where(ok, u_sd, 1.0)
    Us = (U - u_mean[:, None]) / u_sd[:, None]
    a = float(z.mean())
    b = Us @ (z - a) / n
    b = np.where(ok, b, 0.0)
    rss = np.sum((z[None, :] - a - b[:, None] * Us) ** 2, axis=1)
    nu = prior.nu0 + n - 2
    floor = 1e-12 * max(1.0, float(np.sum((z - a) ** 2)))
    log_w = -0.5 * nu * np.log(prior.nu0 * prior.s0sq + np.maximum(rss, floor))
    log_w = np.where(ok, log_w, -np.inf)
    sign = np.where(c == 0, 1.0, -1.0)
    return Components(u_mean, u_sd, sign, c, a, b, rss, log_w, n, t_ref)


@dataclass
class Draws:
    """Posterior draws at the targets on the fitted scale: the law ``mu[S, q]``, the noise sd
    ``sigma[S]`` and importance weights ``w[S]`` (sum 1)."""

    mu: np.ndarray
    sigma: np.ndarray
    w: np.ndarray


def draw(comp: Components, t_new, direction: int, prior: Prior = FLAT, n_draws: int = N_DRAWS,
         rng: np.random.Generator | None = None) -> Draws:
    """Exact posterior draws of the mixture at ``t_new`` (see module doc)."""
    rng = rng or np.random.default_rng(0)
    t_new = np.atleast_1d(np.asarray(t_new, float)) - comp.t_ref
    lw = comp.log_w - np.max(comp.log_w)
    p = np.exp(lw)
    p /= p.sum()
    j = rng.choice(p.size, size=n_draws, p=p)
    nu = prior.nu0 + comp.n - 2
    scale2 = (prior.nu0 * prior.s0sq + comp.rss[j]) / nu
    sigma = np.sqrt(nu * scale2 / rng.chisquare(nu, size=n_draws))
    beta_hat = direction * comp.sign[j] * comp.b[j]
    sd_b = sigma / math.sqrt(comp.n) + 1e-15  # > 0 when the points fit exactly (a constant metric)
    # b truncated to the allowed half (beta >= 0): inverse-CDF draw; the half's mass is the weight
    lo = special.ndtr(-beta_hat / sd_b)
    u = lo + (1 - lo) * rng.random(n_draws)
    beta = np.maximum(beta_hat + sd_b * special.ndtri(np.clip(u, 1e-300, 1 - 1e-16)), 0.0)
    w = special.ndtr(beta_hat / sd_b)
    a = comp.a + sigma / math.sqrt(comp.n) * rng.standard_normal(n_draws)
    # u at the targets per draw: [S, q]
    cj = comp.c[j]
    ut = np.where(cj[:, None] == 0, t_new[None, :], np.exp(np.outer(cj, t_new)))
    us = (ut - comp.u_mean[j][:, None]) / comp.u_sd[j][:, None]
    mu = a[:, None] + (direction * comp.sign[j] * beta)[:, None] * us
    tot = w.sum()
    w = w / tot if tot > 0 else np.full(n_draws, 1.0 / n_draws)
    return Draws(mu, sigma, w)


def loglinear_slope(t, z) -> float:
    """Absolute OLS slope of ``z`` on ``t`` (0 with fewer than 2 distinct ``t``)."""
    t, z = np.asarray(t, float), np.asarray(z, float)
    if np.unique(t).size < 2:
        return 0.0
    tc = t - t.mean()
    return abs(float(tc @ (z - z.mean()) / (tc @ tc)))


def weighted_quantile(x: np.ndarray, w: np.ndarray, qs) -> np.ndarray:
    """Quantiles ``qs`` of the columns of ``x[S, q]`` under weights ``w[S]``: ``[len(qs), q]``."""
    order = np.argsort(x, axis=0)
    xs = np.take_along_axis(x, order, axis=0)
    cw = np.cumsum(w[order], axis=0)
    cw = (cw - 0.5 * w[order]) / cw[-1:]
    out = np.empty((len(qs), x.shape[1]))
    for k in range(x.shape[1]):
        out[:, k] = np.interp(qs, cw[:, k], xs[:, k])
    return out


@dataclass
class Predictive:
    """The predictive distribution of one group's targets, with the misspecification term apart so
    that its scale ``kappa`` can be calibrated without refitting."""

    scale: Scale
    law: np.ndarray  # [S, q] law draws (fitted scale)
    noise: np.ndarray  # [S, q] new-run noise draws (fitted scale)
    w: np.ndarray  # [S]
    e: np.ndarray  # [S, q] standard normal draws of the misspecification term
    reach: np.ndarray  # [q] h * |slope|: the misspecification term's sd per unit of kappa
    horizon: np.ndarray  # [q] h = ln(x / x_max)

    @property
    def point(self) -> np.ndarray:
        """Posterior mean of the law, mapped back (monotone in the target)."""
        return self.scale.back(self.w @ self.law)

    def draws(self, kappa: float) -> np.ndarray:
        return self.law + self.noise + kappa * self.reach[None, :] * self.e

    def interval(self, level: float, kappa: float) -> tuple[np.ndarray, np.ndarray]:
        tail = (1 - level) / 2
        q = weighted_quantile(self.draws(kappa), self.w, [tail, 1 - tail])
        return self.scale.back(q[0]), self.scale.back(q[1])


def points(x, y, metric: str, scale: Scale | None = None) -> tuple[np.ndarray, np.ndarray, Scale]:
    """``(t, z, scale)``: the finite points ``(x, y)`` on the fitted axes (``t = ln x``, ``z`` the metric's scale)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y = x[ok], y[ok]
    scale = scale or scale_for(metric, y)
    return np.log(x), scale.to(y), scale


def predictive(x, y, x_new, metric: str, direction: int, *, m_new=1, linear_only: bool = False,
               prior: Prior = FLAT, n_draws: int = N_DRAWS, seed: int = 0,
               scale: Scale | None = None, shared_log_w: np.ndarray | None = None) -> Predictive | None:
    """The predictive of the mean of ``m_new`` new runs at ``x_new`` from points ``(x, y)`` (one per
    run); None when the points cannot be fitted (see :func:`components`). ``shared_log_w`` replaces the
    components' evidence (the exponent's posterior shared by several groups, :func:`shared_evidence`)."""
    t, z, scale = points(x, y, metric, scale)
    comp = components(t, z, linear_only=linear_only, prior=prior)
    if comp is None:
        return None
    if shared_log_w is not None:
        comp.log_w = np.where(np.isfinite(comp.log_w), shared_log_w, -np.inf)
    rng = np.random.default_rng(seed)
    t_new = np.log(np.atleast_1d(np.asarray(x_new, float)))
    d = draw(comp, t_new, direction, prior, n_draws, rng)
    m = np.broadcast_to(np.asarray(m_new, float), t_new.shape)
    noise = d.sigma[:, None] / np.sqrt(np.maximum(m, 1.0))[None, :] * rng.standard_normal((n_draws, t_new.size))
    e = rng.standard_normal((n_draws, t_new.size))
    horizon = np.maximum(t_new - t.max(), 0.0)
    reach = horizon * loglinear_slope(t, z) / math.sqrt(max(np.unique(t).size - 2, 1))
    return Predictive(scale, d.mu, noise, d.w, e, reach, horizon)


def shared_evidence(comps: list[Components | None]) -> np.ndarray | None:
    """The exponent's log evidence when groups share it (each keeps its own ``a``, ``b`` and noise): the
    sum of the groups' log evidence per component (None when no group could be fitted)."""
    logs = [c.log_w - np.max(c.log_w[np.isfinite(c.log_w)]) for c in comps if c is not None]
    return np.sum(logs, axis=0) if logs else None


def moderated_prior(rss, df) -> Prior:
    """Empirical-Bayes prior on the noise variance from several groups' residual sums of squares
    ``rss`` with ``df`` degrees of freedom (Smyth 2004, limma's moderated variances): the prior's
    ``nu0`` and ``s0sq`` from the mean and the excess spread of the log variances. Flat with fewer
    than 3 usable groups."""
    rss, df = np.asarray(rss, float), np.asarray(df, float)
    ok = (df > 0) & np.isfinite(rss) & (rss > 0)
    if ok.sum() < 3:
        return FLAT
    s2, d = rss[ok] / df[ok], df[ok]
    e = np.log(s2) - special.digamma(d / 2) + np.log(d / 2)
    e_bar = float(e.mean())
    excess = float(np.var(e, ddof=1) - np.mean(special.polygamma(1, d / 2)))
    if excess <= 0:
        nu0 = 1e3  # the groups' variances differ no more than chance: one shared variance
    else:
        nu0 = float(2 * _trigamma_inverse(excess))
    s0sq = math.exp(e_bar + special.digamma(nu0 / 2) - math.log(nu0 / 2))
    return Prior(min(nu0, 1e3), s0sq)


def _trigamma_inverse(x: float) -> float:
    """``y`` with ``trigamma(y) = x`` (Newton's method, as limma's ``trigammaInverse``)."""
    if x > 1e7:
        return 1 / math.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = float(special.polygamma(1, y))
        dif = tri * (1 - tri / x) / float(special.polygamma(2, y))
        y += dif
        if -dif / y < 1e-8:
            break
    return y


def residual_fit(x, y, metric: str) -> tuple[float, float]:
    """``(rss, df)`` of one group's noise on the metric's scale, the input of :func:`moderated_prior`:
    the best single component (the law's 3 parameters) from 4 points on, the log-linear one (2) with 3."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    scale = scale_for(metric, y)
    comp = components(np.log(x), scale.to(y))
    if comp is None:
        return math.nan, 0.0
    if comp.n > 3:
        return float(np.min(comp.rss)), float(comp.n - 3)
    return float(comp.rss[0]), float(comp.n - 2)


MIN_EFFECT = 0.01  # of a bounded metric's range (one point of NDCG), else of its level


def min_effect(metric: str, values) -> float:
    """The smallest change worth acting on: ``MIN_EFFECT`` of a bounded metric's range (0.01 of NDCG,
    1 point in percent), else ``MIN_EFFECT`` of the metric's mean absolute level (0.02 nats of a CE of 2)."""
    scale = scale_for(metric, values)
    if scale.kind == "logit":
        return MIN_EFFECT * (scale.hi - scale.lo)
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return MIN_EFFECT * float(np.mean(np.abs(v))) if v.size else math.nan


def t_quantile(level: float, df: float) -> float:
    return float(stats.t.ppf(0.5 + level / 2, df)) if df >= 1 else math.inf
