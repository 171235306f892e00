"""The cross-encoder: ``score(query, doc) = head(encoder([CLS] q [SEP] d [SEP]))``.

Speed levers live here, once, for training and scoring alike:

* tokenise each distinct query and document text once and cache the ids
  (a document appears in many candidate lists and many epochs);
* assemble pairs from cached ids with the tokenizer's own special-token
  template (learnt by probing, so BERT, ModernBERT and RoBERTa all work);
* dynamic padding to the longest pair of the batch, and length bucketing
  (sort by length) when scoring many pairs;
* ``torch.inference_mode`` for scoring; optional activation checkpointing per
  chunk for long training lists.

Truncation: queries are cut to ``max_query_length`` tokens, then the document
is cut so the pair fits ``max_length`` -- the same ids as
``tokenizer(q, d, truncation="only_second", max_length=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint


class PairTokenizer:
    """Caching (query, doc) pair encoder with dynamic padding."""

    def __init__(self, tokenizer, max_length: int = 256, max_query_length: int = 64):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.max_query_length = max_query_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._prefix, self._middle, self._suffix, self._types = self._probe_template(tokenizer)
        self.n_special = len(self._prefix) + len(self._middle) + len(self._suffix)
        self._cache: dict[tuple[bool, str], list[int]] = {}

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

    def _ids(self, texts: Sequence[str], is_query: bool) -> list[list[int]]:
        limit = self.max_query_length if is_query else self.max_length
        missing = list(dict.fromkeys(t for t in texts if (is_query, t) not in self._cache))
        if missing:
            encoded = self.tokenizer(
                missing, add_special_tokens=False, truncation=True, max_length=limit
            )["input_ids"]
            for text, ids in zip(missing, encoded):
                self._cache[(is_query, text)] = list(ids)
        return [self._cache[(is_query, t)] for t in texts]

    def warm(self, queries: Sequence[str] = (), docs: Sequence[str] = ()) -> None:
        """Tokenise many texts in one batched call (much faster than one by one)."""
        self._ids(queries, True)
        self._ids(docs, False)

    def encode(self, queries: Sequence[str], docs: Sequence[str]) -> list[tuple[list[int], int]]:
        """Pair ids and the length of the first segment, one per (query, doc)."""
        q_ids = self._ids(queries, True)
        d_ids = self._ids(docs, False)
        out = []
        for q, d in zip(q_ids, d_ids):
            room = max(self.max_length - self.n_special - len(q), 0)
            first = self._prefix + q + self._middle
            out.append((first + d[:room] + self._suffix, len(first)))
        return out

    def collate(self, encoded: Sequence[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        """Pad a list of encoded pairs to the longest one (dynamic padding)."""
        width = max(len(ids) for ids, _ in encoded)
        n = len(encoded)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        types = torch.zeros((n, width), dtype=torch.long)
        for row, (ids, first) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention[row, : len(ids)] = 1
            if self._types:
                types[row, first : len(ids)] = self._types
        batch = {"input_ids": input_ids, "attention_mask": attention}
        if self._types is not None:
            batch["token_type_ids"] = types
        return batch


class CrossEncoder(torch.nn.Module):
    """A transformer with a one-logit head, plus its pair tokenizer.

    ``pooling="cls"``: ``backbone`` is a Hugging Face sequence classifier with
    ``num_labels=1`` (its own pooler + head; the usual cross-encoder, and what
    sentence-transformers' CrossEncoder trains). ``pooling="mean"``:
    ``backbone`` is a bare encoder and the head is a linear layer over the
    mask-averaged last hidden states (how MiniLM sentence encoders were
    pretrained, which makes them learn much faster as rerankers).
    """

    def __init__(
        self,
        backbone: torch.nn.Module,
        tokenizer,
        max_length: int = 256,
        max_query_length: int = 64,
        pooling: str = "cls",
    ):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.head = torch.nn.Linear(backbone.config.hidden_size, 1) if pooling == "mean" else None
        self.pairs = PairTokenizer(tokenizer, max_length=max_length, max_query_length=max_query_length)

    def forward(self, batch: dict[str, torch.Tensor], chunk_size: int | None = None) -> torch.Tensor:
        """Scores (logits) of a collated batch, shape ``[n]``.

        With ``chunk_size`` the batch runs in chunks; when gradients are on, each
        chunk is activation-checkpointed so only one chunk's activations are
        alive at a time (long listwise groups fit in memory).
        """
        n = batch["input_ids"].shape[0]
        if not chunk_size or n <= chunk_size:
            return self._logits(batch)
        outs = []
        for start in range(0, n, chunk_size):
            part = {k: v[start : start + chunk_size] for k, v in batch.items()}
            # trim padding columns this chunk does not need
            width = int(part["attention_mask"].sum(1).max())
            part = {k: v[:, :width] for k, v in part.items()}
            if torch.is_grad_enabled():
                outs.append(checkpoint(self._logits, part, use_reentrant=False))
            else:
                outs.append(self._logits(part))
        return torch.cat(outs)

    def _logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.head is None:
            return self.backbone(**batch).logits.view(-1)
        hidden = self.backbone(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * mask).sum(1) / mask.sum(1)).view(-1)

    @torch.inference_mode()
    def score(
        self,
        queries: Sequence[str],
        docs: Sequence[str],
        batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Score pairs, longest first in length buckets; returns float32 scores in input order."""
        if len(queries) != len(docs):
            raise ValueError("queries and docs differ in length")
        if not queries:
            return np.zeros(0, dtype=np.float32)
        was_training = self.training
        self.eval()
        encoded = self.pairs.encode(queries, docs)
        order = np.argsort([-len(ids) for ids, _ in encoded], kind="stable")
        device = next(self.parameters()).device
        scores = np.empty(len(encoded), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in self.pairs.collate([encoded[i] for i in idx]).items()}
            scores[idx] = self._logits(batch).float().cpu().numpy()
            if on_batch:
                on_batch(len(idx))
        self.train(was_training)
        return scores
