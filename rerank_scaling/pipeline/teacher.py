"""A distillation teacher's scores (or query embeddings) of a training set, computed once and cached on disk.

The teacher (``[train] teacher``) is any model the toolkit can load that scores
(query, document) pairs -- in practice a cross-encoder:

* a run folder of this toolkit whose run saved its model (``[train] save_model
  = true`` writes ``model/``): the reranker study's model teaches the retriever
  study;
* a saved model folder itself (``family.json`` beside the weights);
* a Hugging Face cross-encoder id or folder (a one-logit sequence classifier,
  e.g. ``cross-encoder/ms-marco-MiniLM-L6-v2`` for users with internet).

Every pair a training group can hold is scored up front: each training query
against its positives and its whole negative pool (the candidates its hard
negatives are drawn from), in one batched pass. The scores are cached in
``<cache>/teacher-scores/<key>.json`` (``cache_dir`` or the default cache),
keyed by a fingerprint of the teacher's files and of every scored pair's
query and document text, so a different teacher, training set, split,
candidate depth or supervision never reuses them, and every cell of a grid
over the same training set shares one file. A pair outside them (a group
topped up with random corpus documents when a query's pool is short) is
scored when it is first asked for.

A ``query-distill`` run's teacher is a bi-encoder
(:mod:`rerank_scaling.models.query_distill`); its targets are the teacher's
query embeddings of every training query (:func:`teacher_query_embeddings`),
encoded once and cached on disk by the student's :class:`TeacherCache`, keyed
by the teacher's fingerprint and every query's text. Both tables hand a batch
its entry (``entry``: ``teacher_scores`` or ``teacher_embeddings``) through
``groups(groups)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch

from rerank_scaling.data.util import atomic_write_text, default_cache_dir
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


def training_pairs(tset: TrainingSet) -> list[tuple[str, str]]:
    """Every (query, doc) pair the groups of ``tset`` can hold (but random top-ups), sorted."""
    pairs = {(q, d) for q, d, _ in tset.instances}
    pairs.update((q, d) for q, pool in tset.pools.items() for d in pool)
    return sorted(pairs)


class TeacherScores:
    """``teacher_scores[B, G]`` of query groups from the cached table (and the teacher, for a pair outside it)."""

    entry = "teacher_scores"

    def __init__(self, source: str, table: dict[tuple[str, str], float], tset: TrainingSet, batch_size: int = 64,
                 model=None):
        self.source, self.table, self.tset, self.batch_size = source, table, tset, batch_size
        self._model = model

    def _score(self, pairs: list[tuple[str, str]]) -> None:
        if self._model is None:
            self._model = load_teacher(self.source)
        coll = self.tset.collection
        with torch.inference_mode():
            values = self._model.score([coll.queries[q] for q, _ in pairs], [coll.docs[d] for _, d in pairs],
                                       batch_size=self.batch_size)
        self.table.update(zip(pairs, map(float, values)))

    def groups(self, groups: list[Group]) -> torch.Tensor:
        missing = sorted({(g.qid, d) for g in groups for d in g.doc_ids} - self.table.keys())
        if missing:
            self._score(missing)
        return torch.tensor([[self.table[(g.qid, d)] for d in g.doc_ids] for g in groups], dtype=torch.float32)


def teacher_scores(source: str, tset: TrainingSet, cache_dir: str | None = None,
                   batch_size: int = 64) -> TeacherScores:
    """The teacher's scores of every pair of :func:`training_pairs`, from the cache or computed and cached."""
    pairs = training_pairs(tset)
    coll = tset.collection
    digest = hashlib.sha256(teacher_fingerprint(source).encode())
    for q, d in pairs:
        digest.update(f"{q}\t{coll.queries[q]}\t{d}\t{coll.docs[d]}\n".encode())
    path = Path(cache_dir or default_cache_dir()) / "teacher-scores" / f"{digest.hexdigest()[:32]}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        log.info("teacher scores loaded from %s", path)
        return TeacherScores(source, {(q, d): s for q, d, s in cached["scores"]}, tset, batch_size)
    out = TeacherScores(source, {}, tset, batch_size)
    out._score(pairs)
    atomic_write_text(path, json.dumps({"teacher": str(source), "pairs": len(pairs),
                                        "scores": [[q, d, out.table[(q, d)]] for q, d in pairs]}))
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
