"""Scaling-law analyzer: fit laws to reranker grids, forecast larger models, judge metrics.

Pure functions, table in, dataclasses out.  Conventions (direction of metrics,
N/D normalisation, signs) are stated in :mod:`.metrics` and :mod:`.laws`; the
low-bias study and its numbers are in this package's README.md.
"""

from rerank_scaling.scaling.allocate import Allocation, GridPoint, allocate
from rerank_scaling.scaling.fit import FitResult, fit_law, fit_many
from rerank_scaling.scaling.forecast import Forecast, GroupFit, fit_groups, forecast
from rerank_scaling.scaling.laws import (
    BOUNDED_LAW,
    DATA_LAW,
    DATA_LOGLINEAR_LAW,
    FANG_LAW,
    JOINT_FANG_LAW,
    JOINT_LAW,
    LAWS,
    LOGLINEAR_LAW,
    SIZE_LAW,
    Law,
    LawContext,
    get_law,
)
from rerank_scaling.scaling.metrics import direction, lower_is_better, natural_bound
from rerank_scaling.scaling.selection import LawChoice, choose_law
from rerank_scaling.scaling.table import load_results, normalise, run_values
from rerank_scaling.scaling.verdicts import Verdict, exposure_verdicts, verdicts

__all__ = [
    "Allocation", "BOUNDED_LAW", "DATA_LAW", "DATA_LOGLINEAR_LAW", "FANG_LAW", "FitResult", "Forecast",
    "GridPoint", "GroupFit", "JOINT_FANG_LAW", "JOINT_LAW", "LAWS", "LOGLINEAR_LAW", "Law", "LawChoice",
    "LawContext", "SIZE_LAW", "Verdict", "allocate", "choose_law", "direction", "exposure_verdicts",
    "fit_groups", "fit_law", "fit_many", "forecast", "get_law", "load_results", "lower_is_better", "natural_bound",
    "normalise", "run_values", "verdicts",
]
