"""The first-stage section: the recall of each retriever's own list against BM25's at the same depth.

Only for first-stage families (:mod:`rerank_scaling.report.wording`): a
bi-encoder ranks the whole corpus, so its list is a candidate list in its own
right and ``recall@100`` says how much a reranker after it could still find.
Each row names its objective (and family, where a study has several), and a
sparse retriever's costs (:data:`SPARSITY`: active dimensions of a query and of
a document, FLOPS per query-document pair) stand beside its quality.
"""

from __future__ import annotations

from rerank_scaling.report import significance as sig
from rerank_scaling.report import tables as T
from rerank_scaling.report.baselines import Entry, bm25_values, compare, entries, variant_keys
from rerank_scaling.report.study import HEADLINE, Study

RECALL = "recall@100"
# a sparse retriever's costs (evaluation.sparsity), shown beside its quality; lower is cheaper
SPARSITY = ("active-q", "active-d", "flops")


def _tests(study: Study, eval_set: str, metric: str, keys: list[str]) -> dict[tuple, sig.Test]:
    """Each list against BM25's on ``metric`` (paired randomization test, Holm over the lists), keyed like
    an :class:`Entry`: (model, objective, params, variant...)."""
    if study.per_query is None:
        return {}
    columns = sig.system_columns(study.finals)
    out = {}
    for key, test in sig.versus_bm25_by_system(study.per_query, study.finals, eval_set, metric).items():
        named = dict(zip(columns, key))
        out[(named["model"], named["objective"], float(named["params"]), *(named[k] for k in keys))] = test
    return out


def _entry_key(e: Entry) -> tuple:
    return (e.model, e.objective, float(e.params), *e.variant)


def _p(test: sig.Test | None) -> str:
    if test is None:
        return T.DASH
    return f"**{test.p_holm:.3g}**" if test.significant else f"{test.p_holm:.3g}"


def _verdicts(tests: dict[tuple, sig.Test], metric: str, noun: str, plural: str) -> str:
    above = sum(t.significant and t.delta > 0 for t in tests.values())
    below = sum(t.significant and t.delta < 0 for t in tests.values())
    n = len(tests)
    return (f"{metric}: {above} of {n} {plural if n != 1 else noun} significantly above BM25's, {below} significantly "
            f"below, {n - above - below} not told apart from it (Holm p < {sig.ALPHA}).")


