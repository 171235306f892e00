"""Late interaction (ColBERT): every token keeps its own embedding, and a query scores a document by MaxSim.

Khattab & Zaharia (2020, "ColBERT: Efficient and Effective Passage Search via
Contextualized Late Interaction over BERT") encode a query and a document
separately, as a bi-encoder does, but keep one vector per token::

    E(t) = normalize(W h_t)            h_t: the encoder's last state of real token t, W: d x H (no bias)
    score(q, d) = (1 / tau) * sum_{i in q} max_{j in d} E(q_i) . E(d_j)        (MaxSim)

One encoder (a ladder rung's bare transformer, its ``[CLS]`` pooler removed)
encodes queries and documents, ``[CLS] text [SEP]`` cut to ``max_query_length``
/ ``max_length`` tokens, special tokens included; ``projection`` is ``d``
(ColBERT: 128) and ``temperature`` is ``tau`` (1: ColBERT's raw MaxSim). Left
out of ColBERT's recipe: the ``[Q]`` / ``[D]`` marker tokens, query augmentation
with ``[MASK]`` tokens and the punctuation filter on documents.

Training: the retrievers' in-batch batches (:class:`~rerank_scaling.models.base.InBatchRetriever`,
the ``"in-batch"`` layout), the MaxSim of every query against every document of
the batch, with the InfoNCE objectives (``infonce``, ``infonce-hard``,
``infonce-corpus``). Decoder backbones take ``bidirectional`` and ``lora_rank`` as
the other retrievers do (:mod:`rerank_scaling.models.decoder`).

Retrieval (:mod:`rerank_scaling.evaluation.retrieval`): :meth:`encode` returns
:class:`TokenEmbeddings` (``[n, L, d]`` and the mask of real tokens), and
:meth:`similarity` computes MaxSim exhaustively against every document of the
corpus, in blocks of documents that keep ``[nq, Lq, nd, Ld]`` within
:data:`MAXSIM_BLOCK` numbers -- exact, no index (PLAID's centroids pay off at
millions of documents; our collections hold 1.4K-11K).

Model size N: the encoder's non-embedding parameters with ``W``, LoRA adapters
excluded. FLOPs: every token passes through the encoder once, ``6 * N *
tokens`` in training; MaxSim (``B x C x Lq x Ld x d``) is left out, as the
bi-encoder's similarity matrix is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rerank_scaling.models.backbone import load_backbone, parameter_counts
from rerank_scaling.models.base import InBatchRetriever, TextTokenizer, lora_settings
from rerank_scaling.models.decoder import make_bidirectional, merged, with_lora
from rerank_scaling.models.family import read_family_file, write_family_file

MAXSIM_BLOCK = 2**24  # similarity(): query-token x document-token products per block (64 MB of float32)


@dataclass
class TokenEmbeddings:
    """Texts as token vectors: ``values[n, L, d]`` (zero at padding) and ``mask[n, L]`` (True: a real token).
    Sliced by rows like a tensor (``queries[start:stop]``), as retrieval blocks its queries."""

    values: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.values.shape[0]

    def __getitem__(self, rows) -> TokenEmbeddings:
        return TokenEmbeddings(self.values[rows], self.mask[rows])


def maxsim(q: TokenEmbeddings, d: TokenEmbeddings, block: int = MAXSIM_BLOCK) -> torch.Tensor:
    """``[nq, nd]``: for each query and document, the sum over the query's tokens of the best dot product
    with a document token (padding counts for neither side); documents in blocks of ``block`` products."""
    nq, lq, _ = q.values.shape
    nd, ld, _ = d.values.shape
    out = q.values.new_zeros(nq, nd)
    step = max(1, block // max(nq * lq * ld, 1))
    query_tokens = q.mask.to(q.values.dtype)
    for start in range(0, nd, step):
        docs = d.values[start : start + step]
        sims = torch.einsum("qid,njd->qnij", q.values, docs)
        sims = sims.masked_fill(~d.mask[start : start + step].bool()[None, :, None, :], -torch.inf)
        out[:, start : start + step] = (sims.amax(dim=-1) * query_tokens[:, None, :]).sum(-1)
    return out


class LateInteraction(InBatchRetriever, torch.nn.Module):
    """An encoder whose projected, normalised token states are matched by MaxSim; the model-family contract."""

    stage = "retrieval"

    def __init__(self, backbone: torch.nn.Module, tokenizer, projection: int = 128, temperature: float = 1.0,
                 max_length: int = 256, max_query_length: int = 64, negatives: Sequence[str] = ("in-batch",),
                 corpus_negatives: int = 0, seed: int = 0, lora: dict | None = None, bidirectional: bool = False):
        super().__init__()
        if getattr(backbone, "pooler", None) is not None:
            backbone.pooler = None  # no score reads it: N does not count it, DDP needs no unused parameter
        self.encoder = with_lora(backbone, **lora) if lora else backbone
        self.projection = torch.nn.Linear(backbone.config.hidden_size, projection, bias=False)
        self.temperature = float(temperature)
        self.bidirectional = bidirectional  # recorded for save(): the backbone was made bidirectional
        self.texts = TextTokenizer(tokenizer, max_length=max_length, max_query_length=max_query_length)
        self.negatives = tuple(negatives)
        self.corpus_negatives = corpus_negatives if "corpus" in self.negatives else 0
        self.seed = seed

    # --- token embeddings and MaxSim ---

    def embed(self, batch: dict[str, torch.Tensor]) -> TokenEmbeddings:
        """Normalised token vectors of a collated batch (with gradients when training)."""
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].bool()
        values = F.normalize(self.projection(hidden), dim=-1) * mask.unsqueeze(-1).to(hidden.dtype)
        return TokenEmbeddings(values, mask)

    def similarity(self, queries: TokenEmbeddings, docs: TokenEmbeddings) -> torch.Tensor:
        """Scores ``[nq, nd]``: MaxSim / tau, exhaustive over ``docs``."""
        return maxsim(queries, docs) / self.temperature

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], kind: str, batch_size: int = 64) -> TokenEmbeddings:
        """Token embeddings of ``texts`` in input order (float32, on the model's device), padded to the
        longest text; longest texts first in batches of ``batch_size``, no gradients."""
        was_training = self.training
        self.eval()
        encoded = self.texts.encode(texts, kind == "query")
        device = next(self.parameters()).device
        width = max(map(len, encoded), default=1)
        values = torch.zeros(len(encoded), width, self.projection.out_features, device=device)
        mask = torch.zeros(len(encoded), width, dtype=torch.bool, device=device)
        order = np.argsort([-len(ids) for ids in encoded], kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in self.texts.collate([encoded[i] for i in idx]).items()}
            out = self.embed(batch)
            rows = torch.as_tensor(idx, device=device)
            values[rows, : out.values.shape[1]] = out.values.float()
            mask[rows, : out.mask.shape[1]] = out.mask
        self.train(was_training)
        return TokenEmbeddings(values, mask)

    # --- the model-family contract (rerank_scaling.models.family.Model) ---

    def group_scores(self, batch: dict) -> torch.Tensor:
        inputs = batch["inputs"]
        scores = self.similarity(self.embed(inputs["queries"]), self.embed(inputs["docs"]))
        return scores[:, inputs["columns"]]

    def pair_scores(self, q: TokenEmbeddings, d: TokenEmbeddings, qrows: list[int], drows: list[int]) -> np.ndarray:
        """MaxSim / tau of each pair ``(i, j)`` of rows (:meth:`InBatchRetriever.score`)."""
        qi = torch.as_tensor(qrows, device=q.values.device)
        di = torch.as_tensor(drows, device=d.values.device)
        out = []
        step = max(1, MAXSIM_BLOCK // max(q.values.shape[1] * d.values.shape[1], 1))
        for start in range(0, len(qrows), step):
            qs, ds = q[qi[start : start + step]], d[di[start : start + step]]
            sims = torch.einsum("pid,pjd->pij", qs.values, ds.values).masked_fill(~ds.mask[:, None, :], -torch.inf)
            out.append((sims.amax(-1) * qs.mask.to(sims.dtype)).sum(-1))
        return (torch.cat(out) / self.temperature).float().cpu().numpy()

    def parameter_counts(self) -> tuple[int, int]:
        return parameter_counts(self)

    def training_flops(self, tokens: int) -> float:
        return 6.0 * parameter_counts(self)[0] * tokens

    def save(self, folder: Path) -> None:
        """``encoder/`` in Hugging Face format with the tokenizer (LoRA adapters merged), ``projection.pt``,
        ``family.json`` with the settings."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        merged(self.encoder).save_pretrained(folder / "encoder")
        self.texts.tokenizer.save_pretrained(folder / "encoder")
        torch.save(self.projection.state_dict(), folder / "projection.pt")
        write_family_file(folder, LateInteractionFamily.name, {
            "projection": self.projection.out_features, "temperature": self.temperature,
            "bidirectional": self.bidirectional, "max_length": self.texts.max_length,
            "max_query_length": self.texts.max_query_length})


class LateInteractionFamily:
    """ColBERT-style late interaction: MaxSim over token embeddings, trained with in-batch InfoNCE."""

    name = "late-interaction"

    def build(self, config) -> LateInteraction:
        from rerank_scaling.objectives import OBJECTIVES

        own = config.family_settings
        backbone, tokenizer = load_backbone(config.model, seed=config.seed, pooling="mean", dropout=config.dropout)
        if own.bidirectional:
            make_bidirectional(backbone, config.model.name)
        torch.manual_seed(config.seed)  # the projection's (and LoRA adapters') initial weights
        return LateInteraction(backbone, tokenizer, projection=own.projection, temperature=own.temperature,
                               max_length=config.max_length, max_query_length=config.max_query_length,
                               negatives=OBJECTIVES[config.objective].negatives,
                               corpus_negatives=own.corpus_negatives, seed=config.seed, lora=lora_settings(own),
                               bidirectional=own.bidirectional)

    def load(self, folder: Path) -> LateInteraction:
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder)
        info = read_family_file(folder, self.name)
        backbone = AutoModel.from_pretrained(folder / "encoder")
        if info.get("bidirectional"):
            make_bidirectional(backbone, str(folder))
        model = LateInteraction(backbone, AutoTokenizer.from_pretrained(folder / "encoder"),
                                projection=info["projection"], temperature=info["temperature"],
                                max_length=info["max_length"], max_query_length=info["max_query_length"],
                                bidirectional=bool(info.get("bidirectional")))
        model.projection.load_state_dict(torch.load(folder / "projection.pt", map_location="cpu", weights_only=True))
        return model
