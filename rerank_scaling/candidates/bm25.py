"""First-stage BM25 candidates (bm25s's tokenizer and scoring), cached on disk as compact arrays.

Tokenisation: lower-cased ``\\w\\w+`` tokens, English stopwords removed, English
Snowball stemming when PyStemmer is installed (``pip install PyStemmer``;
``BM25Settings(stemmer="none")`` disables it; without PyStemmer the default
falls back to no stemming and the settings -- hence the cache key -- say so).

Ordering is deterministic: the top ``k`` are taken by score descending, ties
by doc_id ascending (:func:`rerank_scaling.data.types.rank`), including ties
at the cut-off. Only documents sharing at least one term with the query
(score > 0) are candidates, so a query without term overlap gets an empty list.

Two caches, both under ``cache_dir`` (default ``$RERANK_SCALING_CACHE`` or
``~/.cache/rerank_scaling``) and both written atomically:

* the **index** (:mod:`rerank_scaling.candidates.index`), once per corpus and
  settings (``bm25/<name>-<key>/``, keyed by a fingerprint of the documents, the
  settings and the bm25s version) -- every query set, split and process reuses it;
* the **candidate arrays** (:mod:`rerank_scaling.candidates.arrays`), once per
  (index, query set, ``k``) (``candidates/<name>-<key>/``), memory-mapped by every
  process that reads them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rerank_scaling.candidates.arrays import CandidateLists, qid_array
from rerank_scaling.candidates.tokens import BM25Settings
from rerank_scaling.data.types import Collection, sorted_ids
from rerank_scaling.data.util import default_cache_dir, stable_key
from rerank_scaling.errors import UserError

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 1: JSON rankings (read no more); 2: a saved index + candidate arrays


# --------------------------------------------------------------------------- #
# fingerprints and cache keys
# --------------------------------------------------------------------------- #
def fingerprint(items: Mapping[str, str]) -> str:
    """sha256 over the sorted (id, text) pairs of ``items``; a store's own (computed when it was written)."""
    from rerank_scaling.data.store import fingerprint_items

    known = getattr(items, "fingerprint", None)
    if known:
        return known
    return fingerprint_items((k, items[k]) for k in sorted_ids(items))


def _bm25s_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bm25s")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "collection"


def _root(cache_dir: Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def _index_key(collection: Collection, settings: BM25Settings) -> str:
    meta = {"format": CACHE_FORMAT, "docs": fingerprint(collection.docs), "settings": settings.key(),
            "bm25s": _bm25s_version()}
    return stable_key(json.dumps(meta, sort_keys=True))[:20]


def bm25_index_path(collection: Collection, settings: BM25Settings | None = None,
                    cache_dir: Path | None = None) -> Path:
    """The folder of the saved index of ``collection``'s documents (:func:`bm25_index`)."""
    settings = settings or BM25Settings()
    return _root(cache_dir) / "bm25" / f"{_safe_name(corpus_name(collection))}-{_index_key(collection, settings)}"


def corpus_name(collection: Collection) -> str:
    """The name of ``collection``'s corpus, without the query set's part: ``corpus#dev`` and
    ``corpus#train`` (a BEIR folder's qrels splits), ``msmarco-passage/dev/small`` and
    ``msmarco-passage/train`` (ir_datasets ids) search one corpus, so they share one index (its key is the
    documents' fingerprint; the name only makes the folder readable)."""
    return collection.name.split("#")[0].split("/")[0]


def bm25_cache_path(
    collection: Collection,
    queries: Mapping[str, str],
    k: int = 100,
    settings: BM25Settings | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """The candidate-array folder that :func:`bm25_candidates` reads/writes for these inputs."""
    settings = settings or BM25Settings()
    meta = {"format": CACHE_FORMAT, "index": _index_key(collection, settings), "queries": fingerprint(queries),
            "k": k}
    digest = stable_key(json.dumps(meta, sort_keys=True))[:20]
    return _root(cache_dir) / "candidates" / f"{_safe_name(collection.name)}-{digest}"


def _open_cache(path: Path, doc_ids) -> CandidateLists | None:
    if not (path / "candidates.json").is_file():
        return None
    try:
        return CandidateLists.open(path, doc_ids)
    except (OSError, ValueError) as exc:  # damaged: recompute
        log.warning("ignoring unreadable BM25 cache %s (%s)", path, exc)
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        return None


# --------------------------------------------------------------------------- #
# the index and the candidates
# --------------------------------------------------------------------------- #
def bm25_index(collection: Collection, settings: BM25Settings | None = None, cache_dir: Path | None = None):
    """The saved :class:`~rerank_scaling.candidates.index.BM25Index` of ``collection``'s documents, built
    (once per corpus and settings) if missing."""
    from rerank_scaling.candidates.index import BM25Index, build_index

    settings = settings or BM25Settings()
    folder = bm25_index_path(collection, settings, cache_dir)
    if (folder / "index.json").is_file():
        try:
            return BM25Index(folder)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable BM25 index %s (%s)", folder, exc)
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    return build_index(folder, collection.docs, settings)


def bm25_candidates(
    collection: Collection,
    queries: Mapping[str, str],
    k: int = 100,
    settings: BM25Settings | None = None,
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> CandidateLists:
    """Top-``k`` BM25 documents of ``collection`` for each query, cached on disk.

    Reads the cached candidate arrays when they exist (module docstring), else
    searches the saved index (built first if missing) with ``threads`` threads
    (default: every core) and writes them. Every query of ``queries`` is a key
    of the result; a query with no term overlap maps to an empty list.
    """
    settings = settings or BM25Settings()
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserError(f"BM25 k must be a positive integer, got {k!r}")
    path = bm25_cache_path(collection, queries, k, settings, cache_dir)
    doc_ids = sorted_ids(collection.docs)
    cached = _open_cache(path, doc_ids)
    if cached is not None:
        log.info("BM25 candidates loaded from %s", path)
        return cached

    t0 = time.perf_counter()
    qids = qid_array(list(queries))
    texts = [queries[q.decode("utf-8")] for q in qids]
    if len(doc_ids):
        rows, scores = bm25_index(collection, settings, cache_dir).search(texts, k, threads=threads)
    else:
        rows, scores = np.full((len(texts), k), -1, np.int32), np.zeros((len(texts), k), np.float32)
    log.info("BM25 on %s: %d docs, %d queries in %.2fs", collection.name, len(doc_ids), len(texts),
             time.perf_counter() - t0)
    CandidateLists(qids, rows, scores, doc_ids).save(
        path, {"collection": collection.name, "k": k, "settings": settings.key()})
    return CandidateLists.open(path, doc_ids)
