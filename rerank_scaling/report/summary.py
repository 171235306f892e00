"""The report's first screen: what was trained, the answer table, the next-size forecast, findings, confounds.

A researcher deciding what to train reads this and nothing else: the size x objective table of the headline
metric (mean over the queries, its standard error, the difference to BM25 with its Holm-corrected paired
randomization p), the default estimator's forecast for the next doubling of the model with the backtest's
trust line, and plain sentences -- findings first, then the confounds the study knows about. Every number
comes from the study's table, cells and per-query values, or from :mod:`.analysis` (the one estimator).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from rerank_scaling.report import significance as sig
from rerank_scaling.report import tables as T
from rerank_scaling.report.analysis import NEXT_SIZE, Analysis
from rerank_scaling.report.baselines import bm25_values, compare
from rerank_scaling.report.kinds import COST, INVARIANT
from rerank_scaling.report.study import HEADLINE, Study
from rerank_scaling.scaling import direction
from rerank_scaling.scaling.evidence import MIN_LATE
from rerank_scaling.scaling.verdicts import STATUSES

# ladders whose smaller rungs are truncations of one pretrained model (the rung that is the whole model)
TRUNCATED_LADDERS = {"minilm": ("6L", "all-MiniLM-L6-v2")}
RISING = 0.5  # a learning curve "still rises" when its last step gains more than this share of its total gain


def _variant_finals(study: Study, eval_set: str, metric: str) -> pl.DataFrame:
    """Final values on ``eval_set`` of ``metric``, the largest budget of each configuration only."""
    df = study.finals.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    if "budget" in df.columns and df["budget"].n_unique() > 1:
        keys = [c for c in ("family", "objective", "supervision") if c in df.columns]
        df = df.filter(pl.col("budget") == pl.col("budget").max().over(keys))
    return df


def _condition_columns(df: pl.DataFrame) -> list[str]:
    return ["objective"] + [c for c in ("supervision",) if c in df.columns and df[c].n_unique() > 1]


def _condition_name(cond: tuple, columns: list[str]) -> str:
    return cond[0] + (f" ({', '.join(str(c) for c in cond[1:])})" if len(cond) > 1 else "")


def _several(study: Study) -> bool:
    return len(study.families) > 1


def _key(row: dict, columns: list[str]) -> tuple:
    return tuple(float(row[c]) if c == "params" else row[c] for c in columns)


# --- what was trained ----------------------------------------------------------------------------------------


def _span(values: list[float], fmt) -> str:
    values = sorted(v for v in values if v is not None and math.isfinite(v))
    if not values:
        return T.DASH
    return fmt(values[0]) if fmt(values[0]) == fmt(values[-1]) else f"{fmt(values[0])}-{fmt(values[-1])}"


def epochs(study: Study) -> float | None:
    """Training groups seen per run over the training set's groups (the largest budget's)."""
    cfg = study.config
    instances = [(c.data.get("train") or {}).get("instances") for c in study.cells]
    instances = [i for i in instances if isinstance(i, int) and i > 0]
    if not (cfg.get("steps") and cfg.get("batch_size") and instances):
        return None
    return cfg["steps"] * cfg["batch_size"] / max(instances)


def trained(study: Study) -> list[str]:
    """The one paragraph that says what was trained and what it cost."""
    w, cfg = study.words, study.config
    runs = study.trained["run"].n_unique()
    models = study.models()
    by_family: dict[str, list[dict]] = {}
    for m in models:
        by_family.setdefault(m.get("family") or w.family, []).append(m)
    ladders = "; ".join(
        (f"{fam}: " if _several(study) else "") + ", ".join(f"`{m['model']}`" for m in ms)
        + f" (N = {_span([m['params'] for m in ms], T.size)} non-embedding parameters)"
        for fam, ms in by_family.items())
    seeds = study.column_values("seed")
    parts = [f"{runs} {w.plural if runs != 1 else w.noun}: {ladders}",
             f"objectives {', '.join(study.objectives)}",
             f"{len(seeds) or 1} seed{'s' if len(seeds) > 1 else ''}"]
    coll = cfg.get("train_collection")
    if coll:
        sups = ", ".join(study.column_values("supervision")) or "—"
        budgets = study.column_values("budget")
        data = f"trained on `{coll}`" + (f" ({cfg.get('train_split')} split)" if cfg.get("train_split") else "")
        data += f", {sups} supervision, " + (f"budgets {', '.join(T.plain(b) for b in budgets)} training queries"
                                              if len(budgets) > 1 else f"{T.plain(budgets[0])} training queries"
                                              if budgets else "")
        parts.append(data)
    if cfg.get("steps") and cfg.get("batch_size"):
        ep = epochs(study)
        parts.append(f"{cfg['steps']} steps x {cfg['batch_size']} query groups"
                     + (f" ({ep:.2g} of an epoch)" if ep is not None and ep < 1 else
                        f" ({ep:.2g} epochs)" if ep is not None else ""))
    last = study.trained.filter(pl.col("step") == pl.col("step").max().over("run"))
    flops = last.group_by("run").agg(pl.col("flops").max())["flops"].to_list() if "flops" in last.columns else []
    secs = [c.seconds for c in study.cells if c.seconds is not None and c.state == "done"]
    cost = f"training compute {_span([f for f in flops if f], lambda v: f'{v:.2g}')} FLOPs per run"
    if secs:
        cost += f", {_span(secs, lambda v: f'{v / 3600:.2g}')} h per cell ({sum(secs) / 3600:.2g} h in all)"
    parts.append(cost)
    evals = ", ".join(f"{e.name} ({e.domain}{f', {e.queries} queries' if e.queries else ''})"
                      for e in study.eval_sets)
    parts.append(f"evaluated on {evals}")
    return [T.bullet("Trained", "; ".join(parts) + ".")]


# --- the answer table -----------------------------------------------------------------------------------------


def _cell_text(mean: float | None, se: float | None, test: sig.Test | None) -> str:
    if mean is None:
        return T.DASH
    text = T.num(mean, 3) + (f" ± {se:.3f}" if se is not None else "")
    if test is not None:
        p = f"p {test.p_holm:.2g}"
        text += f" ({T.signed(test.delta, 3)}, {'**' + p + '**' if test.significant else p})"
    return text


def per_doubling(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of the value over log2 N (its change per doubling), two sizes or more."""
    if len({p for p, _ in points}) < 2:
        return None
    x, y = np.log2([p for p, _ in points]), np.array([v for _, v in points])
    return float(np.polyfit(x, y, 1)[0])


