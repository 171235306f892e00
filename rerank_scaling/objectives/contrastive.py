"""Contrastive objectives for bi-encoders over the ``"in-batch"`` score layout.

Layout.  A batch of ``B`` query groups is scored as ``scores[B, C]``: every
query against every *column* the batch holds -- the documents of all groups
(each group's positive, and its hard negatives when the objective uses them),
then ``R`` random corpus documents shared by the whole batch. ``labels[B, C]``
is the grade of column ``j`` for query ``i`` (0: not relevant or unjudged) and
``targets[B]`` the column of query ``i``'s own positive. Which documents the
columns hold is the objective's ``negatives`` in the registry
(:data:`rerank_scaling.objectives.OBJECTIVES`); the model family builds the
batch from it, so the loss below is one formula for all three objectives.

InfoNCE (van den Oord et al., 2018; Karpukhin et al., 2020; Fang et al., 2024)::

    loss = mean_i [ logsumexp_{j in K_i} s_ij  -  s_i,t_i ]
    K_i  = {t_i} u {j : labels_ij <= 0}

i.e. ``-log softmax(s_i)[t_i]`` over the columns, with the query's *other*
relevant columns left out of the denominator (a document relevant to query
``i`` that sits in another group, or a second positive of the same query, is
not a negative). The temperature is the model's: ``s = sim(q, d) / tau``.

Names: ``infonce`` (in-batch negatives: the other queries' positives),
``infonce-hard`` (plus each group's hard negatives from the candidate stage),
``infonce-corpus`` (plus ``corpus_negatives`` random corpus documents shared
across the batch, Fang et al.'s recipe). With no duplicate positives in the
batch ``infonce`` / ``infonce-hard`` equal sentence-transformers'
``MultipleNegativesRankingLoss`` on (anchor, positive[, negatives]) columns
(``tests/objectives/test_contrastive.py``).
"""

from __future__ import annotations

import torch


class InfoNCE:
    """``mean_i [logsumexp_{j in K_i} s_ij - s_{i, t_i}]``, ``K_i`` = the target and the
    columns not relevant to query ``i`` (module docstring). Without ``targets`` each row's
    first highest-graded column is its target (a query-group layout, positive first)."""

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if targets is None:
            targets = labels.argmax(dim=1)
        rows = torch.arange(scores.shape[0], device=scores.device)
        other_relevant = labels > 0
        other_relevant[rows, targets] = False
        masked = scores.masked_fill(other_relevant, -torch.inf)
        return (torch.logsumexp(masked, dim=1) - scores[rows, targets]).mean()
