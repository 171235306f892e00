"""Scaling-law families, each a small :class:`Law` object.

Conventions (stated once, used everywhere in :mod:`rerank_scaling.scaling`):

* ``N`` is model size (non-embedding parameters), ``D`` training exposure
  (examples seen, or steps).  Laws are evaluated on the normalised logs
  ``lx = ln(N / n_ref)`` and ``lz = ln(D / d_ref)``; ``n_ref``/``d_ref`` are the
  geometric means of the fitted points, which keeps every parameter O(1).
* ``s = direction(metric)``: ``+1`` for metrics that increase with scale,
  ``-1`` for losses.  Sign constraints are written with ``s`` so one law serves both:
  the power-law term always *approaches* the asymptote from the bad side.
* ``theta`` is the internal, well-conditioned parameter vector (scale parameters
  in log space); :meth:`Law.public` maps it to the paper's parameters in raw units
  (the ones in :attr:`Law.formula`).  All functions broadcast over leading axes of
  ``theta``: ``theta[..., p]`` with ``lx[n]`` gives predictions ``[..., n]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

_EXPONENTS = np.array([-0.03, -0.08, -0.15, -0.25, -0.4, -0.6, -1.0, -1.6, -2.5])
_C_LO, _C_HI = -3.0, -1e-3


@dataclass(frozen=True)
class LawContext:
    """What a law needs to know about the data besides the points themselves."""

    direction: int  # +1 metric increases with scale, -1 it decreases
    n_ref: float = 1.0
    d_ref: float = 1.0
    y_lo: float = 0.0  # observed range of the fitted values
    y_hi: float = 1.0
    bound: float | None = None  # natural best value of the metric (1 or 0), if any

    @property
    def span(self) -> float:
        return max(self.y_hi - self.y_lo, 1e-3 * max(abs(self.y_hi), abs(self.y_lo)), 1e-9)

    def asymptote_bounds(self) -> tuple[float, float]:
        """Allowed range of the asymptote (a / delta): beyond the data on the good side,
        never past the metric's natural bound."""
        span = self.span
        if self.direction > 0:
            hi = self.y_hi + 50 * span if self.bound is None else max(self.bound, self.y_hi + 1e-9)
            return self.y_lo - span, hi
        lo = self.y_lo - 50 * span if self.bound is None else min(self.bound, self.y_lo - 1e-9)
        return lo, self.y_hi + span


Model = Callable[[np.ndarray, np.ndarray, np.ndarray, LawContext], np.ndarray]


@dataclass(frozen=True)
class Law:
    """One scaling-law family.

    ``model(theta, lx, lz, ctx)`` predicts; ``bounds(ctx)`` gives (lo, hi) arrays for
    ``theta``; ``init_grid(lx, lz, y, ctx)`` gives candidate starting points ``[k, p]``;
    ``public(theta, ctx)`` converts to the parameters named in ``param_names``.
    """

    name: str
    formula: str
    param_names: tuple[str, ...]
    inputs: tuple[str, ...]  # subset of ("N", "D")
    model: Model
    bounds: Callable[[LawContext], tuple[np.ndarray, np.ndarray]]
    init_grid: Callable[[np.ndarray, np.ndarray, np.ndarray, LawContext], np.ndarray]
    public: Callable[[np.ndarray, LawContext], np.ndarray]
    needs_bound: bool = False  # only usable for metrics with a natural bound

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def applicable(self, ctx: LawContext) -> bool:
        return not self.needs_bound or ctx.bound is not None

    def predict(self, theta: np.ndarray, lx: np.ndarray, lz: np.ndarray, ctx: LawContext) -> np.ndarray:
        return self.model(np.asarray(theta, dtype=float), lx, lz, ctx)


def _c(theta: np.ndarray, i: int) -> np.ndarray:
    """Column ``i`` of ``theta[..., p]`` shaped ``[..., 1]`` to broadcast against points."""
    return theta[..., i : i + 1]


