"""The report's one adapter to the scaling analyzer: every analyzer call of a report is made here.

So "one estimator everywhere in a report" holds by construction: the default forecast estimator
(:func:`rerank_scaling.scaling.calibration.default_estimator`, widened by its calibrated width rule) gives
every forecast the report shows -- the held-out sizes' table, the size verdicts, the figures' forecast marks,
the caveats, the summary's next-size forecast -- and its *trust line* (:func:`trust`) says how it did on the
real ladders' backtest. Law fits (:func:`fit_metric`) are kept for the labelled appendix only.

Nothing impossible leaves this module: every forecast and interval is inside its metric's range
(:func:`rerank_scaling.report.kinds.metric_range`; the rows say when one was moved there), costs and
invariant metrics are never fitted nor judged, and a verdict whose run-to-run noise was not measured (no
repeated seeds at a size and fewer than ``MIN_LATE`` late checkpoints per run, :mod:`rerank_scaling.scaling.evidence`) is *not testable*.
Every call is seeded (bootstrap seed 0); a :class:`UserError` becomes a note, never an exception.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.report.kinds import QUALITY, metric_kind, metric_range
from rerank_scaling.report.study import HEADLINE, Study
from rerank_scaling.report.tables import size as fmt_size
from rerank_scaling.scaling import Allocation, GroupFit, Verdict, WidthRule, allocate, exposure_verdicts, fit_groups, verdicts
from rerank_scaling.scaling import calibration
from rerank_scaling.scaling.backtest import MIN_FIT_LEVELS
from rerank_scaling.scaling.baselines import inside
from rerank_scaling.scaling.estimate import estimator_forecasts
from rerank_scaling.scaling.evidence import MIN_LATE

LEVEL = 0.9
SEED = 0
MIN_ALLOCATION_SIZES = 3  # below this the joint law's N exponent is not identified: no allocation advice
NEXT_SIZE = 2.0  # the summary forecasts the next doubling of the largest size


@dataclass
class MetricFits:
    """Size-law fits of one metric (every objective x eval set x budget group): the appendix's laws."""

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


