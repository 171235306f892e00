"""A distillation teacher's scores (or query embeddings) of a training set, computed once and cached on disk.

The teacher (``[train] teacher``) is any model the toolkit can load that scores
(query, document) pairs -- in practice a cross-encoder:

* a run folder of this toolkit whose run saved its model (``[train] save_model
  = true`` writes ``model/``): the reranker study's model teaches the retriever
  study;
* a saved model folder itself (``family.json`` beside the weights);
* a Hugging Face cross-encoder id or folder (a one-logit sequence classifier,
  e.g. ``cross-encoder/ms-marco-MiniLM-L6-v2`` for users with internet).

Every pair a training group can hold is scored up front (by the prepare step,
``grid prepare``, or the first cell that needs them): each training query
against its positives and its whole negative pool (the candidates its hard
negatives are drawn from), in batched passes. The scores are cached in
``<cache>/teacher-scores/<key>/`` (``cache_dir`` or the default cache) as a
float32 array in (query, document) order with one offset per query,
memory-mapped by the cells (4 bytes a pair: MS MARCO's ~50M training pairs are
0.2 GB, not a table of Python objects), keyed by a fingerprint of the teacher's
files, of the corpus and of every training query's text and documents, so a
different teacher, training set, split, candidate depth or supervision never
reuses them, and every cell of a grid over the same training set shares one. A pair outside them (a group
topped up with random corpus documents when a query's pool is short) is
scored when it is first asked for.

A teacher can be *fused with BM25* (``[train] teacher_bm25_weight`` = w > 0): each
training query's teacher scores and BM25 scores of its documents are standardised
over those documents (z-scores: mean 0, standard deviation 1) and mixed as
``(1 - w) z_teacher + w z_bm25`` -- the classic score interpolation of a reranker
with its first stage. A document outside the query's BM25 candidate list (a
positive BM25 ranked below ``candidates_k``, a random top-up) gets that list's
lowest score, a bound its true score does not pass. The cache keeps the model's
own scores; the mix is applied when they are read. Distillation objectives only
compare documents of one query (MarginMSE's margins, KL's softmax), so
standardising per query changes nothing else.

A ``query-distill`` run's teacher is a bi-encoder
(:mod:`rerank_scaling.models.query_distill`); its targets are the teacher's
query embeddings of every training query (:func:`teacher_query_embeddings`),
encoded once and cached on disk by the student's :class:`TeacherCache`, keyed
by the teacher's fingerprint and every query's text. Both tables hand a batch
its entry (``entry``: ``teacher_scores`` or ``teacher_embeddings``) through
``groups(groups)``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from rerank_scaling.data.util import default_cache_dir
from rerank_scaling.examples import Group, TrainingSet
from rerank_scaling.models.family import model_fingerprint as teacher_fingerprint
from rerank_scaling.models.family import check_hub_source, saved_family, saved_model_folder

log = logging.getLogger(__name__)


def load_teacher(source: str, label: str = "teacher"):
    """The model (in eval mode) behind ``source`` (the module docstring): a saved model of any family, or a
    Hugging Face cross-encoder; ``label`` names it in errors."""
    from rerank_scaling.models import get_family

    folder = saved_model_folder(source)
    if folder is not None:
        model = get_family(saved_family(folder)).load(folder)
    else:
        check_hub_source(source, label)
        from rerank_scaling.models.cross_encoder import load_cross_encoder
        from rerank_scaling.models.ladder import ModelSpec

        model = load_cross_encoder(ModelSpec("hf", source), pooling="cls")
    return model.eval()


def query_docs(tset: TrainingSet, qid: str) -> list[str]:
    """The documents a group of ``qid`` can hold (but random top-ups): its positives and its pool, sorted."""
    return sorted(set(tset.collection.positives(qid)) | set(tset.pools[qid]))


def training_pairs(tset: TrainingSet) -> list[tuple[str, str]]:
    """Every (query, doc) pair the groups of ``tset`` can hold (but random top-ups), sorted."""
    return [(q, d) for q in sorted(tset.pools) for d in query_docs(tset, q)]


class TeacherScores:
    """``teacher_scores[B, G]`` of query groups from the cached arrays (and the teacher, for a pair outside
    them): ``scores[offsets[i]:offsets[i + 1]]`` are the i-th training query's (sorted ids) documents'
    (:func:`query_docs`, sorted) -- memory-mapped, 4 bytes a pair."""

    entry = "teacher_scores"

    def __init__(self, source: str, tset: TrainingSet, offsets, scores, batch_size: int = 64, model=None):
        self.source, self.tset, self.batch_size = source, tset, batch_size
        self.qids = sorted(tset.pools)
        self.offsets, self.scores = offsets, scores
        self.extra: dict[tuple[str, str], float] = {}  # pairs outside the table, scored when first asked for
        self._docs: dict[str, list[str]] = {}
        self._model = model
        self._fusion: tuple[float, Mapping, np.ndarray, np.ndarray] | None = None

    def fuse_with_bm25(self, weight: float, bm25: Mapping[str, Sequence[tuple[str, float]]]) -> "TeacherScores":
        """Mix the scores with BM25's (the module docstring): ``bm25`` maps each training query to its
        candidate list ``[(doc, score), ...]``. The table's scores are replaced by the mix (a copy: the
        memory-mapped cache is never written); pairs scored later (:meth:`groups`) are mixed with their
        query's statistics. Returns ``self``."""
        stats = np.zeros((len(self.qids), 4), dtype=np.float64)  # teacher mean, std; bm25 mean, std
        mixed = np.array(self.scores, dtype=np.float32)
        lists = {}
        for i, q in enumerate(self.qids):
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            lists[q] = dict(bm25.get(q, ()))
            t = mixed[lo:hi].astype(np.float64)
            b = np.array([lists[q].get(d, _floor(lists[q])) for d in query_docs(self.tset, q)], dtype=np.float64)
            stats[i] = t.mean(), _spread(t), b.mean(), _spread(b)
            mixed[lo:hi] = (1 - weight) * (t - stats[i, 0]) / stats[i, 1] + weight * (b - stats[i, 2]) / stats[i, 3]
        self._fusion = (weight, lists, stats, mixed)
        self.scores = mixed
        return self

    def _mixed(self, qid: str, doc: str, score: float) -> float:
        if self._fusion is None:
            return score
        weight, lists, stats, _ = self._fusion
        i = bisect.bisect_left(self.qids, qid)
        if i == len(self.qids) or self.qids[i] != qid:  # a query outside the table: no statistics to use
            return score
        b = lists[qid].get(doc, _floor(lists[qid]))
        tm, ts, bm, bs = stats[i]
        return float((1 - weight) * (score - tm) / ts + weight * (b - bm) / bs)

    def _score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        if self._model is None:
            self._model = load_teacher(self.source)
        coll = self.tset.collection
        with torch.inference_mode():
            return np.asarray(self._model.score([coll.queries[q] for q, _ in pairs], [coll.docs[d] for _, d in pairs],
                                                batch_size=self.batch_size), dtype=np.float32)

    def lookup(self, qid: str, doc: str) -> float | None:
        """The cached score of (qid, doc), or None."""
        i = bisect.bisect_left(self.qids, qid)
        if i == len(self.qids) or self.qids[i] != qid:
            return None
        if qid not in self._docs:
            if len(self._docs) > 4096:
                self._docs.clear()
            self._docs[qid] = query_docs(self.tset, qid)
        docs = self._docs[qid]
        j = bisect.bisect_left(docs, doc)
        if j == len(docs) or docs[j] != doc:
            return self.extra.get((qid, doc))
        return float(self.scores[int(self.offsets[i]) + j])

    def groups(self, groups: list[Group]) -> torch.Tensor:
        values = [[self.lookup(g.qid, d) for d in g.doc_ids] for g in groups]
        missing = sorted({(g.qid, d) for g, row in zip(groups, values) for d, v in zip(g.doc_ids, row) if v is None})
        if missing:
            self.extra.update((pair, self._mixed(*pair, float(v))) for pair, v in zip(missing, self._score(missing)))
            values = [[v if v is not None else self.extra[(g.qid, d)] for d, v in zip(g.doc_ids, row)]
                      for g, row in zip(groups, values)]
        return torch.tensor(values, dtype=torch.float32)