def answer_table(study: Study, eval_set: str, metric: str = HEADLINE) -> list[str]:
    """Sizes (rows) x objectives (columns) of ``metric`` on ``eval_set``: mean ± SE (Δ to BM25, Holm p)."""
    shown = _variant_finals(study, eval_set, metric)
    if shown.height == 0:
        return []
    cond_cols = _condition_columns(shown)
    conds = sorted({tuple(r[c] for c in cond_cols) for r in shown.iter_rows(named=True)}, key=str)
    keys = sig.system_columns(shown)
    pq = study.per_query
    tests = sig.versus_bm25_by_system(pq, shown, eval_set, metric) if pq is not None else {}
    values = sig.system_values(pq, shown, eval_set, metric) if pq is not None else {}
    row_cols = (["family"] if _several(study) else []) + ["model", "params"]
    rows_keys = sorted({tuple(r[c] for c in row_cols) for r in shown.iter_rows(named=True)},
                       key=lambda k: (*map(str, k[:-2]), float(k[-1])))
    body = []
    bm25 = bm25_values(study, eval_set).get(metric)
    if bm25 is not None:
        b = sig.bm25_values(pq, eval_set, metric) if pq is not None else None
        se = sig.standard_error(b) if b is not None and b.height else None
        body.append([*([T.DASH] if _several(study) else []), "BM25", T.DASH,
                     *[_cell_text(bm25, se, None)] * len(conds)])
    trend: dict[tuple, list[tuple[float, float]]] = {}
    for rk in rows_keys:
        mine = shown
        for c, v in zip(row_cols, rk):
            mine = mine.filter(pl.col(c) == v)
        cells = []
        for cond in conds:
            sub = mine
            for c, v in zip(cond_cols, cond):
                sub = sub.filter(pl.col(c) == v)
            if sub.height == 0:
                cells.append(T.DASH)
                continue
            key = _key(sub.row(0, named=True), keys)
            mean = float(sub["value"].mean())
            se = sig.standard_error(values[key]) if key in values else None
            cells.append(_cell_text(mean, se, tests.get(key)))
            trend.setdefault((*rk[:-2], cond), []).append((float(rk[-1]), mean))
        body.append([*([str(rk[0])] if _several(study) else []), f"`{rk[-2]}`", T.size(rk[-1]), *cells])
    slopes = []
    for fam in ([f for f in study.families] if _several(study) else [None]):
        cells = []
        for cond in conds:
            s = per_doubling(trend.get(((fam,) if fam else ()) + (cond,), []))
            cells.append(T.DASH if s is None else f"{s:+.3f} per doubling")
        if any(c != T.DASH for c in cells):
            slopes.append([*([fam] if fam else []), "*gain per doubling of N*", T.DASH, *cells])
    body += slopes
    headers = [*(["family"] if _several(study) else []), "model", "N", *[_condition_name(c, cond_cols) for c in conds]]
    es = study.eval_set(eval_set)
    budget = ""
    if "budget" in study.finals.columns and study.finals["budget"].n_unique() > 1:
        budget = f", the largest training budget of each configuration (D = {T.plain(shown['budget'].max())})"
    n_q = es.queries or next((v.height for v in values.values()), None)
    note = (f"Mean {metric} over the {f'{n_q} ' if n_q else ''}queries (final checkpoint, seeds averaged{budget}) ± its "
            "standard error over queries; in brackets the difference to BM25 and its Holm-corrected paired "
            f"randomization p (bold: p < {sig.ALPHA}). *Gain per doubling*: least-squares slope over log2 N.")
    if pq is None:
        note = (f"Mean {metric} (final checkpoint, seeds averaged{budget}); no per-query values "
                "(`per_query.parquet`), so no standard error and no test against BM25.")
    return [f"**{metric} on {es.name}** ({es.domain})", "",
            T.md_table(headers, body, ("l" if _several(study) else "") + "lr" + "r" * len(conds)), "", note, ""]