@dataclass(frozen=True)
class Trust:
    """How the default estimator did on the real ladders' backtest (one size held out)."""

    estimator: str
    level: float
    coverage: float | None = None  # out-of-sample coverage of its calibrated interval
    median_width: float | None = None
    mae: float | None = None
    mae_carry_forward: float | None = None
    cases: int | None = None
    ladders: tuple[str, ...] = ()
    source: str = ""

    @property
    def ratio(self) -> float | None:
        """Its MAE over carry-forward's (below 1: it beats repeating the largest fitted value)."""
        if self.mae is None or not self.mae_carry_forward:
            return None
        return self.mae / self.mae_carry_forward

    def line(self) -> str:
        """One sentence a reader can weigh a forecast by."""
        where = f"{len(self.ladders)} real ladders" if self.ladders else "the real ladders"
        parts = []
        if self.coverage is not None:
            of = f" of {self.cases} held-out actuals" if self.cases else ""
            parts.append(f"its calibrated {self.level:.0%} intervals held {self.coverage:.0%}{of} out of sample"
                         + (f" (median width {self.median_width:.3f})" if self.median_width is not None else ""))
        if self.ratio is not None:
            parts.append(f"with the largest one or two sizes hidden its mean absolute error was {self.mae:.3f}, "
                         f"{self.ratio:.2f}x that of carrying the largest fitted value forward "
                         f"({self.mae_carry_forward:.3f})")
        elif parts:
            parts.append("its error against carry-forward is not recorded here")
        if not parts:
            return f"`{self.estimator}` has no backtest record here: treat its forecasts as untested."
        return f"on {where}, " + "; ".join(parts) + "."


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
    estimator: str | None = None  # the calibrated default forecast estimator every forecast comes from
    calibrated: bool = False  # its intervals widened by the conformal rule of the real-ladder backtest
    default_forecasts: dict[str, list[dict]] = field(default_factory=dict)  # metric -> held-out size rows
    # family -> its own fit cut, in a study of several families analysed family by family (empty otherwise:
    # ``cut`` holds for every model)
    cuts: dict[str, float] = field(default_factory=dict)
    next_forecasts: dict[str, list[dict]] = field(default_factory=dict)  # metric -> rows at NEXT_SIZE x largest
    kinds: dict[str, str] = field(default_factory=dict)  # metric -> quality / cost / invariant
    trust: Trust | None = None
    estimator_note: str = ""  # why there is no default estimator's forecast, when there is none
    chains: ChainAnalysis | None = None  # the chain law and pipeline allocation, in a study with chained runs

    def cut_of(self, family: str | None) -> float:
        """The fit cut of ``family``'s models (:attr:`cut` unless the families were cut one by one)."""
        return self.cuts.get(family, self.cut) if family is not None else self.cut

    @property
    def quality(self) -> list[str]:
        """The metrics fitted, forecast and judged (costs and invariant metrics are not)."""
        return [m for m, k in self.kinds.items() if k == QUALITY]

    def for_family(self, family: str) -> Analysis:
        """The part of the analysis about one family's models, with its cut (figures of one family)."""
        def mine(items):
            return [x for x in items if getattr(x, "family", None) in (None, family)]

        def rows(d):
            return {m: [f for f in r if f.get("family") in (None, family)] for m, r in d.items()}

        fits = {m: dataclasses.replace(mf, groups=[g for g in mf.groups if g.key.get("family") in (None, family)])
                for m, mf in self.fits.items()}
        return dataclasses.replace(
            self, cut=self.cut_of(family), cuts={}, fits=fits, size_verdicts=mine(self.size_verdicts),
            exposure_verdicts=mine(self.exposure_verdicts), allocations=mine(self.allocations),
            default_forecasts=rows(self.default_forecasts), next_forecasts=rows(self.next_forecasts))

    @property
    def held_out(self) -> bool:
        return any(f["actual"] is not None for rows in self.default_forecasts.values() for f in rows)


def _record(caught) -> list[str]:
    return list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))


def default_cut(sizes: list[float]) -> tuple[float, str]:
    """The second-largest size, so at least the largest is held out."""
    if len(sizes) >= 2:
        return sizes[-2], (f"the second-largest model size ({fmt_size(sizes[-2])} non-embedding parameters), "
                           f"so the largest ({fmt_size(sizes[-1])}) is held out and forecast")
    return sizes[-1], "the only model size: nothing can be held out"


def kinds(study: Study) -> dict[str, str]:
    """metric -> quality / cost / invariant (:func:`rerank_scaling.report.kinds.metric_kind`), in report order."""
    return {m: metric_kind(m, study.finals) for m in study.metrics}


# --- the default estimator and its trust line ---------------------------------------------------------


def trust(name: str, level: float = LEVEL) -> Trust:
    """The default estimator's backtest record, as the analyzer keeps it (``scaling.calibration.trust``:
    out-of-sample coverage and width of its calibrated interval, its MAE and carry-forward's on the same
    hidden sizes, the cases and ladders); empty for an estimator without one."""
    d = calibration.trust(name) or {}
    return Trust(name, float(d.get("level") or level), d.get("coverage"), d.get("median_width"), d.get("mae"),
                 d.get("mae_carry_forward"), d.get("n"), tuple(d.get("ladders") or ()),
                 "scaling/calibration.json" if d else "")


