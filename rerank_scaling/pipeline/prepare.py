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
from rerank_scaling.data.noise import corrupt_labels
from rerank_scaling.data.store import stored_collection
from rerank_scaling.data.splits import nested_budget, split_queries
from rerank_scaling.data.types import Collection, Ranking, sorted_ids
from rerank_scaling.data.weak import ict_queries, ict_source, weak_queries
from rerank_scaling.errors import UserError
from rerank_scaling.evaluation.contrastive import ce_name, parse_variant, sample_contrastive_sets
from rerank_scaling.evaluation.metrics import evaluate_per_query
from rerank_scaling.evaluation.rerank import EvalSet
from rerank_scaling.examples import TrainingSet, build_training_set
from rerank_scaling.models import FAMILIES
from rerank_scaling.values import output_path

# what a loader dropped from a collection (Collection.info), said as a warning with its count
DROPPED = {
    "qrels_unknown_docs_dropped": "judgments name a document not in the corpus",
    "qrels_unknown_queries_dropped": "judgments name a query not in the query file",
    "duplicate_doc_ids_dropped": "documents repeat an id seen before",
    "empty_doc_ids_dropped": "documents have an empty id",
}


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
    if config.cache_dir:
        try:
            output_path(config.cache_dir)
        except UserError as exc:
            raise UserError(f"cache_dir {exc}") from None
    return _load(spec, config.data_root, config.cache_dir)


def split_of(config: RunConfig, collection: Collection, split: str) -> list[str]:
    parts = split_queries(sorted(collection.queries), config.fractions(), seed=config.split_seed)
    if split not in parts:
        raise UserError(f"unknown split '{split}' of {collection.name} (splits: {', '.join(parts)})")
    return parts[split]


def dropped(collection: Collection) -> list[str]:
    """One warning per kind of record the loader dropped from ``collection``, with its count."""
    return [f"{collection.name}: {collection.info[key]} {what}; dropped" for key, what in DROPPED.items()
            if collection.info.get(key)]


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
    source = config.supervision_source
    if source == "human":
        base = human
    elif source == "ict":
        base = ict_queries(coll, seed=config.split_seed)
    else:
        weak = weak_queries(coll)
        base = weak if source == "weak" else _union(human, weak)
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
    if source == "ict":  # an inverse-cloze query's source document holds the query verbatim
        cands = {q: [(d, sc) for d, sc in lst if d != ict_source(q)] for q, lst in cands.items()}
    if config.label_noise:  # noisy supervision: a fraction of the positives replaced by random candidates
        train = corrupt_labels(train, cands, config.label_noise, seed=config.seed)
    tset = build_training_set(train, cands, n_negatives=config.n_negatives, seed=config.seed)
    warnings = dropped(coll)
    short = tset.info["queries_with_short_candidate_pool"]
    if short:
        warnings.append(f"training set: {short} of {tset.info['queries']} queries have fewer than n_negatives = "
                        f"{config.n_negatives} non-relevant candidates in their BM25 top {config.candidates_k}; "
                        "their groups are topped up with random documents")
    info = {"train_queries": sorted(train.queries), **tset.info, "supervision": config.supervision,
            "warnings": warnings}
    if config.label_noise:
        info.update({k: train.info[k] for k in ("label_noise", "labels_replaced", "labels")})
    return tset, info


def evaluation_set(config: RunConfig, spec: EvalSpec) -> tuple[EvalSet, dict[str, float], dict]:
    coll = load(config, spec.collection)
    qids = split_of(config, coll, spec.split) if spec.split else sorted(coll.queries)
    level = spec.relevance_level
    qids = [q for q in qids if any(g >= level for g in coll.positives(q).values())]
    if spec.max_queries is not None and spec.max_queries < len(qids):
        qids = nested_budget(qids, spec.max_queries, seed=config.split_seed)
    warnings = dropped(coll)
    if spec.max_queries is not None and spec.max_queries > len(qids):
        warnings.append(f"eval '{spec.name}': max_queries = {spec.max_queries} but only {len(qids)} queries have a "
                        f"relevant document (grade >= {level}); all {len(qids)} are used")
    sub = coll.subset(qids, name=spec.name)
    if not sub.queries:
        raise UserError(f"evaluation set '{spec.name}' has no query with a relevant document"
                        f" (grade >= relevance_level {level})")
    if config.candidates_run:
        cands, notes = _run_candidates(config, spec, sub)
        warnings += notes
    else:
        cands = candidates_for(config, coll, sub.queries)
    short = [len(lst) for lst in cands.values() if len(lst) < config.rerank_k]
    if short:
        warnings.append(f"eval '{spec.name}': {len(short)} of {len(cands)} queries have fewer than rerank_k = "
                        f"{config.rerank_k} candidates (fewest {min(short)}); each is reranked at its own depth")
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
        "warnings": warnings,
    }
    return evalset, baseline, info


