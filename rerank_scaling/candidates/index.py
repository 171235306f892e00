"""A BM25 index built once per (corpus, settings), saved, and memory-mapped by every process that searches it.

Built without holding the corpus's tokens as Python lists: documents are
tokenised in blocks by bm25s's own tokenizer (the vocabulary grows block by
block, as in one call) into flat int32 arrays; each block's distinct (document,
term) pairs and their frequencies come from one sort; BM25's per-pair weights
are computed by bm25s's own scoring functions on those arrays (the same float
operations, so the same float32 weights as ``bm25s.BM25.index``); a counting
sort by term gives the term-major (CSC) layout bm25s searches: ``data``
(weights), ``indices`` (document rows), ``indptr`` (each term's postings).
Documents are numbered in sorted id order
(:func:`rerank_scaling.data.types.sorted_ids`), so "ties by doc_id" is "ties by
row".

Search (:meth:`BM25Index.search`) scores each query exactly as bm25s's
``get_scores_from_ids`` does -- every query token's postings added in query
order into float32 -- in a compiled loop (numba, :mod:`~rerank_scaling.candidates._kernels`)
over the queries, spread over threads that share the mapped index; it visits only the documents a query's
terms reach and keeps the top ``k`` of those with a positive score by score
descending, then row ascending (ties at the cut-off included). Methods with a
non-occurrence term (``bm25l``, ``bm25+``) give every document a score: there
the whole score vector is ranked, as before.

Files (``<cache>/bm25/<name>-<key>/``): ``data.npy``, ``indices.npy``,
``indptr.npy``, ``nonoccurrence.npy`` (bm25l / bm25+), ``vocab.json`` (the
tokenizer's vocabulary, to tokenise queries as the corpus was), ``index.json``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rerank_scaling.candidates.tokens import BM25Settings
from rerank_scaling.candidates.tokens import tokenizer as bm25_tokenizer
from rerank_scaling.data.store import atomic_folder
from rerank_scaling.data.types import sorted_ids

log = logging.getLogger(__name__)

INDEX_FORMAT = 1
BLOCK = 50_000  # documents tokenised at a time


def _kernels():
    """The compiled loops (:mod:`rerank_scaling.candidates._kernels`), numba's disk cache in the toolkit's."""
    from rerank_scaling.data.util import keep_library_caches_in_cache

    keep_library_caches_in_cache()
    from rerank_scaling.candidates import _kernels as kernels

    return kernels


# --------------------------------------------------------------------------- #
# the index
# --------------------------------------------------------------------------- #
class BM25Index:
    """A saved BM25 index (memory-mapped) and the tokenizer state to tokenise queries as its corpus."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "index.json").read_text())
        from rerank_scaling.data.store import mapped

        self.data = mapped(self.folder / "data.npy")
        self.indices = mapped(self.folder / "indices.npy")
        self.indptr = mapped(self.folder / "indptr.npy")
        path = self.folder / "nonoccurrence.npy"
        self.nonoccurrence = np.load(path) if path.is_file() else None
        self._tokenizer = None

    @property
    def n_docs(self) -> int:
        return int(self.meta["docs"])

    def tokenizer(self):
        """The tokenizer with the corpus's vocabulary (loaded on first use)."""
        if self._tokenizer is None:
            tok = bm25_tokenizer(BM25Settings(**self.meta["settings"]))
            vocab = json.loads((self.folder / "vocab.json").read_text())
            if tok.stemmer is not None:
                tok.stem_to_sid = vocab
                tok.word_to_stem = {}
                tok.word_to_id = {"": vocab[""]} if "" in vocab else {}
            else:
                tok.word_to_id = vocab
            self._tokenizer = tok
        return self._tokenizer

    def query_tokens(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of queries, as bm25s tokenises them against the corpus vocabulary (the empty-text
        token dropped: a query without a known term scores nothing)."""
        tok = self.tokenizer()
        empty = self.meta.get("empty_token")
        ids = tok.tokenize(list(texts), update_vocab=False, return_as="ids", show_progress=False)
        return [[i for i in q if i != empty] for q in ids]

    def search(self, texts: Sequence[str], k: int, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows (int32, -1 past the end of a short list) and scores (float32) of each query:
        ``[n, k]`` each, score descending, row ascending among ties (module docstring)."""
        tokens = self.query_tokens(texts)
        flat = np.fromiter((t for q in tokens for t in q), dtype=np.int64, count=sum(map(len, tokens)))
        starts = np.zeros(len(tokens) + 1, dtype=np.int64)
        np.cumsum([len(q) for q in tokens], out=starts[1:])
        dense = self.nonoccurrence is not None
        # bm25s adds the non-occurrence sum as numpy sums it (pairwise, float32): computed the same way here
        bases = (np.array([self.nonoccurrence[np.asarray(q, dtype=np.int64)].sum() for q in tokens], dtype=np.float32)
                 if dense else np.zeros(len(tokens), dtype=np.float32))
        rows = np.full((len(tokens), k), -1, dtype=np.int32)
        scores = np.zeros((len(tokens), k), dtype=np.float32)
        if not tokens:
            return rows, scores
        search = _kernels().search
        n = len(tokens)
        threads = max(1, min(threads or os.cpu_count() or 1, n))
        bounds = np.linspace(0, n, threads + 1).astype(np.int64)

        def part(i: int) -> None:  # one thread's queries, with its own buffers (numba releases the GIL)
            acc = np.zeros(self.n_docs, dtype=np.float32)
            seen = np.zeros(self.n_docs, dtype=np.bool_)
            touched = np.empty(self.n_docs, dtype=np.int32)
            search(self.data, self.indices, self.indptr, flat, starts, bases, k, rows, scores, dense,
                   bounds[i], bounds[i + 1], acc, seen, touched)
        if threads == 1:
            part(0)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(part, range(threads)))
        return rows, scores


