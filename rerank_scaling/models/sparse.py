"""The sparse encoder (SPLADE): vocabulary-sized, mostly-zero term weights for queries and documents.

A text's representation (Formal et al., 2021; Zeng et al., 2025's sparse recipe)::

    w_j = max_t  log(1 + relu(logit_tj))        j over the vocabulary (V = 30,522 for BERT)

where ``logit_tj`` is the masked-language-model head's logit of term ``j`` at
real (non-padding) token ``t``; ``score(q, d) = w(q) . w(d)`` (no temperature).
Because ``log(1 + relu(.))`` is monotone, the max is taken over the logits
first and the activation applied to ``[n, V]`` only -- the same values (and,
but for ties, the same gradients) as activating every token's logits, without
three more ``[n, L, V]`` tensors. It equals sentence-transformers'
``SpladePooling("max", "relu")`` (``tests/models/test_sparse_equivalence.py``).
One MLM model encodes both queries and documents (``[CLS] text [SEP]``, cut to
``max_query_length`` / ``max_length`` tokens); ``chunk_size`` runs a batch in
chunks of texts, each activation-checkpointed, so only one chunk's
``[chunk, L, V]`` logits are alive at a time.

Sparsity is trained by a regulariser on the batch's queries and documents
(:mod:`rerank_scaling.objectives.regularizers`): ``lambda_q * R(w_q) +
lambda_d * R(w_d)``, ``R`` = ``flops`` (default) or ``l1``, both weights ramped
quadratically from 0 over the first ``regularizer_warmup`` fraction of the
steps (Zeng et al.: a third). The training step adds :meth:`SparseEncoder.penalty`
to the objective's loss, so every in-batch objective (InfoNCE, distillation)
trains the family unchanged.

Retrieval (:mod:`rerank_scaling.evaluation.retrieval`): :meth:`encode` returns
a ``scipy.sparse`` CSR matrix ``[n, V]`` (only the active terms are stored), and
:meth:`similarity` is the sparse product ``Q @ D^T`` -- ``D^T`` in CSC form is
an inverted index (one posting list of (doc, weight) per term), so the work is
proportional to the postings of the query's terms, not to ``n_docs x V``.

Backbones (``load_backbone(..., pooling="mlm")``): ``hf`` (any masked-LM folder
or hub id, e.g. the pretrained ``../shared/models/splade-tiny`` or
``naver/splade-*``), ``minilm`` (all-MiniLM-L6-v2 ships no MLM head: a new one
starts lexical -- identity transform, decoder tied to its word embeddings, output bias -6, so each token
activates itself and its neighbours and ~1% of the vocabulary is active at step 0,
:func:`~rerank_scaling.models.backbone.lexical_head`) and
``scratch`` (a random BERT with its head).

Decoder backbones (the ``llama`` ladder, any causal LM through ``hf``; Zeng et
al.'s sparse recipe): the causal LM's output head gives the term logits
(``load_backbone`` takes a causal-LM head where no masked-LM head exists),
``bidirectional`` removes the causal mask, and ``lora_rank`` trains LoRA
adapters on the frozen model (a head drawn new trains in full); a saved model
has its adapters merged (:mod:`rerank_scaling.models.decoder`).

Model size N: the non-embedding parameters (the head's transform and bias
included; its decoder matrix is the tied word embedding, not counted, as in
every ladder; LoRA adapters excluded). FLOPs: every token also passes through the ``H x V`` decoder,
which for small models costs more than the transformer, so training FLOPs are
``6 * (N + H * V) * tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse
import torch
from torch.utils.checkpoint import checkpoint

from rerank_scaling.models.backbone import load_backbone, parameter_counts
from rerank_scaling.models.base import InBatchRetriever, TextTokenizer, lora_settings
from rerank_scaling.models.decoder import make_bidirectional, merged, with_lora
from rerank_scaling.models.family import read_family_file, write_family_file
from rerank_scaling.objectives.regularizers import REGULARIZERS, warmup_scale


LOGITS_PER_FORWARD = 2**24  # encode(): texts per forward so that [n, L, V] float32 logits stay <= 64 MB


def splade_pool(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``max_t log(1 + relu(logits[:, t]))`` over the real tokens (``mask``): ``[n, L, V] -> [n, V]``."""
    masked = logits.masked_fill(~mask.bool().unsqueeze(-1), -torch.inf)
    return torch.log1p(torch.relu(masked.amax(dim=1)))


