"""ScalingNote's query-distill loss: MSE + (1 - cosine) between student and teacher query embeddings."""

import math

import pytest
import torch

from rerank_scaling.config import RunConfig
from rerank_scaling.errors import UserError
from rerank_scaling.models import FAMILIES
from rerank_scaling.objectives import OBJECTIVES, get_objective

STUDENT = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 4.0]])
TEACHER = torch.tensor([[1.0, 1.0, 1.0], [0.0, 6.0, 8.0]])


def _by_hand(w_mse: float, w_cos: float) -> float:
    mse = sum((s - t) ** 2 for srow, trow in zip(STUDENT.tolist(), TEACHER.tolist()) for s, t in zip(srow, trow)) / 6
    cos0 = (1 * 1 + 0 * 1 + 2 * 1) / (math.sqrt(1 + 0 + 4) * math.sqrt(3))  # 3 / sqrt(15)
    cos1 = 1.0  # the same direction, twice the norm
    return w_mse * mse + w_cos * ((1 - cos0) + (1 - cos1)) / 2


def test_the_loss_is_mse_plus_one_minus_cosine_by_hand():
    loss = get_objective("query-distill")(STUDENT, torch.zeros(2, dtype=torch.long), teacher_embeddings=TEACHER)
    # (0 + 1 + 1 + 0 + 9 + 16) / 6 = 27 / 6, and 1 - 3/sqrt(15) for the first row only
    assert float(loss) == pytest.approx(27 / 6 + (1 - 3 / math.sqrt(15)) / 2, rel=1e-6)
    assert float(loss) == pytest.approx(_by_hand(1, 1), rel=1e-6)


def test_the_weights_are_the_configs():
    config = RunConfig.from_dict(dict(family="query-distill", objective="query-distill", teacher="some/teacher",
                                      mse_weight=0.25, cosine_weight=3.0))
    objective = get_objective("query-distill", config)
    assert (objective.mse_weight, objective.cosine_weight) == (0.25, 3.0)
    loss = objective(STUDENT, torch.zeros(2), teacher_embeddings=TEACHER)
    assert float(loss) == pytest.approx(_by_hand(0.25, 3.0), rel=1e-6)
    only_cos = get_objective("query-distill", RunConfig.from_dict(dict(
        family="query-distill", objective="query-distill", teacher="t", mse_weight=0.0)))
    # cosine alone ignores the norm: a student twice the teacher's scale has no loss
    assert float(only_cos(2 * TEACHER, torch.zeros(2), teacher_embeddings=TEACHER)) == pytest.approx(0, abs=1e-6)


def test_gradient_descent_moves_the_student_onto_the_teacher():
    student = STUDENT.clone().requires_grad_()
    objective = get_objective("query-distill")
    losses, cosines = [], []
    opt = torch.optim.SGD([student], lr=0.5)
    for _ in range(50):
        loss = objective(student, torch.zeros(2), teacher_embeddings=TEACHER)
        losses.append(loss.item())
        cosines.append(torch.nn.functional.cosine_similarity(student, TEACHER).mean().item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.01 * losses[0] and cosines[-1] > cosines[0] and cosines[-1] > 0.999


def test_a_width_mismatch_is_named():
    with pytest.raises(ValueError, match="projection"):
        get_objective("query-distill")(STUDENT, torch.zeros(2), teacher_embeddings=torch.zeros(2, 4))


def test_query_distill_is_its_own_family_and_needs_a_teacher():
    assert OBJECTIVES["query-distill"].kind == "query-distillation"
    assert FAMILIES["query-distill"].objectives == ("query-distillation",)
    # an experiment file written when query-distill was a bi-encoder objective: one line naming the family
    with pytest.raises(UserError, match="does not train family 'bi-encoder'.*; it trains family 'query-distill'"):
        RunConfig(family="bi-encoder", objective="query-distill", teacher="t")
    with pytest.raises(UserError, match="objective 'infonce' does not train family 'query-distill'"):
        RunConfig(family="query-distill", objective="infonce", teacher="t")
    with pytest.raises(UserError, match="distils a teacher"):
        RunConfig(family="query-distill", objective="query-distill")
    with pytest.raises(UserError, match="towers = 'separate' applies to family 'bi-encoder' only"):
        RunConfig.from_dict(dict(family="query-distill", objective="query-distill", teacher="t", towers="separate"))
    with pytest.raises(UserError, match="mse_weight"):
        RunConfig.from_dict(dict(family="query-distill", objective="query-distill", teacher="t", mse_weight=-1.0))
    with pytest.raises(UserError, match="latency_queries.*'query-distill' only"):
        RunConfig.from_dict(dict(family="bi-encoder", objective="infonce", latency_queries=5))
