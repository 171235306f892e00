"""Distillation objectives for retrievers: the student learns a cross-encoder teacher's scores.

Layout: the ``"in-batch"`` layout of :mod:`rerank_scaling.objectives.contrastive`
with hard negatives (``negatives = ("in-batch", "hard")``): query ``i``'s own
group ``[positive, neg_1 .. neg_n]`` sits in columns ``targets[i] ..
targets[i] + G - 1`` of ``scores[B, C]``, and ``teacher_scores[B, G]`` holds the
teacher's scores of the same group, in the same order (cached per teacher and
training set, :mod:`rerank_scaling.pipeline.teacher`). With ``G`` = 1 + n::

    marginmse:  mean_{i, j>0} [ (s_i0 - s_ij) - (t_i0 - t_ij) ]^2         (Hofstaetter et al., 2020)
    kl:         mean_i KL( softmax(t_i) || softmax(s_i) )                  (over the group)
    cl-kd:      ( InfoNCE(scores, labels, targets) + kl ) / 2              (Zeng et al., 2025)

``marginmse`` is Zeng et al.'s KD objective and equals sentence-transformers'
``MarginMSELoss`` given the teacher's (positive, negatives) scores as labels
(``tests/objectives/test_distillation.py``). ``cl-kd`` averages the in-batch
contrastive loss over all the batch's columns (the other queries' documents
are negatives) and the group KL, as Zeng et al.'s CL+KD. Student scores are
the family's own (dense: ``sim / tau``; sparse: the dot product); the
teacher's are its logits, no temperature on either side.

``query-distill`` is ScalingNote's stage 2 (Huang et al., 2024, "ScalingNote:
Scaling up Retrievers with Large Language Models for Real-World Dense
Retrieval", arXiv:2411.15766: "we distill only the query tower using mean
squared error loss and cosine similarity"): a small query tower learns a
trained bi-encoder's query embeddings, the large document tower's index is
kept. Here ``scores[B, d]`` are the student's query embeddings (its tower's
output, projected to the teacher's ``d`` where the widths differ, before the
similarity's L2 normalisation) and ``teacher_embeddings[B, d]`` the teacher
query tower's, the same queries in the same order::

    query-distill:  w_mse * mean_{i,k} (s_ik - t_ik)^2  +  w_cos * mean_i (1 - cos(s_i, t_i))

(``mse_weight``, ``cosine_weight``; 1 and 1 by default). The paper gives the
two terms but not (in what we could read of it) their weights or the MSE's
normalisation; ours is the element-wise mean (``torch.nn.functional.mse_loss``)
on the unnormalised embeddings, so the MSE also matches their norms while the
cosine term, which alone decides a cosine retriever's ranking, matches their
directions. On L2-normalised embeddings the two would be the same loss up to a
factor ``2 / d``. Kim et al. (2023, arXiv:2306.11550) distil query encoders by
the same embedding alignment.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rerank_scaling.objectives.contrastive import InfoNCE


def own_group(scores: torch.Tensor, targets: torch.Tensor | None, width: int) -> torch.Tensor:
    """``[B, width]``: each query's scores of its own group (columns ``targets[i] ..``); the scores
    themselves in the ``"groups"`` layout (no ``targets``)."""
    if targets is None:
        return scores[:, :width]
    cols = targets.to(scores.device)[:, None] + torch.arange(width, device=scores.device)[None, :]
    return scores.gather(1, cols)


def _check(teacher_scores: torch.Tensor) -> torch.Tensor:
    if teacher_scores.ndim != 2 or teacher_scores.shape[1] < 2:
        raise ValueError(f"teacher_scores must be [B, 1 + n] with n >= 1 negatives, got {tuple(teacher_scores.shape)}")
    return teacher_scores


class MarginMSE:
    def __call__(self, scores, labels, teacher_scores, targets=None) -> torch.Tensor:
        t = _check(teacher_scores).to(scores)
        s = own_group(scores, targets, t.shape[1])
        return F.mse_loss(s[:, :1] - s[:, 1:], t[:, :1] - t[:, 1:])


class KL:
    def __call__(self, scores, labels, teacher_scores, targets=None) -> torch.Tensor:
        t = _check(teacher_scores).to(scores)
        s = own_group(scores, targets, t.shape[1])
        return F.kl_div(F.log_softmax(s, dim=1), F.log_softmax(t, dim=1), reduction="batchmean", log_target=True)


class ContrastivePlusKL:
    def __init__(self):
        self.contrastive, self.kl = InfoNCE(), KL()

    def __call__(self, scores, labels, teacher_scores, targets=None) -> torch.Tensor:
        return (self.contrastive(scores, labels, targets) + self.kl(scores, labels, teacher_scores, targets)) / 2


class QueryDistill:
    """``w_mse * MSE(s, t) + w_cos * mean(1 - cos(s, t))`` between student and teacher query embeddings."""

    def __init__(self, mse_weight: float = 1.0, cosine_weight: float = 1.0):
        self.mse_weight, self.cosine_weight = float(mse_weight), float(cosine_weight)

    def __call__(self, scores, labels, teacher_embeddings) -> torch.Tensor:
        t = teacher_embeddings.to(scores)
        if t.shape != scores.shape:
            raise ValueError(f"student embeddings {tuple(scores.shape)} and teacher embeddings {tuple(t.shape)} "
                             "differ in shape (a student needs a projection to the teacher's width)")
        cosine = F.cosine_similarity(scores, t, dim=-1)
        return self.mse_weight * F.mse_loss(scores, t) + self.cosine_weight * (1 - cosine).mean()
