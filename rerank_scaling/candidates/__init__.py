"""First-stage candidates: BM25 (a saved index, candidate arrays), and TREC run files."""

from rerank_scaling.candidates.arrays import CandidateLists
from rerank_scaling.candidates.bm25 import (BM25Settings, bm25_cache_path, bm25_candidates, bm25_index,
                                            bm25_index_path)
from rerank_scaling.candidates.trec import read_trec_run, write_trec_run

__all__ = [
    "BM25Settings",
    "CandidateLists",
    "bm25_cache_path",
    "bm25_candidates",
    "bm25_index",
    "bm25_index_path",
    "read_trec_run",
    "write_trec_run",
]
