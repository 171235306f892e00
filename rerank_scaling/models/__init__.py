"""Model families: their registry, the settings each family owns, their ladders.

A family is one module (its :class:`~rerank_scaling.models.family.ModelFamily`,
torch) plus one :class:`FamilyInfo` entry in :data:`FAMILIES` here, torch-free,
so that configs, the grid and the report ask it without loading a model. The
entry declares:

* ``stage``: ``"rerank"`` (a reranker reorders each evaluation set's candidate
  lists) or ``"retrieval"`` (a first-stage retriever searches the whole corpus);
* ``layout``: the score layout of its ``group_scores`` (``"groups"`` or
  ``"in-batch"``, :mod:`rerank_scaling.objectives`);
* ``objectives``: the objective kinds it trains (``ObjectiveInfo.kind``);
* ``settings``: the dataclass of the ``[train]`` keys it owns (declared with
  :func:`~rerank_scaling.config.fields.setting`, like every key); a run's
  config holds the family's section (``RunConfig.family_settings``), and a
  key no family of a grid owns is an error;
* ``noun``: what a report calls its models.

What retrievers share (in-batch negatives, decoder backbones, LoRA) is one
settings class, :class:`RetrieverSettings`, as it is one code base
(:mod:`rerank_scaling.models.base`).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, fields
from typing import Literal

from rerank_scaling.config.fields import check_all, setting
from rerank_scaling.errors import UserError
from rerank_scaling.values import FRACTION, PROBABILITY


@dataclass(frozen=True)
class FamilySettings:
    """The ``[train]`` keys a family owns; checked on construction (types, ranges, then :meth:`validate`)."""

    def __post_init__(self) -> None:
        check_all(self)
        self.validate()

    def validate(self) -> None:
        """Rules between this family's values (raise :class:`UserError`)."""


@dataclass(frozen=True)
class CrossEncoderSettings(FamilySettings):
    pooling: Literal["cls", "mean"] | None = setting(
        None, section="train", label="pooling",
        doc="None: the ladder's default (mean for minilm, cls otherwise)")


@dataclass(frozen=True)
class RetrieverSettings(FamilySettings):
    """Keys of every retriever built on :mod:`rerank_scaling.models.base`."""

    corpus_negatives: int = setting(256, section="train", min=1,
                                    doc="infonce-corpus: random corpus documents shared by each batch "
                                        "(Fang et al.: 256)")
    bidirectional: bool = setting(False, section="train",
                                  doc="decoder backbones: remove the causal mask (Zeng et al., LLM2Vec)")
    lora_rank: int | None = setting(None, section="train", min=1,
                                    doc="train LoRA adapters of this rank on a frozen backbone (peft); None: "
                                        "full fine-tuning")
    lora_alpha: float | None = setting(None, section="train", above=0,
                                       doc="LoRA scale alpha (updates are alpha / rank x B A); None: 2 x lora_rank")
    lora_dropout: float = setting(0.0, section="train", value=PROBABILITY, doc="dropout on the LoRA adapters' input")
    lora_targets: tuple[str, ...] = setting((), section="train",
                                            doc="modules that get adapters (e.g. q_proj, v_proj); empty: every "
                                                "linear layer of the transformer")

    def validate(self) -> None:
        if self.lora_rank is None and (self.lora_alpha is not None or self.lora_dropout or self.lora_targets):
            raise UserError("lora_alpha, lora_dropout and lora_targets need lora_rank (LoRA is off without it)")
        if self.lora_rank is not None and importlib.util.find_spec("peft") is None:
            raise UserError("lora_rank needs peft: pip install 'rerank-scaling[lora]'")


@dataclass(frozen=True)
class BiEncoderSettings(RetrieverSettings):
    pooling: Literal["mean", "cls", "last"] | None = setting(
        None, section="train", label="pooling",
        doc="None: the ladder's default (mean for minilm, last for decoders, cls otherwise)")
    towers: Literal["shared", "separate"] = setting(
        "shared", section="train", label="towers",
        doc="bi-encoder: one tower for queries and documents, or a separate document tower")
    projection: int | None = setting(None, section="train", min=1,
                                     doc="a linear projection to this many dimensions; None: none")
    similarity: Literal["cosine", "dot"] = setting("cosine", section="train", label="similarity",
                                                   doc="bi-encoder score: cosine or dot, divided by the temperature")
    temperature: float | None = setting(None, section="train", above=0,
                                        doc="scores are sim / temperature; None: 0.05 (cosine), 1 (dot)")


