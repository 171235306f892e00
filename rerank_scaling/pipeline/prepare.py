"""Prepare a run's data: training groups, evaluation sets and the BM25 baseline.

Everything here is deterministic in the config and cached on disk where it is
expensive, so a grid pays for it once (``grid prepare``,
:mod:`rerank_scaling.grid.prepare`) and its cells only read: collections as
memory-mapped stores (:func:`rerank_scaling.data.store.stored_collection`), the
BM25 index and candidate arrays (:mod:`rerank_scaling.candidates`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from rerank_scaling.candidates.bm25 import bm25_candidates, bm25_index
from rerank_scaling.candidates.trec import read_trec_run
from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.data.store import stored_collection
from rerank_scaling.data.splits import nested_budget, split_queries
from rerank_scaling.data.types import Collection, Ranking, sorted_ids
from rerank_scaling.data.weak import ict_queries, ict_source, weak_queries
from rerank_scaling.errors import UserError
from rerank_scaling.evaluation.contrastive import ce_name, parse_variant, sample_contrastive_sets
from rerank_scaling.evaluation.metrics import evaluate_per_query
from rerank_scaling.evaluation.rerank import EvalSet
from rerank_scaling.examples import TrainingSet, build_training_set


@dataclass
class Prepared:
    train: TrainingSet
    evalsets: list[EvalSet]
    baseline: dict[str, dict[str, dict[str, float]]]  # eval set -> metric -> qid -> BM25's value (whole list)
    info: dict = field(default_factory=dict)


@lru_cache(maxsize=8)
def _load(spec: str, data_root: str | None, cache_dir: str | None) -> Collection:
    return stored_collection(
        spec,
        data_root=Path(data_root) if data_root else None,
        cache_dir=Path(cache_dir) if cache_dir else None,
    )


def load(config: RunConfig, spec: str) -> Collection:
    return _load(spec, config.data_root, config.cache_dir)


def split_of(config: RunConfig, collection: Collection, split: str) -> list[str]:
    parts = split_queries(sorted(collection.queries), config.fractions(), seed=config.split_seed)
    if split not in parts:
        raise UserError(f"unknown split '{split}' of {collection.name} (splits: {', '.join(parts)})")
    return parts[split]


def candidates_for(config: RunConfig, collection: Collection, queries: dict[str, str]) -> Ranking:
    cache = Path(config.cache_dir) if config.cache_dir else None
    return bm25_candidates(collection, queries, k=config.candidates_k, cache_dir=cache)


def bm25_index_for(config: RunConfig, collection: Collection):
    """The saved BM25 index of ``collection``'s documents (built once per corpus)."""
    return bm25_index(collection, cache_dir=Path(config.cache_dir) if config.cache_dir else None)


def _union(a: Collection, b: Collection) -> Collection:
    """Two query sets over the same documents as one (query ids must not clash)."""
    return Collection(
        name=f"{a.name}+{b.name}", docs=a.docs, titles=a.titles,
        queries={**a.queries, **b.queries}, qrels={**a.qrels, **b.qrels},
        source=a.source, info={"parts": [a.name, b.name]},
    )


def training_key(config: RunConfig) -> tuple:
    """What the training set of a config depends on (equal keys: the same training set)."""
    return (config.train_collection, config.train_split, config.split_fractions, config.split_seed,
            config.supervision, config.budget, config.seed, config.n_negatives, config.candidates_k,
            config.data_root, config.cache_dir)


def evaluation_key(config: RunConfig, spec: EvalSpec) -> tuple:
    """What an evaluation set of a config depends on (equal keys: the same set and baseline)."""
    return (spec, config.split_fractions, config.split_seed, config.candidates_k, config.rerank_k,
            config.ce_negatives, config.ce_variants, config.candidates_run, config.metrics, config.data_root,
            config.cache_dir)


