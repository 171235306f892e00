"""Run the scaling analyzer for a report, never letting one failure stop the rest.

Every analyzer call is seeded (bootstrap seed 0) and its warnings are recorded
as text, so the report can quote them; a :class:`UserError` becomes a note in
its section ("not enough sizes to fit ...") instead of an exception.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.report.study import HEADLINE, Study
from rerank_scaling.report.tables import size as fmt_size
from rerank_scaling.scaling import Allocation, GroupFit, Verdict, WidthRule, allocate, exposure_verdicts, fit_groups, verdicts
from rerank_scaling.scaling import calibration
from rerank_scaling.scaling.backtest import MIN_FIT_LEVELS
from rerank_scaling.scaling.estimate import estimator_forecasts

LEVEL = 0.9
SEED = 0
MIN_ALLOCATION_SIZES = 3  # below this the joint law's N exponent is not identified: no allocation advice


@dataclass
class MetricFits:
    """Size-law fits of one metric (every objective x eval set x budget group)."""

    metric: str
    groups: list[GroupFit] = field(default_factory=list)
    error: str = ""  # why nothing could be fitted
    notes: list[str] = field(default_factory=list)  # skipped groups, analyzer warnings


@dataclass
class DataScaling:
    """Fang et al.'s three laws of one contrastive entropy, D = the data budget (training queries):
    the size law per supervision x budget, the data law per supervision x model, the joint law per
    supervision (every run a point)."""

    metric: str
    size: MetricFits
    data: MetricFits
    joint: MetricFits


@dataclass
class Analysis:
    cut: float
    cut_reason: str
    n_boot: int
    level: float
    fits: dict[str, MetricFits]
    size_verdicts: list[Verdict]
    size_error: str
    exposure_verdicts: list[Verdict]
    exposure_error: str
    allocation_flops: float | None
    allocations: list[Allocation]
    allocation_notes: list[str]
    data: DataScaling | None = None  # laws over the data budget, per supervision (studies with 2+ budgets)
    estimator: str | None = None  # the calibrated default forecast estimator the size verdicts judge (None: law)
    calibrated: bool = False  # its intervals widened by the conformal rule of the real-ladder backtest
    default_forecasts: dict[str, list[dict]] = field(default_factory=dict)  # metric -> estimator_forecasts rows
    # family -> its own fit cut, in a study of several families analysed family by family (empty otherwise:
    # ``cut`` holds for every model)
    cuts: dict[str, float] = field(default_factory=dict)

    def cut_of(self, family: str | None) -> float:
        """The fit cut of ``family``'s models (:attr:`cut` unless the families were cut one by one)."""
        return self.cuts.get(family, self.cut) if family is not None else self.cut

    def for_family(self, family: str) -> Analysis:
        """The part of the analysis about one family's models, with its cut (figures of one family)."""
        def mine(items):
            return [x for x in items if getattr(x, "family", None) in (None, family)]

        fits = {m: dataclasses.replace(mf, groups=[g for g in mf.groups if g.key.get("family") in (None, family)])
                for m, mf in self.fits.items()}
        return dataclasses.replace(
            self, cut=self.cut_of(family), cuts={}, fits=fits, size_verdicts=mine(self.size_verdicts),
            exposure_verdicts=mine(self.exposure_verdicts), allocations=mine(self.allocations),
            default_forecasts={m: [f for f in rows if f.get("family") in (None, family)]
                               for m, rows in self.default_forecasts.items()})

    @property
    def held_out(self) -> bool:
        return any(f.actual is not None for mf in self.fits.values() for g in mf.groups for f in g.forecasts)


def _record(caught) -> list[str]:
    return list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))


def default_cut(sizes: list[float]) -> tuple[float, str]:
    """The second-largest size, so at least the largest is held out."""
    if len(sizes) >= 2:
        return sizes[-2], (f"the second-largest model size ({fmt_size(sizes[-2])} non-embedding parameters), "
                           f"so the largest ({fmt_size(sizes[-1])}) is held out and forecast")
    return sizes[-1], "the only model size: nothing can be held out"