def default_estimator(study: Study, cut: float) -> tuple[str | None, WidthRule | None, str]:
    """The real-ladder backtest's default estimator and its conformal rule, when the study has enough sizes at
    or below ``cut`` for it (``MIN_FIT_LEVELS``); otherwise ``(None, None, why)``."""
    name = calibration.default_estimator()
    if name is None:
        return None, None, "no default estimator is calibrated (rerank_scaling/scaling/calibration.json is missing)"
    fitted = sum(s <= cut for s in study.param_sizes)
    if fitted < MIN_FIT_LEVELS:
        return None, None, (f"only {fitted} model size(s) at or below the fit cut; the default estimator "
                            f"(`{name}`) needs {MIN_FIT_LEVELS}")
    return name, calibration.width_rule(name, LEVEL), ""


def in_range(rows: list[dict], metric: str) -> list[dict]:
    """Forecast rows with the prediction and interval moved inside the metric's range (``clipped`` says so),
    error and coverage recomputed (an actual is always in range, so coverage does not change)."""
    lo_b, hi_b = metric_range(metric)
    out = []
    for r in rows:
        r = dict(r)
        before = (r["predicted"], r["lower"], r["upper"])
        after = tuple(min(max(v, lo_b), hi_b) if math.isfinite(v) else v for v in before)
        r["predicted"], r["lower"], r["upper"] = after
        r["clipped"] = any(a != b for a, b in zip(after, before) if math.isfinite(b))
        if r["actual"] is not None and math.isfinite(r["predicted"]):
            r["error"] = r["predicted"] - r["actual"]
            if math.isfinite(r["lower"]) and math.isfinite(r["upper"]):
                r["covered"] = bool(inside(r["lower"], r["upper"], r["actual"]))
        out.append(r)
    return out


def _forecasts(table: pl.DataFrame, metric: str, cut: float, n_boot: int, name: str, rule,
               predict_params=()) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rows = estimator_forecasts(table, metric, cut, name, level=LEVEL, n_boot=n_boot, seed=SEED,
                                       width_rule=rule, predict_params=predict_params)
        except UserError:
            return []
    return in_range(rows, metric)


def _default_forecasts(study: Study, metrics: list[str], cut: float, n_boot: int, name: str,
                       rule) -> dict[str, list[dict]]:
    out = {}
    for metric in metrics:
        rows = [r for r in _forecasts(study.table, metric, cut, n_boot, name, rule) if r["actual"] is not None]
        if rows:
            out[metric] = rows
    return out


def _next_forecasts(study: Study, n_boot: int) -> dict[str, list[dict]]:
    """The headline at :data:`NEXT_SIZE` x the largest size, every size fitted (what the summary shows)."""
    sizes = study.param_sizes
    name = calibration.default_estimator()
    if HEADLINE not in study.metrics or name is None or len(sizes) < MIN_FIT_LEVELS:
        return {}
    target = NEXT_SIZE * sizes[-1]
    rows = _forecasts(study.table, HEADLINE, sizes[-1], n_boot, name, calibration.width_rule(name, LEVEL),
                      predict_params=(target,))
    return {HEADLINE: [r for r in rows if math.isclose(r["params"], target)]}


# --- verdicts --------------------------------------------------------------------------------------------


def _group_rows(study: Study, v: Verdict) -> pl.DataFrame:
    rows = study.trained.filter((pl.col("metric") == v.metric) & (pl.col("eval_set") == v.eval_set)
                                  & (pl.col("objective") == v.objective))
    for col, value in (("family", v.family), ("supervision", v.supervision)):
        if value is not None and col in rows.columns:
            rows = rows.filter(pl.col(col) == value)
    return rows


def _num(v, fmt: str = ".3g") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and math.isfinite(v) else "—"