# --- the forecast ---------------------------------------------------------------------------------------------


def _largest(study: Study, row: dict) -> tuple[str, float, float] | None:
    """(model, N, mean value) of the largest measured model of a forecast row's configuration."""
    df = _variant_finals(study, row["eval_set"], row["metric"])
    for c in ("family", "objective", "supervision", "budget"):
        if c in df.columns and row.get(c) is not None:
            df = df.filter(pl.col(c) == row[c])
    if df.height == 0:
        return None
    top = df.filter(pl.col("params") == pl.col("params").max())
    return str(top["model"][0]), float(top["params"][0]), float(top["value"].mean())


def sampling_error(study: Study, eval_set: str) -> float:
    """The standard error of a mean HEADLINE over ``eval_set``'s queries (BM25's per-query spread; 0 without
    per-query values): no forecast of a mean can be surer than the measurement of one."""
    if study.per_query is None:
        return 0.0
    b = sig.bm25_values(study.per_query, eval_set, HEADLINE)
    se = sig.standard_error(b) if b.height else None
    return se or 0.0


COLLAPSED = 0.1  # an interval narrower than this share of a measured mean's standard error has collapsed


def credible(row: dict, floor: float) -> bool:
    """Whether a forecast's interval can be acted on: finite, and wider than :data:`COLLAPSED` x ``floor`` (a
    measured mean's standard error over the set's queries). Sizes share their queries, so a forecast may be
    narrower than that error, but not ten times narrower: an interval from a law that passes through every
    fitted point (three sizes, three parameters, one run each, so the residual scatter that stands in for the
    unmeasured noise is ~0) collapses to a point, and is no evidence of a gain."""
    lo, hi = row["lower"], row["upper"]
    return T.finite(lo) and T.finite(hi) and hi - lo > max(COLLAPSED * floor, 1e-12)


