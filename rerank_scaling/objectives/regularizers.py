"""Sparsity regularisers of SPLADE representations ``w[n, V]`` (a batch of queries or documents).

* ``flops`` (Paria et al., 2020; SPLADE, Formal et al., 2021; Zeng et al., 2025)::

      FLOPS(w) = sum_j ( mean_i |w_ij| )^2

  a smooth surrogate of the expected number of multiplications of a
  query-document dot product: it pushes down terms active in many texts of
  the batch. It equals sentence-transformers' ``FlopsLoss`` (without its
  threshold) on the same batch (``tests/models/test_sparse_equivalence.py``).
* ``l1``: ``mean_i sum_j |w_ij|``, the plain lasso per text.

SPLADE weights are non-negative (``log(1 + relu)``); the absolute values make
both functions right for any input. The sparse family weights them by
``lambda_q`` / ``lambda_d`` with a quadratic warm-up (:func:`warmup_scale`).
"""

from __future__ import annotations

import torch


def flops(w: torch.Tensor) -> torch.Tensor:
    return w.abs().mean(dim=0).pow(2).sum()


def l1(w: torch.Tensor) -> torch.Tensor:
    return w.abs().sum(dim=1).mean()


REGULARIZERS = {"flops": flops, "l1": l1}


def warmup_scale(step: int, warmup: int) -> float:
    """``min(1, (step / warmup)^2)``: SPLADE's quadratic ramp of the regulariser weights, 1 without warm-up
    (Zeng et al.: ``warmup`` = the first third of training)."""
    if warmup <= 0:
        return 1.0
    return min(1.0, (step / warmup) ** 2)
