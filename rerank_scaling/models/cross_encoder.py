"""The cross-encoder: ``score(query, doc) = head(encoder([CLS] q [SEP] d [SEP]))``.

Speed levers live here, once, for training and scoring alike:

* tokenise each distinct query and document text once and cache the ids, and
  assemble pairs from them with the tokenizer's own special-token template
  (:class:`~rerank_scaling.models.base.PairTokenizer`, shared with the retrievers);
* dynamic padding to the longest pair of the batch, and length bucketing
  (sort by length) when scoring many pairs;
* ``torch.inference_mode`` for scoring; optional activation checkpointing per
  chunk for long training lists;
* for BERT-family backbones, our own forward over the backbone's modules
  (:class:`~rerank_scaling.models.packed.BertRunner`): the same weights and the same math, but
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

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from rerank_scaling.models.backbone import load_backbone, parameter_counts
from rerank_scaling.models.base import PairTokenizer
from rerank_scaling.models.family import read_family_file, write_family_file
from rerank_scaling.models.ladder import ModelSpec, default_pooling
from rerank_scaling.models.packed import BertRunner

# pairs encoded at a time by CrossEncoder.score (each block sorted by length): a block's token ids as Python
# lists and the tokenizer's encodings cost ~10 KB a pair at 128 tokens, so 8,192 keep a block under ~100 MB
SCORE_BLOCK = 1 << 13


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
        #: run BERT backbones through :class:`BertRunner` (packed, CLS-pruned); False: the HF forward
        self.fast_path = True
        self._runner = BertRunner(pooling) if BertRunner.supports(backbone, pooling) else None
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
        write_family_file(folder, CrossEncoderFamily.name, {
            "pooling": self.pooling, "max_length": self.pairs.max_length,
            "max_query_length": self.pairs.max_query_length})

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

    def build(self, config) -> CrossEncoder:
        return load_cross_encoder(config.model, config.seed, config.max_length, config.max_query_length,
                                  pooling=config.family_settings.pooling, chunk_size=config.chunk_size,
                                  dropout=config.dropout)

    def load(self, folder: Path) -> CrossEncoder:
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        info = read_family_file(folder, self.name)
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