def forecast_block(study: Study, analysis: Analysis, eval_set: str) -> list[str]:
    rows = [r for r in analysis.next_forecasts.get(HEADLINE, []) if r["eval_set"] == eval_set]
    budgets = _variant_finals(study, eval_set, HEADLINE)
    if "budget" in budgets.columns and rows:
        top = set(budgets["budget"].unique().to_list())
        rows = [r for r in rows if r.get("budget") is None or r["budget"] in top]
    name = analysis.trust.estimator if analysis.trust else None
    lines = [f"**Next size** ({NEXT_SIZE:g}x the largest N), default estimator `{name or '—'}`"
             + (" with its calibrated interval" if analysis.calibrated or (name and analysis.trust) else ""), ""]
    if not rows:
        why = (f"it needs at least 3 model sizes ({len(study.param_sizes)} here)" if len(study.param_sizes) < 3
               else "no calibrated default estimator" if name is None else "the estimator gave no forecast")
        return lines + [f"No forecast: {why}.", ""]
    body = []
    floor = sampling_error(study, eval_set)
    for r in sorted(rows, key=lambda r: (str(r.get("family")), r["objective"], str(r.get("supervision")))):
        top = _largest(study, r)
        gain = T.DASH
        if not credible(r, floor):  # narrower than the query sampling noise of a measured mean: nothing to act on
            body.append([*([str(r.get("family"))] if _several(study) else []), r["objective"],
                         T.DASH if top is None else f"`{top[0]}` {T.num(top[2], 3)}", T.size(r["params"]),
                         T.num(r["predicted"], 3), f"not identified ({T.interval(r['lower'], r['upper'], 4)})",
                         "not judged: the interval collapsed (far narrower than a measured mean's standard error)"])
            continue
        if top is not None:
            d = direction(HEADLINE)
            inside = r["lower"] <= top[2] <= r["upper"]
            gain = (f"{T.signed(r['predicted'] - top[2], 3)}: "
                    + ("within the interval (no gain beyond noise forecast)" if inside
                       else "gain" if d * (r["lower"] - top[2]) > 0 else "loss"))
        cond = r["objective"] + (f" ({r['supervision']})" if len(study.column_values("supervision")) > 1 else "")
        body.append([*([str(r.get("family"))] if _several(study) else []), cond,
                     T.DASH if top is None else f"`{top[0]}` {T.num(top[2], 3)}", T.size(r["params"]),
                     T.num(r["predicted"], 3), T.interval(r["lower"], r["upper"], 3), gain])
    lines += [T.md_table([*(["family"] if _several(study) else []), "objective", f"largest measured ({HEADLINE})",
                          "next N", "forecast", f"{analysis.level:.0%} interval", "forecast - largest"], body,
                         ("l" if _several(study) else "") + "llrrll"), ""]
    if analysis.trust:
        lines += [f"*Trust*: {analysis.trust.line()}", ""]
    held = [f for f in analysis.default_forecasts.get(HEADLINE, []) if f["covered"] is not None]
    if held:
        lines += [f"*In this study*: with the largest size held out, {sum(f['covered'] for f in held)}/{len(held)} "
                  f"actual {HEADLINE} values fell inside the same estimator's {analysis.level:.0%} interval "
                  f"(mean absolute error {np.mean([abs(f['error']) for f in held]):.3f}; *Scaling with model size*).", ""]
    return lines


# --- findings and confounds -------------------------------------------------------------------------------------


def _best_finding(study: Study, eval_set: str) -> str | None:
    """The best model of the answer table (its configurations and Holm family) against BM25."""
    shown = _variant_finals(study, eval_set, HEADLINE)
    bm25 = bm25_values(study, eval_set).get(HEADLINE)
    if shown.height == 0 or bm25 is None:
        return None
    keys = sig.system_columns(shown)
    means = shown.group_by(keys).agg(pl.col("value").mean()).sort(keys)
    s = direction(HEADLINE)
    best = max(means.iter_rows(named=True), key=lambda r: (s * r["value"], -float(r["params"])))
    test = None
    if study.per_query is not None:
        test = sig.versus_bm25_by_system(study.per_query, shown, eval_set, HEADLINE).get(_key(best, keys))
    tested = "" if test is None else (f"; Holm p {test.p_holm:.2g}: "
                                      + ("significant" if test.significant else
                                         f"not significant with {test.queries} queries"))
    what = ", ".join(str(best[c]) for c in ("family", "objective", "supervision") if c in best and
                     (c == "objective" or shown[c].n_unique() > 1))
    delta = s * (best["value"] - bm25)
    verb = "beats" if delta > 0 else "does not beat"
    return (f"**Best {study.words.noun} on {eval_set}**: `{best['model']}` ({what}) {verb} BM25 on {HEADLINE}: "
            f"{T.num(best['value'], 3)} vs {T.num(bm25, 3)} ({T.signed(best['value'] - bm25, 3)}{tested}).")


