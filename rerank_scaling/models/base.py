"""What the model families share, so that a family module holds only what is its own.

* Tokenising: :class:`PairTokenizer` caches each distinct text's ids (a
  document appears in many lists and epochs) and pads a batch to its longest
  entry (dynamic padding); it assembles (query, document) pairs with the
  tokenizer's own special-token template (learnt by probing, so BERT,
  ModernBERT and RoBERTa all work). :class:`TextTokenizer` encodes single
  texts, ``[CLS] text [SEP]``, with the same cache.
* Pooled towers (:class:`Tower`): a backbone, its pooling (``mean``, ``cls``,
  ``last``) and an optional projection; BERT backbones run our packed forward
  (:mod:`rerank_scaling.models.packed`). :func:`encode_sorted` encodes many texts
  longest first in batches (dynamic padding), without gradients.
* Retrievers (:class:`InBatchRetriever`): the ``"in-batch"`` training batch --
  each query against every document of the batch: the groups' positives,
  their hard negatives when the objective's ``negatives`` include ``"hard"``,
  and ``corpus_negatives`` random corpus documents shared by the batch when
  they include ``"corpus"`` (drawn by a seeded hash of the batch's groups, so a
  resumed run draws the same ones); each distinct document is encoded once per
  batch. Scoring (query, document) pairs encodes each distinct text once and
  leaves the pair's score to the family.
* LoRA (:func:`lora_settings`): a family's LoRA keys as the arguments of
  :func:`~rerank_scaling.models.decoder.with_lora`.

A saved model's ``family.json`` is written and read by
:func:`~rerank_scaling.models.family.write_family_file` /
:func:`~rerank_scaling.models.family.read_family_file`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import numpy as np
import torch

from rerank_scaling.data.util import stable_hash
from rerank_scaling.models.decoder import last_token, with_lora
from rerank_scaling.models.packed import BertRunner


class PairTokenizer:
    """Caching (query, doc) pair encoder with dynamic padding.

    The cache holds each distinct text's ids (int32) and at most ``max_cached_tokens`` of them: beyond
    it the oldest texts are dropped (tokenised again if they come back), so a corpus of millions of
    passages never sits in memory as Python lists (~41 bytes a token) -- ~4 bytes a token plus the key,
    up to the cap (about 70 MB of ids by default).
    """

    #: the most token ids the cache keeps (oldest texts dropped first)
    max_cached_tokens = 1 << 24

    def __init__(self, tokenizer, max_length: int = 256, max_query_length: int = 64):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.max_query_length = max_query_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._prefix, self._middle, self._suffix, self._types = self._probe_template(tokenizer)
        self.n_special = len(self._prefix) + len(self._middle) + len(self._suffix)
        self._cache: dict[tuple[bool, str], np.ndarray] = {}
        self._cached_tokens = 0

    @staticmethod
    def _probe_template(tokenizer):
        """Find the special tokens around a pair: prefix q middle d suffix."""
        a = tokenizer("a", add_special_tokens=False)["input_ids"]
        b = tokenizer("b", add_special_tokens=False)["input_ids"]
        enc = tokenizer("a", "b")
        ids = list(enc["input_ids"])
        i = next(k for k in range(len(ids)) if ids[k : k + len(a)] == a)
        j = next(k for k in range(i + len(a), len(ids)) if ids[k : k + len(b)] == b)
        prefix, middle, suffix = ids[:i], ids[i + len(a) : j], ids[j + len(b) :]
        types = enc.get("token_type_ids")
        second_type = types[j] if types is not None else None
        return prefix, middle, suffix, second_type

    def ids(self, texts: Sequence[str], is_query: bool) -> list[list[int]]:
        """Token ids of each text without special tokens, cut to the query or document limit (cached)."""
        fresh = self._tokenize(texts, is_query)
        out = [(fresh[(is_query, t)] if (is_query, t) in fresh else self._cache[(is_query, t)]).tolist()
               for t in texts]
        self._remember(fresh)
        return out

    def _tokenize(self, texts: Sequence[str], is_query: bool) -> dict[tuple[bool, str], np.ndarray]:
        """The ids of the texts not in the cache, in one batched call."""
        limit = self.max_query_length if is_query else self.max_length
        missing = list(dict.fromkeys(t for t in texts if (is_query, t) not in self._cache))
        if not missing:
            return {}
        encoded = self.tokenizer(missing, add_special_tokens=False, truncation=True, max_length=limit)["input_ids"]
        return {(is_query, text): np.asarray(ids, dtype=np.int32) for text, ids in zip(missing, encoded)}

    def _remember(self, fresh: dict[tuple[bool, str], np.ndarray]) -> None:
        for key, ids in fresh.items():
            self._cache[key] = ids
            self._cached_tokens += len(ids)
        while self._cached_tokens > self.max_cached_tokens and self._cache:  # drop the oldest texts
            self._cached_tokens -= len(self._cache.pop(next(iter(self._cache))))

    def warm(self, queries: Sequence[str] = (), docs: Sequence[str] = ()) -> None:
        """Tokenise many texts in one batched call (much faster than one by one), up to the cache's cap."""
        self._remember(self._tokenize(queries, True))
        self._remember(self._tokenize(docs, False))

    def encode(self, queries: Sequence[str], docs: Sequence[str]) -> list[tuple[list[int], int]]:
        """Pair ids and the length of the first segment, one per (query, doc)."""
        q_ids = self.ids(queries, True)
        d_ids = self.ids(docs, False)
        out = []
        for q, d in zip(q_ids, d_ids):
            room = max(self.max_length - self.n_special - len(q), 0)
            first = self._prefix + q + self._middle
            out.append((first + d[:room] + self._suffix, len(first)))
        return out

    def collate(self, encoded: Sequence[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        """Pad a list of encoded pairs to the longest one (dynamic padding)."""
        n = len(encoded)
        lengths = np.fromiter((len(ids) for ids, _ in encoded), dtype=np.int64, count=n)
        width = int(lengths.max())
        cols = np.arange(width)
        valid = cols[None, :] < lengths[:, None]
        input_ids = np.full((n, width), self.pad_id, dtype=np.int64)
        input_ids[valid] = np.fromiter(
            (t for ids, _ in encoded for t in ids), dtype=np.int64, count=int(lengths.sum())
        )
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(valid.astype(np.int64)),
        }
        if self._types is not None:
            firsts = np.fromiter((first for _, first in encoded), dtype=np.int64, count=n)
            types = valid & (cols[None, :] >= firsts[:, None])
            batch["token_type_ids"] = torch.from_numpy(types.astype(np.int64) * int(self._types))
        return batch


class TextTokenizer:
    """``[CLS] text [SEP]`` ids per text, cut to the query / document limit (special tokens
    included), cached and collated by a :class:`PairTokenizer` (one text, token type 0)."""

    def __init__(self, tokenizer, max_length: int = 256, max_query_length: int = 64, end_with_eos: bool = False):
        self.pairs = PairTokenizer(tokenizer, max_length=max_length, max_query_length=max_query_length)
        self.tokenizer = tokenizer
        a = tokenizer("a", add_special_tokens=False)["input_ids"]
        ids = list(tokenizer("a")["input_ids"])
        i = next(k for k in range(len(ids)) if ids[k : k + len(a)] == a)
        self._prefix, self._suffix = ids[:i], ids[i + len(a):]
        if end_with_eos and not self._suffix and tokenizer.eos_token_id is not None:
            self._suffix = [tokenizer.eos_token_id]  # a decoder's last-token pooling reads the end of the text
        self.n_special = len(self._prefix) + len(self._suffix)

    @property
    def max_length(self) -> int:
        return self.pairs.max_length

    @property
    def max_query_length(self) -> int:
        return self.pairs.max_query_length

    def encode(self, texts: Sequence[str], is_query: bool) -> list[list[int]]:
        room = max((self.max_query_length if is_query else self.max_length) - self.n_special, 0)
        return [self._prefix + ids[:room] + self._suffix for ids in self.pairs.ids(texts, is_query)]

    def collate(self, encoded: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        return self.pairs.collate([(ids, len(ids)) for ids in encoded])


class Tower(torch.nn.Module):
    """A backbone, its pooling and an optional projection: texts -> embeddings ``[n, d]``. ``lora``:
    the keyword arguments of :func:`~rerank_scaling.models.decoder.with_lora` (``rank``, ...), or None."""

    def __init__(self, backbone: torch.nn.Module, pooling: str, projection: int | None = None,
                 lora: dict | None = None):
        super().__init__()
        if getattr(backbone, "pooler", None) is not None:
            backbone.pooler = None  # no pooling reads it: N does not count it, DDP needs no unused parameter
        self.backbone = with_lora(backbone, **lora) if lora else backbone
        self.pooling = pooling
        hidden = backbone.config.hidden_size
        self.projection = torch.nn.Linear(hidden, projection) if projection else None
        runner_ok = pooling in ("mean", "cls") and BertRunner.supports(self.backbone, "mean")  # not under LoRA
        self._runner = BertRunner(pooling) if runner_ok else None
        #: run BERT backbones through the packed (and, for CLS, pruned) forward; False: Hugging Face's
        self.fast_path = True

    @property
    def width(self) -> int:
        """The dimension of its embeddings."""
        return self.projection.out_features if self.projection is not None else self.backbone.config.hidden_size

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]
        if self.fast_path and self._runner is not None and bool(mask[:, 0].all()):
            if self.pooling == "mean":
                pooled = self._runner.mean_hidden(self.backbone, batch)
            else:
                pooled = self._runner.cls_hidden(self.backbone, batch)
        else:
            hidden = self.backbone(**batch).last_hidden_state
            if self.pooling == "mean":
                keep = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * keep).sum(1) / keep.sum(1)
            elif self.pooling == "cls":
                pooled = hidden[:, 0]
            else:  # the last real token (right or left padding)
                pooled = last_token(hidden, mask)
        return self.projection(pooled) if self.projection is not None else pooled