def first_stage_section(study: Study) -> list[str]:
    w = study.words
    if not w.first_stage or RECALL not in study.metrics:
        return []
    k = study.config.get("candidates_k")
    depth = f"top-{k}" if k else "list"
    lines = ["## 0. First stage: recall of the retrieved lists", "",
             f"Each {w.noun} retrieves its own {depth} of the whole corpus (exact search); BM25's {depth} is the "
             f"baseline row. {RECALL} is the share of each query's relevant documents in the first 100, what a "
             f"reranker after this stage could still put on top; {HEADLINE} beside it for the head of the list. "
             "Each cell's list is `cells/<run>/runs/<eval set>.trec`, usable as `[candidates] run` of a reranker "
             "study." + (f" The lists are {k} deep (`[candidates] k`), so {RECALL} here is recall@{k}, for BM25 "
                         "and every model alike." if isinstance(k, int) and k < 100 else ""), ""]
    keys = variant_keys(study)
    shown = [m for m in (RECALL, HEADLINE) if m in study.metrics]
    costs = [m for m in SPARSITY if m in study.metrics]
    if costs:
        lines += ["Sparsity beside quality (sparse retrievers; lower is cheaper): `active-q` / `active-d` are the "
                  "non-zero vocabulary dimensions of a query / of a corpus document, `flops` the expected "
                  "multiply-adds of one query-document dot product (`sum_j p_j` over the query's terms, `p_j` the "
                  "share of documents with term j active; Paria et al. 2020). A dense vector has every one of "
                  "its dimensions active (—: not a sparse list).", ""]
    for es in study.eval_sets:
        rows_e = sorted((e for e in entries(study, es.name) if RECALL in e.values),
                        key=lambda e: (*((str(v), 0) if isinstance(v, str) else ("", v or 0) for v in e.variant),
                                       e.params, e.model, e.objective))
        if not rows_e:
            continue
        bm25 = bm25_values(study, es.name)
        cols = [[bm25.get(m) for m in shown]] + [[e.values.get(m) for m in shown] for e in rows_e]
        formatted = [T.bold_best([r[j] for r in cols], False) for j in range(len(shown))]
        cost_cols = [[T.DASH] + [_cost(e.values.get(m)) for e in rows_e] for m in costs]
        labels = [["BM25", T.DASH, T.DASH, *[T.DASH] * len(keys)]] + [
            [f"`{e.model}`", e.objective, T.size(e.params), *[T.plain(v) for v in e.variant]] for e in rows_e]
        tests = {m: _tests(study, es.name, m, keys) for m in shown}
        tests = {m: t for m, t in tests.items() if t}
        extra_headers = [h for m in tests for h in (f"{m} - BM25", f"p ({m}, Holm)")]
        extra = [[T.DASH] * len(extra_headers)]
        for e in rows_e:
            cells = []
            for m in tests:
                t = tests[m].get(_entry_key(e))
                gap = e.values.get(m, float("nan")) - bm25[m] if m in bm25 and m in e.values else None
                cells += [T.DASH if gap is None else T.signed(gap), _p(t)]
            extra.append(cells)
        if not tests:  # no per-query values: the recall gap alone, untested
            extra_headers = [f"{RECALL} - BM25"]
            extra = [[T.DASH]] + [[T.signed(e.values[RECALL] - bm25[RECALL]) if RECALL in bm25 else T.DASH]
                                  for e in rows_e]
        body = [[*labels[i], *[formatted[j][i] for j in range(len(shown))], *extra[i],
                 *[cost_cols[j][i] for j in range(len(costs))]] for i in range(len(labels))]
        lines += [f"### {es.name} ({es.domain})", "",
                  T.md_table(["list", "objective", "N", *keys, *shown, *extra_headers, *costs], body,
                             "lll" + "l" * len(keys) + "r" * (len(shown) + len(extra_headers) + len(costs))), ""]
        if tests:
            n_q = next(iter(next(iter(tests.values())).values())).queries
            lines += [f"Is a list better than BM25's? Paired randomization test over the {n_q} queries "
                      f"({sig.N_FLIPS:,} sign flips, two-sided) of each list against BM25's top-{k or 100}, per metric, "
                      f"Holm-corrected over the {len(rows_e)} lists; p in bold: Holm p < {sig.ALPHA} (seeds averaged "
                      "per query first).", ""]
            lines += [f"- {_verdicts(t, m, w.noun + ' list', w.noun + ' lists')}" for m, t in tests.items()] + [""]
        elif study.per_query is None:
            lines += ["*Not tested against BM25: the study has no per-query values (`per_query.parquet`).*", ""]
        c = compare(study, es.name, RECALL)
        if c.best is not None and c.bm25 is not None:
            best = c.best
            variant = ", ".join(f"{key} {T.plain(v)}" for key, v in zip(keys, best.variant))
            t = tests.get(RECALL, {}).get(_entry_key(best))
            tested = "" if t is None else (f", Holm p = {t.p_holm:.3g}: "
                                           + ("significant" if t.significant else "not significant"))
            lines += [f"**Best {RECALL} on {es.name}**: `{best.model}` ({best.objective}"
                      + (f", {variant})" if variant else ")")
                      + f", {T.num(best.values[RECALL])} vs BM25's {T.num(c.bm25)} ({T.signed(c.delta)}{tested}); "
                      f"{c.n_better} of {c.n_total} {w.noun} lists have a higher {RECALL} than BM25's.", ""]
        lines += _teacher(study, es.name, k)
    return lines


def _teacher(study: Study, eval_set: str, k) -> list[str]:
    """The distillation teacher as a reranker of BM25's list, against BM25 (paired test): whether the
    teacher knows more than the baseline its students must beat."""
    if study.per_query is None or HEADLINE not in study.metrics:
        return []
    found = sig.teacher_versus_bm25(study.per_query, eval_set, HEADLINE)
    if found is None:
        return []
    teacher, bm25, test = found
    source, weight = study.config.get("teacher"), study.config.get("teacher_bm25_weight") or 0
    fused = f", fused with BM25 at w = {weight:g} (`teacher_bm25_weight`)" if weight else ""
    verdict = "significantly above" if test.significant and test.delta > 0 else (
        "significantly below" if test.significant else "not told apart from")
    return [f"**Distillation teacher** (`{source}`{fused}, reranking BM25's top-{study.config.get('rerank_k', k)}): "
            f"{HEADLINE} {T.num(teacher)} vs BM25's {T.num(bm25)} ({T.signed(test.delta)}, paired randomization "
            f"p = {test.p:.3g} over {test.queries} queries): {verdict} BM25.", ""]


def _cost(value) -> str:
    """An active-dimension count or a FLOPS value: whole numbers as such, small ones with 3 significant digits."""
    if not T.finite(value):
        return T.DASH
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