def _size_finding(study: Study, eval_set: str) -> str | None:
    if study.per_query is None or len(study.param_sizes) < 2:
        return None
    shown = _variant_finals(study, eval_set, HEADLINE)
    tests = sig.between_sizes(study.per_query, shown, eval_set, HEADLINE)
    if not tests:
        return None
    up = sum(t.significant and direction(HEADLINE) * t.delta > 0 for t in tests)
    parts = "; ".join(f"{t.system} vs {t.other} {T.signed(t.delta, 3)} (p {t.p_holm:.2g})" for t in tests)
    return (f"**Does size help?** Largest vs smallest model, paired over the {tests[0].queries} queries of {eval_set}: "
            f"{parts}. Significantly better in {up} of {len(tests)} (Holm p < {sig.ALPHA}).")


def _objective_finding(study: Study, eval_set: str) -> str | None:
    if study.per_query is None or len(study.objectives) < 2:
        return None
    shown = _variant_finals(study, eval_set, HEADLINE)
    top = shown.filter(pl.col("params") == (pl.col("params").max().over("family") if "family" in shown.columns
                                            else pl.col("params").max()))
    tests = sig.between_objectives(study.per_query, top, eval_set, HEADLINE)
    if not tests:
        return None
    sig_n = sum(t.significant for t in tests)
    means = top.group_by("objective").agg(pl.col("value").mean()).sort("value", descending=direction(HEADLINE) > 0)
    best = means.row(0, named=True)
    return (f"**Which objective?** At the largest size the best on {eval_set} is {best['objective']} "
            f"({T.num(best['value'], 3)}); {sig_n} of {len(tests)} pairwise differences between objectives are "
            f"significant (Holm p < {sig.ALPHA}).")


def _forecast_finding(study: Study, analysis: Analysis, eval_set: str) -> str | None:
    rows = [r for r in analysis.next_forecasts.get(HEADLINE, []) if r["eval_set"] == eval_set]
    if not rows:
        return None
    gains = []
    for r in rows:
        top = _largest(study, r)
        if top is not None and credible(r, sampling_error(study, eval_set)):  # a collapsed interval is not judged
            gains.append(direction(HEADLINE) * (r["lower"] - top[2]) > 0)
    if not gains:
        return None
    return (f"**Scale up?** Doubling N is forecast to raise {HEADLINE} beyond its interval in {sum(gains)} of "
            f"{len(gains)} configurations (the interval lies wholly above the largest model's value); elsewhere "
            "the forecast interval includes today's value.")


def _verdict_finding(analysis: Analysis, study: Study) -> str | None:
    vs = [v for v in analysis.size_verdicts if analysis.kinds.get(v.metric) not in (COST, INVARIANT)]
    if not vs:
        return None
    counts = {s: sum(v.status == s for v in vs) for s in STATUSES}
    shown = ", ".join(f"{s}: {n}" for s, n in counts.items() if n)
    return (f"**Forecasts judged** (quality metrics, largest size held out; *Which metrics extrapolate*): {shown}"
            + (f". *Not testable* = run-to-run noise not measured (one seed and fewer than {MIN_LATE} late "
               "checkpoints on that set)." if counts["not testable"] else "."))


def rising_runs(study: Study, eval_set: str, metric: str = HEADLINE) -> tuple[int, int, float]:
    """(runs whose last checkpoint step gained more than :data:`RISING` of their total gain and was a gain,
    runs with 3+ checkpoints, median last-step change)."""
    rows = study.trained.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric)
                                  & pl.col("exposure").is_not_null())
    s = direction(metric)
    rising, n, last = 0, 0, []
    for _, sub in rows.sort("exposure").group_by("run", maintain_order=True):
        v = sub["value"].to_numpy()
        if v.size < 3:
            continue
        n += 1
        step, total = s * (v[-1] - v[-2]), s * (v[-1] - v[0])
        last.append(v[-1] - v[-2])
        rising += bool(step > 0 and total > 0 and step > RISING * total / (v.size - 1))
    return rising, n, float(np.median(last)) if last else math.nan