def why(v: Verdict) -> str:
    """The verdict's numbers in one short line (the analyzer's own reason is longer)."""
    if v.status == "not testable":
        return f"noise not measured: one seed and fewer than {MIN_LATE} late checkpoints per run"
    if v.status == "not judged":
        return v.reason[:160] + ("..." if len(v.reason) > 160 else "")
    moves = (f"q {_num(v.moves_q, '.2f')} vs {_num(v.moves_threshold, '.2f')}" if v.moves_q is not None
             else "movement not measured")
    if v.status == "not informative":
        if v.moves:  # it moved, but the forecast does not say the next size differs from the last fitted one
            return (f"moves ({moves}), but the forecast interval holds the last fitted value: no change forecast "
                    "beyond its uncertainty")
        if v.n_fits > 1:  # one fit per model (exposure check): a majority of them must move
            return (f"flat: at most half of its {v.n_fits} fits move beyond noise (median {moves}, noise sd "
                    f"{_num(v.noise_sd)})")
        beyond = v.moves_q is not None and v.moves_threshold is not None and v.moves_q > v.moves_threshold
        if beyond and v.min_effect is not None and v.span is not None and v.span < v.min_effect:
            return f"flat: span {_num(v.span)} below the minimum effect {_num(v.min_effect)} ({moves})"
        return f"flat: span {_num(v.span)} within noise (sd {_num(v.noise_sd)}, {moves})"
    error = (f"MAE {_num(v.mae)} vs carry-forward {_num(v.mae_carry_forward)}, log-linear {_num(v.mae_loglinear)}"
             if v.mae is not None else "no held-out error")
    cover = f"{v.coverage:.0%} inside" if v.coverage is not None else "no interval"
    if v.checks.get("intervals") is False and v.interval_score is not None:
        cover += (f", interval score {_num(v.interval_score)} vs carry-forward "
                  f"{_num(v.interval_score_carry_forward)}")
    return f"moves ({moves}); {error}; {cover}"


def judged(rows: list[Verdict]) -> list[Verdict]:
    """The analyzer's verdicts with a short :func:`why` as the reason (*not testable* where the analyzer
    measured no run-to-run noise: one seed and too few late checkpoints per run)."""
    return [dataclasses.replace(v, reason=why(v)) for v in rows]


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


def _verdicts(study: Study, metrics: list[str], cut: float, n_boot: int, estimator: str | None, rule,
              why_not: str) -> tuple[list[Verdict], str]:
    if estimator is None:
        return [], why_not
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rows = verdicts(study.table, cut, metrics=metrics, level=LEVEL, n_boot=n_boot, seed=SEED,
                            estimator=estimator, width_rule=rule)
        except UserError as exc:
            return [], str(exc)
    return judged(rows), ""