@torch.inference_mode()
def encode_sorted(model: torch.nn.Module, texts: TextTokenizer, items: Sequence[str], is_query: bool, batch_size: int,
                  forward: Callable[[dict], torch.Tensor], width: int, runner: BertRunner | None = None
                  ) -> torch.Tensor:
    """``forward(batch)`` of every text of ``items`` (``[n, width]`` float32 on ``model``'s device, in input
    order): longest texts first in batches of ``batch_size`` (dynamic padding), no gradients, ``model`` in
    eval mode meanwhile; a ``runner`` stacks its weights once (:meth:`BertRunner.frozen`)."""
    was_training = model.training
    if was_training:  # (a walk over every module: skipped when already in eval mode, as timed queries are)
        model.eval()
    encoded = texts.encode(items, is_query)
    device = next(model.parameters()).device
    order = np.argsort([-len(ids) for ids in encoded], kind="stable")
    out = torch.zeros(0, width, device=device)
    with runner.frozen() if runner is not None else nullcontext():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in texts.collate([encoded[i] for i in idx]).items()}
            emb = forward(batch).float()
            if not start:
                out = emb.new_empty(len(encoded), emb.shape[1])
            out[torch.as_tensor(idx, device=device)] = emb
    if was_training:
        model.train()
    return out