def _floor(candidates: Mapping[str, float]) -> float:
    """The score a document outside a candidate list gets: the list's lowest (0 for an empty list)."""
    return min(candidates.values()) if candidates else 0.0


def _spread(values: np.ndarray) -> float:
    """The standard deviation a z-score divides by: 1 where the values do not vary."""
    std = float(values.std())
    return std if std > 1e-12 else 1.0


BLOCK = 1 << 16  # pairs scored per call when the cache is built


def teacher_scores(source: str, tset: TrainingSet, cache_dir: str | None = None,
                   batch_size: int = 64) -> TeacherScores:
    """The teacher's scores of every pair of :func:`training_pairs`, from the cache or computed and cached
    (``<cache>/teacher-scores/<key>/``: ``scores.npy`` float32, ``offsets.npy`` per query, ``teacher.json``)."""
    from rerank_scaling.candidates.bm25 import fingerprint
    from rerank_scaling.data.store import atomic_folder, mapped

    coll = tset.collection
    qids = sorted(tset.pools)
    digest = hashlib.sha256(f"{teacher_fingerprint(source)}\n{fingerprint(coll.docs)}\n".encode())
    counts = np.zeros(len(qids), dtype=np.int64)
    for i, q in enumerate(qids):
        docs = query_docs(tset, q)
        counts[i] = len(docs)
        digest.update(f"{q}\t{coll.queries[q]}\t{chr(9).join(docs)}\n".encode())
    folder = Path(cache_dir or default_cache_dir()) / "teacher-scores" / digest.hexdigest()[:32]
    offsets = np.zeros(len(qids) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if (folder / "teacher.json").is_file():
        log.info("teacher scores loaded from %s", folder)
        return TeacherScores(source, tset, offsets, mapped(folder / "scores.npy"), batch_size)
    out = TeacherScores(source, tset, offsets, np.zeros(int(offsets[-1]), dtype=np.float32), batch_size)
    pending: list[tuple[str, str]] = []
    done = 0

    def flush() -> None:
        nonlocal done
        out.scores[done:done + len(pending)] = out._score(pending)
        done += len(pending)
        pending.clear()
    for q in qids:
        pending.extend((q, d) for d in query_docs(tset, q))
        if len(pending) >= BLOCK:
            flush()
    if pending:
        flush()

    def fill(tmp: Path) -> None:
        np.save(tmp / "scores.npy", out.scores)
        (tmp / "teacher.json").write_text(json.dumps({"teacher": str(source), "queries": len(qids),
                                                      "pairs": int(offsets[-1])}))
    atomic_folder(folder, fill)
    return out


def distillation_targets(config, tset: TrainingSet) -> TeacherScores:
    """A distilling run's teacher scores of ``tset`` (cached), fused with BM25 where
    ``config.teacher_bm25_weight`` > 0 (the module docstring)."""
    scores = teacher_scores(config.teacher, tset, config.cache_dir, config.eval_batch_size)
    if config.teacher_bm25_weight > 0:
        from rerank_scaling.pipeline.prepare import candidates_for, load

        corpus = load(config, config.train_collection)  # the index and candidates the training set was built from
        scores.fuse_with_bm25(config.teacher_bm25_weight, candidates_for(config, corpus, tset.collection.queries))
    return scores


def fused_scores(scores: dict[str, dict[str, float]], bm25: Mapping[str, Sequence[tuple[str, float]]],
                 weight: float) -> dict[str, dict[str, float]]:
    """``qid -> doc -> score``: ``scores`` mixed with BM25's as the training targets are (the module docstring;
    z-scores over each query's scored documents; a document outside its BM25 list gets the list's lowest)."""
    if weight <= 0:
        return scores
    out = {}
    for qid, docs in scores.items():
        listed = dict(bm25.get(qid, ()))
        ids = list(docs)
        t = np.array([docs[d] for d in ids], dtype=np.float64)
        b = np.array([listed.get(d, _floor(listed)) for d in ids], dtype=np.float64)
        mixed = (1 - weight) * (t - t.mean()) / _spread(t) + weight * (b - b.mean()) / _spread(b)
        out[qid] = dict(zip(ids, map(float, mixed)))
    return out


def evaluate_teacher(config, evalsets) -> dict[str, dict[str, dict[str, float]]]:
    """The teacher as a reranker of each evaluation set's candidates (fused with BM25 as its training targets
    are): ``eval set -> metric -> qid -> value``, what the report sets beside BM25 with the paired test.
    Cached in ``<cache>/teacher-evals/`` per (teacher, weight, metrics, the sets' pairs): every distilling cell
    of a study records it (``per_query.parquet``, run ``teacher``) and only the first computes it."""
    from rerank_scaling.data.util import atomic_write_bytes
    from rerank_scaling.evaluation.rerank import rerank_per_query, score_pairs

    digest = hashlib.sha256(json.dumps([teacher_fingerprint(config.teacher), config.teacher_bm25_weight,
                                        list(config.metrics)]).encode())
    for evalset in evalsets:
        digest.update(json.dumps([evalset.name, evalset.relevance_level, sorted(evalset.candidates.items()),
                                  sorted(evalset.tail.items())]).encode())
    path = Path(config.cache_dir or default_cache_dir()) / "teacher-evals" / f"{digest.hexdigest()[:32]}.json"
    if path.is_file():
        return json.loads(path.read_text())
    model = load_teacher(config.teacher)
    out = {}
    for evalset in evalsets:
        with torch.inference_mode():
            scores = score_pairs(lambda q, d: model.score(q, d, batch_size=config.eval_batch_size), evalset)
        bm25 = {q: [*evalset.candidates.get(q, ()), *evalset.tail.get(q, ())] for q in evalset.collection.queries}
        out[evalset.name] = rerank_per_query(fused_scores(scores, bm25, config.teacher_bm25_weight), evalset,
                                             config.metrics)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(out).encode())
    return out