def _decoder_is_tied(mlm: torch.nn.Module) -> bool:
    out, inp = mlm.get_output_embeddings(), mlm.get_input_embeddings()
    return out is not None and inp is not None and out.weight is inp.weight


class SparseEncoder(InBatchRetriever, torch.nn.Module):
    """An MLM model with SPLADE pooling and a sparsity penalty; the model-family contract."""

    stage = "retrieval"

    def __init__(self, mlm: torch.nn.Module, tokenizer, max_length: int = 256, max_query_length: int = 64,
                 negatives: Sequence[str] = ("in-batch",), corpus_negatives: int = 0, seed: int = 0,
                 regularizer: str = "flops", lambda_q: float = 0.0, lambda_d: float = 0.0,
                 regularizer_warmup: int = 0, chunk_size: int | None = None, lora: dict | None = None,
                 bidirectional: bool = False):
        super().__init__()
        if regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer must be one of {tuple(REGULARIZERS)}, got {regularizer!r}")
        self.mlm = with_lora(mlm, **lora) if lora else mlm
        self.bidirectional = bidirectional  # recorded for save(): the backbone was made bidirectional
        self.texts = TextTokenizer(tokenizer, max_length=max_length, max_query_length=max_query_length)
        self.negatives = tuple(negatives)
        self.corpus_negatives = corpus_negatives if "corpus" in self.negatives else 0
        self.seed = seed
        self.regularizer, self.lambda_q, self.lambda_d = regularizer, lambda_q, lambda_d
        self.regularizer_warmup = regularizer_warmup
        self.chunk_size = chunk_size
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        self.vocab_size = mlm.get_output_embeddings().weight.shape[0]

    # --- representations and scores ---

    def _pooled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return splade_pool(self.mlm(**batch).logits, batch["attention_mask"])

    def embed(self, batch: dict[str, torch.Tensor], kind: str = "query") -> torch.Tensor:
        """Dense ``[n, V]`` SPLADE weights of a collated batch (with gradients when training)."""
        n = batch["input_ids"].shape[0]
        if not self.chunk_size or n <= self.chunk_size:
            return self._pooled(batch)
        outs = []
        for start in range(0, n, self.chunk_size):
            part = {k: v[start : start + self.chunk_size] for k, v in batch.items()}
            width = int(part["attention_mask"].sum(1).max())
            part = {k: v[:, :width] for k, v in part.items()}
            outs.append(checkpoint(self._pooled, part, use_reentrant=False) if torch.is_grad_enabled()
                        else self._pooled(part))
        return torch.cat(outs)

    def similarity(self, queries, docs) -> torch.Tensor:
        """Scores ``[nq, nd]``: ``q . d``; dense tensors (training) or ``scipy.sparse`` rows (retrieval:
        a sparse product, densified per block of queries)."""
        if scipy.sparse.issparse(queries):
            return torch.from_numpy(np.asarray((queries @ docs.T).todense(), dtype=np.float32))
        return queries @ docs.T

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], kind: str, batch_size: int = 64) -> scipy.sparse.csr_matrix:
        """SPLADE vectors ``[n, V]`` (float32 CSR, active terms only) in input order; longest texts first
        in batches of at most ``batch_size`` (fewer where their logits would pass ``LOGITS_PER_FORWARD``),
        no gradients."""
        was_training = self.training
        self.eval()
        encoded = self.texts.encode(texts, kind == "query")
        device = next(self.parameters()).device
        order = np.argsort([-len(ids) for ids in encoded], kind="stable")
        blocks = []
        start = 0
        while start < len(order):
            # at most LOGITS_PER_FORWARD logits alive: [n, L, V] grows with V = 30K, not just with n
            longest = len(encoded[order[start]])
            n = max(1, min(batch_size, LOGITS_PER_FORWARD // max(longest * self.vocab_size, 1)))
            idx = order[start : start + n]
            start += n
            batch = {k: v.to(device) for k, v in self.texts.collate([encoded[i] for i in idx]).items()}
            blocks.append(scipy.sparse.csr_matrix(self.embed(batch, kind).float().cpu().numpy()))
        self.train(was_training)
        if not blocks:
            return scipy.sparse.csr_matrix((0, self.vocab_size), dtype=np.float32)
        stacked = scipy.sparse.vstack(blocks, format="csr")
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[order] = np.arange(len(order))
        return stacked[inverse]

    # --- the model-family contract (rerank_scaling.models.family.Model) ---

    def group_scores(self, batch: dict) -> torch.Tensor:
        inputs = batch["inputs"]
        q, d = self.embed(inputs["queries"], "query"), self.embed(inputs["docs"], "doc")
        self._last = (q, d)
        return self.similarity(q, d)[:, inputs["columns"]]

    def penalty(self, step: int) -> torch.Tensor:
        """``scale(step) * (lambda_q R(w_q) + lambda_d R(w_d))`` of the last :meth:`group_scores` batch
        (the module docstring); the training step adds it to the loss."""
        if self._last is None:
            raise RuntimeError("penalty() needs a group_scores() call first")
        q, d = self._last
        self._last = None
        reg = REGULARIZERS[self.regularizer]
        return warmup_scale(step, self.regularizer_warmup) * (self.lambda_q * reg(q) + self.lambda_d * reg(d))

    def pair_scores(self, q, d, qrows: list[int], drows: list[int]) -> np.ndarray:
        """``w(q_i) . w(d_j)`` for each pair ``(i, j)`` of rows (:meth:`InBatchRetriever.score`)."""
        rows = q[qrows].multiply(d[drows])
        return np.asarray(rows.sum(axis=1), dtype=np.float32).ravel()

    def parameter_counts(self) -> tuple[int, int]:
        return parameter_counts(self)

    def training_flops(self, tokens: int) -> float:
        head = self.mlm.get_output_embeddings().weight.numel() if _decoder_is_tied(self.mlm) else 0
        return 6.0 * (parameter_counts(self)[0] + head) * tokens

    def save(self, folder: Path) -> None:
        """The masked-LM (Hugging Face format, tokenizer included; LoRA merged) at the top of ``folder`` in a
        layout sentence-transformers' ``SparseEncoder`` loads as trained (:mod:`~rerank_scaling.models.export`),
        ``family.json`` with the settings."""
        from rerank_scaling.models.export import save_hf, sparse_layout

        folder = Path(folder)
        save_hf(folder, merged(self.mlm), self.texts.tokenizer, self.texts.max_length)
        sparse_layout(folder, self.vocab_size, self.texts.max_length)
        write_family_file(folder, SparseFamily.name, {
            "max_length": self.texts.max_length, "bidirectional": self.bidirectional,
            "max_query_length": self.texts.max_query_length})


class SparseFamily:
    """SPLADE sparse retrieval: ``w(q) . w(d)`` over the vocabulary, trained with in-batch objectives."""

    name = "sparse"

    def build(self, config) -> SparseEncoder:
        from rerank_scaling.objectives import OBJECTIVES

        own = config.family_settings
        mlm, tokenizer = load_backbone(config.model, seed=config.seed, pooling="mlm", dropout=config.dropout)
        if own.bidirectional:
            make_bidirectional(mlm, config.model.name)
        torch.manual_seed(config.seed)  # LoRA adapters' initial weights
        return SparseEncoder(mlm, tokenizer, max_length=config.max_length, max_query_length=config.max_query_length,
                             negatives=OBJECTIVES[config.objective].negatives, corpus_negatives=own.corpus_negatives,
                             seed=config.seed, regularizer=own.regularizer, lambda_q=own.lambda_q,
                             lambda_d=own.lambda_d, regularizer_warmup=round(own.regularizer_warmup * config.steps),
                             chunk_size=config.chunk_size, lora=lora_settings(own), bidirectional=own.bidirectional)

    def load(self, folder: Path) -> SparseEncoder:
        from transformers import AutoConfig, AutoTokenizer

        from rerank_scaling.models.backbone import auto_class

        folder = Path(folder)
        info = read_family_file(folder, self.name)
        weights = folder / "mlm" if (folder / "mlm").is_dir() else folder  # mlm/: the layout before ST's
        mlm = auto_class(AutoConfig.from_pretrained(weights), "mlm").from_pretrained(weights)
        if info.get("bidirectional"):
            make_bidirectional(mlm, str(folder))
        return SparseEncoder(mlm, AutoTokenizer.from_pretrained(weights), max_length=info["max_length"],
                             max_query_length=info["max_query_length"], bidirectional=bool(info.get("bidirectional")))
