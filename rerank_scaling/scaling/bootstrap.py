"""Cell bootstrap for scaling-law fits.

The resampling unit is a *cell*: every point of one run (one size, budget and
seed), i.e. a whole checkpoint series, never a single point.  Two schemes:

* ``"cells"`` -- pairs bootstrap of cells, stratified by model size: each
  replicate redraws, with replacement, the runs observed at every size.  Keeping
  every size in every replicate keeps the law identifiable (a plain resample of
  five sizes often keeps only two or three of them).
* ``"wild"`` -- wild cluster bootstrap (Cameron, Gelbach & Miller 2008): each
  replicate is the fitted curve plus the cell's residual vector times one random
  weight per cell (Webb's 6-point distribution, good with few cells).  Works with
  one run per size, the common case for real users.  Residuals are
  leverage-adjusted, ``r / sqrt(1 - h)``, because a 3-parameter curve through
  five points absorbs most of the noise into the fit.

``"auto"`` uses ``"cells"`` when every size has at least ``MIN_CELLS_PER_STRATUM``
runs and ``"wild"`` otherwise.  Resampling k runs out of k understates their
spread by ``(k-1)/k``; ``spread`` (``sqrt(k/(k-1))``, k the harmonic mean of runs
per size) undoes that when intervals are formed.  Each replicate also draws the deviation of one
new run (a random adjusted residual with a random sign), so intervals built from
``prediction`` draws are prediction intervals for a new run, not only for the
law's mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from rerank_scaling.scaling.laws import Law, LawContext
from rerank_scaling.scaling.solver import batched_lm

SCHEMES = ("auto", "cells", "wild")
MIN_CELLS_PER_STRATUM = 5
_WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])


@dataclass(frozen=True)
class BootstrapDraws:
    theta: np.ndarray  # [B, p] refitted internal parameters (failed replicates dropped)
    noise: np.ndarray  # [B] deviation of a new run from the law
    scheme: str
    spread: float = 1.0  # factor for deviations from the mean (small-stratum correction)


@dataclass(frozen=True)
class Problem:
    """One point fit handed to the bootstrap: data on the law's normalised axes."""

    law: Law
    ctx: LawContext
    lx: np.ndarray
    lz: np.ndarray
    y: np.ndarray
    cells: np.ndarray
    strata: np.ndarray
    theta: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    f_scale: float = 1.0

    def fun(self, theta: np.ndarray) -> np.ndarray:
        return self.law.model(theta, self.lx, self.lz, self.ctx)


def leverage(fun: Callable[[np.ndarray], np.ndarray], theta: np.ndarray) -> np.ndarray:
    """Diagonal of the hat matrix ``J (J'J)^+ J'`` at ``theta`` (numeric Jacobian)."""
    f0 = fun(theta[None, :])[0]
    cols = []
    for k in range(theta.size):
        h = 1e-6 * max(abs(theta[k]), 1.0)
        t = theta.copy()
        t[k] += h
        cols.append((fun(t[None, :])[0] - f0) / h)
    jac = np.column_stack(cols)
    pinv = np.linalg.pinv(jac.T @ jac)
    return np.clip(np.einsum("np,pq,nq->n", jac, pinv, jac), 0.0, 1.0)


def choose_scheme(scheme: str, cells: np.ndarray, strata: np.ndarray) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown bootstrap scheme {scheme!r}")
    if scheme != "auto":
        return scheme
    cells_per_stratum = [np.unique(cells[strata == s]).size for s in np.unique(strata)]
    return "cells" if min(cells_per_stratum) >= MIN_CELLS_PER_STRATUM else "wild"


def _stratified_counts(rng, cell_stratum: np.ndarray, n_boot: int) -> np.ndarray:
    """``[B, C]`` counts: within each stratum, its cells redrawn with replacement."""
    counts = np.zeros((n_boot, cell_stratum.size))
    for s in np.unique(cell_stratum):
        members = np.flatnonzero(cell_stratum == s)
        draws = rng.integers(0, members.size, size=(n_boot, members.size))
        for j, cell in enumerate(members):
            counts[:, cell] = np.sum(draws == j, axis=1)
    return counts


