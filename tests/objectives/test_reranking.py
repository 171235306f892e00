"""Objectives against hand-computed values on tiny fixtures."""

import math

import pytest
import torch

from rerank_scaling.errors import UserError
from rerank_scaling.objectives import OBJECTIVES, get_objective

SCORES = torch.tensor([[2.0, 1.0, 0.0]])
LABELS = torch.tensor([[1, 0, 0]])


def test_listwise_is_softmax_cross_entropy_of_the_positive():
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + math.exp(0)))
    assert get_objective("listwise")(SCORES, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_pairwise_ranknet_averages_over_ordered_pairs():
    expected = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(-2.0))) / 2
    assert get_objective("pairwise")(SCORES, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_pointwise_bce_over_every_pair():
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = -(math.log(sig(2.0)) + math.log(1 - sig(1.0)) + math.log(1 - sig(0.0))) / 3
    assert get_objective("pointwise")(SCORES, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_lambda_weights_pairs_by_delta_ndcg():
    # positive ranked first: swapping with rank 2 changes NDCG by 1 - 1/log2(3), with rank 3 by 1 - 1/2
    w2, w3 = 1 - 1 / math.log2(3), 1 - 1 / 2
    expected = (w2 * math.log1p(math.exp(-1.0)) + w3 * math.log1p(math.exp(-2.0))) / (w2 + w3)
    assert get_objective("lambda")(SCORES, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_graded_listwise_target_is_softmax_of_relevant_grades():
    scores = torch.tensor([[0.5, 0.2, -1.0]])
    labels = torch.tensor([[2, 1, 0]])
    target = torch.softmax(torch.tensor([2.0, 1.0]), 0)
    logp = torch.log_softmax(scores[0], 0)
    expected = -(target[0] * logp[0] + target[1] * logp[1])
    assert get_objective("listwise")(scores, labels).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_prefers_the_positive_on_top(name):
    good = torch.tensor([[3.0, 0.0, 0.0, 0.0]])
    bad = torch.tensor([[0.0, 3.0, 0.0, 0.0]])
    labels = torch.tensor([[1, 0, 0, 0]])
    obj = get_objective(name)
    assert obj(good, labels) < obj(bad, labels)
    scores = torch.zeros(1, 4, requires_grad=True)
    obj(scores, labels).backward()
    assert scores.grad[0, 0] < 0  # gradient descent raises the positive's score


def test_unknown_objective_is_a_one_line_user_error():
    with pytest.raises(UserError, match="unknown objective 'softmax'.*listwise"):
        get_objective("softmax")
