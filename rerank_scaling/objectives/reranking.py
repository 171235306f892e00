"""Reranking objectives over one tensor shape (registered in :mod:`rerank_scaling.objectives`).

Every objective sees the same training instance: a *query group* of one
relevant document followed by ``n`` negatives from the candidate list, scored
into ``scores[B, 1 + n]`` with graded ``labels[B, 1 + n]`` (>0 relevant).
Only the loss differs, so objectives are compared on identical data:

``pointwise``  BCE on every (query, doc) pair of the group, label = grade > 0.
``pairwise``   RankNet: ``-log sigmoid(s_i - s_j)`` for every pair with
               ``label_i > label_j``, averaged.
``listwise``   ListNet / softmax cross-entropy: cross-entropy between
               ``softmax(labels)`` restricted to relevant docs (for one positive:
               a one-hot target) and ``softmax(scores)``.
``lambda``     LambdaRank-style: RankNet pairs weighted by ``|delta NDCG|`` of
               swapping them in the current ranking (a LambdaLoss relative).

Every tensor a loss makes follows its inputs' device and dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class PairwiseObjective:
    """Losses over pairs of documents of the same query."""

    @staticmethod
    def pair_mask(labels: torch.Tensor) -> torch.Tensor:
        """``[B, G, G]`` mask of pairs (i, j) with ``label_i > label_j``."""
        return labels[:, :, None] > labels[:, None, :]

    def pair_weights(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.pair_mask(labels).to(scores.dtype)

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        diff = scores[:, :, None] - scores[:, None, :]
        weights = self.pair_weights(scores, labels)
        losses = F.softplus(-diff) * weights  # -log sigmoid(s_i - s_j)
        return losses.sum() / weights.sum().clamp_min(1e-12)


class BCE:
    """Pointwise binary cross-entropy, label = grade > 0."""

    def __call__(self, scores, labels):
        return F.binary_cross_entropy_with_logits(scores, (labels > 0).to(scores.dtype))


class RankNet(PairwiseObjective):
    """RankNet over every pair with ``label_i > label_j``."""


class LambdaRank(PairwiseObjective):
    """RankNet pairs weighted by |delta NDCG| of swapping them (linear gains)."""

    def pair_weights(self, scores, labels):
        gains = labels.clamp_min(0).to(scores.dtype)
        with torch.no_grad():
            ranks = scores.argsort(dim=1, descending=True).argsort(dim=1).to(scores.dtype)
            discount = 1.0 / torch.log2(ranks + 2.0)
            ideal = (gains.sort(dim=1, descending=True).values / torch.log2(
                torch.arange(gains.shape[1], dtype=scores.dtype, device=scores.device) + 2.0
            )).sum(1).clamp_min(1e-12)
            delta = (gains[:, :, None] - gains[:, None, :]).abs() * (
                discount[:, :, None] - discount[:, None, :]
            ).abs() / ideal[:, None, None]
        return self.pair_mask(labels).to(scores.dtype) * delta


class ListNet:
    """Softmax cross-entropy against softmax(labels) over the relevant documents."""

    def __call__(self, scores, labels):
        relevant = labels > 0
        target_logits = torch.where(relevant, labels.to(scores.dtype), torch.full_like(scores, -torch.inf))
        target = torch.softmax(target_logits, dim=1)
        return -(target * torch.log_softmax(scores, dim=1)).sum(1).mean()

