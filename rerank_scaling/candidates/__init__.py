"""First-stage candidates: BM25, and TREC run files."""

from rerank_scaling.candidates.bm25 import BM25Settings, bm25_cache_path, bm25_candidates
from rerank_scaling.candidates.trec import read_trec_run, write_trec_run

__all__ = [
    "BM25Settings",
    "bm25_cache_path",
    "bm25_candidates",
    "read_trec_run",
    "write_trec_run",
]
