"""Reranking objectives over one tensor shape (registered in :mod:`rerank_scaling.objectives`).

Every objective sees the same training instance: a *query group* of one
relevant document followed by ``n`` negatives from the candidate list, scored
into ``scores[B, G]`` (``G = 1 + n``) with graded ``labels[B, G]`` (> 0
relevant). Only the loss differs, so objectives are compared on identical
data. Below ``s`` is a row of scores, ``y`` its labels, ``g = max(y, 0)`` its
gains, ``p = softmax(s)``; every loss is a mean over the batch.

==============  ============================================================
``pointwise``   BCE: ``mean_i BCE(sigmoid(s_i), [y_i > 0])``.
``pairwise``    RankNet: ``sum_{y_i > y_j} log(1 + exp(-(s_i - s_j))) / #pairs``.
``listnet``     ListNet (Cao et al., 2007, top-one probabilities):
                ``-sum_i softmax(g)_i log p_i`` over the whole list. One
                positive among 10 negatives: target e/(e+10) ~ 0.21 on it.
``softmax-ce``  softmax cross-entropy / InfoNCE: ``-sum_i t_i log p_i`` with
                ``t = softmax(y)`` over the relevant documents only (0
                elsewhere); one positive: ``-log p_pos``. ``listwise`` is
                this loss under its historical name.
``lambdarank``  RankNet pairs weighted by LambdaRank's ``|delta NDCG_ij|``
                (linear gains) of swapping i and j in the current ranking,
                normalised by the sum of the weights. ``lambda`` is its
                historical name.
==============  ============================================================

How each relates to sentence-transformers' cross-encoder loss of the same
name (``tests/models/test_equivalence_st.py`` checks loss and gradients):
``listnet`` == ``ListNetLoss`` (defaults); ``softmax-ce`` == ``ListNetLoss``
given ``-inf`` labels for non-relevant documents, and == the cross-encoder
``MultipleNegativesRankingLoss`` with identity activation, scale 1 and no
in-batch negatives (one positive); ``pairwise`` == ``ln 2 * RankNetLoss``
(ST reports bits by default); ``lambdarank`` == ``ln 2 * n_pairs / sum(w) *
LambdaLoss(LambdaRankScheme())`` with ST labels ``log2(1 + grade)`` (ST's gain
is ``2^y - 1``, ours the grade, as in our NDCG; identical for 0/1 labels).

Every tensor a loss makes follows its inputs' device and dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class PairwiseObjective:
    """Losses over pairs of documents of the same query: ``sum w_ij l_ij / sum w_ij`` with
    ``l_ij = -log sigmoid(s_i - s_j)`` over the pairs with ``label_i > label_j`` (ties in the
    labels make no pair)."""

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
    """Pointwise binary cross-entropy, label = grade > 0:
    ``mean_{b,i} -[y>0] log sigmoid(s) - [y<=0] log(1 - sigmoid(s))``."""

    def __call__(self, scores, labels):
        return F.binary_cross_entropy_with_logits(scores, (labels > 0).to(scores.dtype))


class RankNet(PairwiseObjective):
    """RankNet (Burges et al., 2005), sigma = 1, in nats:
    ``sum_{y_i > y_j} log(1 + exp(-(s_i - s_j))) / #pairs``, pairs pooled over the batch."""


class LambdaRank(PairwiseObjective):
    """RankNet pairs weighted by LambdaRank's |delta NDCG| of swapping them (Burges, 2010):

    ``w_ij = |g_i - g_j| * |1/log2(1 + r_i) - 1/log2(1 + r_j)| / IDCG`` with linear gains
    ``g = max(y, 0)`` (our NDCG's), ``r`` the 1-based ranks under the current scores (no
    gradient; tied scores rank in ``argsort`` order) and IDCG over the whole group;
    ``loss = sum_{y_i > y_j} w_ij log(1 + exp(-(s_i - s_j))) / sum w_ij`` (a weighted mean).
    """

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
    """ListNet (Cao et al., 2007) with top-one probabilities over the whole list:

    ``loss = -sum_i softmax(g)_i log softmax(s)_i``, ``g = max(y, 0)`` (a grade <= 0 is
    non-relevant: -1 and 0 give the same target). With one positive among ``n`` negatives
    the target is ``e/(e + n)`` on the positive and ``1/(e + n)`` on each negative; the
    loss is smallest (the target's entropy) at ``s = g + const``, i.e. it asks for a margin
    of 1 between a grade-1 positive and the negatives, not for an ever larger one.
    """

    def __call__(self, scores, labels):
        target = torch.softmax(labels.clamp_min(0).to(scores.dtype), dim=1)
        return -(target * torch.log_softmax(scores, dim=1)).sum(1).mean()


class SoftmaxCE:
    """Softmax cross-entropy (InfoNCE) against the relevant documents only:

    ``loss = -sum_i t_i log softmax(s)_i`` with ``t = softmax(y)`` over ``{i: y_i > 0}`` and
    0 elsewhere; for one positive ``t`` is one-hot and ``loss = -log softmax(s)_pos``.
    Registered as ``softmax-ce`` and, historically, ``listwise``.
    """

    def __call__(self, scores, labels):
        relevant = labels > 0
        target_logits = torch.where(relevant, labels.to(scores.dtype), torch.full_like(scores, -torch.inf))
        target = torch.softmax(target_logits, dim=1)
        return -(target * torch.log_softmax(scores, dim=1)).sum(1).mean()
