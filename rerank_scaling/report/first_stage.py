"""The first-stage section: the recall of each retriever's own list against BM25's at the same depth.

Only for first-stage families (:mod:`rerank_scaling.report.wording`): a
bi-encoder ranks the whole corpus, so its list is a candidate list in its own
right and ``recall@100`` says how much a reranker after it could still find.
Each row names its objective (and family, where a study has several), and a
sparse retriever's costs (:data:`SPARSITY`: active dimensions of a query and of
a document, FLOPS per query-document pair) stand beside its quality.
"""

from __future__ import annotations

from rerank_scaling.report import tables as T
from rerank_scaling.report.baselines import bm25_values, compare, entries, variant_keys
from rerank_scaling.report.study import HEADLINE, Study

RECALL = "recall@100"
# a sparse retriever's costs (evaluation.sparsity), shown beside its quality; lower is cheaper
SPARSITY = ("active-q", "active-d", "flops")


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
        gaps = [T.DASH] + [T.signed(e.values[RECALL] - bm25[RECALL]) if RECALL in bm25 else T.DASH for e in rows_e]
        body = [[*labels[i], *[formatted[j][i] for j in range(len(shown))], gaps[i],
                 *[cost_cols[j][i] for j in range(len(costs))]] for i in range(len(labels))]
        lines += [f"### {es.name} ({es.domain})", "",
                  T.md_table(["list", "objective", "N", *keys, *shown, f"{RECALL} - BM25", *costs], body,
                             "lll" + "l" * len(keys) + "r" * (len(shown) + 1 + len(costs))), ""]
        c = compare(study, es.name, RECALL)
        if c.best is not None and c.bm25 is not None:
            best = c.best
            variant = ", ".join(f"{key} {T.plain(v)}" for key, v in zip(keys, best.variant))
            lines += [f"**Best {RECALL} on {es.name}**: `{best.model}` ({best.objective}"
                      + (f", {variant})" if variant else ")")
                      + f", {T.num(best.values[RECALL])} vs BM25's {T.num(c.bm25)} ({T.signed(c.delta)}); "
                      f"{c.n_better} of {c.n_total} {w.noun} lists have a higher {RECALL} than BM25's.", ""]
    return lines


def _cost(value) -> str:
    """An active-dimension count or a FLOPS value: whole numbers as such, small ones with 3 significant digits."""
    if not T.finite(value):
        return T.DASH
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