def _run_candidates(config: RunConfig, spec: EvalSpec, sub: Collection) -> tuple[dict, list[str]]:
    """An evaluation set's candidates from ``[candidates] run`` (a TREC run file): documents the corpus
    lacks are dropped and counted; a run that names none of the set's queries is refused."""
    run = read_trec_run(config.candidates_run)
    hit = [q for q in sub.queries if run.get(q)]
    if not hit:
        raise UserError(f"{config.candidates_run}: names none of the {len(sub.queries)} queries of eval "
                        f"'{spec.name}' (query ids such as {sorted(run)[:1] or ['none']} vs {sorted(sub.queries)[:1]})")
    cands, unknown, notes = {}, 0, []
    for q in sub.queries:
        lst = [(d, sc) for d, sc in run.get(q, []) if d in sub.docs]
        unknown += len(run.get(q, [])) - len(lst)
        cands[q] = lst[: config.candidates_k]
    if not any(cands.values()):
        raise UserError(f"{config.candidates_run}: no candidate of eval '{spec.name}' is a document of its corpus "
                        f"({unknown} unknown document ids)")
    if unknown:
        notes.append(f"{config.candidates_run}: {unknown} candidates of eval '{spec.name}' are not documents of its "
                     "corpus; dropped")
    if len(hit) < len(sub.queries):
        notes.append(f"{config.candidates_run}: {len(sub.queries) - len(hit)} of {len(sub.queries)} queries of eval "
                     f"'{spec.name}' have no candidate; they score 0")
    return cands, notes


def held_out(train: TrainingSet, evalsets: list[EvalSet]) -> list[str]:
    """A warning for each evaluation set that shares queries with the training set (same collection): its
    scores are not held out (a train split of ``None`` trains on every judged query, test ones included)."""
    seen = set(train.collection.queries)
    out = []
    for es in evalsets:
        if es.collection.source == train.collection.source and (shared := seen & set(es.collection.queries)):
            out.append(f"eval '{es.name}' shares {len(shared)} of its {len(es.collection.queries)} queries with the "
                       "training set: its scores are not held out (see train_split)")
    return out


def text_room(config: RunConfig, queries: list[str]) -> list[str]:
    """Whether ``max_length`` / ``max_query_length`` leave room for text, counted with the model's own
    tokenizer and special tokens: :class:`UserError` when no query or document keeps a token of its own
    (the run could not mean anything), a warning with the count when some queries leave their document
    none. A cross-encoder's pair is ``[CLS] query [SEP] document [SEP]`` cut to ``max_length`` after the
    query is cut to ``max_query_length``; a retriever encodes each text alone, specials included."""
    from rerank_scaling.models.backbone import load_tokenizer

    tokenizer = load_tokenizer(config.model)
    a, b = (tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("a", "b"))
    if FAMILIES[config.family].layout != "groups":  # each text encoded alone
        special = len(tokenizer("a")["input_ids"]) - len(a)
        for key, limit in (("max_length", config.max_length), ("max_query_length", config.max_query_length)):
            if limit <= special:
                raise UserError(f"{key} = {limit} leaves no room for text: the {special} special tokens take it all")
        return []
    special = len(tokenizer("a", "b")["input_ids"]) - len(a) - len(b)
    lengths = [len(ids) for ids in tokenizer(list(queries), add_special_tokens=False, truncation=True,
                                             max_length=config.max_query_length)["input_ids"]]
    none_left = sum(config.max_length - special - n <= 0 for n in lengths)
    if lengths and none_left == len(lengths):
        raise UserError(f"max_length = {config.max_length} leaves no room for document tokens: {special} special "
                        f"tokens and the query (up to max_query_length = {config.max_query_length}) fill it for "
                        f"every query; raise max_length above {special + min(lengths)}")
    if none_left:
        return [f"max_length = {config.max_length} leaves no document token for {none_left} of {len(lengths)} "
                f"queries (their query fills it); raise max_length or lower max_query_length"]
    return []


def prepare(config: RunConfig) -> Prepared:
    """The run's data, checked: user errors are raised, and what is valid but doubtful is listed in
    ``info["warnings"]`` (one line each, with counts) for the caller to show."""
    tset, train_info = training_set(config)
    evalsets, baseline, eval_info = [], {}, {}
    for spec in config.evals:
        es, base, info = evaluation_set(config, spec)
        evalsets.append(es)
        baseline[spec.name] = base
        eval_info[spec.name] = info
    queries = [*tset.collection.queries.values(), *(q for es in evalsets for q in es.collection.queries.values())]
    warnings = [*config.warnings(), *train_info["warnings"], *(w for i in eval_info.values() for w in i["warnings"]),
                *held_out(tset, evalsets), *text_room(config, queries)]
    return Prepared(tset, evalsets, baseline,
                    {"train": train_info, "eval": eval_info, "warnings": list(dict.fromkeys(warnings))})
