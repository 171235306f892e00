"""The cross-encoder: ``score(query, doc) = head(encoder([CLS] q [SEP] d [SEP]))``.

Speed levers live here, once, for training and scoring alike:

* tokenise each distinct query and document text once and cache the ids
  (a document appears in many candidate lists and many epochs);
* assemble pairs from cached ids with the tokenizer's own special-token
  template (learnt by probing, so BERT, ModernBERT and RoBERTa all work);
* dynamic padding to the longest pair of the batch, and length bucketing
  (sort by length) when scoring many pairs;
* ``torch.inference_mode`` for scoring; optional activation checkpointing per
  chunk for long training lists;
* for BERT-family backbones, our own forward over the backbone's modules
  (:class:`_BertRunner`): the same weights and the same math, but
  (a) the position-wise layers (Q/K/V, attention output, feed-forward,
  LayerNorm) run on the real tokens only, packed without padding -- only the
  attention product sees the padded ``[B, L]`` layout -- and (b) with CLS
  pooling the last layer is computed for the ``[CLS]`` position only (its
  keys and values still come from every token): nothing else of the last
  layer reaches the pooler, so this is exact. With 2 layers it removes
  about 40% of the encoder's FLOPs, in training and scoring alike.
  ``CrossEncoder.fast_path = False`` falls back to the Hugging Face forward (as does
  training under FSDP, whose wrapped layers hold only shards outside their own forward).

Truncation: queries are cut to ``max_query_length`` tokens, then the document
is cut so the pair fits ``max_length`` -- the same ids as
``tokenizer(q, d, truncation="only_second", max_length=...)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from rerank_scaling.models.backbone import load_backbone, parameter_counts
from rerank_scaling.models.ladder import ModelSpec, default_pooling


SCORE_BLOCK = 1 << 16  # pairs encoded at a time by CrossEncoder.score (each block sorted by length)


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


class _BertRunner:
    """Our forward of a Hugging Face BERT backbone: packed, and CLS-pruned for CLS pooling.

    It runs the backbone's own modules and parameters (nothing is copied:
    training, ``state_dict`` and ``save_pretrained`` are unaffected) and keeps
    ``BertModel``'s math -- embeddings; per layer ``a = LN(x + drop(O attn(Q, K, V)))``
    and ``LN(a + drop(W2 act(W1 a)))``; then the pooler ``tanh(W h_cls)``,
    dropout and the classifier -- with two savings:

    * packing: when a batch has enough padding, the position-wise work (Q/K/V,
      output projection, feed-forward, LayerNorm) runs on the ``T`` real tokens
      (``[T, H]``) instead of ``B * L`` padded slots; only the attention product
      sees the padded layout;
    * CLS pruning (``cls`` pooling): only the ``[CLS]`` state of the last layer
      reaches the pooler, so that layer's query, attention row, output
      projection and feed-forward are computed for that one position per pair
      (its keys and values still come from every token). Exact: the logits are
      those of the full forward up to float rounding.

    Q/K/V (and the last layer's K/V) are one GEMM on stacked weights. Dropout
    (training) is applied where BERT applies it, so the loss has the same
    distribution; the random masks differ from the Hugging Face forward's.
    :meth:`supports` says which backbones qualify; others use the HF forward.
    """

    #: pack the tokens when more than this fraction of the padded batch is padding
    pack_threshold = 0.08

    def __init__(self, pooling: str):
        self.pooling = pooling
        self._frozen: dict | None = None

    @staticmethod
    def supports(backbone: torch.nn.Module, pooling: str) -> bool:
        config = getattr(backbone, "config", None)
        if config is None or getattr(config, "model_type", None) != "bert":
            return False
        if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
            return False
        if getattr(config, "position_embedding_type", "absolute") != "absolute":
            return False
        if pooling == "cls":
            if type(backbone).__name__ != "BertForSequenceClassification":
                return False
            bert = backbone.bert
            if bert.pooler is None or getattr(backbone.classifier, "out_features", None) != 1:
                return False
        else:
            if type(backbone).__name__ != "BertModel":
                return False
            bert = backbone
        layers = bert.encoder.layer
        return len(layers) > 0 and all(type(layer).__name__ == "BertLayer" for layer in layers)

    def logits(self, backbone: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``cls`` pooling: the classifier's logits, ``[B]``."""
        h_cls = self._encode(backbone.bert, batch, cls_only=True)[0]
        pooler = backbone.bert.pooler
        return backbone.classifier(backbone.dropout(pooler.activation(pooler.dense(h_cls)))).view(-1)

    def cls_hidden(self, bert: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last layer's ``[CLS]`` states of a bare encoder, ``[B, H]`` (CLS-pruned, no pooler)."""
        return self._encode(bert, batch, cls_only=True)[0]

    def mean_hidden(self, bert: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``mean`` pooling: mask-averaged last hidden states, ``[B, H]``."""
        x, idx, lengths = self._encode(bert, batch, cls_only=False)
        b, width = batch["input_ids"].shape
        if idx is None:
            keep = batch["attention_mask"].unsqueeze(-1).to(x.dtype)
            return (x.view(b, width, -1) * keep).sum(1) / lengths.unsqueeze(1).to(x.dtype)
        rows = torch.div(idx, width, rounding_mode="floor")
        return x.new_zeros(b, x.shape[-1]).index_add(0, rows, x) / lengths.unsqueeze(1).to(x.dtype)

    def _encode(self, bert: torch.nn.Module, batch: dict[str, torch.Tensor], cls_only: bool):
        """Last hidden states: ``[B, H]`` of ``[CLS]`` (``cls_only``), else ``[T or B*L, H]``."""
        input_ids, attention = batch["input_ids"], batch["attention_mask"]
        b, width = input_ids.shape
        x = bert.embeddings(input_ids=input_ids, token_type_ids=batch.get("token_type_ids"))
        hidden = x.shape[-1]
        lengths = attention.sum(1)
        real = int(lengths.sum())
        mask = attention.bool()[:, None, None, :] if real < b * width else None  # True = attend
        if real < (1.0 - self.pack_threshold) * b * width:  # pack
            idx = attention.reshape(-1).nonzero().squeeze(1)  # flat positions of the real tokens
            x = x.reshape(-1, hidden).index_select(0, idx)  # [T, H]
            starts = torch.cumsum(lengths, 0) - lengths  # packed row of each [CLS]
        else:
            idx = None
            x = x.reshape(-1, hidden)
            starts = torch.arange(b, device=x.device) * width

        def padded(t: torch.Tensor, parts: int, heads: int) -> torch.Tensor:  # [T, parts*H] -> parts x [B, h, L, d]
            if idx is not None:
                t = t.new_zeros(b * width, t.shape[1]).index_copy(0, idx, t)
            return t.view(b, width, parts, heads, -1).permute(2, 0, 3, 1, 4)

        training = bert.training
        layers = bert.encoder.layer
        for i, layer in enumerate(layers):
            sa = layer.attention.self
            heads = sa.num_attention_heads
            p = sa.dropout.p if training else 0.0
            if cls_only and i == len(layers) - 1:
                x_cls = x.index_select(0, starts)  # [B, H]
                q = sa.query(x_cls).view(b, heads, 1, -1)
                k, v = padded(F.linear(x, *self._stacked_params(sa.key, sa.value)), 2, heads)
                att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, scale=sa.scaling)
                att = layer.attention.output(att.reshape(b, -1), x_cls)
                return layer.output(layer.intermediate(att), att), None, lengths  # [B, H]
            q, k, v = padded(F.linear(x, *self._stacked_params(sa.query, sa.key, sa.value)), 3, heads)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, scale=sa.scaling)
            att = att.transpose(1, 2).reshape(b * width, hidden)
            if idx is not None:
                att = att.index_select(0, idx)
            att = layer.attention.output(att, x)
            x = layer.output(layer.intermediate(att), att)
        return x, idx, lengths

    def _stacked_params(self, *linears: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights and biases of several linear layers stacked, for one GEMM instead of several.

        Stacked afresh at each call (gradients flow back to each layer), except
        inside :meth:`frozen` (a ``score`` call), where they are stacked once. No
        cache outlives that: keyed on tensor versions it would go stale, since
        fused optimizers update parameters without bumping version counters.
        """
        if self._frozen is not None:
            key = tuple(id(m) for m in linears)
            if key not in self._frozen:
                self._frozen[key] = (torch.cat([m.weight for m in linears]), torch.cat([m.bias for m in linears]))
            return self._frozen[key]
        return torch.cat([m.weight for m in linears]), torch.cat([m.bias for m in linears])

    @contextmanager
    def frozen(self):
        """Parameters do not change inside: stacked weights are computed once and reused."""
        self._frozen = {}
        try:
            yield
        finally:
            self._frozen = None


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
        chunk_size: int | None = None,
    ):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.head = torch.nn.Linear(backbone.config.hidden_size, 1) if pooling == "mean" else None
        if self.head is not None and getattr(backbone, "pooler", None) is not None:
            # mean pooling never reads the [CLS] pooler: no gradient reaches it either way, and
            # data-parallel training refuses parameters that take part in no step
            backbone.pooler.requires_grad_(False)
        self.pairs = PairTokenizer(tokenizer, max_length=max_length, max_query_length=max_query_length)
        #: run BERT backbones through :class:`_BertRunner` (packed, CLS-pruned); False: the HF forward
        self.fast_path = True
        self._runner = _BertRunner(pooling) if _BertRunner.supports(backbone, pooling) else None
        self.chunk_size = chunk_size

    # --- the model-family contract (rerank_scaling.models.family.Model) ---

    def warm(self, queries: Sequence[str] = (), docs: Sequence[str] = ()) -> None:
        self.pairs.warm(queries, docs)

    def training_batch(self, groups, collection) -> dict:
        """Every (query, doc) pair of ``groups`` collated; labels ``[B, G]``."""
        q_texts = [collection.queries[g.qid] for g in groups for _ in g.doc_ids]
        d_texts = [collection.docs[d] for g in groups for d in g.doc_ids]
        encoded = self.pairs.encode(q_texts, d_texts)
        return {
            "inputs": self.pairs.collate(encoded),
            "labels": torch.tensor([g.labels for g in groups], dtype=torch.long),
            "tokens": sum(len(ids) for ids, _ in encoded),
        }

    def group_scores(self, batch: dict) -> torch.Tensor:
        return self(batch["inputs"], chunk_size=self.chunk_size).view(batch["labels"].shape)

    def parameter_counts(self) -> tuple[int, int]:
        return parameter_counts(self)

    def training_flops(self, tokens: int) -> float:
        return 6.0 * self.parameter_counts()[0] * tokens

    def save(self, folder: Path) -> None:
        """The backbone (Hugging Face format, tokenizer included) at the top of ``folder`` in a layout
        sentence-transformers' ``CrossEncoder`` loads as trained (:mod:`~rerank_scaling.models.export`),
        ``family.json`` with the settings :meth:`CrossEncoderFamily.load` needs."""
        from rerank_scaling.models.export import cross_encoder_layout, save_hf

        folder = Path(folder)
        save_hf(folder, self.backbone, self.pairs.tokenizer, self.pairs.max_length)
        cross_encoder_layout(folder, self.pooling, self.head, self.pairs.max_length)
        (folder / "family.json").write_text(json.dumps({
            "family": CrossEncoderFamily.name, "pooling": self.pooling, "max_length": self.pairs.max_length,
            "max_query_length": self.pairs.max_query_length}, indent=2) + "\n")

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
        # asked again at each call: FSDP replaces the layers by wrappers that gather their shards only
        # inside their own forward, which the packed forward (reading submodules directly) bypasses
        if (self.fast_path and self._runner is not None and bool(batch["attention_mask"][:, 0].all())
                and self._runner.supports(self.backbone, self.pooling)):
            if self.head is None:
                return self._runner.logits(self.backbone, batch)
            return self.head(self._runner.mean_hidden(self.backbone, batch)).view(-1)
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
        """Score pairs, longest first in length buckets; returns float32 scores in input order. Pairs are
        encoded ``SCORE_BLOCK`` at a time (each block bucketed by length), so memory stays bounded."""
        if len(queries) != len(docs):
            raise ValueError("queries and docs differ in length")
        if not queries:
            return np.zeros(0, dtype=np.float32)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        scores = np.empty(len(queries), dtype=np.float32)
        with self._runner.frozen() if self._runner is not None else nullcontext():
            for first in range(0, len(queries), SCORE_BLOCK):
                encoded = self.pairs.encode(queries[first:first + SCORE_BLOCK], docs[first:first + SCORE_BLOCK])
                order = np.argsort([-len(ids) for ids, _ in encoded], kind="stable")
                for start in range(0, len(order), batch_size):
                    idx = order[start : start + batch_size]
                    batch = {k: v.to(device) for k, v in self.pairs.collate([encoded[i] for i in idx]).items()}
                    scores[first + idx] = self._logits(batch).float().cpu().numpy()
                    if on_batch:
                        on_batch(len(idx))
        self.train(was_training)
        return scores


def load_cross_encoder(spec: ModelSpec, seed: int = 0, max_length: int = 256, max_query_length: int = 64,
                       pooling: str | None = None, chunk_size: int | None = None,
                       dropout: float | None = None) -> CrossEncoder:
    """The ladder rung as a :class:`CrossEncoder` (weights of new heads drawn from ``seed``)."""
    pooling = pooling or default_pooling(spec.ladder)
    model, tokenizer = load_backbone(spec, seed=seed, pooling=pooling, dropout=dropout)
    torch.manual_seed(seed)
    return CrossEncoder(model, tokenizer, max_length, max_query_length, pooling=pooling, chunk_size=chunk_size)


class CrossEncoderFamily:
    """``score(q, d) = head(encoder([CLS] q [SEP] d [SEP]))`` over query groups."""

    name = "cross-encoder"
    layout = "groups"

    def build(self, config) -> CrossEncoder:
        return load_cross_encoder(config.model, config.seed, config.max_length, config.max_query_length,
                                  pooling=config.pooling, chunk_size=config.chunk_size, dropout=config.dropout)

    def load(self, folder: Path) -> CrossEncoder:
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        info = json.loads((folder / "family.json").read_text())
        if info.get("family") != self.name:
            raise ValueError(f"{folder}: not a {self.name} (family.json says {info.get('family')!r})")
        pooling = info["pooling"]
        auto = AutoModel if pooling == "mean" else AutoModelForSequenceClassification
        old = (folder / "backbone").is_dir()  # the layout before sentence-transformers': backbone/, head.pt
        weights = folder / "backbone" if old else folder
        backbone = auto.from_pretrained(weights)
        model = CrossEncoder(backbone, AutoTokenizer.from_pretrained(weights), info["max_length"],
                             info["max_query_length"], pooling=pooling)
        if model.head is not None and old:
            model.head.load_state_dict(torch.load(folder / "head.pt", map_location="cpu", weights_only=True))
        elif model.head is not None:
            from rerank_scaling.models.export import read_dense

            read_dense(folder / "2_Dense", model.head)
        return model
