"""Naive forecasts every estimator has to beat, and the interval score.

* :func:`carry_forward` -- the largest fitted level's mean value, for every larger
  level; interval ``+- t * sd * sqrt(1 + 1/m)`` from the measured noise (the
  honest interval of a metric that does not move).
* :func:`loglinear` -- ordinary least squares ``a + b*ln x`` on the points, with the
  textbook prediction interval.
* :func:`plain_curve_fit` -- ``scipy.optimize.curve_fit`` of ``a + b*x^c`` on the
  points (the reference study's estimator), intervals by the delta method from
  its covariance.  ``x`` is divided by its geometric mean first (the least-squares
  solution is the same; the start is better conditioned).
* :func:`interval_score` -- Gneiting & Raftery's score of a central ``level``
  interval: width plus ``2/alpha`` times the miss (lower is better).
* :func:`inside` -- whether an actual is inside its interval: the one coverage test
  of the analyzer (forecasts, verdicts, backtest, calibration).
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def _t(level: float, df: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df)) if df >= 1 else math.inf


def carry_forward(x, y, x_new, noise_sd: float, noise_df: float, level: float = 0.9):
    """``(pred, lo, hi)`` at ``x_new``: the mean at the largest fitted ``x``."""
    x, y, x_new = np.asarray(x, float), np.asarray(y, float), np.atleast_1d(np.asarray(x_new, float))
    top = y[x == x.max()]
    pred = np.full(x_new.size, float(top.mean()))
    half = _t(level, noise_df) * noise_sd * math.sqrt(1 + 1 / top.size) if math.isfinite(noise_sd) else math.nan
    return pred, pred - half, pred + half


def loglinear(x, y, x_new, level: float = 0.9):
    """``(pred, lo, hi)``: OLS of ``y`` on ``ln x`` (nan when < 2 distinct x)."""
    t, y = np.log(np.asarray(x, float)), np.asarray(y, float)
    t_new = np.log(np.atleast_1d(np.asarray(x_new, float)))
    nan = np.full(t_new.size, np.nan)
    if np.unique(t).size < 2:
        return nan, nan, nan
    X = np.column_stack([np.ones_like(t), t])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    pred = coef[0] + coef[1] * t_new
    df = y.size - 2
    if df < 1:
        return pred, nan, nan
    s2 = float(np.sum((y - X @ coef) ** 2)) / df
    Xn = np.column_stack([np.ones_like(t_new), t_new])
    lev = np.einsum("ij,jk,ik->i", Xn, np.linalg.inv(X.T @ X), Xn)
    half = _t(level, df) * np.sqrt(s2 * (1 + lev))
    return pred, pred - half, pred + half


def plain_curve_fit(x, y, x_new, direction: int, level: float = 0.9):
    """``(pred, lo, hi)`` from ``curve_fit(a + b*x^c)``; all nan when it fails."""
    from scipy.optimize import curve_fit

    x, y = np.asarray(x, float), np.asarray(y, float)
    x_new = np.atleast_1d(np.asarray(x_new, float))
    nan = np.full(x_new.size, np.nan)
    if np.unique(x).size < 3:
        return nan, nan, nan
    ref = float(np.exp(np.mean(np.log(x))))
    u, u_new = x / ref, x_new / ref
    span = max(float(np.ptp(y)), 1e-6 * max(1.0, float(np.max(np.abs(y)))))

    def f(v, a, b, c):
        return a + b * v**c

    best = y.max() if direction > 0 else y.min()
    p0 = (best + direction * span, -direction * span, -0.5)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theta, cov = curve_fit(f, u, y, p0=p0, maxfev=20000)
    except (RuntimeError, ValueError, TypeError, np.linalg.LinAlgError):
        return nan, nan, nan
    pred = f(u_new, *theta)
    df = y.size - 3
    if df < 1 or not np.all(np.isfinite(cov)):
        return pred, nan, nan
    a, b, c = theta
    jac = np.column_stack([np.ones_like(u_new), u_new**c, b * u_new**c * np.log(u_new)])
    s2 = float(np.sum((y - f(u, *theta)) ** 2)) / df
    var = np.einsum("ij,jk,ik->i", jac, cov, jac) + s2
    half = _t(level, df) * np.sqrt(np.maximum(var, 0.0))
    return pred, pred - half, pred + half


# relative slack of the coverage test: a zero-width interval at a constant metric's value (the mean of
# identical numbers, e.g. recall@100 when only the top 20 are reranked) covers it; rounding is not a miss
COVER_RTOL = 1e-9


def inside(lo, hi, actual) -> np.ndarray:
    """Per target: ``lo <= y <= hi`` up to ``COVER_RTOL * max(1, |y|)`` of floating-point slack."""
    lo, hi, y = (np.asarray(v, float) for v in (lo, hi, actual))
    tol = COVER_RTOL * np.maximum(1.0, np.abs(y))
    return (lo - tol <= y) & (y <= hi + tol)


def interval_score(lo, hi, actual, level: float = 0.9) -> np.ndarray:
    """Per target: ``(hi - lo) + 2/alpha * (lo - y)+ + 2/alpha * (y - hi)+`` (``alpha = 1 - level``)."""
    lo, hi, y = (np.asarray(v, float) for v in (lo, hi, actual))
    alpha = 1.0 - level
    return (hi - lo) + (2 / alpha) * np.maximum(lo - y, 0.0) + (2 / alpha) * np.maximum(y - hi, 0.0)