def _exp(x: np.ndarray) -> np.ndarray:
    return np.exp(np.clip(x, -700.0, 700.0))


def _lstsq(cols: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    design = np.column_stack(cols)
    return np.linalg.lstsq(design, y, rcond=None)[0]


def _log_gap_bounds(ctx: LawContext) -> tuple[float, float]:
    return float(np.log(ctx.span) - 25.0), float(np.log(ctx.span) + 12.0)


def _clip(starts: np.ndarray, ctx: LawContext, bounds: Callable) -> np.ndarray:
    lo, hi = bounds(ctx)
    pad = 1e-9 * (hi - lo)
    return np.clip(np.atleast_2d(starts), lo + pad, hi - pad)


# --- saturating power law: y = a + b*X^c  (X = N or D) ---------------------------------


def _sat_model(var: int) -> Model:
    def model(theta, lx, lz, ctx):
        t = lx if var == 0 else lz
        return _c(theta, 0) - ctx.direction * _exp(_c(theta, 1) + _c(theta, 2) * t)

    return model


def _sat_bounds(ctx: LawContext) -> tuple[np.ndarray, np.ndarray]:
    a_lo, a_hi = ctx.asymptote_bounds()
    g_lo, g_hi = _log_gap_bounds(ctx)
    return np.array([a_lo, g_lo, _C_LO]), np.array([a_hi, g_hi, _C_HI])


def _sat_starts(t: np.ndarray, y: np.ndarray, ctx: LawContext) -> np.ndarray:
    """Variable projection: for each exponent on a dense grid the problem is linear
    in (a, b), solved exactly (asymptote clipped to its bounds); the local minima of
    this profile, best first, are the starts."""
    s = ctx.direction
    a_lo, a_hi = ctx.asymptote_bounds()
    cs = -np.geomspace(0.01, 2.9, 48)
    u = np.exp(np.outer(cs, t))  # [k, n]
    um, ym = u.mean(axis=1), y.mean()
    var_u = np.mean((u - um[:, None]) ** 2, axis=1)
    cov = np.mean((u - um[:, None]) * (y - ym), axis=1)
    b = np.where(var_u > 0, cov / np.where(var_u > 0, var_u, 1.0), 0.0)
    a = ym - b * um
    g = -s * b
    a = np.where(g > 0, a, ym)  # wrong-signed slope: flat curve at the mean
    a_c = np.clip(a, a_lo, a_hi)
    # with the asymptote clipped, re-solve the gap alone (g >= tiny)
    g = np.sum(u * (s * (a_c[:, None] - y)), axis=1) / np.sum(u * u, axis=1)
    g = np.maximum(g, 1e-6 * ctx.span)
    cost = np.sum((y - a_c[:, None] + s * g[:, None] * u) ** 2, axis=1)
    rows = np.column_stack([a_c, np.log(g), cs])
    is_min = np.r_[True, cost[1:] <= cost[:-1]] & np.r_[cost[:-1] <= cost[1:], True]
    order = np.flatnonzero(is_min)[np.argsort(cost[is_min])]
    return _clip(rows[order[:4]], ctx, _sat_bounds)


def _sat_grid(var: int):
    def grid(lx, lz, y, ctx):
        return _sat_starts(lx if var == 0 else lz, y, ctx)

    return grid


def _sat_public(ref: str):
    def public(theta, ctx):
        theta = np.asarray(theta, dtype=float)
        ref_v = ctx.n_ref if ref == "n" else ctx.d_ref
        b = -ctx.direction * _exp(theta[..., 1] - theta[..., 2] * np.log(ref_v))
        return np.stack([theta[..., 0], b, theta[..., 2]], axis=-1)

    return public


SIZE_LAW = Law(
    name="size",
    formula="y = a + b*N^c  (b<0 for metrics that increase, b>0 for losses; c<0)",
    param_names=("a", "b", "c"),
    inputs=("N",),
    model=_sat_model(0),
    bounds=_sat_bounds,
    init_grid=_sat_grid(0),
    public=_sat_public("n"),
)

DATA_LAW = Law(
    name="data",
    formula="y = a + b*D^c  (D = examples seen; same signs as the size law)",
    param_names=("a", "b", "c"),
    inputs=("D",),
    model=_sat_model(1),
    bounds=_sat_bounds,
    init_grid=_sat_grid(1),
    public=_sat_public("d"),
)


# --- Fang et al. form: y = delta + s' (A/N)^alpha ------------------------------------


def _fang_model(theta, lx, lz, ctx):
    return _c(theta, 0) - ctx.direction * _exp(_c(theta, 2) * (_c(theta, 1) - lx))


def _fang_data_model(theta, lx, lz, ctx):
    return _fang_model(theta, lz, lx, ctx)


def _fang_bounds(ctx):
    a_lo, a_hi = ctx.asymptote_bounds()
    return np.array([a_lo, -400.0, -_C_HI]), np.array([a_hi, 400.0, -_C_LO])


def _fang_grid(lx, lz, y, ctx):
    sat = _sat_starts(lx, y, ctx)  # same family, reparameterised: g = A'^alpha
    alpha = -sat[:, 2]
    return _clip(np.column_stack([sat[:, 0], sat[:, 1] / alpha, alpha]), ctx, _fang_bounds)


def _fang_data_grid(lx, lz, y, ctx):
    return _fang_grid(lz, lx, y, ctx)


def _fang_public(theta, ctx):
    theta = np.asarray(theta, dtype=float)
    return np.stack([_exp(theta[..., 1]) * ctx.n_ref, theta[..., 2], theta[..., 0]], axis=-1)


def _fang_data_public(theta, ctx):
    theta = np.asarray(theta, dtype=float)
    return np.stack([_exp(theta[..., 1]) * ctx.d_ref, theta[..., 2], theta[..., 0]], axis=-1)


FANG_LAW = Law(
    name="fang",
    formula="y = (A/N)^alpha + delta for losses; mirrored y = delta - (A/N)^alpha for metrics that increase",
    param_names=("A", "alpha", "delta"),
    inputs=("N",),
    model=_fang_model,
    bounds=_fang_bounds,
    init_grid=_fang_grid,
    public=_fang_public,
)


DATA_FANG_LAW = Law(
    name="data-fang",
    formula="y = (B/D)^beta + delta for losses; mirrored y = delta - (B/D)^beta for metrics that increase",
    param_names=("B", "beta", "delta"),
    inputs=("D",),
    model=_fang_data_model,
    bounds=_fang_bounds,
    init_grid=_fang_data_grid,
    public=_fang_data_public,
)


# --- log-linear: y = a + b*ln X ---------------------------------------------------------


def _loglin_model(var: int) -> Model:
    def model(theta, lx, lz, ctx):
        return _c(theta, 0) + _c(theta, 1) * (lx if var == 0 else lz)

    return model


def _loglin_bounds(ctx):
    big = 1e3 * ctx.span
    b_lo, b_hi = (0.0, big) if ctx.direction > 0 else (-big, 0.0)
    return np.array([ctx.y_lo - big, b_lo]), np.array([ctx.y_hi + big, b_hi])


def _loglin_grid(var: int):
    def grid(lx, lz, y, ctx):
        t = lx if var == 0 else lz
        if np.ptp(t) == 0:
            return _clip(np.array([[np.mean(y), 0.0]]), ctx, _loglin_bounds)
        a, b = _lstsq([np.ones_like(t), t], y)
        return _clip(np.array([[a, b]]), ctx, _loglin_bounds)

    return grid


def _loglin_public(ref: str):
    def public(theta, ctx):
        theta = np.asarray(theta, dtype=float)
        ref_v = ctx.n_ref if ref == "n" else ctx.d_ref
        return np.stack([theta[..., 0] - theta[..., 1] * np.log(ref_v), theta[..., 1]], axis=-1)

    return public


LOGLINEAR_LAW = Law(
    name="loglinear",
    formula="y = a + b*ln(N)",
    param_names=("a", "b"),
    inputs=("N",),
    model=_loglin_model(0),
    bounds=_loglin_bounds,
    init_grid=_loglin_grid(0),
    public=_loglin_public("n"),
)

DATA_LOGLINEAR_LAW = Law(
    name="data-loglinear",
    formula="y = a + b*ln(D)",
    param_names=("a", "b"),
    inputs=("D",),
    model=_loglin_model(1),
    bounds=_loglin_bounds,
    init_grid=_loglin_grid(1),
    public=_loglin_public("d"),
)


# --- bounded power law: asymptote fixed at the metric's natural bound ----------------


def _bounded_model(theta, lx, lz, ctx):
    return ctx.bound - ctx.direction * _exp(_c(theta, 0) + _c(theta, 1) * lx)


def _bounded_bounds(ctx):
    g_lo, g_hi = _log_gap_bounds(ctx)
    return np.array([g_lo, _C_LO]), np.array([g_hi, _C_HI])


def _bounded_grid(lx, lz, y, ctx):
    gap = ctx.direction * (ctx.bound - y)
    ok = gap > 0
    rows = []
    if ok.sum() >= 2 and np.ptp(lx[ok]) > 0:
        c, lg = np.polyfit(lx[ok], np.log(gap[ok]), 1)
        rows.append([lg, c])
    mean_gap = np.log(max(float(np.mean(gap[ok])) if ok.any() else ctx.span, 1e-12))
    rows += [[mean_gap, c] for c in _EXPONENTS[::2]]
    return _clip(np.array(rows), ctx, _bounded_bounds)


def _bounded_public(theta, ctx):
    theta = np.asarray(theta, dtype=float)
    b = -ctx.direction * _exp(theta[..., 0] - theta[..., 1] * np.log(ctx.n_ref))
    return np.stack([b, theta[..., 1]], axis=-1)


BOUNDED_LAW = Law(
    name="bounded",
    formula="y = y* + b*N^c, y* fixed at the metric's natural bound (1 for rank metrics, 0 for entropy)",
    param_names=("b", "c"),
    inputs=("N",),
    model=_bounded_model,
    bounds=_bounded_bounds,
    init_grid=_bounded_grid,
    public=_bounded_public,
    needs_bound=True,
)


# --- joint additive: y = a + b*N^c + d*D^e -------------------------------------------


def _joint_model(theta, lx, lz, ctx):
    size = _exp(_c(theta, 1) + _c(theta, 2) * lx)
    data = _exp(_c(theta, 3) + _c(theta, 4) * lz)
    return _c(theta, 0) - ctx.direction * (size + data)


def _joint_bounds(ctx):
    a_lo, a_hi = ctx.asymptote_bounds()
    g_lo, g_hi = _log_gap_bounds(ctx)
    return (
        np.array([a_lo, g_lo, _C_LO, g_lo, _C_LO]),
        np.array([a_hi, g_hi, _C_HI, g_hi, _C_HI]),
    )


def _joint_grid(lx, lz, y, ctx):
    s, rows = ctx.direction, []
    for c in (-0.1, -0.3, -0.7):
        for e in (-0.1, -0.3, -0.7):
            u, v = np.exp(c * lx), np.exp(e * lz)
            a, b, d = _lstsq([np.ones_like(u), u, v], y)
            g, h = max(-s * b, 1e-2 * ctx.span), max(-s * d, 1e-2 * ctx.span)
            a = float(np.mean(y + s * (g * u + h * v)))
            rows.append([a, np.log(g), c, np.log(h), e])
    return _clip(np.array(rows), ctx, _joint_bounds)


def _joint_public(theta, ctx):
    theta = np.asarray(theta, dtype=float)
    s = ctx.direction
    b = -s * _exp(theta[..., 1] - theta[..., 2] * np.log(ctx.n_ref))
    d = -s * _exp(theta[..., 3] - theta[..., 4] * np.log(ctx.d_ref))
    return np.stack([theta[..., 0], b, theta[..., 2], d, theta[..., 4]], axis=-1)


JOINT_LAW = Law(
    name="joint",
    formula="y = a + b*N^c + d*D^e  (b, d share the sign of the size law; c, e < 0)",
    param_names=("a", "b", "c", "d", "e"),
    inputs=("N", "D"),
    model=_joint_model,
    bounds=_joint_bounds,
    init_grid=_joint_grid,
    public=_joint_public,
)


# --- joint Fang: L(N, D) = [(A/N)^(alpha/beta) + B/D]^beta + delta -------------------


def _jfang_model(theta, lx, lz, ctx):
    alpha, beta = _c(theta, 2), _c(theta, 4)
    inner = np.logaddexp((alpha / beta) * (_c(theta, 1) - lx), _c(theta, 3) - lz)
    return _c(theta, 0) - ctx.direction * _exp(beta * inner)


def _jfang_bounds(ctx):
    a_lo, a_hi = ctx.asymptote_bounds()
    return np.array([a_lo, -60.0, 0.01, -60.0, 0.02]), np.array([a_hi, 60.0, 3.0, 60.0, 5.0])


def _jfang_grid(lx, lz, y, ctx):
    """Grid over (alpha, beta, A'); the overall scale K of the bracket is solved
    linearly with delta and folded back into A' and B' (K*[..]^beta = [K^(1/beta)..]^beta)."""
    s, cands = ctx.direction, []
    for alpha in (0.1, 0.3, 0.8):
        for beta in (0.2, 0.5, 1.0, 2.0):
            for log_a in (-4.0, -2.0, 0.0, 2.0, 4.0):
                term = np.exp(beta * np.logaddexp((alpha / beta) * (log_a - lx), -lz))
                delta, coef = _lstsq([np.ones_like(term), term], y)
                k = max(-s * coef, 1e-6 * ctx.span)
                delta = float(np.mean(y + s * k * term))
                cost = float(np.sum((y - delta + s * k * term) ** 2))
                row = [delta, log_a + np.log(k) / alpha, alpha, np.log(k) / beta, beta]
                cands.append((cost, row))
    cands.sort(key=lambda item: item[0])
    return _clip(np.array([row for _, row in cands[:8]]), ctx, _jfang_bounds)


def _jfang_public(theta, ctx):
    theta = np.asarray(theta, dtype=float)
    return np.stack(
        [
            _exp(theta[..., 1]) * ctx.n_ref,
            theta[..., 2],
            _exp(theta[..., 3]) * ctx.d_ref,
            theta[..., 4],
            theta[..., 0],
        ],
        axis=-1,
    )


JOINT_FANG_LAW = Law(
    name="joint-fang",
    formula="L(N,D) = [(A/N)^(alpha/beta) + B/D]^beta + delta; mirrored (delta - [..]^beta) for metrics that increase",
    param_names=("A", "alpha", "B", "beta", "delta"),
    inputs=("N", "D"),
    model=_jfang_model,
    bounds=_jfang_bounds,
    init_grid=_jfang_grid,
    public=_jfang_public,
)


LAWS: dict[str, Law] = {
    law.name: law
    for law in (
        SIZE_LAW,
        FANG_LAW,
        LOGLINEAR_LAW,
        BOUNDED_LAW,
        DATA_LAW,
        DATA_FANG_LAW,
        DATA_LOGLINEAR_LAW,
        JOINT_LAW,
        JOINT_FANG_LAW,
    )
}
SIZE_LAWS = ("size", "fang", "loglinear", "bounded")  # laws over N only
DATA_LAWS = ("data", "data-fang", "data-loglinear")  # laws over D only
JOINT_LAWS = ("joint", "joint-fang")


def get_law(law: str | Law) -> Law:
    """Look a law up by name (a :class:`Law` passes through)."""
    if isinstance(law, Law):
        return law
    try:
        return LAWS[law]
    except KeyError:
        from rerank_scaling.errors import UserError

        raise UserError(f"unknown law '{law}' (choose from {', '.join(LAWS)})") from None