def training_set(config: RunConfig) -> tuple[TrainingSet, dict]:
    coll = load(config, config.train_collection)
    qids = split_of(config, coll, config.train_split) if config.train_split else sorted(coll.queries)
    human = coll.subset(qids)
    if config.supervision == "human":
        base = human
    elif config.supervision == "ict":
        base = ict_queries(coll, seed=config.split_seed)
    else:
        weak = weak_queries(coll)
        base = weak if config.supervision == "weak" else _union(human, weak)
    usable = sorted(q for q in base.queries if base.positives(q))
    if config.budget is not None:
        if config.budget > len(usable):
            raise UserError(
                f"budget {config.budget} is larger than the {len(usable)} training queries with a relevant"
                f" document in {config.train_collection} ({config.supervision} supervision)"
            )
        usable = nested_budget(usable, config.budget, seed=config.seed)
    train = base.subset(usable, name=f"{coll.name}-{config.supervision}")
    cands = candidates_for(config, coll, train.queries)
    if config.supervision == "ict":  # an inverse-cloze query's source document holds the query verbatim
        cands = {q: [(d, sc) for d, sc in lst if d != ict_source(q)] for q, lst in cands.items()}
    tset = build_training_set(train, cands, n_negatives=config.n_negatives, seed=config.seed)
    info = {"train_queries": sorted(train.queries), **tset.info, "supervision": config.supervision}
    return tset, info


def evaluation_set(config: RunConfig, spec: EvalSpec) -> tuple[EvalSet, dict[str, float], dict]:
    coll = load(config, spec.collection)
    qids = split_of(config, coll, spec.split) if spec.split else sorted(coll.queries)
    level = spec.relevance_level
    qids = [q for q in qids if any(g >= level for g in coll.positives(q).values())]
    if spec.max_queries is not None and spec.max_queries < len(qids):
        qids = nested_budget(qids, spec.max_queries, seed=config.split_seed)
    sub = coll.subset(qids, name=spec.name)
    if not sub.queries:
        raise UserError(f"evaluation set '{spec.name}' has no query with a relevant document"
                        f" (grade >= relevance_level {level})")
    if config.candidates_run:
        run = read_trec_run(config.candidates_run)
        cands = {q: run.get(q, [])[: config.candidates_k] for q in sub.queries}
    else:
        cands = candidates_for(config, coll, sub.queries)
    top = {q: lst[: config.rerank_k] for q, lst in cands.items()}
    tail = {q: lst[config.rerank_k:] for q, lst in cands.items()}
    sets = sample_contrastive_sets(cands, sub.qrels, m=config.ce_negatives, seed=config.split_seed,
                                   relevance_level=level)
    corpus = sorted_ids(coll.docs)
    variants = {}
    for name in config.ce_variants:
        source, m = parse_variant(name)
        variants[name] = sample_contrastive_sets(cands, sub.qrels, m=m, seed=config.split_seed, relevance_level=level,
                                                 corpus=corpus if source == "corpus" else None, salt=name)
    evalset = EvalSet(spec.name, sub, top, sets, ce_name(config.ce_negatives), spec.in_domain, level, tail, variants)
    # BM25 on the same lists the rerankers are scored on: the whole candidate list
    baseline = evaluate_per_query({q: lst for q, lst in cands.items() if lst}, sub.qrels, config.metrics, level)
    info = {
        "queries": len(sub.queries),
        "queries_without_candidates": sum(1 for lst in top.values() if not lst),
        "pairs_to_score": len(evalset.pairs()),
        "qids": qids,
    }
    return evalset, baseline, info


def prepare(config: RunConfig) -> Prepared:
    tset, train_info = training_set(config)
    evalsets, baseline, eval_info = [], {}, {}
    for spec in config.evals:
        es, base, info = evaluation_set(config, spec)
        evalsets.append(es)
        baseline[spec.name] = base
        eval_info[spec.name] = info
    return Prepared(tset, evalsets, baseline, {"train": train_info, "eval": eval_info})
