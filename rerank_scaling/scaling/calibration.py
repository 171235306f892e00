"""The default forecast estimator and the conformal width rules calibrated on real ladders.

``calibration.json`` (beside this module) is written by ``reports/ladders/analyse.sh`` from the
backtest of every real ladder in ``reports/ladders/`` (ours and the published ones; never the
reference reranker study's own large models): ``default`` is the estimator the pre-registered
rule (:func:`rerank_scaling.scaling.backtest.choose_default`) picked, and each rule's ``factor``
multiplies that estimator's interval half-widths (split-conformal, all ladders' size hold-outs;
``coverage_left_out`` is the coverage with each ladder's rule fitted without it). Without the
file (a fresh checkout before any ladder), there is no calibrated rule and no chosen default.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from rerank_scaling.scaling.backtest import WidthRule

PATH = Path(__file__).with_name("calibration.json")


@lru_cache(maxsize=1)
def calibration() -> dict:
    return json.loads(PATH.read_text()) if PATH.exists() else {"default": None, "rules": {}, "source": None}


def default_estimator() -> str | None:
    return calibration()["default"]


def width_rule(estimator: str, level: float = 0.9) -> WidthRule | None:
    """The calibrated rule of ``estimator`` at ``level`` (None where none was fitted)."""
    rule = calibration()["rules"].get(estimator)
    if not rule or not math.isclose(rule["level"], level) or not math.isfinite(rule["factor"] or math.nan):
        return None
    return WidthRule(estimator, rule["level"], float(rule["factor"]), int(rule["n"]))