def fit_metric(study: Study, metric: str, cut: float, n_boot: int, law: str = "auto",
               data_axis: str = "exposure") -> MetricFits:
    out = MetricFits(metric)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out.groups = fit_groups(study.table, metric, cut, level=LEVEL, n_boot=n_boot, seed=SEED, law=law,
                                    data_axis=data_axis)
        except UserError as exc:
            out.error = str(exc)
    out.notes = [m.removeprefix("skipped: ") for m in _record(caught) if m.startswith("skipped: ")]
    return out


def default_estimator(study: Study, cut: float) -> tuple[str | None, WidthRule | None]:
    """The real-ladder backtest's default estimator and its conformal rule, when the study fits enough sizes
    for it (``MIN_FIT_LEVELS``); otherwise ``(None, None)`` and the size law judges alone."""
    name = calibration.default_estimator()
    if name is None or sum(s <= cut for s in study.param_sizes) < MIN_FIT_LEVELS:
        return None, None
    return name, calibration.width_rule(name, LEVEL)


def _default_forecasts(study: Study, cut: float, n_boot: int, name: str, rule) -> dict[str, list[dict]]:
    out = {}
    for metric in study.metrics:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out[metric] = estimator_forecasts(study.table, metric, cut, name, level=LEVEL, n_boot=n_boot,
                                                  seed=SEED, width_rule=rule)
            except UserError:
                continue
    return out