class TeacherEmbeddings:
    """``teacher_embeddings[B, d]``: the teacher query tower's raw embedding of each group's query."""

    entry = "teacher_embeddings"

    def __init__(self, qids: list[str], embeddings: torch.Tensor):
        self.rows, self.embeddings = {q: i for i, q in enumerate(qids)}, embeddings

    def groups(self, groups: list[Group]) -> torch.Tensor:
        return self.embeddings[[self.rows[g.qid] for g in groups]]


def teacher_query_embeddings(student, tset: TrainingSet, batch_size: int = 64) -> TeacherEmbeddings:
    """The teacher's embeddings of every training query of ``tset``, from ``student``'s teacher cache
    (a :class:`~rerank_scaling.models.query_distill.QueryStudent`): encoded once per (teacher, queries)."""
    qids = sorted(tset.collection.queries)
    texts = [tset.collection.queries[q] for q in qids]
    return TeacherEmbeddings(qids, student.cache.get(texts, "query", normalize=False, batch_size=batch_size))


def scores_training_pairs(config) -> bool:
    """Whether ``config``'s objective distils a teacher's scores of the training pairs (``teacher_scores``:
    MarginMSE, KL, CL+KD): the cells whose cache :func:`teacher_scores` fills."""
    from rerank_scaling.objectives import OBJECTIVES

    return "teacher_scores" in OBJECTIVES[config.objective].requires


def embeds_teacher_queries(config) -> bool:
    """Whether ``config``'s objective learns a teacher's query embeddings (query-distill's
    ``teacher_embeddings``): the cells whose teacher caches :func:`warm_query_teacher` fills."""
    from rerank_scaling.objectives import OBJECTIVES

    return "teacher_embeddings" in OBJECTIVES[config.objective].requires


def warm_query_teacher(config, tset: TrainingSet, corpora: list[dict[str, str]]) -> None:
    """Fill a query-distill config's teacher caches (its training queries' targets and each corpus's
    document index) before a grid's cells start, so cells running in parallel do not each encode them."""
    from rerank_scaling.evaluation.retrieval import corpus_chunks
    from rerank_scaling.models import get_family

    student = get_family(config.family).build(config)
    teacher_query_embeddings(student, tset, config.eval_batch_size)
    for docs in corpora:  # the chunks evaluation encodes (the cache is keyed by their texts)
        for _, texts in corpus_chunks(docs, config.eval_chunk_docs):
            student.encode(texts, "doc", config.eval_batch_size)