def findings(study: Study, analysis: Analysis) -> list[str]:
    target = (study.in_domain_sets or [study.eval_sets[0].name])[0]
    out = [f for f in (_best_finding(study, target), _size_finding(study, target), _objective_finding(study, target),
                       _forecast_finding(study, analysis, target), _verdict_finding(analysis, study)) if f]
    others = [es.name for es in study.eval_sets if es.name != target]
    beaten = [n for n in others if compare(study, n, HEADLINE).n_better > 0] if HEADLINE in study.metrics else []
    if others and HEADLINE in study.metrics:
        out.append(f"**Other evaluation sets**: a {study.words.noun} beats BM25 on {HEADLINE} on "
                   f"{len(beaten)} of {len(others)} ({', '.join(others)}); *BM25 against the {study.words.plural}* has each "
                   "table and its tests.")
    return [f"- {f}" for f in out]


def _truncation(study: Study) -> str | None:
    for ladder, (whole, name) in TRUNCATED_LADDERS.items():
        sizes = sorted({str(m.get("size")) for m in study.models() if m.get("ladder") == ladder})
        if len(sizes) < 2:
            continue
        if whole in sizes:
            cut = [s for s in sizes if s != whole]
            return (f"**Pretrained vs truncated**: `{ladder}-{whole}` is the whole pretrained {name}; "
                    f"{', '.join(cut)} are its first layers with the rest removed, not models pretrained at that "
                    "size, so the size axis mixes depth with truncation (the largest model is the only intact one).")
        return (f"**Truncated models**: every size ({', '.join(sizes)}) is the first layers of the pretrained "
                f"{name} with the rest removed, none pretrained at its size.")
    return None


def _training(study: Study) -> str | None:
    ep = epochs(study)
    target = (study.in_domain_sets or [study.eval_sets[0].name])[0]
    rising, n, last = rising_runs(study, target)
    parts = []
    if ep is not None and ep < 1:
        parts.append(f"each run saw {ep:.0%} of one epoch of its training groups")
    if n:
        parts.append(f"{HEADLINE} on {target} still rose over the last checkpoint interval in {rising} of {n} runs "
                     f"(median last change {T.signed(last, 3)})")
    if not parts or (rising * 2 < n and (ep is None or ep >= 1)):
        return None
    if n and rising * 2 >= n:
        end = "sizes are compared before convergence."
    else:
        end = ("the curves had flattened, but every model saw a small sample of the data: sizes are compared at a "
               "small training budget, not at convergence.")
    return "**Under-trained**: " + "; ".join(parts) + ": " + end


# a SPLADE document expands each of its tokens into a few terms (MS MARCO passages of ~70 tokens keep ~150-250);
# more than this many active terms per token is a dense model over the vocabulary
EXPANSION_LIMIT = 10


def not_sparse(active_per_doc: float, max_length: int | None) -> bool:
    """Whether documents of at most ``max_length`` tokens keeping ``active_per_doc`` active terms are a dense
    model over the vocabulary: more than :data:`EXPANSION_LIMIT` terms a token."""
    return max_length is not None and active_per_doc > EXPANSION_LIMIT * max_length


def _sparsity(study: Study) -> str | None:
    if "sparse" not in study.families or "active-d" not in study.metrics:
        return None
    rows = study.finals.filter((pl.col("metric") == "active-d") & (pl.col("family") == "sparse"))
    if rows.height == 0:
        return None
    length = max((c.get("max_length") or 0) for c in study.configs() if c.get("family") == "sparse") or None
    active = float(rows["value"].median())
    if not not_sparse(active, length):
        return None
    return (f"**Not sparse**: the sparse retrievers' documents keep a median {active:,.0f} active vocabulary terms "
            f"(at most {length} tokens each, more than {EXPANSION_LIMIT} terms a token): the regulariser never made "
            "them sparse, so they are dense models over the vocabulary, and their costs are not a SPLADE's.")


