"""The data and annotation-quality section: Fang et al.'s size, data and joint laws over the data budget.

Shown for studies with two budgets or more (:func:`analysis.data_scaling`):
the contrastive entropy's final value of every run, the three laws per
supervision with their bootstrap intervals, and the annotation-quality
comparison -- each supervision's joint law at the grid's largest (N, D),
beside the measured values there.
"""

from __future__ import annotations

import math

import polars as pl

from rerank_scaling.report import tables as T
from rerank_scaling.report.analysis import Analysis, MetricFits
from rerank_scaling.report.kinds import metric_range
from rerank_scaling.report.sections import param, r2_text
from rerank_scaling.report.study import HEADLINE, Study
from rerank_scaling.scaling import LAWS

SHOWN = ("recall@100", HEADLINE)  # measured beside the entropy in the comparison


def _law_rows(fits: MetricFits, keys: tuple[str, ...]) -> list[list[str]]:
    rows = []
    for g in sorted(fits.groups, key=lambda g: tuple(_order(_key(g, k)) for k in keys)):
        fit = g.fit
        rows.append([*[T.plain(_key(g, k)) for k in keys], "; ".join(param(fit, p, v) for p, v in fit.params.items()),
                     r2_text(fit), str(fit.n_points)])
    return rows


def _order(v) -> tuple:
    """Numbers (budgets) in numeric order, text after them in alphabetical order."""
    return (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))


def _key(group, k: str):
    if k == "model":
        return group.points["model"][0]
    return group.key.get(k)


def _law_block(title: str, law: str, fits: MetricFits, keys: tuple[str, ...]) -> list[str]:
    lines = [f"#### {title}", "", f"`{law}`: {LAWS[law].formula}", ""]
    if fits.error:
        return lines + [f"Not fitted: {T.esc(fits.error)}.", ""]
    lines += [T.md_table([*keys, "parameters", "R²", "points"], _law_rows(fits, keys), "l" * len(keys) + "lrr"), ""]
    if fits.notes:
        lines += [f"- {T.esc(n)}" for n in fits.notes] + [""]
    return lines


def _finals_table(study: Study, metric: str, eval_set: str) -> list[str]:
    rows = study.finals.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    budgets = sorted(rows["budget"].unique().to_list())
    body = []
    for (sup, model, params), sub in sorted(rows.group_by("supervision", "model", "params"),
                                            key=lambda kv: (str(kv[0][0]), kv[0][2])):
        by_budget = dict(zip(sub["budget"].to_list(), sub["value"].to_list()))
        body.append([str(sup), f"`{model}`", T.size(params), *[T.num(by_budget.get(b)) for b in budgets]])
    return [T.md_table(["supervision", "model", "N", *[f"D = {T.plain(b)}" for b in budgets]], body,
                       "lll" + "r" * len(budgets)), ""]


