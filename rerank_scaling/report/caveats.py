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
from rerank_scaling.report.tables import num, plain
from rerank_scaling.report.tables import size as fmt_size
from rerank_scaling.scaling import direction
from rerank_scaling.scaling.backtest import MIN_FIT_LEVELS

MIN_SIZES = 4  # fewer distinct sizes: forecasts rest on very few points
WIDE_FRACTION = 0.10  # an interval wider than this fraction of the forecast is "wide"
MIN_QUERIES = 50  # fewer evaluation queries: small differences are noise
MAX_LISTED = 8  # items listed per caveat before "and N more"
PER_QUERY_SD = 0.3  # assumed per-query standard deviation of a rank metric, only when no per-query values exist


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
        f"{MIN_SIZES}: forecasts rest on very few points ({len(fitted)} size(s) at or below the fit cut; the "
        f"default estimator needs {MIN_FIT_LEVELS} to forecast a held-out size at all)."))]


def _forecast_where(f: dict, keys: list[str]) -> str:
    extra = ", ".join(f"{k}={plain(f.get(k))}" for k in keys)
    return (f"{f['metric']} {f['eval_set']}/{f.get('objective')}" + (f" ({extra})" if extra else "")
            + f" at {fmt_size(f['params'])}")


def _forecasts(analysis: Analysis) -> list[dict]:
    """The default estimator's held-out forecasts (the only forecasts a report shows), quality metrics."""
    return [f for m in analysis.quality for f in analysis.default_forecasts.get(m, [])]


def _keys(study: Study) -> list[str]:
    """The columns that tell two forecasts of one metric, eval set and objective apart."""
    return (["family"] if len(study.families) > 1 else []) + variant_keys(study)


def wide_intervals(study: Study, analysis: Analysis) -> list[Caveat]:
    keys = _keys(study)
    wide, none = [], []
    for f in _forecasts(analysis):
        where = _forecast_where(f, keys)
        if not (math.isfinite(f["lower"]) and math.isfinite(f["upper"])):
            none.append(where)
            continue
        width = f["upper"] - f["lower"]
        if f["predicted"] and width > WIDE_FRACTION * abs(f["predicted"]):
            wide.append(f"{where} (width {width:.3g} = {width / abs(f['predicted']):.0%} of {f['predicted']:.3g})")
    out = []
    if wide:
        out.append(Caveat("Wide intervals", f"{len(wide)} default forecast(s) have a {analysis.level:.0%} interval "
                          f"wider than {WIDE_FRACTION:.0%} of the forecast value: {_listing(wide)}."))
    if none:
        out.append(Caveat("No intervals", f"{len(none)} default forecast(s) have no finite interval (no bootstrap): "
                          f"{_listing(none)}."))
    return out


def _size_means(study: Study, metrics: list[str] | None = None) -> pl.DataFrame:
    keys = ["metric", "eval_set", "objective", *variant_keys(study)]
    finals = study.finals if metrics is None else study.finals.filter(pl.col("metric").is_in(metrics))
    return (finals.group_by(*keys, "params")
            .agg(pl.col("value").mean().alias("mean"), pl.col("value").std().alias("sd"), pl.len().alias("n"))
            .sort(*keys, "params"))


def _where(row: dict, keys: list[str]) -> str:
    extra = ", ".join(f"{k}={plain(row[k])}" for k in keys)
    return f"{row['metric']} {row['eval_set']}/{row['objective']}" + (f" ({extra})" if extra else "")


def non_monotone(study: Study, analysis: Analysis) -> list[Caveat]:
    keys = variant_keys(study)
    drops = []
    means = _size_means(study, analysis.quality)
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
    means = _size_means(study, analysis.quality)
    if means.height == 0 or int(means["n"].max()) < 2:
        return [Caveat("One seed per size", "every size was trained with one seed, so run-to-run noise is measured "
                       "only from each run's late checkpoints, where there are enough of them; verdicts without "
                       "are *not testable*.")]
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


def _per_query_sd(study: Study, eval_set: str) -> tuple[float, str] | None:
    """The per-query standard deviation of the headline on ``eval_set`` from ``per_query.parquet`` (pooled over
    every run and BM25), and where it came from."""
    if study.per_query is None:
        return None
    rows = study.per_query.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == HEADLINE))
    sds = [float(sub["value"].std()) for _, sub in rows.group_by("run") if sub.height >= 2]
    sds = [v for v in sds if math.isfinite(v)]
    if not sds:
        return None
    return float(np.sqrt(np.mean(np.square(sds)))), f"measured: {len(sds)} runs incl. BM25"


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
            measured = _per_query_sd(study, es.name)
            sd, source = measured if measured else (PER_QUERY_SD, f"assumed, typical of {HEADLINE}: no per-query "
                                                                   "values recorded")
            se = sd / np.sqrt(es.queries)
            gap = _median_gap(study, es.name)
            compare_gap = "" if gap is None else (
                f"; the median {HEADLINE} gap between adjacent sizes here is {gap:.3f}"
                + (", smaller than that" if gap < se else ""))
            out.append(Caveat("Few evaluation queries", (
                f"{es.name} has only {es.queries} judged queries (< {MIN_QUERIES}): with a per-query standard "
                f"deviation of {sd:.2f} ({source}), a mean is uncertain by about ±{se:.3f} (one standard "
                f"error){compare_gap}.")))
    if not any(es.queries is not None for es in study.eval_sets) and not out:
        out.append(Caveat("Query counts unknown", "no cell's data.json records how many queries each evaluation "
                          "set has; the reader cannot judge the evaluation noise."))
    return out


def fit_problems(study: Study, analysis: Analysis) -> list[Caveat]:
    out = []
    if analysis.estimator_note:
        out.append(Caveat("No size forecast", f"{analysis.estimator_note}: no held-out size is forecast and the "
                          "size check judges nothing."))
    elif not analysis.held_out:
        out.append(Caveat("Nothing held out", f"no model is larger than the fit cut ({fmt_size(analysis.cut)}), so "
                          "no forecast could be checked against an actual value."))
    return out


def missed_forecasts(study: Study, analysis: Analysis) -> list[Caveat]:
    keys = _keys(study)
    missed = [f"{_forecast_where(f, keys)} (predicted {f['predicted']:.4g}, actual {f['actual']:.4g})"
              for f in _forecasts(analysis) if f["covered"] is False]
    if not missed:
        return []
    return [Caveat("Missed forecasts", f"{len(missed)} held-out actual(s) fall outside the default estimator's "
                   f"{analysis.level:.0%} interval: {_listing(missed)}.")]


CHECKS = (too_few_sizes, failed_cells, not_beating_bm25, few_queries, fit_problems, missed_forecasts,
          wide_intervals, non_monotone, seeds_disagree)


def caveats(study: Study, analysis: Analysis) -> list[Caveat]:
    return [c for check in CHECKS for c in check(study, analysis)]