def build_index(folder: Path, docs: Mapping[str, str], settings, progress=None) -> BM25Index:
    """Build the index of ``docs`` into ``folder`` (written to a temporary folder, then renamed)."""
    import bm25s
    from bm25s.scoring import _build_idf_array, _build_nonoccurrence_array, _select_idf_scorer, _select_tfc_scorer

    t0 = time.perf_counter()
    ids = sorted_ids(docs)
    n = len(ids)
    tok = bm25_tokenizer(settings)
    params = bm25s.BM25(k1=settings.k1, b=settings.b, method=settings.method)
    terms, docs_of, tfs, lengths = [], [], [], np.zeros(n, dtype=np.int64)
    for start in range(0, n, BLOCK):
        block = [docs[d] for d in ids[start:start + BLOCK]]
        tokens = list(tok.streaming_tokenize(block, update_vocab=True, allow_empty=True))
        counts = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
        flat = np.fromiter((x for t in tokens for x in t), dtype=np.int64, count=int(counts.sum()))
        del tokens, block
        lengths[start:start + len(counts)] = counts
        rows = np.repeat(np.arange(start, start + len(counts), dtype=np.int64), counts)
        # distinct (doc, term) pairs of the block, doc-major, and their frequencies
        keys, tf = np.unique(rows * (1 << 32) + flat, return_counts=True)
        docs_of.append((keys >> 32).astype(np.int32))
        terms.append((keys & 0xFFFFFFFF).astype(np.int32))
        tfs.append(tf.astype(np.int32))
        if progress:
            progress(min(start + BLOCK, n), n)
    vocab = tok.get_vocab_dict()
    n_terms = max(vocab.values(), default=-1) + 1
    terms_a = np.concatenate(terms) if terms else np.zeros(0, np.int32)
    docs_a = np.concatenate(docs_of) if docs_of else np.zeros(0, np.int32)
    tf_a = np.concatenate(tfs) if tfs else np.zeros(0, np.int32)
    del terms, docs_of, tfs
    df = np.bincount(terms_a, minlength=n_terms)
    doc_frequencies = {int(t): int(c) for t, c in enumerate(df)}
    avg_doc_len = lengths.mean() if n else 0.0  # as bm25s: np.array(lengths).mean()
    dtype = params.dtype
    nonocc = None
    if params.method in params.methods_requiring_nonoccurrence:
        nonocc = _build_nonoccurrence_array(doc_frequencies=doc_frequencies, n_docs=n,
                                            compute_idf_fn=_select_idf_scorer(params.idf_method),
                                            calculate_tfc_fn=_select_tfc_scorer(params.method), l_d=avg_doc_len,
                                            l_avg=avg_doc_len, k1=params.k1, b=params.b, delta=params.delta,
                                            dtype=dtype)
    idf = _build_idf_array(doc_frequencies=doc_frequencies, n_docs=n,
                           compute_idf_fn=_select_idf_scorer(params.idf_method), dtype=dtype)
    # bm25s computes each document's weights as tfc(tf float32, doc length int, avg float64) * idf float32,
    # then stores float32; the same element-wise operations on arrays give the same floats
    weights = np.empty(len(terms_a), dtype=dtype)
    tfc = _select_tfc_scorer(params.method)
    step = 1 << 24
    for s in range(0, len(terms_a), step):
        t, d = terms_a[s:s + step], docs_a[s:s + step]
        w = idf[t] * tfc(tf_array=tf_a[s:s + step].astype(dtype), l_d=lengths[d].astype(np.float64),
                         l_avg=avg_doc_len, k1=params.k1, b=params.b, delta=params.delta)
        if nonocc is not None:
            w -= nonocc[t]
        weights[s:s + step] = w
    del tf_a
    data, indices, indptr = _kernels().by_term(terms_a, docs_a, weights, n_terms)
    del terms_a, docs_a, weights
    settings_key = settings.key()

    folder = Path(folder)

    def fill(tmp: Path) -> None:
        np.save(tmp / "data.npy", data)
        np.save(tmp / "indices.npy", indices)
        np.save(tmp / "indptr.npy", indptr)
        if nonocc is not None:
            np.save(tmp / "nonoccurrence.npy", nonocc)
        state = tok.stem_to_sid if tok.stemmer is not None else tok.word_to_id
        (tmp / "vocab.json").write_text(json.dumps(state))
        meta = {"format": INDEX_FORMAT, "docs": n, "terms": n_terms, "postings": int(len(data)),
                "settings": settings_key, "empty_token": vocab.get(""), "seconds": round(time.perf_counter() - t0, 2)}
        (tmp / "index.json").write_text(json.dumps(meta, indent=1))
    atomic_folder(folder, fill, marker="index.json")  # built by another process meanwhile: the same index
    log.info("BM25 index of %d documents (%d terms, %d postings) in %.1fs", n, n_terms, len(data),
             time.perf_counter() - t0)
    return BM25Index(folder)