def _comparison(study: Study, analysis: Analysis, eval_set: str) -> list[str]:
    """Each supervision's joint law and measured values at the grid's largest size and budget."""
    ds = analysis.data
    finals = study.finals.filter(pl.col("eval_set") == eval_set)
    n_max, d_max = float(finals["params"].max()), float(finals["budget"].max())
    at = finals.filter((pl.col("params") == n_max) & (pl.col("budget") == d_max))
    shown = [m for m in SHOWN if m in study.metrics]
    rows, ranked = [], []
    for g in sorted(ds.joint.groups, key=lambda g: str(g.key.get("supervision"))):
        if g.key.get("eval_set") != eval_set:
            continue
        sup, fit = g.key.get("supervision"), g.fit
        bottom, top = metric_range(ds.metric)  # an entropy: never below 0
        pred = min(max(float(fit.predict([n_max], [d_max])[0]), bottom), top)
        lo = hi = math.nan
        if fit.draws is not None and fit.draws.theta.shape[0] and fit.df >= 1:
            lo, hi = (min(max(float(v[0]), bottom), top) for v in fit.interval([n_max], [d_max]))
        measured = {m: at.filter((pl.col("supervision") == sup) & (pl.col("metric") == m))["value"].mean()
                    for m in (ds.metric, *shown)}
        rows.append([str(sup), T.num(pred), T.interval(lo, hi), T.num(measured[ds.metric]),
                     *[T.num(measured[m]) for m in shown],
                     *[param(fit, k, fit.params[k]).removeprefix(f"{k} = ") for k in ("alpha", "beta", "delta")]])
        ranked.append((pred, str(sup), lo, hi))
    if not rows:
        return []
    lines = [f"#### Annotation quality at N = {T.size(n_max)}, D = {T.plain(d_max)} ({eval_set}): joint law", "",
             f"Each supervision's joint law at the grid's largest model and budget (predicted {ds.metric} with its "
             f"{analysis.level:.0%} prediction interval), the run measured there, and the law's exponents "
             "(alpha: model size, beta: data) and floor delta.", "",
             T.md_table(["supervision", f"joint law {ds.metric}", "interval", f"measured {ds.metric}",
                         *[f"measured {m}" for m in shown], "alpha", "beta", "delta"], rows,
                        "lrlr" + "r" * len(shown) + "lll"), ""]
    ranked.sort()
    order = " < ".join(f"{s} {T.num(p)}" for p, s, _, _ in ranked)
    line = f"Lower is better: {order}."
    if len(ranked) >= 2:
        (p0, s0, lo0, hi0), (p1, s1, lo1, hi1) = ranked[0], ranked[1]
        if all(map(T.finite, (lo0, hi0, lo1, hi1))):
            apart = hi0 < lo1
            line += (f" The best ({s0}) is {'clear of' if apart else 'within'} the runner-up's ({s1}) interval: "
                     + ("the ranking holds beyond run-to-run noise." if apart
                        else "with one seed per cell the two are not told apart."))
    return lines + [line, ""]


def data_section(study: Study, analysis: Analysis, figures: dict[str, str] | None = None) -> list[str]:
    """The measured data axis: each run's final entropy per budget and the figure of it vs D; the laws fitted
    to it are in the appendix (:func:`data_appendix`)."""
    ds = analysis.data
    if ds is None:
        return []
    lines = ["## 0. Scaling with data and annotation quality", "",
             f"Contrastive entropy `{ds.metric}` (lower is better) of every run's final checkpoint against D, the data "
             "budget in training queries (nested: a smaller budget is a prefix of a larger one), per supervision "
             "(annotation quality). Fang et al.'s size, data and joint laws fitted to these points are in the "
             "appendix (B).", ""]
    for es in study.eval_sets:
        if figures and es.name in figures:
            lines += [f"![{ds.metric} vs data budget, {es.name}]({figures[es.name]})", "",
                      f"*{ds.metric} on {es.name} ({es.domain}) vs the training budget D (queries, log scale), one "
                      "panel per supervision, one line per model size; lower is better.*", ""]
        lines += [f"### Final {ds.metric} per run, {es.name} ({es.domain})", ""]
        lines += _finals_table(study, ds.metric, es.name)
    return lines


def data_appendix(study: Study, analysis: Analysis) -> list[str]:
    """Fang et al.'s three laws over (N, D) per supervision, and each supervision's joint law at the grid's
    largest (N, D): descriptive fits, labelled as such."""
    ds = analysis.data
    if ds is None:
        return []
    n_sizes, n_budgets = len(study.param_sizes), len(study.column_values("budget"))
    lines = ["### B. Laws over data (Fang et al. 2024; descriptive)", "",
             f"`{ds.metric}` with {analysis.level:.0%} bootstrap intervals over runs in brackets (raw units: N in "
             f"parameters, D in queries). The size law has {n_sizes} size(s) per budget and the data law "
             f"{n_budgets} budget(s) per model for 3 parameters each: with 3 points a law passes through them and its "
             "R² and intervals are n/a; the joint law's 5 parameters are fitted on every run of a supervision.", ""]
    keys = ("eval_set", "supervision")
    lines += _law_block("Size law per budget", "fang", ds.size, (*keys, "budget"))
    lines += _law_block("Data law per model", "data-fang", ds.data, (*keys, "model"))
    lines += _law_block("Joint law per supervision", "joint-fang", ds.joint, keys)
    for es in study.eval_sets:
        lines += _comparison(study, analysis, es.name)
    return lines
