"""The bi-encoder (dense retriever): ``score(q, d) = sim(E_q(q), E_d(d)) / tau``.

A tower is a transformer backbone, a pooling (``mean`` over the real tokens,
the last layer's ``cls`` state, or the ``last`` real token, for decoders) and
an optional linear ``projection`` to ``d`` dimensions. The query and document
towers are one module by default (``towers = "shared"``, as Fang et al. and
sentence-transformers); ``"separate"`` gives the documents their own copy,
initialised from the same weights. ``sim`` is ``cosine`` (embeddings
L2-normalised, then the dot product) or ``dot``; ``tau`` is the
``temperature`` (default 0.05 for cosine, as sentence-transformers' scale 20,
and 1 for dot). Texts are ``[CLS] text [SEP]`` cut to ``max_query_length``
(queries) and ``max_length`` (documents) tokens, special tokens included; a
decoder's tokenizer that ends a text with no special token gets its EOS token
appended under ``last`` pooling, so the pooled state is the end of the text.

Decoder-only backbones (the ``llama`` ladder, any causal LM through ``hf``;
:mod:`rerank_scaling.models.decoder`): ``bidirectional`` removes their causal
mask, ``last`` pooling (their default) reads the last real token whatever the
padding side, and ``lora_rank`` trains LoRA adapters on the frozen towers
(the projection trains in full); a saved model has its adapters merged.

Model size N (``parameter_counts``): the non-embedding parameters of the
distinct towers -- shared towers count once, separate towers twice -- with
the projection, LoRA adapters excluded; the backbone's ``[CLS]`` pooler is removed (no pooling reads
it). FLOPs: every token passes through one tower, so training costs
``6 * N_tower * tokens`` (``N_tower = N`` for shared towers, ``N / 2`` for
separate ones); the similarity matrix (``B x C x d``) is negligible beside it.

Training batches use the ``"in-batch"`` layout of
:mod:`rerank_scaling.objectives.contrastive`, built by the retrievers' shared
base (:class:`~rerank_scaling.models.base.InBatchRetriever`); the towers are
:class:`~rerank_scaling.models.base.Tower` modules.

For retrieval (:mod:`rerank_scaling.evaluation.retrieval`) the model exposes
``encode(texts, kind)`` and ``similarity(q, d)``; ``stage = "retrieval"`` tells
evaluation to search the whole corpus instead of reranking candidates.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rerank_scaling.models.backbone import load_backbone, parameter_counts
from rerank_scaling.models.base import InBatchRetriever, TextTokenizer, Tower, encode_sorted, lora_settings
from rerank_scaling.models.decoder import is_causal, make_bidirectional, merged
from rerank_scaling.models.family import read_family_file, write_family_file
from rerank_scaling.models.ladder import ModelSpec, default_pooling

POOLINGS = ("mean", "cls", "last")
SIMILARITIES = ("cosine", "dot")
TOWERS = ("shared", "separate")


def default_temperature(similarity: str) -> float:
    return 0.05 if similarity == "cosine" else 1.0


class BiEncoder(InBatchRetriever, torch.nn.Module):
    """Query and document towers with a similarity; the model-family contract for dense retrieval."""

    stage = "retrieval"

    def __init__(self, query_backbone: torch.nn.Module, tokenizer, doc_backbone: torch.nn.Module | None = None,
                 pooling: str = "mean", projection: int | None = None, similarity: str = "cosine",
                 temperature: float | None = None, max_length: int = 256, max_query_length: int = 64,
                 negatives: Sequence[str] = ("in-batch",), corpus_negatives: int = 0, seed: int = 0,
                 lora: dict | None = None, bidirectional: bool = False):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        towers = [Tower(query_backbone, pooling, projection, lora)]
        if doc_backbone is not None:
            towers.append(Tower(doc_backbone, pooling, projection, lora))
        self.towers = torch.nn.ModuleList(towers)
        self.pooling, self.projection_dim, self.similarity_name = pooling, projection, similarity
        self.bidirectional = bidirectional  # recorded for save(): the backbones were made bidirectional
        self.temperature = float(temperature if temperature is not None else default_temperature(similarity))
        self.texts = TextTokenizer(tokenizer, max_length=max_length, max_query_length=max_query_length,
                                   end_with_eos=pooling == "last")
        self.negatives = tuple(negatives)
        self.corpus_negatives = corpus_negatives if "corpus" in self.negatives else 0
        self.seed = seed

    @property
    def shared(self) -> bool:
        return len(self.towers) == 1

    def tower(self, kind: str) -> Tower:
        return self.towers[0] if kind == "query" or self.shared else self.towers[1]

    # --- embeddings and scores ---

    def embed(self, batch: dict[str, torch.Tensor], kind: str, normalize: bool = True) -> torch.Tensor:
        """Embeddings of a collated batch of queries or docs (``kind``), normalised for cosine
        (``normalize=False``: the tower's output as it is)."""
        out = self.tower(kind)(batch)
        return F.normalize(out, dim=-1) if normalize and self.similarity_name == "cosine" else out

    def similarity(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        """Scores ``[nq, nd]`` of embedded queries against embedded docs: ``q . d / tau``."""
        return queries @ docs.T / self.temperature

    @property
    def width(self) -> int:
        """The dimension of its embeddings."""
        return self.towers[0].width

    def encode(self, texts: Sequence[str], kind: str, batch_size: int = 64, normalize: bool = True) -> torch.Tensor:
        """Embeddings ``[n, d]`` (float32, on the model's device) in input order; longest texts
        first in batches of ``batch_size`` (dynamic padding), no gradients; ``normalize`` as :meth:`embed`."""
        tower = self.tower(kind)
        return encode_sorted(self, self.texts, texts, kind == "query", batch_size,
                             lambda batch: self.embed(batch, kind, normalize), self.width, tower._runner)

    # --- the model-family contract (rerank_scaling.models.family.Model) ---

    def group_scores(self, batch: dict) -> torch.Tensor:
        inputs = batch["inputs"]
        scores = self.similarity(self.embed(inputs["queries"], "query"), self.embed(inputs["docs"], "doc"))
        return scores[:, inputs["columns"]]

    def pair_scores(self, q: torch.Tensor, d: torch.Tensor, qrows: list[int], drows: list[int]) -> np.ndarray:
        """``q[i] . d[j] / tau`` for each pair ``(i, j)`` of rows (:meth:`InBatchRetriever.score`)."""
        qi, di = torch.as_tensor(qrows, device=q.device), torch.as_tensor(drows, device=d.device)
        return ((q[qi] * d[di]).sum(1) / self.temperature).float().cpu().numpy()

    def parameter_counts(self) -> tuple[int, int]:
        return parameter_counts(self)

    def training_flops(self, tokens: int) -> float:
        return 6.0 * parameter_counts(self.towers[0])[0] * tokens

    def save(self, folder: Path) -> None:
        """The towers' encoders (Hugging Face format, tokenizer included; LoRA merged) in a layout
        sentence-transformers' ``SentenceTransformer`` loads as trained, pooling, projection and
        normalisation included (:mod:`~rerank_scaling.models.export`): a shared tower at the top of
        ``folder``, separate towers in ``query_0_Transformer/`` and ``document_0_Transformer/``;
        ``family.json`` with the settings."""
        from rerank_scaling.models.export import bi_encoder_layout, save_hf

        folder = Path(folder)
        limits = (self.texts.max_length,) if self.shared else (self.texts.max_query_length, self.texts.max_length)
        for sub, tower, limit in zip(TOWER_FOLDERS[self.shared], self.towers, limits):
            save_hf(folder / sub, merged(tower.backbone), self.texts.tokenizer, limit)
        bi_encoder_layout(folder, self)
        write_family_file(folder, BiEncoderFamily.name, {
            "pooling": self.pooling, "projection": self.projection_dim,
            "similarity": self.similarity_name, "temperature": self.temperature, "bidirectional": self.bidirectional,
            "towers": "shared" if self.shared else "separate", "max_length": self.texts.max_length,
            "max_query_length": self.texts.max_query_length})


# where save() puts the towers' encoders: shared -> the folder itself; separate -> the Router's routes
TOWER_FOLDERS = {True: ("",), False: ("query_0_Transformer", "document_0_Transformer")}


class BiEncoderFamily:
    """Dense retrieval: ``sim(E_q(q), E_d(d)) / tau`` trained with in-batch (contrastive) objectives."""

    name = "bi-encoder"

    def from_encoder(self, source: str, max_length: int = 256, max_query_length: int = 64) -> BiEncoder:
        """A Hugging Face encoder (hub id or folder) as a bi-encoder, as sentence-transformers' usual models
        are: one shared tower, mean pooling, cosine / 0.05."""
        backbone, tokenizer = load_backbone(ModelSpec("hf", source), pooling="mean")
        return BiEncoder(backbone, tokenizer, pooling="mean", similarity="cosine", max_length=max_length,
                         max_query_length=max_query_length)

    def build(self, config) -> BiEncoder:
        from rerank_scaling.objectives import OBJECTIVES

        own = config.family_settings
        backbone, tokenizer = load_backbone(config.model, seed=config.seed, pooling="mean", dropout=config.dropout)
        # a decoder reads its last token by default (under causal attention the only one that sees the text)
        pooling = own.pooling or ("last" if is_causal(backbone) else default_pooling(config.ladder))
        if own.bidirectional:
            make_bidirectional(backbone, config.model.name)
        doc = copy.deepcopy(backbone) if own.towers == "separate" else None
        torch.manual_seed(config.seed)  # the projection's (and LoRA adapters') initial weights
        return BiEncoder(backbone, tokenizer, doc, pooling=pooling, projection=own.projection,
                         similarity=own.similarity, temperature=own.temperature,
                         max_length=config.max_length, max_query_length=config.max_query_length,
                         negatives=OBJECTIVES[config.objective].negatives,
                         corpus_negatives=own.corpus_negatives, seed=config.seed,
                         lora=lora_settings(own), bidirectional=own.bidirectional)

    def load(self, folder: Path) -> BiEncoder:
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder)
        info = read_family_file(folder, self.name)
        separate = info["towers"] == "separate"
        old = (folder / "query").is_dir()  # the layout before sentence-transformers': query/, doc/, projection-*.pt
        subs = ("query", "doc") if old else TOWER_FOLDERS[not separate]
        query = AutoModel.from_pretrained(folder / subs[0])
        doc = AutoModel.from_pretrained(folder / subs[1]) if separate else None
        for backbone in (query, doc) if info.get("bidirectional") else ():
            if backbone is not None:
                make_bidirectional(backbone, str(folder))
        model = BiEncoder(query, AutoTokenizer.from_pretrained(folder / subs[0]), doc, pooling=info["pooling"],
                          projection=info["projection"], similarity=info["similarity"],
                          temperature=info["temperature"], max_length=info["max_length"],
                          max_query_length=info["max_query_length"], bidirectional=bool(info.get("bidirectional")))
        prefixes = ("query_", "document_") if separate else ("",)  # where export wrote each tower's Dense
        for name, prefix, tower in zip(("query", "doc"), prefixes, model.towers):
            if tower.projection is None:
                continue
            if old:
                tower.projection.load_state_dict(
                    torch.load(folder / f"projection-{name}.pt", map_location="cpu", weights_only=True))
            else:
                from rerank_scaling.models.export import read_dense

                read_dense(folder / f"{prefix}2_Dense", tower.projection)
        return model
