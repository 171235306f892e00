"""How much a metric moves, measured against its own run-to-run noise.

A forecast can only be judged when the thing forecast changes by more than
noise over the fitted range; a flat metric (p@10 at 0.055 +- 0.0007 at every
size, recall@100 after reranking only the top 20) is "not informative", however
small its forecast errors look.

* :func:`noise_estimate` -- the standard deviation of one fitted point, from (in
  this order) seeds: the pooled within-level sd of runs at the same size (or
  exposure); late checkpoints: each run's checkpoints in the second half of its
  training (exposure >= ``LATE`` x its final one), at least ``MIN_LATE`` of them,
  scattered around their own straight-line trend (pooled residual sd, so training
  progress is not taken as noise); else the residuals of the log-linear fit
  ``a + b*ln x`` to the points (then misfit counts as noise: *unmeasured*, which
  :attr:`Noise.measured` says and verdicts do not judge on).
* :func:`moves` -- the studentized range ``q = (max - min of level means) /
  (sd / sqrt(m))`` (``m`` runs per level, harmonic mean) against its
  ``level`` quantile for ``k`` levels and the noise's degrees of freedom (Tukey's
  test of "all levels equal").  ``q`` is the test statistic every verdict quotes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MOVES_LEVEL = 0.95
LAST_K = 3
LATE = 0.5  # late checkpoints: exposure >= LATE x the run's final exposure (the second half of training)
MIN_LATE = 3  # late checkpoints a run needs for its scatter to count as measured noise
MEASURED = ("seeds", "checkpoints")


@dataclass(frozen=True)
class Noise:
    sd: float  # sd of one fitted point (nan when it cannot be measured)
    df: float  # degrees of freedom of that estimate
    source: str  # "seeds", "checkpoints", "residuals" or "none"

    @property
    def measured(self) -> bool:
        """Measured from replicates (seeds) or late checkpoints, not inferred from a fit's residuals."""
        return self.source in MEASURED and math.isfinite(self.sd)

    def describe(self) -> str:
        if not math.isfinite(self.sd):
            return "noise not measurable"
        where = {"seeds": "from seeds",
                 "checkpoints": f"from the scatter of >= {MIN_LATE} late checkpoints around their trend",
                 "residuals": "unmeasured: a+b*ln x residuals (no seeds, < 3 late checkpoints)"}.get(self.source,
                                                                                                    self.source)
        return f"noise sd {self.sd:.3g} {where}, df {self.df:g}"


@dataclass(frozen=True)
class Movement:
    span: float  # max - min of the level means over the fitted levels
    n_levels: int
    q: float  # studentized range statistic (inf when the noise is 0)
    threshold: float  # its MOVES_LEVEL quantile under "no change"
    noise: Noise
    moves: bool | None  # None when the noise cannot be measured or < 2 levels
    constant: bool = False

    def describe(self, axis: str = "sizes") -> str:
        if self.constant:
            return f"constant: the same value at all {self.n_levels} fitted {axis} (span {self.span:.3g})"
        if self.moves is None:
            return f"span {self.span:.3g} over {self.n_levels} fitted {axis}; {self.noise.describe()}"
        rel = ">" if self.moves else "<="
        return (f"span {self.span:.3g} over {self.n_levels} fitted {axis}, {self.noise.describe()}: "
                f"q = {self.q:.3g} {rel} {self.threshold:.3g} ({MOVES_LEVEL:.0%} studentized range)")


@lru_cache(maxsize=512)
def _q_threshold(k: int, df: float, level: float) -> float:
    from scipy import stats

    return float(stats.studentized_range.ppf(level, k, min(df, 1e4)))


def _pooled_within(levels: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    ss, df = 0.0, 0
    for lv in np.unique(levels):
        v = values[levels == lv]
        if v.size >= 2:
            ss += float(np.sum((v - v.mean()) ** 2))
            df += v.size - 1
    return (math.sqrt(ss / df), float(df)) if df else (math.nan, 0.0)


def _late_scatter(series) -> tuple[float, float]:
    """Pooled residual sum of squares and df of each run's late checkpoints around their own line."""
    ss, df = 0.0, 0
    for item in series:
        d, v = (np.asarray(a, dtype=float) for a in item)
        keep = np.isfinite(d) & np.isfinite(v)
        d, v = d[keep], v[keep]
        if d.size == 0:
            continue
        late = d >= LATE * d.max()
        d, v = d[late], v[late]
        if d.size < MIN_LATE or np.unique(d).size < 2:
            continue
        coef = np.polyfit(d, v, 1)
        ss += float(np.sum((v - np.polyval(coef, d)) ** 2))
        df += d.size - 2
    return ss, df


def noise_estimate(levels, values, checkpoint_series=()) -> Noise:
    """Noise of one point at ``levels`` (size or exposure) with ``values``.

    ``checkpoint_series``: per run, ``(exposures, values)`` of its checkpoints (used only without
    replicate runs at any level)."""
    levels, values = np.asarray(levels, dtype=float), np.asarray(values, dtype=float)
    sd, df = _pooled_within(levels, values)
    if df > 0:
        return Noise(sd, df, "seeds")
    ss, df = _late_scatter(checkpoint_series)
    if df > 0:
        return Noise(math.sqrt(ss / df), float(df), "checkpoints")
    ux = np.unique(levels)
    if ux.size >= 3:
        t = np.log(levels)
        coef = np.polyfit(t, values, 1)
        df = values.size - 2
        return Noise(math.sqrt(float(np.sum((values - np.polyval(coef, t)) ** 2)) / df), float(df), "residuals")
    return Noise(math.nan, 0.0, "none")


def moves(levels, values, noise: Noise, level: float = MOVES_LEVEL) -> Movement:
    """Does the metric change over the fitted ``levels`` by more than ``noise``?"""
    levels, values = np.asarray(levels, dtype=float), np.asarray(values, dtype=float)
    ux = np.unique(levels)
    means = np.array([values[levels == u].mean() for u in ux])
    counts = np.array([np.sum(levels == u) for u in ux], dtype=float)
    span = float(means.max() - means.min()) if means.size else 0.0
    scale = max(1.0, float(np.max(np.abs(means)))) if means.size else 1.0
    if ux.size >= 2 and span <= 1e-12 * scale:
        return Movement(span, int(ux.size), 0.0, math.nan, noise, False, constant=True)
    if ux.size < 2 or not math.isfinite(noise.sd) or noise.df < 1:
        return Movement(span, int(ux.size), math.nan, math.nan, noise, None)
    m = counts.size / float(np.sum(1.0 / counts))
    se = noise.sd / math.sqrt(m)
    q = span / se if se > 0 else math.inf
    thr = _q_threshold(int(ux.size), float(noise.df), level)
    return Movement(span, int(ux.size), q, thr, noise, bool(q > thr))
