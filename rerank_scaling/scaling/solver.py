"""Bounded nonlinear least squares: a multi-start scipy fit and a batched refitter.

* :func:`multistart` is the reference fit: ``scipy.optimize.least_squares`` with
  bounds from every start of a grid, keeping the lowest cost.
* :func:`batched_lm` refits many weighted/perturbed copies of one problem at once
  (bootstrap replicates, warm-started at the point fit) with a vectorised
  Levenberg-Marquardt in numpy: one array operation serves all replicates.

Both minimise ``sum_i w_i * rho(r_i)`` with ``r = y - f(theta)``; ``rho`` is the
square (``loss="linear"``) or the Huber function with threshold ``f_scale``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import least_squares

LOSSES = ("linear", "huber")


@dataclass(frozen=True)
class SolveResult:
    theta: np.ndarray
    cost: float
    converged: bool
    n_starts: int
    n_converged: int


def multistart(
    fun: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    starts: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    loss: str = "linear",
    f_scale: float = 1.0,
    max_starts: int = 3,
    weights: np.ndarray | None = None,
) -> SolveResult:
    """Refine the ``max_starts`` cheapest starts with ``least_squares``; keep the best.

    ``fun(theta[p]) -> f[n]``.  ``cost`` is infinite when no start gave a finite
    cost; ``converged`` is False when the best start stopped at the evaluation limit
    (typical of a flat valley, e.g. a saturating law at its log-linear limit).
    """
    sw = np.ones_like(y) if weights is None else np.sqrt(weights)

    def resid(theta):
        return sw * (y - fun(theta))

    starts = np.atleast_2d(starts)
    costs = np.array([np.sum(resid(t) ** 2) for t in starts])
    order = np.argsort(np.where(np.isfinite(costs), costs, np.inf))[:max_starts]
    best, best_cost, n_ok, best_ok = starts[order[0]], np.inf, 0, False
    for i in order:
        try:
            res = least_squares(
                resid, starts[i], bounds=(lo, hi), loss=loss, f_scale=f_scale,
                x_scale="jac", method="trf", max_nfev=400,
            )
        except (ValueError, np.linalg.LinAlgError):
            continue
        cost = float(np.sum(_rho(resid(res.x), loss, f_scale)))
        if not np.isfinite(cost):
            continue
        n_ok += res.status > 0
        if cost < best_cost:
            best, best_cost, best_ok = res.x, cost, res.status > 0
    return SolveResult(np.asarray(best, dtype=float), best_cost, best_ok, len(order), n_ok)


def _rho(r: np.ndarray, loss: str, f_scale: float) -> np.ndarray:
    if loss == "linear":
        return r * r
    a = np.abs(r)
    return np.where(a <= f_scale, r * r, 2.0 * f_scale * a - f_scale * f_scale)


def batched_lm(
    fun: Callable[[np.ndarray, np.ndarray], np.ndarray],
    theta0: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    *,
    loss: str = "linear",
    f_scale: float | np.ndarray = 1.0,
    max_iter: int = 100,
    rtol: float = 1e-11,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``B`` problems at once; data ``y``/``w`` are ``[B, n]`` (weight 0 = padding).

    ``fun(theta[b, p], rows[b]) -> f[b, n]`` predicts the batch rows ``rows``, so
    different rows may hold different problems (e.g. several models' data).
    ``lo``/``hi`` are ``[p]`` or ``[B, p]``; ``f_scale`` a scalar or ``[B]``.
    Projected Levenberg-Marquardt with an active set for parameters held at a
    bound, numeric forward-difference Jacobian, Huber via IRLS weights.  A row
    stops when a step gains less than ``rtol`` of its cost; the tight default
    matters: replicates in the flat valley of a saturating law (c -> 0) converge
    slowly, and stopping them early pulls them towards the warm start and
    understates the bootstrap's bias estimate.
    Returns ``(theta[B, p], cost[B])``.
    """
    theta = np.array(theta0, dtype=float)
    n_b, p = theta.shape
    lo = np.broadcast_to(np.asarray(lo, dtype=float), (n_b, p))
    hi = np.broadcast_to(np.asarray(hi, dtype=float), (n_b, p))
    fs = np.broadcast_to(np.asarray(f_scale, dtype=float), (n_b,))[:, None]
    theta = np.clip(theta, lo, hi)
    step = 1e-6 * np.maximum(np.abs(theta), 1.0)
    all_rows = np.arange(n_b)
    r = y - fun(theta, all_rows)
    cost = np.sum(w * _rho(r, loss, fs), axis=1)
    lam = np.full(n_b, 1e-2)
    active = np.ones(n_b, dtype=bool)
    eye = np.eye(p)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        th, rr, lo_i, hi_i, fs_i = theta[idx], r[idx], lo[idx], hi[idx], fs[idx]
        f0 = y[idx] - rr
        jac = np.empty((idx.size, rr.shape[1], p))
        for k in range(p):
            h = step[idx, k]
            shifted = th.copy()
            # step inward at the upper bound so the probe stays feasible
            sign = np.where(th[:, k] + h > hi_i[:, k], -1.0, 1.0)
            shifted[:, k] += sign * h
            jac[:, :, k] = (fun(shifted, idx) - f0) / (sign * h)[:, None]
        ww = w[idx]
        if loss == "huber":
            ww = ww * np.minimum(1.0, fs_i / np.maximum(np.abs(rr), 1e-300))
        jw_t = (jac * ww[:, :, None]).transpose(0, 2, 1)
        a_mat = jw_t @ jac
        grad = (jw_t @ rr[:, :, None])[:, :, 0]
        diag = np.einsum("bpp->bp", a_mat) + 1e-12
        # parameters pinned at a bound whose gradient pushes outward stay fixed
        pinned = ((th <= lo_i + 1e-12) & (grad < 0)) | ((th >= hi_i - 1e-12) & (grad > 0))
        free = ~pinned
        lhs = a_mat + lam[idx, None, None] * diag[:, :, None] * eye
        lhs = lhs * free[:, :, None] * free[:, None, :] + eye * pinned[:, :, None]
        rhs = grad * free
        try:
            delta = np.linalg.solve(lhs, rhs[..., None])[..., 0]
        except np.linalg.LinAlgError:
            delta = rhs / np.maximum(diag, 1e-12) * 0.1
        delta = np.where(np.isfinite(delta), delta, 0.0)
        cand = np.clip(th + delta, lo_i, hi_i)
        r_new = y[idx] - fun(cand, idx)
        c_new = np.sum(w[idx] * _rho(r_new, loss, fs_i), axis=1)
        better = np.isfinite(c_new) & (c_new < cost[idx])
        gain = np.where(better, cost[idx] - c_new, 0.0)
        ok = idx[better]
        theta[ok], r[ok] = cand[better], r_new[better]
        cost[ok] = c_new[better]
        lam[ok] = np.maximum(lam[ok] / 3.0, 1e-9)
        bad = idx[~better]
        lam[bad] = lam[bad] * 4.0
        small_gain = better & (gain <= rtol * (cost[idx] + 1e-30))
        stuck = ~better & (lam[idx] > 1e8)
        active[idx[small_gain | stuck]] = False
    return theta, cost