class InBatchRetriever:
    """A retriever's ``"in-batch"`` training batches and encode-once scoring (the module docstring).

    A family's model mixes it in and sets ``texts`` (a :class:`TextTokenizer`), ``negatives`` (its
    objective's), ``corpus_negatives`` and ``seed``; it offers ``encode(texts, kind, batch_size)`` and
    ``pair_scores(q, d, query_rows, doc_rows)`` (the score of each pair from the encodings)."""

    _doc_ids: tuple[int, list[str]] | None = None

    def warm(self, queries: Sequence[str] = (), docs: Sequence[str] = ()) -> None:
        self.texts.pairs.warm(queries, docs)

    def _pair_encodings(self, queries: Sequence[str], docs: Sequence[str], batch_size: int):
        """For :meth:`score`: each distinct query and document encoded once (``encode``), and every
        pair's row in each: ``(q, d, query_rows, doc_rows)``."""
        uq, ud = list(dict.fromkeys(queries)), list(dict.fromkeys(docs))
        q, d = self.encode(uq, "query", batch_size), self.encode(ud, "doc", batch_size)
        qpos, dpos = {t: i for i, t in enumerate(uq)}, {t: i for i, t in enumerate(ud)}
        return q, d, [qpos[t] for t in queries], [dpos[t] for t in docs]

    def _corpus_sample(self, groups, collection) -> list[str]:
        """``corpus_negatives`` documents shared by the batch, a pure function of its groups."""
        if not self.corpus_negatives:
            return []
        if self._doc_ids is None or self._doc_ids[0] != id(collection.docs):
            self._doc_ids = (id(collection.docs), sorted(collection.docs))
        doc_ids = self._doc_ids[1]
        key = "|".join(f"{g.qid}:{g.doc_ids[0]}" for g in groups)
        rng = np.random.default_rng([self.seed, 13, stable_hash(key)])
        picks = rng.choice(len(doc_ids), size=min(self.corpus_negatives, len(doc_ids)), replace=False)
        return [doc_ids[i] for i in sorted(picks)]

    def training_batch(self, groups, collection) -> dict:
        """Queries and the batch's distinct documents collated; ``labels[B, C]`` the grade of each
        column for each query, ``targets[B]`` each query's own positive (the ``in-batch`` layout)."""
        per_group = len(groups[0].doc_ids) if "hard" in self.negatives else 1
        columns = [d for g in groups for d in g.doc_ids[:per_group]] + self._corpus_sample(groups, collection)
        distinct = list(dict.fromkeys(columns))
        where = {d: i for i, d in enumerate(distinct)}
        labels = [[max(collection.qrels.get(g.qid, {}).get(d, 0), 0) for d in columns] for g in groups]
        for i, g in enumerate(groups):
            labels[i][i * per_group] = max(g.labels[0], 1)
        q_ids = self.texts.encode([collection.queries[g.qid] for g in groups], True)
        d_ids = self.texts.encode([collection.docs[d] for d in distinct], False)
        return {
            "inputs": {"queries": self.texts.collate(q_ids), "docs": self.texts.collate(d_ids),
                       "columns": torch.tensor([where[d] for d in columns], dtype=torch.long)},
            "labels": torch.tensor(labels, dtype=torch.long),
            "targets": torch.arange(len(groups), dtype=torch.long) * per_group,
            "tokens": sum(map(len, q_ids)) + sum(map(len, d_ids)),
        }

    @torch.inference_mode()
    def score(self, queries: Sequence[str], docs: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Scores of (query, doc) pairs in input order; each distinct text is encoded once."""
        if len(queries) != len(docs):
            raise ValueError("queries and docs differ in length")
        if not queries:
            return np.zeros(0, dtype=np.float32)
        return self.pair_scores(*self._pair_encodings(queries, docs, batch_size))


def lora_settings(settings) -> dict | None:
    """A family's LoRA keys (``lora_rank``, ...) as :func:`~rerank_scaling.models.decoder.with_lora`
    arguments (None: off)."""
    if settings.lora_rank is None:
        return None
    return {"rank": settings.lora_rank, "alpha": settings.lora_alpha, "dropout": settings.lora_dropout,
            "targets": settings.lora_targets}
