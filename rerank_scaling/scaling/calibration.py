"""The default forecast estimator and the widths calibrated on real ladders: the one place that decides.

``calibration.json`` (beside this module) is written by ``rerank-scaling backtest ... --write-calibration``
(``reports/ladders/analyse.sh``) from the backtest of every real ladder in ``reports/ladders/``: the
published scaling ladders calibrate and choose; our CPU ladders are negative controls; the reference
reranker study's large models and the Ettin rerankers are never used. It holds

* ``default``: the estimator the nested rule picked (:func:`.backtest.choose`), with ``choice``:
  its out-of-sample score, the runner-up's and the margin;
* ``rules[axis][estimator]``: each estimator's width parameter fitted on every scaling ladder (the
  engine's misspecification scale ``kappa``, or a conformal factor) and its out-of-fold coverage
  per ladder and per regime;
* ``trust``: what a report says of the default in one line (its out-of-sample coverage and width,
  its mean absolute error against carry-forward's and plain curve fitting's on the same targets).

Without the file (a fresh checkout before any backtest) nothing is calibrated: forecasts use the
engine's ``mixture`` with its raw intervals, and say so.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from rerank_scaling.scaling.backtest import WidthRule

PATH = Path(__file__).with_name("calibration.json")
FALLBACK = "mixture"


@lru_cache(maxsize=1)
def calibration() -> dict:
    return json.loads(PATH.read_text()) if PATH.exists() else {"default": None, "rules": {}, "source": None}


def default_estimator() -> str | None:
    """The default size estimator (None before any backtest has chosen one)."""
    return calibration().get("default")


def width_rule(estimator: str, level: float = 0.9, axis: str = "size") -> WidthRule | None:
    """The calibrated rule of ``estimator`` at ``level`` on ``axis`` (None where none was fitted)."""
    rule = calibration().get("rules", {}).get(axis, {}).get(estimator)
    factor = rule.get("factor") if rule else None
    if factor is None or not math.isclose(rule["level"], level) or not math.isfinite(factor):
        return None  # (a fitted factor of 0 is a rule: the estimator's own intervals, calibrated as they are)
    return WidthRule(estimator, rule["level"], float(rule["factor"]), int(rule["n"]), rule.get("kind", "factor"), axis)


def trust(estimator: str | None = None) -> dict | None:
    """The default's record on real ladders (None for another estimator or before any backtest):
    ``coverage`` and ``median_width`` out of sample, ``mae`` and the same targets' ``mae_carry_forward``
    and ``mae_curve_fit``, ``ladders`` (names), ``level``, ``source``."""
    cal = calibration()
    t = cal.get("trust")
    if not t or (estimator is not None and estimator != t.get("estimator")):
        return None
    return dict(t)


def trust_line(estimator: str | None = None) -> str:
    """One sentence a forecast can be weighed by: the default's record on the published ladders. Errors are
    medians (a few exploding curve fits make plain curve fitting's mean meaningless: see the backtest)."""
    t = trust(estimator)
    if t is None:
        return "not backtested: no calibration on real ladders (run reports/ladders/analyse.sh)"
    return (f"on {len(t['ladders'])} published scaling ladders, held out one ladder at a time, its "
            f"{t['level']:.0%} intervals covered {t['coverage']:.0%} of {t['n']} hidden sizes (median width "
            f"{t['median_width']:.3g}); median abs error {t['median_abs_error']:.3g} vs "
            f"{t['median_abs_error_carry_forward']:.3g} carrying the largest fitted value forward and "
            f"{t['median_abs_error_curve_fit']:.3g} plain curve fitting")