"""Synthetic chained-evaluation tables (first stage -> reranker at a depth), rows as the contract of issue 28
writes them (``stage == "chain"``, ``first_stage``, ``first_stage_params``, ``depth``; ``fs-recall`` and the
costs ``chain-flops`` / ``chain-ms`` / ``chain-ms-batched`` as metrics), drawn from the chain law
(:mod:`rerank_scaling.scaling.chain`) with known parameters, a per-run effect and a per-chain scatter.

The defaults look like the Cranfield demo: BM25 ndcg@10 ~0.31 with recall@10 ~0.40 and @50 ~0.70,
MiniLM rerankers of 1/2/3 layers adding up to 0.05 over BM25 (the 1-layer one losing as much at depth 50).
"""

from __future__ import annotations

import numpy as np
import polars as pl

# first stage -> (its N, ndcg@10 alone, recall at 10 / 20 / 50 / 100)
FIRST_STAGES = {
    "bm25": (0, 0.31, (0.40, 0.52, 0.70, 0.80)),
    "bi-encoder/minilm-1L": (1.8e6, 0.22, (0.30, 0.41, 0.58, 0.70)),
    "bi-encoder/minilm-2L": (3.5e6, 0.27, (0.36, 0.48, 0.65, 0.76)),
    "bi-encoder/minilm-3L": (5.3e6, 0.30, (0.39, 0.51, 0.69, 0.80)),
    "sparse/minilm-1L": (1.9e6, 0.25, (0.33, 0.45, 0.62, 0.73)),
    "sparse/minilm-2L": (3.6e6, 0.29, (0.38, 0.50, 0.68, 0.78)),
    "sparse/minilm-3L": (5.4e6, 0.32, (0.41, 0.54, 0.72, 0.82)),
}
RERANKERS = (1.77e6, 3.55e6, 5.32e6)
DEPTHS = (10, 20, 50)
_K = (10, 20, 50, 100)
TOKENS_PER_PAIR = 56
MS_PER_PARAM_PAIR = 2e-8  # ms per reranker parameter and pair (CPU-like)


def chain_law(N, recall, y0, b, c, gamma, n_ref):
    skill = 1.0 - b * (np.asarray(N, dtype=float) / n_ref) ** (-c)
    return y0 + skill * np.maximum(np.asarray(recall, dtype=float) ** gamma - y0, 0.0)


def chain_table(*, b: float = 1.0, c: float = 0.25, gamma: float = 1.0, rerankers=RERANKERS, depths=DEPTHS,
                first_stages: dict | None = None, run_sd: float = 0.003, chain_sd: float = 0.004, seeds=(0,),
                n_ref: float = 3e6, eval_set: str = "cranfield", seed: int = 0,
                with_ordinary_rows: bool = True) -> pl.DataFrame:
    """Chain rows (and, with ``with_ordinary_rows``, each reranker's ordinary rows over BM25 top-100 and
    the BM25 baseline's) of one eval set; the truth is :func:`chain_law` with these parameters."""
    rng = np.random.default_rng(seed)
    first_stages = FIRST_STAGES if first_stages is None else first_stages
    rows = []

    def row(**kw):
        base = {"stage": "chain", "family": "cross-encoder", "objective": "listnet", "supervision": "human",
                "budget": 200, "step": 55, "eval_set": eval_set, "in_domain": True}
        rows.append({**base, **kw})

    def fs_cost(fs_n):
        flops = 2 * fs_n * 16 + 2 * 1400 * 384 if fs_n else 2 * 3000.0
        ms = 0.4 + fs_n * 1e-7
        return flops, ms

    for fs, (fs_n, y0, rec) in first_stages.items():
        flops, ms = fs_cost(fs_n)
        common = dict(first_stage=fs, first_stage_params=int(fs_n), depth=0, run=f"alone__{fs}", model="none",
                      params=0, objective="none", family=None)
        for metric, value in (("ndcg@10", y0), ("fs-recall", rec[-1]), ("chain-flops", flops), ("chain-ms", ms),
                              ("chain-ms-batched", ms / 4)):
            row(**common, metric=metric, value=float(value))
    for s in seeds:
        for N in rerankers:
            run = f"cross-encoder__minilm-{N:.3g}__listnet__human__200__{s}"
            effect = rng.normal(0.0, run_sd)
            for fs, (fs_n, y0, rec) in first_stages.items():
                flops, ms = fs_cost(fs_n)
                for k in depths:
                    r = float(np.interp(np.log(k), np.log(_K), rec))
                    y = chain_law(N, r, y0, b, c, gamma, n_ref) + effect + rng.normal(0.0, chain_sd)
                    common = dict(first_stage=fs, first_stage_params=int(fs_n), depth=k, run=run,
                                  model=f"minilm-{N:.3g}", params=int(N), seed=s)
                    rerank_ms = MS_PER_PARAM_PAIR * N * k
                    for metric, value in (("ndcg@10", y), ("fs-recall", r),
                                          ("chain-flops", flops + 2 * N * TOKENS_PER_PAIR * k),
                                          ("chain-ms", ms + rerank_ms), ("chain-ms-batched", (ms + rerank_ms) / 4)):
                        row(**common, metric=metric, value=float(value))
            if with_ordinary_rows:
                y_bm25 = chain_law(N, first_stages["bm25"][2][-1], first_stages["bm25"][1], b, c, gamma, n_ref)
                rows.append({"stage": None, "family": "cross-encoder", "objective": "listnet", "supervision": "human",
                             "budget": 200, "step": 55, "eval_set": eval_set, "in_domain": True, "run": run,
                             "model": f"minilm-{N:.3g}", "params": int(N), "seed": s, "metric": "ndcg@10",
                             "value": float(y_bm25 + effect)})
    if with_ordinary_rows:
        rows.append({"stage": None, "eval_set": eval_set, "in_domain": True, "run": "bm25", "model": "bm25",
                     "params": 0, "objective": "none", "metric": "ndcg@10", "value": first_stages["bm25"][1]})
    schema = {"stage": pl.Utf8, "family": pl.Utf8, "objective": pl.Utf8, "supervision": pl.Utf8, "budget": pl.Int64,
              "step": pl.Int64, "eval_set": pl.Utf8, "in_domain": pl.Boolean, "first_stage": pl.Utf8,
              "first_stage_params": pl.Int64, "depth": pl.Int64, "run": pl.Utf8, "model": pl.Utf8,
              "params": pl.Int64, "seed": pl.Int64, "metric": pl.Utf8, "value": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")
