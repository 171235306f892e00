"""First-stage BM25 candidates with bm25s, cached on disk.

Tokenisation: lower-cased ``\\w\\w+`` tokens, English stopwords removed, English
Snowball stemming when PyStemmer is installed (``pip install PyStemmer``;
``BM25Settings(stemmer="none")`` disables it; without PyStemmer the default
falls back to no stemming and the settings -- hence the cache key -- say so).

Ordering is deterministic: every document's score is computed, and the top
``k`` are taken by score descending, ties by doc_id ascending
(:func:`rerank_scaling.data.types.rank`), including ties at the cut-off.
Only documents sharing at least one term with the query (score > 0) are
candidates, so a query without term overlap gets an empty list.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rerank_scaling.data.types import Collection, Ranking
from rerank_scaling.data.util import atomic_write_text, default_cache_dir, stable_key
from rerank_scaling.errors import UserError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def _pystemmer_available() -> bool:
    try:
        import Stemmer  # noqa: F401
    except ImportError:
        return False
    return True


def _default_stemmer() -> str:
    return "english" if _pystemmer_available() else "none"


@dataclass(frozen=True)
class BM25Settings:
    """BM25 parameters (Anserini-like defaults) and tokenisation.

    ``stemmer``: a PyStemmer (Snowball) language such as ``"english"``, or
    ``"none"``.  ``stopwords``: a bm25s stopword language (``"en"``) or ``"none"``.
    """

    k1: float = 0.9
    b: float = 0.4
    method: str = "lucene"
    stemmer: str = field(default_factory=_default_stemmer)
    stopwords: str = "en"

    def key(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- #
# fingerprints and cache
# --------------------------------------------------------------------------- #
def _fingerprint_texts(items: dict[str, str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for k in sorted(items):
        h.update(k.encode("utf-8"))
        h.update(b"\x00")
        h.update(items[k].encode("utf-8"))
        h.update(b"\x01")
    return h.hexdigest()


def _bm25s_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bm25s")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "collection"


def bm25_cache_path(
    collection: Collection,
    queries: dict[str, str],
    k: int = 100,
    settings: BM25Settings | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """The cache file that :func:`bm25_candidates` reads/writes for these inputs."""
    settings = settings or BM25Settings()
    meta = {
        "format": CACHE_FORMAT,
        "name": collection.name,
        "docs": _fingerprint_texts(collection.docs),
        "queries": _fingerprint_texts(queries),
        "k": k,
        "settings": settings.key(),
        "bm25s": _bm25s_version(),
    }
    digest = stable_key(json.dumps(meta, sort_keys=True))[:20]
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "candidates" / f"{_safe_name(collection.name)}-{digest}.json"


def _load_cache(path: Path) -> Ranking | None:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return {q: [(str(d), float(s)) for d, s in lst] for q, lst in payload["ranking"].items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # corrupt cache: recompute
        log.warning("ignoring unreadable BM25 cache %s (%s)", path, exc)
        return None


# --------------------------------------------------------------------------- #
# retrieval
# --------------------------------------------------------------------------- #
def _tokenizer(settings: BM25Settings):
    import bm25s

    stemmer = None
    if settings.stemmer and settings.stemmer != "none":
        try:
            import Stemmer
        except ImportError:
            raise UserError(
                f"BM25 stemmer '{settings.stemmer}' needs PyStemmer (pip install PyStemmer) or use stemmer='none'"
            ) from None
        try:
            stemmer = Stemmer.Stemmer(settings.stemmer)
        except KeyError:
            raise UserError(f"unknown PyStemmer language '{settings.stemmer}'") from None
    stopwords = None if settings.stopwords in ("", "none", None) else settings.stopwords
    return bm25s.tokenization.Tokenizer(lower=True, stopwords=stopwords, stemmer=stemmer)


def _top_k(scores: np.ndarray, k: int, id_rank: np.ndarray) -> np.ndarray:
    """Indices of the top-k positive scores; ties (also at the cut-off) by doc_id."""
    pos = np.flatnonzero(scores > 0)
    if pos.size == 0:
        return pos
    if pos.size > k:
        kth = np.partition(scores[pos], pos.size - k)[pos.size - k]  # k-th largest
        pos = pos[scores[pos] >= kth]
    order = np.lexsort((id_rank[pos], -scores[pos]))
    return pos[order][:k]


def bm25_candidates(
    collection: Collection,
    queries: dict[str, str],
    k: int = 100,
    settings: BM25Settings | None = None,
    cache_dir: Path | None = None,
) -> Ranking:
    """Top-``k`` BM25 documents of ``collection`` for each query, cached on disk.

    The cache file (``cache_dir/candidates/<name>-<hash>.json``; default cache
    ``$RERANK_SCALING_CACHE`` or ``~/.cache/rerank_scaling``) is keyed by the
    collection name, a fingerprint of its documents and of ``queries``, ``k``
    and ``settings``; it is written atomically, and a second call loads it.
    Every query of ``queries`` is a key of the result; a query with no term
    overlap maps to an empty list.
    """
    settings = settings or BM25Settings()
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserError(f"BM25 k must be a positive integer, got {k!r}")
    path = bm25_cache_path(collection, queries, k, settings, cache_dir)
    cached = _load_cache(path)
    if cached is not None:
        log.info("BM25 candidates loaded from %s", path)
        return cached

    t0 = time.perf_counter()
    ranking = _retrieve(collection.docs, queries, k, settings)
    log.info("BM25 on %s: %d docs, %d queries in %.2fs", collection.name, len(collection.docs), len(queries),
             time.perf_counter() - t0)
    payload = {
        "collection": collection.name,
        "k": k,
        "settings": settings.key(),
        "ranking": {q: [[d, s] for d, s in lst] for q, lst in ranking.items()},
    }
    atomic_write_text(path, json.dumps(payload))
    return ranking


def _retrieve(docs: dict[str, str], queries: dict[str, str], k: int, settings: BM25Settings) -> Ranking:
    import bm25s

    if not docs:
        return {q: [] for q in queries}
    doc_ids = list(docs)
    tok = _tokenizer(settings)
    corpus_ids = tok.tokenize([docs[d] for d in doc_ids], update_vocab=True, return_as="ids", show_progress=False)
    vocab = tok.get_vocab_dict()
    retriever = bm25s.BM25(k1=settings.k1, b=settings.b, method=settings.method)
    retriever.index((corpus_ids, vocab), show_progress=False)

    qids = list(queries)
    query_ids = tok.tokenize([queries[q] for q in qids], update_vocab=False, return_as="ids", show_progress=False)
    empty_id = vocab.get("")
    # doc_id string order, for deterministic tie-breaking in numpy
    id_rank = np.empty(len(doc_ids), dtype=np.int64)
    id_rank[np.argsort(np.array(doc_ids, dtype=object), kind="stable")] = np.arange(len(doc_ids))
    out: Ranking = {}
    for qid, ids in zip(qids, query_ids):
        ids = [i for i in ids if i != empty_id]
        if not ids:
            out[qid] = []
            continue
        scores = retriever.get_scores_from_ids(ids)
        top = _top_k(scores, k, id_rank)
        out[qid] = [(doc_ids[i], float(scores[i])) for i in top]
    return out