def _exposure(study: Study, metrics: list[str], n_boot: int) -> tuple[list[Verdict], str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rows = exposure_verdicts(study.table, metrics=metrics, level=LEVEL, n_boot=n_boot, seed=SEED)
        except UserError as exc:
            return [], str(exc)
    if not rows:
        return [], ("no run has at least 2 checkpoints in the first half of its training to fit and a later "
                    "one to forecast")
    return judged(rows), ""


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


@dataclass
class _Part:
    """The size analysis of one family (or of the whole study)."""

    cut: float
    fits: dict[str, MetricFits]
    verdicts: list[Verdict]
    error: str
    name: str | None
    rule: WidthRule | None
    why_not: str
    forecasts: dict[str, list[dict]]
    next: dict[str, list[dict]]


def _size_part(study: Study, quality: list[str], cut: float, n_boot: int) -> _Part:
    fits = {m: fit_metric(study, m, cut, n_boot) if m in study.metrics else MetricFits(m) for m in quality}
    name, rule, why_not = default_estimator(study, cut)
    size_v, err = _verdicts(study, [m for m in quality if m in study.metrics], cut, n_boot, name, rule, why_not)
    forecasts = _default_forecasts(study, [m for m in quality if m in study.metrics], cut, n_boot, name, rule) \
        if name else {}
    return _Part(cut, fits, size_v, err, name, rule, why_not, forecasts, _next_forecasts(study, n_boot))


def analyse(study: Study, fit_max_params: float | None = None, n_boot: int = 300) -> Analysis:
    sizes = study.param_sizes
    metric_kinds = kinds(study)
    quality = [m for m, k in metric_kinds.items() if k == QUALITY]
    cuts: dict[str, float] = {}
    if fit_max_params is None and len(study.families) > 1:
        # each family cut at its own second-largest size: a sparse model of a backbone has more non-embedding
        # parameters than the dense one (its MLM head), so one cut over the pooled sizes would hold out one
        # family's largest model and fit the other's
        parts = {}
        for family in study.families:
            sub = study.only_family(family)
            cuts[family] = default_cut(sub.param_sizes)[0]
            parts[family] = _size_part(sub, quality, cuts[family], n_boot)
        cut = max(cuts.values())
        reason = ("each family at its own second-largest model size, so every family's largest model is held out "
                  "and forecast: " + ", ".join(f"{f} N <= {fmt_size(c)}" for f, c in cuts.items()))
        fits = {}
        for family, p in parts.items():
            for m, mf in p.fits.items():
                into = fits.setdefault(m, MetricFits(m))
                into.groups += mf.groups
                into.notes += [f"{family}: {n}" for n in mf.notes]
                if mf.error:
                    into.error = "; ".join(x for x in (into.error, f"{family}: {mf.error}") if x)
        for mf in fits.values():  # a metric some family fitted is not an error of the metric
            if mf.groups:
                mf.error = ""
        size_v = [v for p in parts.values() for v in p.verdicts]
        size_err = "; ".join(f"{f}: {p.error}" for f, p in parts.items() if p.error and not p.verdicts)
        name = next((p.name for p in parts.values() if p.name), None)
        rule = next((p.rule for p in parts.values() if p.rule), None)
        why_not = "; ".join(f"{f}: {p.why_not}" for f, p in parts.items() if p.why_not)
        forecasts, nxt = {}, {}
        for p in parts.values():
            for m, rows in p.forecasts.items():
                forecasts.setdefault(m, []).extend(rows)
            for m, rows in p.next.items():
                nxt.setdefault(m, []).extend(rows)
    else:
        if fit_max_params is None:
            cut, reason = default_cut(sizes)
        else:
            cut = float(fit_max_params)
            held = [s for s in sizes if s > cut]
            reason = f"given with --fit-max-params ({fmt_size(cut)})"
            reason += f"; {len(held)} larger size(s) held out" if held else "; no larger size is held out"
        p = _size_part(study, quality, cut, n_boot)
        fits, size_v, size_err, name, rule, why_not, forecasts, nxt = (p.fits, p.verdicts, p.error, p.name, p.rule,
                                                                        p.why_not, p.forecasts, p.next)
    exp_v, exp_err = _exposure(study, quality, n_boot)
    flops, allocs, alloc_notes = _allocations(study, n_boot)
    default = calibration.default_estimator()
    return Analysis(cut, reason, n_boot, LEVEL, fits, size_v, size_err, exp_v, exp_err, flops, allocs, alloc_notes,
                    data_scaling(study, n_boot), name, rule is not None, forecasts, cuts, nxt, metric_kinds,
                    trust(default) if default else None, why_not)


@dataclass
class ChainAnalysis:
    """The chain law of a study with chained runs (``stage == "chain"`` rows): per reranker condition its fit
    on every chain (what the allocation uses), every measured chain's forecast by the law fitted on all but the
    largest reranker size (``predicted``/``lower``/``upper``; ``held_out`` marks the largest size's chains, the
    backtest), and the recommended chain under a few per-query budgets."""

    metric: str
    cost_metric: str
    points: pl.DataFrame  # measured chains and first stages alone, with the held-out fit's forecast
    fits: list[dict]
    backtest: dict | None  # over the held-out chains: chains, mae, coverage, mae_first_stage_alone, hidden
    plans: list  # PipelinePlan, one per budget and condition
    frontier: list  # Candidate: the law's frontier (first condition) over every chain searched
    notes: list[str] = field(default_factory=list)
    frontier_eval_set: str = ""  # the eval set of the frontier's condition


CHAIN_BUDGET_QUANTILES = (0.25, 0.5, 0.9)  # the report's budgets: these quantiles of the measured chains' costs


def _held_out_forecasts(key: dict, pts: pl.DataFrame, metric: str, n_boot: int, seed: int) -> pl.DataFrame:
    """Every chain of one condition forecast by the law fitted without its largest reranker size."""
    from rerank_scaling.scaling.chain import fit_chain_law

    chains = pts.filter(pl.col("depth") > 0)
    top = chains["params"].max()
    fit = fit_chain_law(pts.filter(pl.col("params") < top), metric, key=key, level=LEVEL, n_boot=n_boot, seed=seed)
    pred, lo, hi = fit.interval(chains["params"], chains["recall"], chains["y0"])
    return chains.with_columns(predicted=pl.Series(pred), lower=pl.Series(lo), upper=pl.Series(hi),
                               held_out=pl.col("params") == top)


def chain_analysis(study: Study, n_boot: int) -> ChainAnalysis | None:
    """The chain law, its backtest and the pipeline allocation of ``study`` (None without chain rows);
    a :class:`UserError` becomes a note. Every interval inside the metric's range."""
    from rerank_scaling.scaling.chain import DEFAULT_METRIC, chain_points, chain_rows, conditions, fit_chain_law
    from rerank_scaling.scaling.pipeline import plan_pipeline

    try:
        chain_rows(study.results_path)
    except UserError:
        return None
    metric, notes = DEFAULT_METRIC, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            points = chain_points(study.results_path, metric)
            groups = conditions(points)
            fits = [fit_chain_law(pts, metric, key=key, level=LEVEL, n_boot=n_boot, seed=SEED + i)
                    for i, (key, pts) in enumerate(groups)]
        except UserError as exc:
            return ChainAnalysis(metric, "", pl.DataFrame(), [], None, [], [], [str(exc)])
        frames = [points.filter(pl.col("depth") == 0).with_columns(
            predicted=pl.col("y"), lower=pl.col("y"), upper=pl.col("y"), held_out=pl.lit(False))]
        for i, (key, pts) in enumerate(groups):
            try:
                frames.append(_held_out_forecasts(key, pts, metric, n_boot, SEED + i))
            except UserError as exc:  # two sizes or fewer: nothing to hold out
                notes.append(f"held-out forecasts: {exc}")
        shown = pl.concat(frames, how="diagonal_relaxed")
        held = shown.filter(pl.col("held_out"))
        bt = None
        if held.height:
            bt = {"hidden": "the largest reranker size", "chains": held.height,
                  "mae": float((held["predicted"] - held["y"]).abs().mean()),
                  "mae_first_stage_alone": float((held["y0"] - held["y"]).abs().mean()),
                  "coverage": float(((held["lower"] <= held["y"]) & (held["y"] <= held["upper"])).mean())}
        cost_metric = next((c for c in ("chain-ms", "chain-flops") if c in points.columns
                            and points[c].drop_nulls().len()), "")
        plans, frontier, frontier_set = [], [], ""
        if cost_metric:
            costs = points.filter(pl.col("depth") > 0)[cost_metric].drop_nulls()
            for q in CHAIN_BUDGET_QUANTILES:
                budget = float(costs.quantile(q))
                try:
                    made = plan_pipeline(study.results_path, budget=budget, cost=cost_metric.removeprefix("chain-"),
                                         metric=metric, level=LEVEL, n_boot=n_boot, seed=SEED)
                except UserError as exc:
                    notes.append(f"budget {budget:.4g}: {exc}")
                    continue
                plans += made
                if not frontier:
                    frontier, frontier_set = list(made[0].frontier), made[0].eval_set
        else:
            notes.append("the chain rows carry no cost (chain-ms, chain-flops): no allocation")
    notes += _record(caught)
    return ChainAnalysis(metric, cost_metric, shown, [f.to_dict() for f in fits], bt, plans, frontier, notes,
                         frontier_set)
