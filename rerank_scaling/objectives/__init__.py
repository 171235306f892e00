"""The objective registry: every training loss, by name, with what it needs.

An objective is a callable ``loss(scores, labels, **extra) -> scalar`` over
the score layout of a model family (``"groups"``: ``[B, 1 + n]`` query groups,
positive first). ``requires`` names the extra batch entries it needs beyond
the labels (a distillation loss needs ``"teacher_scores"``), so the training
step hands them over without knowing the loss. Registering an objective is
one line here; the implementation is imported only when it is used, which
keeps this module torch-free (configs are validated without torch).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from rerank_scaling.errors import UserError


@dataclass(frozen=True)
class ObjectiveInfo:
    name: str
    target: str  # "module:Class"
    kind: str  # "reranking" | "contrastive" | "distillation"
    layout: str = "groups"  # the score layout it reads (a model family's ``layout``)
    requires: tuple[str, ...] = ()  # batch entries besides labels


OBJECTIVES: dict[str, ObjectiveInfo] = {info.name: info for info in (
    ObjectiveInfo("pointwise", "rerank_scaling.objectives.reranking:BCE", "reranking"),
    ObjectiveInfo("pairwise", "rerank_scaling.objectives.reranking:RankNet", "reranking"),
    ObjectiveInfo("listwise", "rerank_scaling.objectives.reranking:ListNet", "reranking"),
    ObjectiveInfo("lambda", "rerank_scaling.objectives.reranking:LambdaRank", "reranking"),
)}


def get_objective(name: str):
    """A new instance of the objective registered as ``name``."""
    if name not in OBJECTIVES:
        raise UserError(f"unknown objective '{name}' (choose from {', '.join(OBJECTIVES)})")
    module, _, attr = OBJECTIVES[name].target.partition(":")
    objective = getattr(importlib.import_module(module), attr)()
    objective.info = OBJECTIVES[name]
    return objective