def _teacher(study: Study) -> list[str]:
    out = []
    used = {es.name: sig.teacher_versus_bm25(study.per_query, es.name, HEADLINE) for es in study.eval_sets} \
        if study.per_query is not None else {}
    used = {es: found for es, found in used.items() if found is not None}
    if used:  # the teacher as the students were taught (fused with BM25 where asked), from the cells' rows
        weaker = {es: found for es, found in used.items() if direction(HEADLINE) * found[2].delta <= 0
                  or not found[2].significant}
        if weaker:
            out.append("**Teacher not above BM25**: the distillation teacher, as the students were taught, scored "
                       + "; ".join(f"{HEADLINE} {T.num(t, 3)} vs BM25 {T.num(b, 3)} on {es} (p = {test.p:.3g})"
                                   for es, (t, b, test) in weaker.items())
                       + ": the students learn from a ranker not shown to be better than the baseline they are "
                       "compared with.")
        return out
    for t in study.teachers():
        weaker = [es for es, v in t.values.items() if es in t.bm25 and direction(HEADLINE) * (v - t.bm25[es]) <= 0]
        if weaker:
            out.append(f"**Teacher weaker than BM25**: the distillation teacher `{t.source}` scored "
                       + "; ".join(f"{HEADLINE} {T.num(t.values[es], 3)} vs BM25 {T.num(t.bm25[es], 3)} on {es}"
                                   for es in weaker) + ": the distilled students learn from a worse ranker than "
                       "the baseline they are compared with.")
    return out


def _noise(study: Study, analysis: Analysis) -> str | None:
    seeds = len(study.column_values("seed"))
    if seeds >= 2:
        return None
    untested: dict[str, set[str]] = {}
    for v in analysis.size_verdicts:
        if v.status == "not testable":
            untested.setdefault(v.eval_set, set()).add(v.metric)
    judged = {v.metric for v in analysis.size_verdicts}
    where = "; ".join(f"{es} ({'every metric' if ms >= judged else ', '.join(m for m in analysis.quality if m in ms)})"
                      for es, ms in sorted(untested.items()))
    cfg = study.config
    text = ("**One seed**: run-to-run noise is measured only from each run's late checkpoints"
            + (f"; where a metric was evaluated at fewer than {MIN_LATE} of them it is not measured at all, so its "
               f"verdicts are *not testable*: {where}" if untested else ""))
    if cfg.get("intermediate_evals") in ("in-domain", "in-domain-ranking"):
        text += (f" (`intermediate_evals = \"{cfg['intermediate_evals']}\"`: the checkpoints before the last evaluate "
                 "the in-domain set" + ("'s ranking metrics only" if cfg["intermediate_evals"].endswith("ranking")
                                        else " only") + ", to keep the learning curves cheap)")
    return text + "."


def _queries(study: Study) -> list[str]:
    out = []
    if study.per_query is None or HEADLINE not in study.metrics:
        return out
    for es in study.eval_sets:
        b = sig.bm25_values(study.per_query, es.name, HEADLINE)
        se = sig.standard_error(b) if b.height else None
        shown = _variant_finals(study, es.name, HEADLINE)
        means = shown.group_by([c for c in ("family", "objective", "supervision") if c in shown.columns]
                               + ["params"]).agg(pl.col("value").mean())
        gaps = []
        for _, sub in means.group_by([c for c in means.columns if c not in ("params", "value")]):
            v = sub.sort("params")["value"].to_numpy()
            gaps.extend(np.abs(np.diff(v)).tolist())
        if se is None or not gaps:
            continue
        gap = float(np.median(gaps))
        if se > gap:
            out.append(f"**Few queries on {es.name}**: {b.height} queries give a mean {HEADLINE} a standard error of "
                       f"about {se:.3f} (BM25's per-query spread), more than the median gap between adjacent sizes "
                       f"({gap:.3f}): most size differences there are within query sampling noise.")
    return out


def confounds(study: Study, analysis: Analysis) -> list[str]:
    items = [_truncation(study), _training(study), _sparsity(study), *_teacher(study), _noise(study, analysis),
             *_queries(study)]
    return [f"- {c}" for c in items if c]


def summary(study: Study, analysis: Analysis) -> list[str]:
    """The summary section (unnumbered, first)."""
    lines = ["## Summary", "", *trained(study), ""]
    target = study.in_domain_sets or [study.eval_sets[0].name]
    if HEADLINE in study.metrics:
        for es in target:
            lines += answer_table(study, es)
            lines += forecast_block(study, analysis, es)
    found = findings(study, analysis)
    if found:
        lines += ["**Findings**", "", *found, ""]
    known = confounds(study, analysis)
    if known:
        lines += ["**Confounds the study knows about**", "", *known, ""]
    return lines
