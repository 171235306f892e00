"""Compiled (numba) loops of the BM25 index: its build's counting sort and its search.

Imported only when an index is built or searched; compiled once and cached on
disk (``NUMBA_CACHE_DIR``, which :func:`~rerank_scaling.data.util.keep_library_caches_in_cache`
points into the toolkit's cache). ``nogil``: the search runs in several
threads at once, each over its own queries, sharing the memory-mapped index.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _worse(s1, r1, s2, r2):
    """Whether (s1, r1) ranks below (s2, r2): a lower score, or the same score and a higher row."""
    return s1 < s2 or (s1 == s2 and r1 > r2)


@njit(cache=True, nogil=True)
def _sift_down(hs, hr, i, n):
    """Restore the heap (its root: the worst entry) below position ``i``."""
    while True:
        worst = i
        left, right = 2 * i + 1, 2 * i + 2
        if left < n and _worse(hs[left], hr[left], hs[worst], hr[worst]):
            worst = left
        if right < n and _worse(hs[right], hr[right], hs[worst], hr[worst]):
            worst = right
        if worst == i:
            return
        hs[i], hs[worst] = hs[worst], hs[i]
        hr[i], hr[worst] = hr[worst], hr[i]
        i = worst


@njit(cache=True, nogil=True)
def select(rows, scores, k, out_rows, out_scores):
    """Top-k of candidates (rows, scores), score descending then row ascending, into ``out_*``; returns how
    many. A bounded heap whose root is the worst kept entry: O(m log k), and cheap to compile."""
    hs = np.empty(k, dtype=np.float32)
    hr = np.empty(k, dtype=np.int32)
    n = 0
    for i in range(rows.shape[0]):
        s, r = scores[i], rows[i]
        if n < k:  # push, then sift up
            j = n
            hs[j], hr[j] = s, r
            n += 1
            while j > 0:
                parent = (j - 1) // 2
                if _worse(hs[j], hr[j], hs[parent], hr[parent]):
                    hs[j], hs[parent] = hs[parent], hs[j]
                    hr[j], hr[parent] = hr[parent], hr[j]
                    j = parent
                else:
                    break
        elif _worse(hs[0], hr[0], s, r):
            hs[0], hr[0] = s, r
            _sift_down(hs, hr, 0, n)
    for m in range(n - 1, -1, -1):  # pop the worst to the back: best first
        out_scores[m], out_rows[m] = hs[0], hr[0]
        hs[0], hr[0] = hs[m], hr[m]
        _sift_down(hs, hr, 0, m)
    return n


@njit(cache=True, nogil=True)
def search(data, indices, indptr, tokens, starts, bases, k, out_rows, out_scores, dense, first, last, acc, seen,
           touched):
    """Queries ``first..last-1``: each query token's postings added in query order into ``acc`` (float32,
    as bm25s's get_scores_from_ids), then the top-k of the documents reached with a positive score
    (``dense``: of every document, the query's base score added to all). ``acc``, ``seen``, ``touched``:
    this thread's buffers of the corpus's length, left zeroed."""
    for q in range(first, last):
        n_touched = 0
        for j in range(starts[q], starts[q + 1]):
            term = tokens[j]
            for p in range(indptr[term], indptr[term + 1]):
                d = indices[p]
                acc[d] += data[p]
                if not seen[d]:
                    seen[d] = True
                    touched[n_touched] = d
                    n_touched += 1
        if starts[q + 1] > starts[q]:
            if dense:  # every document has a score: the base added to all, as bm25s adds it
                full = acc + bases[q]
                rows = np.flatnonzero(full > 0).astype(np.int32)
                select(rows, full[rows], k, out_rows[q], out_scores[q])
            else:
                rows = touched[:n_touched]
                vals = acc[rows]
                pos = vals > 0
                select(rows[pos], vals[pos], k, out_rows[q], out_scores[q])
        for i in range(n_touched):
            d = touched[i]
            acc[d] = 0.0
            seen[d] = False
    return 0


@njit(cache=True, nogil=True)
def by_term(terms, docs, weights, n_terms):
    """Counting sort of (term, doc, weight) triples by term, each term's docs kept in their order."""
    counts = np.zeros(n_terms + 1, dtype=np.int64)
    for t in terms:
        counts[t + 1] += 1
    indptr = np.cumsum(counts)
    heads = indptr[:-1].copy()
    indices = np.empty(terms.shape[0], dtype=np.int32)
    data = np.empty(terms.shape[0], dtype=np.float32)
    for i in range(terms.shape[0]):
        t = terms[i]
        h = heads[t]
        indices[h] = docs[i]
        data[h] = weights[i]
        heads[t] = h + 1
    return data, indices, indptr
