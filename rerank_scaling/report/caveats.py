"""Honest caveats, written from the data: each check returns zero or more of them.

Every threshold (the constants below) is stated in the sentence that uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from rerank_scaling.report.analysis import Analysis
from rerank_scaling.report.baselines import compare, variant_keys
from rerank_scaling.report.study import HEADLINE, Study
from rerank_scaling.report.tables import covered, num, pct, plain
from rerank_scaling.report.tables import size as fmt_size
from rerank_scaling.scaling import direction

MIN_SIZES = 4  # fewer distinct sizes: forecasts rest on very few points
WIDE_FRACTION = 0.10  # an interval wider than this fraction of the forecast is "wide"
MIN_QUERIES = 50  # fewer evaluation queries: small differences are noise
MAX_LISTED = 8  # items listed per caveat before "and N more"
PER_QUERY_SD = 0.3  # assumed per-query standard deviation of a rank metric (the table has no per-query values)


@dataclass(frozen=True)
class Caveat:
    title: str
    text: str


def _listing(items: list[str]) -> str:
    shown = items[:MAX_LISTED]
    more = len(items) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def too_few_sizes(study: Study, analysis: Analysis) -> list[Caveat]:
    if len(study.families) > 1:  # each family is its own ladder: the one with the fewest sizes decides
        family = min(study.families, key=lambda f: (len(study.only_family(f).param_sizes), f))
        sizes = study.only_family(family).param_sizes
    else:
        family, sizes = None, study.param_sizes
    if len(sizes) >= MIN_SIZES:
        return []
    fitted = [s for s in sizes if s <= analysis.cut_of(family)]
    return [Caveat("Too few sizes", (
        f"only {len(sizes)} distinct model size(s)" + (f" in family {family}" if family else "")
        + f" ({', '.join(fmt_size(s) for s in sizes)}), fewer than "
        f"{MIN_SIZES}: forecasts rest on very few points ({len(fitted)} size(s) at or below the fit cut); "
        "with fewer than 4 sizes the analyzer fits the 2-parameter log-linear law, which cannot show saturation."))]


def _forecast_where(f, keys: list[str]) -> str:
    extra = ", ".join(f"{k}={plain(getattr(f, k))}" for k in keys)
    return f"{f.metric} {f.eval_set}/{f.objective}" + (f" ({extra})" if extra else "") + f" at {fmt_size(f.params)}"


def wide_intervals(study: Study, analysis: Analysis) -> list[Caveat]:
    keys = variant_keys(study)
    wide, none = [], []
    for metric in study.metrics:
        for g in analysis.fits[metric].groups:
            for f in g.forecasts:
                where = _forecast_where(f, keys)
                if not (math.isfinite(f.lower) and math.isfinite(f.upper)):
                    none.append(where)
                    continue
                width = f.upper - f.lower
                if f.predicted and width > WIDE_FRACTION * abs(f.predicted):
                    wide.append(f"{where} (width {width:.3g} = {width / abs(f.predicted):.0%} of {f.predicted:.3g})")
    out = []
    if wide:
        out.append(Caveat("Wide intervals", f"{len(wide)} forecast(s) have a {analysis.level:.0%} prediction "
                          f"interval wider than {WIDE_FRACTION:.0%} of the forecast value: {_listing(wide)}."))
    if none:
        out.append(Caveat("No intervals", f"{len(none)} forecast(s) have no finite interval (no bootstrap, or no "
                          f"more runs than law parameters): {_listing(none)}."))
    return out


def _size_means(study: Study) -> pl.DataFrame:
    keys = ["metric", "eval_set", "objective", *variant_keys(study)]
    return (study.finals.group_by(*keys, "params")
            .agg(pl.col("value").mean().alias("mean"), pl.col("value").std().alias("sd"), pl.len().alias("n"))
            .sort(*keys, "params"))


def _where(row: dict, keys: list[str]) -> str:
    extra = ", ".join(f"{k}={plain(row[k])}" for k in keys)
    return f"{row['metric']} {row['eval_set']}/{row['objective']}" + (f" ({extra})" if extra else "")


def non_monotone(study: Study, analysis: Analysis) -> list[Caveat]:
    keys = variant_keys(study)
    drops = []
    means = _size_means(study)
    for _, sub in means.group_by(["metric", "eval_set", "objective", *keys], maintain_order=True):
        rows = sub.to_dicts()
        s = direction(rows[0]["metric"])
        for a, b in zip(rows, rows[1:]):
            if s * (b["mean"] - a["mean"]) < 0:
                drops.append(f"{_where(a, keys)}: {fmt_size(a['params'])} -> {fmt_size(b['params'])} "
                             f"{'worsens' if s < 0 else 'drops'} by {abs(b['mean'] - a['mean']):.3g}")
    if not drops:
        return []
    return [Caveat("Non-monotone curves", f"the final value gets worse with size in {len(drops)} place(s) "
                   f"(a saturating law cannot follow this): {_listing(drops)}.")]


def seeds_disagree(study: Study, analysis: Analysis) -> list[Caveat]:
    keys = variant_keys(study)
    means = _size_means(study)
    if means.height == 0 or int(means["n"].max()) < 2:
        return [Caveat("One seed per size", "every size was trained with one seed, so run-to-run noise is not "
                       "measured directly; the intervals estimate it from the fit's residuals.")]
    noisy = []
    for _, sub in means.group_by(["metric", "eval_set", "objective", *keys], maintain_order=True):
        rows = sub.to_dicts()
        for i, r in enumerate(rows):
            if r["n"] < 2 or r["sd"] is None:
                continue
            gaps = [abs(rows[j]["mean"] - r["mean"]) for j in (i - 1, i + 1) if 0 <= j < len(rows)]
            if gaps and r["sd"] > min(gaps):
                noisy.append(f"{_where(r, keys)} at {fmt_size(r['params'])}: seed sd {r['sd']:.3g} > "
                             f"gap {min(gaps):.3g} to the adjacent size")
    if not noisy:
        return []
    return [Caveat("Seeds disagree", f"in {len(noisy)} place(s) the standard deviation across seeds is larger "
                   f"than the gap to an adjacent size, so those sizes are not resolved: {_listing(noisy)}.")]


def failed_cells(study: Study, analysis: Analysis) -> list[Caveat]:
    out = []
    failed = study.cells_in("failed") + study.cells_in("damaged")
    if failed:
        items = [f"`{c.run}` ({c.reason or 'no reason recorded'})" for c in failed]
        out.append(Caveat("Failed cells", f"{len(failed)} cell(s) failed and are missing from every fit and "
                          f"table: {_listing(items)}."))
    unfinished = study.cells_in("running") + study.cells_in("pending")
    if unfinished:
        out.append(Caveat("Unfinished cells", f"{len(unfinished)} cell(s) have not finished: "
                          f"{_listing(['`' + c.run + '`' for c in unfinished])}."))
    done = {c.run for c in study.cells_in("done")}
    in_table = set(study.trained["run"].unique().to_list())
    if study.cells and done != in_table:
        missing = sorted(done - in_table)
        if missing:
            out.append(Caveat("Stale results", f"{len(missing)} finished cell(s) are not in results.parquet "
                              f"(run `rerank-scaling grid collect`): {_listing(['`' + m + '`' for m in missing])}."))
    return out


def not_beating_bm25(study: Study, analysis: Analysis) -> list[Caveat]:
    if HEADLINE not in study.metrics:
        return []
    out, w = [], study.words
    worse = ("a first stage that retrieves worse than BM25" if w.first_stage
             else "a reranker that is worse than its own candidate list")
    for es in study.eval_sets:
        c = compare(study, es.name, HEADLINE)
        if c.bm25 is not None and c.best is not None and c.n_better == 0:
            out.append(Caveat("No gain over BM25", (
                f"on {es.name} ({es.domain}) no {w.noun} beats BM25 on {HEADLINE} (BM25 {num(c.bm25)}, best "
                f"{w.noun} {c.best.model}/{c.best.objective} {num(c.best.values[HEADLINE])}); its scaling curve "
                f"describes {worse}.")))
        elif c.bm25 is not None and c.n_better < c.n_total:
            out.append(Caveat("Partial gain over BM25", (
                f"on {es.name} only {c.n_better} of {c.n_total} {w.plural} beat BM25 on {HEADLINE}.")))
    return out


def _median_gap(study: Study, eval_set: str) -> float | None:
    """Median |difference| of the headline metric between adjacent sizes (size means) on ``eval_set``."""
    means = _size_means(study).filter((pl.col("metric") == HEADLINE) & (pl.col("eval_set") == eval_set))
    gaps = []
    for _, sub in means.group_by([c for c in means.columns if c not in ("params", "mean", "sd", "n")],
                                 maintain_order=True):
        v = sub.sort("params")["mean"].to_numpy()
        gaps.extend(np.abs(np.diff(v)).tolist())
    return float(np.median(gaps)) if gaps else None


def few_queries(study: Study, analysis: Analysis) -> list[Caveat]:
    out = []
    for es in study.eval_sets:
        if es.queries is None:
            n = es.max_queries
            if n is not None and n < MIN_QUERIES:
                out.append(Caveat("Few evaluation queries", f"{es.name} is capped at {n} queries (max_queries; the "
                                  f"number evaluated is not recorded), fewer than {MIN_QUERIES}: differences "
                                  "between adjacent sizes may be noise."))
            continue
        if es.queries < MIN_QUERIES:
            se = PER_QUERY_SD / np.sqrt(es.queries)
            gap = _median_gap(study, es.name)
            compare_gap = "" if gap is None else (
                f"; the median {HEADLINE} gap between adjacent sizes here is {gap:.3f}"
                + (", smaller than that" if gap < se else ""))
            out.append(Caveat("Few evaluation queries", (
                f"{es.name} has only {es.queries} judged queries (< {MIN_QUERIES}): assuming a per-query standard "
                f"deviation of {PER_QUERY_SD} (typical of {HEADLINE}), a mean is uncertain by about ±{se:.3f} "
                f"(one standard error){compare_gap}.")))
    if not any(es.queries is not None for es in study.eval_sets) and not out:
        out.append(Caveat("Query counts unknown", "no cell's data.json records how many queries each evaluation "
                          "set has; the reader cannot judge the evaluation noise."))
    return out


def _label(g, keys: list[str]) -> str:
    k = g.key
    extra = ", ".join(f"{c}={plain(k.get(c))}" for c in keys)
    return f"{g.metric} {k.get('eval_set')}/{k.get('objective')}" + (f" ({extra})" if extra else "")


def fit_problems(study: Study, analysis: Analysis) -> list[Caveat]:
    out = []
    for metric in study.metrics:
        mf = analysis.fits[metric]
        if mf.error:
            out.append(Caveat("Not enough sizes to fit", f"{metric}: {mf.error}."))
        if mf.notes:
            out.append(Caveat("Groups not fitted", f"{metric}: {_listing(mf.notes)}."))
    keys = variant_keys(study)
    by_message: dict[str, list[str]] = {}
    names = [e.name for e in study.eval_sets]
    for metric in study.metrics:
        groups = sorted(analysis.fits[metric].groups, key=lambda g: (
            names.index(g.key.get("eval_set")) if g.key.get("eval_set") in names else len(names),
            *(str(g.key.get(k)) for k in ("objective", "supervision", "budget"))))
        for g in groups:
            for w in g.fit.warnings:
                by_message.setdefault(w.removeprefix(f"{g.fit.label}: "), []).append(_label(g, keys))
    for message, where in by_message.items():
        out.append(Caveat("Analyzer warning", f"{message}, in {len(where)} fit(s): {_listing(where)}."))
    if not analysis.held_out:
        out.append(Caveat("Nothing held out", f"no model is larger than the fit cut ({fmt_size(analysis.cut)}), so "
                          "no forecast could be checked against an actual value."))
    return out


def missed_forecasts(study: Study, analysis: Analysis) -> list[Caveat]:
    keys = variant_keys(study)
    missed = []
    for metric in study.metrics:
        for g in analysis.fits[metric].groups:
            for f in g.forecasts:
                if covered(f) is False:
                    missed.append(f"{_forecast_where(f, keys)} "
                                  f"(predicted {f.predicted:.4g}, actual {f.actual:.4g}, "
                                  f"{pct(f.rel_error, plus=True)})")
    if not missed:
        return []
    return [Caveat("Missed forecasts", f"{len(missed)} held-out actual(s) fall outside their {analysis.level:.0%} "
                   f"prediction interval: {_listing(missed)}.")]


CHECKS = (too_few_sizes, failed_cells, not_beating_bm25, few_queries, fit_problems, missed_forecasts,
          wide_intervals, non_monotone, seeds_disagree)


def caveats(study: Study, analysis: Analysis) -> list[Caveat]:
    return [c for check in CHECKS for c in check(study, analysis)]
