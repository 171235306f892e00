"""Conformal width rules calibrated on the real ladders' backtest (scaling/README.md).

``RULES[(estimator, level)]`` is the factor that multiplies an estimator's interval half-widths,
fitted by :func:`rerank_scaling.scaling.backtest.calibrate` on the size hold-outs of every real
ladder in ``reports/ladders/`` (the command that made each is beside it). An estimator or level
without a rule gets none: its raw intervals, said so in the output.
"""

from __future__ import annotations

from rerank_scaling.scaling.backtest import WidthRule

RULES: dict[tuple[str, float], WidthRule] = {}


def width_rule(estimator: str, level: float = 0.9) -> WidthRule | None:
    return RULES.get((estimator, round(level, 6)))
