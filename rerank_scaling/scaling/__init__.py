"""Scaling-law analyzer: fit laws to reranker grids, forecast larger models, judge metrics.

Pure functions, table in, dataclasses out.  Conventions (direction of metrics,
N/D normalisation, signs) are stated in :mod:`.metrics` and :mod:`.laws`; the
low-bias study and its numbers are in this package's README.md.

Names are imported lazily (PEP 562) so that ``rerank_scaling.scaling.cli`` --
and with it ``rerank-scaling --help`` -- does not pay for numpy, scipy and polars.
"""

from __future__ import annotations

import importlib
import sys
import types

_EXPORTS = {
    "allocate": ("Allocation", "GridPoint", "allocate"),
    "backtest": ("Backtest", "backtest", "WidthRule"),
    "estimators": ("ESTIMATORS",),
    "fit": ("FitResult", "fit_law", "fit_many"),
    "forecast": ("Forecast", "GroupFit", "fit_groups", "forecast"),
    "laws": ("BOUNDED_LAW", "DATA_FANG_LAW", "DATA_LAW", "DATA_LAWS", "DATA_LOGLINEAR_LAW", "FANG_LAW", "JOINT_FANG_LAW", "JOINT_LAW", "LAWS",
             "LOGLINEAR_LAW", "SIZE_LAW", "Law", "LawContext", "get_law"),
    "metrics": ("bounds", "direction", "kind", "lower_is_better", "natural_bound"),
    "selection": ("LawChoice", "choose_law"),
    "table": ("load_results", "normalise", "run_values"),
    "verdicts": ("Verdict", "exposure_verdicts", "verdicts"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'rerank_scaling.scaling' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rerank_scaling.scaling.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Keeps ``scaling.forecast`` (and verdicts, allocate, backtest) the function, as the
    eager imports used to: when the import system binds a submodule whose name is also
    an exported function, the function is bound instead."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _WHERE.get(name) == name and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
