"""The objective registry: every training loss, by name, with what it needs.

An objective is a callable ``loss(scores, labels, **extra) -> scalar`` over
the score layout of a model family (``"groups"``: ``[B, 1 + n]`` query groups,
positive first). ``requires`` names the extra batch entries it needs beyond
the labels (a distillation loss needs ``"teacher_scores"``), so the training
step hands them over without knowing the loss. Registering an objective is
one line here; the implementation is imported only when it is used, which
keeps this module torch-free (configs are validated without torch).

Names (formulas in :mod:`rerank_scaling.objectives.reranking`):

* ``listnet`` is ListNet as Cao et al. (2007) define it and as
  sentence-transformers' ``ListNetLoss`` computes it: cross-entropy between
  ``softmax(labels)`` over the whole list and ``softmax(scores)``. The
  reference study (Seetharaman et al., 2026) names its listwise loss
  ``listnet`` beside ``ranknet`` and ``bce``, sentence-transformers' loss
  names, so ``experiments/paper-msmarco.toml`` uses ``listnet``.
* ``softmax-ce`` is softmax cross-entropy / InfoNCE: the target is the softmax
  of the labels over the relevant documents only (one-hot for one positive).
* ``listwise`` is an alias of ``softmax-ce``, bit for bit: it is the name
  earlier experiment files, the demo and existing result tables use for that
  loss (``objective = "listwise"``), so it keeps its meaning and its numbers.
  It stays the default objective for the same reason; choose ``listnet`` to
  match Cao et al. or the reference study.
* ``lambdarank`` is RankNet with LambdaRank's |delta NDCG| pair weights;
  ``lambda`` is its alias (its earlier name).

An alias trains exactly like its target, but tables record the name the
experiment file gave, so old and new runs stay distinguishable.

Contrastive objectives (bi-encoders; layout ``"in-batch"``, formulas in
:mod:`rerank_scaling.objectives.contrastive`) are one InfoNCE loss whose
``negatives`` say which documents the batch holds besides each query's
positive: ``in-batch`` (the other queries' positives), ``hard`` (each group's
BM25 negatives, ``n_negatives`` of them), ``corpus`` (``corpus_negatives``
random corpus documents shared by the batch, Fang et al.'s recipe). The model
family reads ``negatives`` to build the batch, so no document is encoded that
the loss does not use.

Distillation objectives (dense and sparse retrievers; formulas in
:mod:`rerank_scaling.objectives.distillation`) read a cross-encoder teacher's
scores of each query's group (``requires`` ``teacher_scores``; the ``teacher``
config key names the teacher): ``marginmse`` (Zeng et al.'s KD), ``kl`` (KL to
the teacher's softmax over the group) and ``cl-kd`` (in-batch InfoNCE and that
KL, averaged: Zeng et al.'s CL+KD). Their batches hold each group's hard
negatives, the documents the teacher scored.

``query-distill`` (ScalingNote's stage 2, Huang et al. 2024) distils a trained
bi-encoder's *query tower* into a small one: it reads no scores but the
student's query embeddings (``requires`` ``teacher_embeddings``: the teacher's
embeddings of the same queries), so it is a kind of its own
(``query-distillation``), and its loss weights are config keys (``params``).

Which families train which objectives is the families' to say: each entry of
:data:`rerank_scaling.models.FAMILIES` names the objective kinds it trains.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from rerank_scaling.errors import UserError


@dataclass(frozen=True)
class ObjectiveInfo:
    name: str
    target: str  # "module:Class"
    kind: str  # "reranking" | "contrastive" | "distillation" | "query-distillation" (what families accept)
    layout: str = "groups"  # the score layout it reads (a model family's ``layout``)
    requires: tuple[str, ...] = ()  # batch entries besides labels
    alias_of: str | None = None  # the canonical name, for a historical alias
    negatives: tuple[str, ...] = ()  # contrastive batches: "in-batch", "hard", "corpus" (module docstring)
    params: tuple[str, ...] = ()  # config keys handed to the loss's constructor (its weights)

    @property
    def distils(self) -> bool:
        """It learns from a teacher (``teacher_scores``: MarginMSE, KL, CL+KD; ``teacher_embeddings``:
        query-distill): its cells read ``[train] teacher``."""
        return bool({"teacher_scores", "teacher_embeddings"} & set(self.requires))


OBJECTIVES: dict[str, ObjectiveInfo] = {info.name: info for info in (
    ObjectiveInfo("pointwise", "rerank_scaling.objectives.reranking:BCE", "reranking"),
    ObjectiveInfo("pairwise", "rerank_scaling.objectives.reranking:RankNet", "reranking"),
    ObjectiveInfo("listnet", "rerank_scaling.objectives.reranking:ListNet", "reranking"),
    ObjectiveInfo("softmax-ce", "rerank_scaling.objectives.reranking:SoftmaxCE", "reranking"),
    ObjectiveInfo("lambdarank", "rerank_scaling.objectives.reranking:LambdaRank", "reranking"),
    ObjectiveInfo("infonce", "rerank_scaling.objectives.contrastive:InfoNCE", "contrastive", "in-batch",
                  ("targets",), negatives=("in-batch",)),
    ObjectiveInfo("infonce-hard", "rerank_scaling.objectives.contrastive:InfoNCE", "contrastive", "in-batch",
                  ("targets",), negatives=("in-batch", "hard")),
    ObjectiveInfo("infonce-corpus", "rerank_scaling.objectives.contrastive:InfoNCE", "contrastive", "in-batch",
                  ("targets",), negatives=("in-batch", "corpus")),
    ObjectiveInfo("marginmse", "rerank_scaling.objectives.distillation:MarginMSE", "distillation", "in-batch",
                  ("targets", "teacher_scores"), negatives=("in-batch", "hard")),
    ObjectiveInfo("kl", "rerank_scaling.objectives.distillation:KL", "distillation", "in-batch",
                  ("targets", "teacher_scores"), negatives=("in-batch", "hard")),
    ObjectiveInfo("cl-kd", "rerank_scaling.objectives.distillation:ContrastivePlusKL", "distillation", "in-batch",
                  ("targets", "teacher_scores"), negatives=("in-batch", "hard")),
    ObjectiveInfo("query-distill", "rerank_scaling.objectives.distillation:QueryDistill", "query-distillation",
                  "in-batch", ("teacher_embeddings",), params=("mse_weight", "cosine_weight")),
    # historical names, kept bit for bit (existing experiment files and tables use them)
    ObjectiveInfo("listwise", "rerank_scaling.objectives.reranking:SoftmaxCE", "reranking", alias_of="softmax-ce"),
    ObjectiveInfo("lambda", "rerank_scaling.objectives.reranking:LambdaRank", "reranking", alias_of="lambdarank"),
)}


def get_objective(name: str, config=None):
    """A new instance of the objective registered as ``name``; its ``params`` (loss weights) are
    read from ``config`` (a ``RunConfig``'s :meth:`value`; None: the loss's own defaults)."""
    if name not in OBJECTIVES:
        raise UserError(f"unknown objective '{name}' (choose from {', '.join(OBJECTIVES)})")
    module, _, attr = OBJECTIVES[name].target.partition(":")
    params = {p: config.value(p) for p in OBJECTIVES[name].params} if config is not None else {}
    objective = getattr(importlib.import_module(module), attr)(**params)
    objective.info = OBJECTIVES[name]
    return objective