@dataclass(frozen=True)
class SparseSettings(RetrieverSettings):
    regularizer: Literal["flops", "l1"] = setting(
        "flops", section="train", label="regularizer",
        doc="sparse: flops (sum_j mean_i |w_ij| squared) or l1, on queries and docs")
    lambda_q: float = setting(0.05, section="train", min=0,
                              doc="sparse: weight of the query regulariser (Zeng et al.: 0.05)")
    lambda_d: float = setting(0.04, section="train", min=0,
                              doc="sparse: weight of the document regulariser (Zeng et al.: 0.04)")
    regularizer_warmup: float = setting(1 / 3, section="train", value=FRACTION,
                                        doc="sparse: fraction of the steps over which the lambdas ramp up "
                                            "quadratically from 0 (Zeng et al.: 1/3; 0: none)")


@dataclass(frozen=True)
class QueryDistillSettings(FamilySettings):
    pooling: Literal["mean", "cls", "last"] | None = setting(
        None, section="train", label="pooling", doc="the query tower's pooling; None: the ladder's default")
    projection: int | None = setting(None, section="train", min=1,
                                     doc="query-distill: may only name the teacher's width (the student projects "
                                         "to it when its hidden size differs)")
    temperature: float | None = setting(None, section="train", above=0,
                                        doc="query-distill: may only repeat the teacher's (the index is searched as "
                                            "the teacher searches it)")
    mse_weight: float = setting(1.0, section="train", min=0,
                                doc="query-distill: weight of the MSE between student and teacher query embeddings")
    cosine_weight: float = setting(1.0, section="train", min=0,
                                   doc="query-distill: weight of 1 - cosine(student, teacher) query embeddings")
    latency_queries: int = setting(100, section="train", min=1,
                                   doc="query-distill: queries timed one at a time (batch 1) for the median "
                                       "query-encoding latency, after 10 untimed ones")

    def validate(self) -> None:
        if self.mse_weight == 0 and self.cosine_weight == 0:
            raise UserError("query-distill: mse_weight and cosine_weight are both 0, so the loss is 0 and nothing "
                            "is learned")


@dataclass(frozen=True)
class LateInteractionSettings(RetrieverSettings):
    projection: int = setting(128, section="train", min=1,
                              doc="late-interaction: each token's vector is projected to this many dimensions "
                                  "(ColBERT: 128)")
    temperature: float = setting(1.0, section="train", above=0,
                                 doc="late-interaction: scores are MaxSim / temperature (1: ColBERT's)")


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    target: str  # "module:Class" of its ModelFamily
    stage: Literal["rerank", "retrieval"]
    layout: Literal["groups", "in-batch"]
    objectives: tuple[str, ...]  # the objective kinds it trains (ObjectiveInfo.kind)
    settings: type[FamilySettings]
    noun: tuple[str, str]  # (singular, plural) in reports


FAMILIES: dict[str, FamilyInfo] = {info.name: info for info in (
    FamilyInfo("cross-encoder", "rerank_scaling.models.cross_encoder:CrossEncoderFamily", "rerank", "groups",
               ("reranking",), CrossEncoderSettings, ("reranker", "rerankers")),
    FamilyInfo("bi-encoder", "rerank_scaling.models.bi_encoder:BiEncoderFamily", "retrieval", "in-batch",
               ("contrastive", "distillation"), BiEncoderSettings, ("bi-encoder", "bi-encoders")),
    FamilyInfo("sparse", "rerank_scaling.models.sparse:SparseFamily", "retrieval", "in-batch",
               ("contrastive", "distillation"), SparseSettings, ("sparse retriever", "sparse retrievers")),
    FamilyInfo("query-distill", "rerank_scaling.models.query_distill:QueryDistillFamily", "retrieval", "in-batch",
               ("query-distillation",), QueryDistillSettings, ("distilled query tower", "distilled query towers")),
    FamilyInfo("late-interaction", "rerank_scaling.models.late_interaction:LateInteractionFamily", "retrieval",
               "in-batch", ("contrastive",), LateInteractionSettings,
               ("late-interaction retriever", "late-interaction retrievers")),
)}


def family_info(name: str) -> FamilyInfo:
    """The registry entry of ``name`` (:class:`UserError` naming the registered ones)."""
    if name not in FAMILIES:
        raise UserError(f"unknown model family '{name}' (choose from {', '.join(FAMILIES)})")
    return FAMILIES[name]


def get_family(name: str):
    """The :class:`~rerank_scaling.models.family.ModelFamily` registered as ``name``."""
    module, _, attr = family_info(name).target.partition(":")
    return getattr(importlib.import_module(module), attr)()


def owners(key: str) -> tuple[str, ...]:
    """The families whose settings declare ``key`` (empty: no family's own key)."""
    return tuple(n for n, info in FAMILIES.items() if key in {f.name for f in fields(info.settings)})