def _replicates(pr: Problem, rng, n_boot: int, scheme: str):
    """Replicate data ``y[B, n]``, weights ``w[B, n]``, new-run noise ``[B]``, scheme, spread."""
    _, cell_idx = np.unique(pr.cells, return_inverse=True)
    _, stratum_idx = np.unique(pr.strata, return_inverse=True)
    scheme = choose_scheme(scheme, cell_idx, stratum_idx)
    fitted = pr.fun(pr.theta[None, :])[0]
    h = leverage(pr.fun, pr.theta)
    adj = (pr.y - fitted) / np.sqrt(np.clip(1.0 - h, 0.05, 1.0))
    adj = adj - np.mean(adj)
    n = pr.y.size
    spread = 1.0
    if scheme == "cells":
        cell_stratum = np.zeros(int(cell_idx.max()) + 1, dtype=int)
        cell_stratum[cell_idx] = stratum_idx
        w = _stratified_counts(rng, cell_stratum, n_boot)[:, cell_idx]
        yb = np.broadcast_to(pr.y, (n_boot, n))
        per_stratum = np.bincount(cell_stratum).astype(float)
        k = per_stratum.size / np.sum(1.0 / per_stratum)
        spread = float(np.sqrt(k / (k - 1.0))) if k > 1 else 1.0
    else:
        v = rng.choice(_WEBB, size=(n_boot, int(cell_idx.max()) + 1))
        yb = fitted + v[:, cell_idx] * adj
        w = np.ones((n_boot, n))
    noise = rng.choice([-1.0, 1.0], size=n_boot) * adj[rng.integers(0, n, size=n_boot)]
    return yb, w, noise, scheme, spread


def bootstrap_many(
    problems: list[Problem], *, n_boot: int, scheme: str = "auto", loss: str = "linear", seed: int = 0
) -> list[BootstrapDraws]:
    """Refit ``n_boot`` replicates of every problem, warm-started at its point fit,
    all in one batch (problems share one law and metric direction; shorter data are
    padded with zero weight)."""
    if not problems:
        return []
    first = problems[0]
    if any(pr.law is not first.law or pr.ctx.direction != first.ctx.direction
           or pr.ctx.bound != first.ctx.bound for pr in problems):
        raise ValueError("bootstrap_many needs problems with one law, direction and bound")
    rng = np.random.default_rng(seed)
    n_max = max(pr.y.size for pr in problems)
    G, B, p = len(problems), n_boot, first.theta.size
    Y, W = np.zeros((G * B, n_max)), np.zeros((G * B, n_max))
    LX, LZ = np.zeros((G, n_max)), np.zeros((G, n_max))
    extras = []
    for g, pr in enumerate(problems):
        yb, w, noise, sch, spread = _replicates(pr, rng, B, scheme)
        n = pr.y.size
        Y[g * B:(g + 1) * B, :n], W[g * B:(g + 1) * B, :n] = yb, w
        LX[g, :n], LZ[g, :n] = pr.lx, pr.lz
        extras.append((noise, sch, spread))
    group_of_row = np.repeat(np.arange(G), B)

    def fun(theta, rows):
        g = group_of_row[rows]
        return first.law.model(theta, LX[g], LZ[g], first.ctx)

    theta0 = np.repeat(np.stack([pr.theta for pr in problems]), B, axis=0)
    lo = np.repeat(np.stack([pr.lo for pr in problems]), B, axis=0)
    hi = np.repeat(np.stack([pr.hi for pr in problems]), B, axis=0)
    f_scale = np.repeat([pr.f_scale for pr in problems], B)
    theta, cost = batched_lm(fun, theta0, lo, hi, Y, W, loss=loss, f_scale=f_scale)
    out = []
    for g, (noise, sch, spread) in enumerate(extras):
        th, c = theta[g * B:(g + 1) * B], cost[g * B:(g + 1) * B]
        keep = np.isfinite(c) & np.all(np.isfinite(th), axis=1)
        out.append(BootstrapDraws(th[keep].reshape(-1, p), noise[keep], sch, spread))
    return out

