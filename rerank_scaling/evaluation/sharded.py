"""Evaluation shared out over the processes of a multi-device cell: each scores its share, all get the whole.

:class:`ShardedModel` wraps a model that every rank holds whole (DDP's, or
FSDP's unsharded replica). Its ``score`` (pairs) and ``encode`` (texts) are
collective: every rank calls them with the same inputs, in the same order;
each runs the model on its share and the shares are gathered, so every rank
gets every score back and the rest of evaluation (rankings, metrics) is the
one-process code. Anything else is the model's own.

The shares are whole batches of the model's own batching: a model scores
longest-first in batches of ``batch_size`` (dynamic padding), so the inputs
are put in that order (by the model's token lengths, read from its tokenizer
cache: ``model.pairs`` for a cross-encoder, ``model.texts`` for a retriever)
and batch ``b`` goes to rank ``b % world``. Each batch then holds the same
inputs, padded to the same width, as in one process: the scores are identical
to one process's, not just close (tested on gloo). A model without those
caches is shared out in its input order (scores then equal up to float
rounding). Gathering uses ``torch.distributed.all_gather_object`` (CPU
copies); a whole corpus's embeddings for first-stage retrieval pass through it
too, which suits the shared collections, not MS MARCO's 8.8M passages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


def all_gather(obj):
    """Every rank's ``obj``, in rank order (the default process group)."""
    import torch.distributed as dist

    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def process_group() -> tuple[int, int]:
    """``(rank, world size)`` of this process; ``(0, 1)`` outside a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def batch_order(lengths: Sequence[int]) -> np.ndarray:
    """Indices longest first, ties in input order: the order the families score and encode in."""
    return np.argsort([-n for n in lengths], kind="stable")


def share(order: np.ndarray, batch_size: int, rank: int, world: int) -> np.ndarray:
    """The indices of ``order``'s batches ``rank``, ``rank + world``, ... (in order)."""
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    mine = batches[rank::world]
    return np.concatenate(mine) if mine else np.zeros(0, dtype=np.int64)


class ShardedModel:
    """``model`` with collective ``score`` and ``encode`` (module docstring). ``gather(obj)`` returns every
    rank's object in rank order (:func:`all_gather` by default)."""

    def __init__(self, model, rank: int, world: int, gather: Callable = all_gather):
        self.inner, self.rank, self.world, self.gather = model, rank, world, gather
        self.scored = 0  # inputs this rank ran the model on (scores + encodings), for tests and logs

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _pair_lengths(self, queries: Sequence[str], docs: Sequence[str]) -> list[int]:
        pairs = getattr(self.inner, "pairs", None)
        if pairs is not None and hasattr(pairs, "encode"):
            return [len(ids) for ids, _ in pairs.encode(queries, docs)]
        return [0] * len(queries)  # input order

    def _text_lengths(self, texts: Sequence[str], kind: str) -> list[int]:
        tokenizer = getattr(self.inner, "texts", None)
        if tokenizer is not None and hasattr(tokenizer, "encode"):
            return [len(ids) for ids in tokenizer.encode(texts, kind == "query")]
        return [0] * len(texts)

    def score(self, queries: Sequence[str], docs: Sequence[str], batch_size: int = 64, **kwargs) -> np.ndarray:
        if len(queries) != len(docs):
            raise ValueError("queries and docs differ in length")
        mine = share(batch_order(self._pair_lengths(queries, docs)), batch_size, self.rank, self.world)
        part = self.inner.score([queries[i] for i in mine], [docs[i] for i in mine], batch_size=batch_size, **kwargs)
        self.scored += len(mine)
        out = np.empty(len(queries), dtype=np.float32)
        for idx, values in self.gather((mine, np.asarray(part, dtype=np.float32))):
            out[idx] = values
        return out

    def encode(self, texts: Sequence[str], kind: str, batch_size: int = 64, **kwargs):
        mine = share(batch_order(self._text_lengths(texts, kind)), batch_size, self.rank, self.world)
        part = self.inner.encode([texts[i] for i in mine], kind, batch_size=batch_size, **kwargs)
        self.scored += len(mine)
        device = part.device if isinstance(part, torch.Tensor) else None
        local = part.cpu() if device is not None else part
        gathered = self.gather((mine, local))
        order = np.concatenate([idx for idx, _ in gathered])
        inverse = np.empty(len(texts), dtype=np.int64)
        inverse[order] = np.arange(len(texts))
        if device is not None:
            return torch.cat([values for _, values in gathered])[torch.from_numpy(inverse)].to(device)
        import scipy.sparse

        stacked = scipy.sparse.vstack([values for _, values in gathered], format="csr")
        return stacked[inverse]


def sharded(model) -> object:
    """``model`` as a :class:`ShardedModel` over the running process group; itself outside one."""
    rank, world = process_group()
    return model if world == 1 else ShardedModel(model, rank, world)