def _verdicts(study: Study, cut: float, n_boot: int, estimator: str | None = None,
              rule: WidthRule | None = None) -> tuple[list[Verdict], str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return verdicts(study.table, cut, level=LEVEL, n_boot=n_boot, seed=SEED, estimator=estimator,
                            width_rule=rule), ""
        except UserError as exc:
            return [], str(exc)


def _exposure(study: Study, n_boot: int) -> tuple[list[Verdict], str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rows = exposure_verdicts(study.table, level=LEVEL, n_boot=n_boot, seed=SEED)
        except UserError as exc:
            return [], str(exc)
    if not rows:
        return [], ("no run has at least 2 checkpoints in the first half of its training to fit and a later "
                    "one to forecast")
    return rows, ""


def _allocations(study: Study, n_boot: int) -> tuple[float | None, list[Allocation], list[str]]:
    if HEADLINE not in study.metrics:
        return None, [], [f"no {HEADLINE} rows to allocate compute for"]
    if len(study.param_sizes) < MIN_ALLOCATION_SIZES:
        return None, [], [f"the joint law's size term needs at least {MIN_ALLOCATION_SIZES} model sizes, the grid "
                          f"has {len(study.param_sizes)}"]
    rows = study.trained.filter(pl.col("metric") == HEADLINE)
    flops = rows["flops"].max() if "flops" in rows.columns else None
    if flops is None or not flops > 0:
        return None, [], ["the table records no training FLOPs (flops column), so there is no budget to allocate"]
    out, notes = [], []
    for es in study.eval_sets:
        for objective in sorted(rows.filter(pl.col("eval_set") == es.name)["objective"].unique().to_list()):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    out.extend(allocate(study.table, HEADLINE, float(flops), eval_set=es.name, objective=objective,
                                        level=LEVEL, n_boot=n_boot, seed=SEED))
                except UserError as exc:
                    notes.append(f"{es.name}, {objective}: {exc}")
    return float(flops), out, notes


def entropy_metric(study: Study) -> str | None:
    """The contrastive entropy the data laws are fitted to: Fang's random corpus negatives
    (``ce-corpus@M``, the largest M) when measured, else the candidate-list ``ce@m``."""
    ces = [m for m in study.metrics if m.startswith("ce-corpus@")] or [m for m in study.metrics if m.startswith("ce@")]
    return max(ces, key=lambda m: int(m.rsplit("@", 1)[1])) if ces else None


def data_scaling(study: Study, n_boot: int) -> DataScaling | None:
    """Size, data and joint laws over the budget axis; None unless the study has two budgets or more."""
    metric = entropy_metric(study)
    if metric is None or len(study.column_values("budget")) < 2:
        return None
    inf = float("inf")
    return DataScaling(metric, fit_metric(study, metric, inf, n_boot, law="fang"),
                       fit_metric(study, metric, inf, n_boot, law="data-fang", data_axis="budget"),
                       fit_metric(study, metric, inf, n_boot, law="joint-fang", data_axis="budget"))


def _per_family(study: Study, n_boot: int) -> tuple[float, str, dict, list, str, str | None, object, dict, dict]:
    """Fits, size verdicts and default forecasts of a study of several families, each family cut at its own
    second-largest size: a sparse model of a backbone has more non-embedding parameters than the dense one (its
    MLM head), so one cut over the pooled sizes would hold out one family's largest model and fit the other's."""
    cuts, fits, size_v, errors, forecasts, name, rule = {}, {}, [], [], {}, None, None
    for family in study.families:
        sub = study.only_family(family)
        cut, _ = default_cut(sub.param_sizes)
        cuts[family] = cut
        for m in study.metrics:
            mf = fit_metric(sub, m, cut, n_boot) if m in sub.metrics else MetricFits(m)
            into = fits.setdefault(m, MetricFits(m))
            into.groups += mf.groups
            into.notes += [f"{family}: {n}" for n in mf.notes]
            if mf.error:
                into.error = "; ".join(x for x in (into.error, f"{family}: {mf.error}") if x)
        f_name, f_rule = default_estimator(sub, cut)
        name, rule = name or f_name, rule or f_rule
        v, err = _verdicts(sub, cut, n_boot, f_name, f_rule)
        size_v += v
        errors += [f"{family}: {err}"] if err else []
        for m, rows in (_default_forecasts(sub, cut, n_boot, f_name, f_rule) if f_name else {}).items():
            forecasts.setdefault(m, []).extend(rows)
    for mf in fits.values():  # a metric some family fitted is not an error of the metric
        if mf.groups:
            mf.error = ""
    reason = ("each family at its own second-largest model size, so every family's largest model is held out "
              "and forecast: " + ", ".join(f"{f} N <= {fmt_size(c)}" for f, c in cuts.items()))
    return max(cuts.values()), reason, fits, size_v, "; ".join(errors), name, rule, forecasts, cuts


def analyse(study: Study, fit_max_params: float | None = None, n_boot: int = 300) -> Analysis:
    sizes = study.param_sizes
    if fit_max_params is None and len(study.families) > 1:
        cut, reason, fits, size_v, size_err, name, rule, forecasts, cuts = _per_family(study, n_boot)
        exp_v, exp_err = _exposure(study, n_boot)
        flops, allocs, alloc_notes = _allocations(study, n_boot)
        return Analysis(cut, reason, n_boot, LEVEL, fits, size_v, size_err, exp_v, exp_err, flops, allocs,
                        alloc_notes, data_scaling(study, n_boot), name, rule is not None, forecasts, cuts)
    if fit_max_params is None:
        cut, reason = default_cut(sizes)
    else:
        cut = float(fit_max_params)
        held = [s for s in sizes if s > cut]
        reason = f"given with --fit-max-params ({fmt_size(cut)})"
        reason += f"; {len(held)} larger size(s) held out" if held else "; no larger size is held out"
    fits = {m: fit_metric(study, m, cut, n_boot) for m in study.metrics}
    name, rule = default_estimator(study, cut)
    size_v, size_err = _verdicts(study, cut, n_boot, name, rule)
    exp_v, exp_err = _exposure(study, n_boot)
    flops, allocs, alloc_notes = _allocations(study, n_boot)
    return Analysis(cut, reason, n_boot, LEVEL, fits, size_v, size_err, exp_v, exp_err, flops, allocs, alloc_notes,
                    data_scaling(study, n_boot), name, rule is not None,
                    _default_forecasts(study, cut, n_boot, name, rule) if name else {})
