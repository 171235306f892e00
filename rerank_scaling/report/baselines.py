"""BM25 against every reranker (final checkpoint, seeds averaged) on one evaluation set."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from rerank_scaling.report.study import Study
from rerank_scaling.scaling import direction
from rerank_scaling.scaling.table import GROUP_COLUMNS

# the columns of the baselines table, in order; contrastive entropy ce@m is added when present
TABLE_METRICS = ("ndcg@10", "map", "mrr@10")
VARIANT_KEYS = tuple(k for k in GROUP_COLUMNS if k not in ("objective", "eval_set"))  # supervision, budget


@dataclass(frozen=True)
class Entry:
    """One reranker configuration on one eval set: final values averaged over its seeds."""

    model: str
    objective: str
    params: float
    variant: tuple  # (supervision, budget), as present in the table
    seeds: int
    values: dict


@dataclass(frozen=True)
class Comparison:
    metric: str
    eval_set: str
    bm25: float | None
    best: Entry | None
    n_better: int  # rerankers strictly better than BM25
    n_total: int

    @property
    def delta(self) -> float | None:
        """How much the best reranker beats BM25 (signed so that > 0 = better)."""
        if self.bm25 is None or self.best is None:
            return None
        return direction(self.metric) * (self.best.values[self.metric] - self.bm25)


def table_metrics(study: Study) -> list[str]:
    return [m for m in study.metrics if m in TABLE_METRICS or m.startswith("ce@") or m == "ce"]


def variant_keys(study: Study) -> list[str]:
    return [k for k in VARIANT_KEYS if k in study.finals.columns and study.finals[k].n_unique() > 1]


def entries(study: Study, eval_set: str) -> list[Entry]:
    keys = variant_keys(study)
    df = study.finals.filter(pl.col("eval_set") == eval_set)
    seed = [pl.col("seed").n_unique().alias("seeds")] if "seed" in df.columns else [pl.len().alias("seeds")]
    per = df.group_by("model", "objective", "params", *keys, "metric").agg(pl.col("value").mean(), *seed)
    out = []
    for (model, objective, params, *variant), sub in per.group_by(
            ["model", "objective", "params", *keys], maintain_order=False):
        out.append(Entry(model, objective, float(params), tuple(variant), int(sub["seeds"].max()),
                         dict(zip(sub["metric"].to_list(), sub["value"].to_list()))))
    return sorted(out, key=lambda e: (e.objective, e.params, e.model, tuple(str(v) for v in e.variant)))


def bm25_values(study: Study, eval_set: str) -> dict[str, float]:
    rows = study.baseline.filter(pl.col("eval_set") == eval_set)
    return {m: float(v) for m, v in zip(rows["metric"].to_list(), rows["value"].to_list())}


def compare(study: Study, eval_set: str, metric: str) -> Comparison:
    bm25 = bm25_values(study, eval_set).get(metric)
    scored = [e for e in entries(study, eval_set) if metric in e.values]
    s = direction(metric)
    best = max(scored, key=lambda e: (s * e.values[metric], -e.params)) if scored else None
    better = sum(1 for e in scored if bm25 is not None and s * (e.values[metric] - bm25) > 0)
    return Comparison(metric, eval_set, bm25, best, better, len(scored))
