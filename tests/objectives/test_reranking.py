"""Objectives against hand-computed values on tiny fixtures."""

import math

import pytest
import torch

from rerank_scaling.errors import UserError
from rerank_scaling.objectives import OBJECTIVES, get_objective

SCORES = torch.tensor([[2.0, 1.0, 0.0]])
LABELS = torch.tensor([[1, 0, 0]])


def test_softmax_ce_is_cross_entropy_of_the_positive():
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + math.exp(0)))
    assert get_objective("softmax-ce")(SCORES, LABELS).item() == pytest.approx(expected, rel=1e-6)
    assert get_objective("listwise")(SCORES, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_pairwise_ranknet_averages_over_ordered_pairs():
    expected = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(-2.0))) / 2
    assert get_objective("pairwise")(SCORES, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_pointwise_bce_over_every_pair():
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = -(math.log(sig(2.0)) + math.log(1 - sig(1.0)) + math.log(1 - sig(0.0))) / 3
    assert get_objective("pointwise")(SCORES, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_lambdarank_weights_pairs_by_delta_ndcg():
    # positive ranked first: swapping with rank 2 changes NDCG by 1 - 1/log2(3), with rank 3 by 1 - 1/2
    w2, w3 = 1 - 1 / math.log2(3), 1 - 1 / 2
    expected = (w2 * math.log1p(math.exp(-1.0)) + w3 * math.log1p(math.exp(-2.0))) / (w2 + w3)
    assert get_objective("lambdarank")(SCORES, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_graded_softmax_ce_target_is_softmax_of_relevant_grades():
    scores = torch.tensor([[0.5, 0.2, -1.0]])
    labels = torch.tensor([[2, 1, 0]])
    target = torch.softmax(torch.tensor([2.0, 1.0]), 0)
    logp = torch.log_softmax(scores[0], 0)
    expected = -(target[0] * logp[0] + target[1] * logp[1])
    assert get_objective("softmax-ce")(scores, labels).item() == pytest.approx(expected.item(), rel=1e-6)


# every objective that reads scores (query-distill reads query embeddings: tests/objectives/test_query_distill.py)
@pytest.mark.parametrize("name", sorted(n for n, o in OBJECTIVES.items() if "teacher_embeddings" not in o.requires))
def test_every_objective_prefers_the_positive_on_top(name):
    good = torch.tensor([[3.0, 0.0, 0.0, 0.0]])
    bad = torch.tensor([[0.0, 3.0, 0.0, 0.0]])
    labels = torch.tensor([[1, 0, 0, 0]])
    obj = get_objective(name)
    # a distillation objective learns from a teacher that prefers the positive too
    extras = {"teacher_scores": torch.tensor([[2.0, -1.0, -1.0, -1.0]])} if "teacher_scores" in \
        OBJECTIVES[name].requires else {}
    assert obj(good, labels, **extras) < obj(bad, labels, **extras)
    scores = torch.zeros(1, 4, requires_grad=True)
    obj(scores, labels, **extras).backward()
    assert scores.grad[0, 0] < 0  # gradient descent raises the positive's score


def test_unknown_objective_is_a_one_line_user_error():
    with pytest.raises(UserError, match="unknown objective 'softmax'.*listwise"):
        get_objective("softmax")


def test_aliases_train_exactly_like_their_target():
    assert OBJECTIVES["listwise"].alias_of == "softmax-ce" and OBJECTIVES["lambda"].alias_of == "lambdarank"
    scores = torch.tensor([[0.7, 2.0, -0.3, 0.1], [1.5, -1.0, 0.4, 0.0]])
    labels = torch.tensor([[2, 1, 0, 0], [1, 0, 0, 0]])
    for alias, target in (("listwise", "softmax-ce"), ("lambda", "lambdarank")):
        assert get_objective(alias)(scores, labels).item() == get_objective(target)(scores, labels).item()


def test_listnet_target_is_softmax_of_labels_over_the_whole_list():
    # one positive among 10 negatives: the target puts e/(e+10) = 0.2137 on the positive
    scores = torch.tensor([[1.0] + [0.0] * 10])
    labels = torch.tensor([[1] + [0] * 10])
    t_pos, t_neg = math.e / (math.e + 10), 1 / (math.e + 10)
    assert t_pos == pytest.approx(0.2137, abs=1e-4)
    z = math.e + 10  # sum exp(scores)
    expected = -(t_pos * math.log(math.e / z) + 10 * t_neg * math.log(1 / z))
    assert get_objective("listnet")(scores, labels).item() == pytest.approx(expected, rel=1e-6)
    # its minimum is the target's entropy, reached at scores = labels + c (a margin of 1)
    entropy = -(t_pos * math.log(t_pos) + 10 * t_neg * math.log(t_neg))
    assert get_objective("listnet")(scores + 3.0, labels).item() == pytest.approx(entropy, rel=1e-6)


def test_listnet_treats_every_non_relevant_grade_alike():
    scores = torch.tensor([[0.5, 0.2, -1.0]])
    assert get_objective("listnet")(scores, torch.tensor([[2, -1, 0]])).item() == pytest.approx(
        get_objective("listnet")(scores, torch.tensor([[2, 0, 0]])).item(), rel=1e-7)


def test_listnet_and_softmax_ce_coincide_on_uniform_scores_and_part_on_trained_ones():
    labels = torch.tensor([[1] + [0] * 10])
    listnet, softmax_ce = get_objective("listnet"), get_objective("softmax-ce")
    # uniform scores: log_softmax = -log 11 everywhere, so any target gives log 11 = 2.3979
    uniform = torch.zeros(1, 11, requires_grad=True)
    assert listnet(uniform, labels).item() == pytest.approx(math.log(11), rel=1e-6)
    assert softmax_ce(uniform, labels).item() == pytest.approx(math.log(11), rel=1e-6)
    # ... but not their gradients: p - t on the positive is 1/11 - 1 vs 1/11 - e/(e+10)
    (g_ce,) = torch.autograd.grad(softmax_ce(uniform, labels), uniform)
    (g_ln,) = torch.autograd.grad(listnet(uniform, labels), uniform)
    assert g_ce[0, 0].item() == pytest.approx(1 / 11 - 1, rel=1e-6)
    assert g_ln[0, 0].item() == pytest.approx(1 / 11 - math.e / (math.e + 10), rel=1e-6)
    assert g_ce[0, 0] / g_ln[0, 0] == pytest.approx(7.40, abs=0.01)
    # trained-like scores (positive 5 logits above its negatives): 0.0652 vs 3.9966, ~61x
    trained = torch.tensor([[5.0] + [0.0] * 10])
    ce = math.log1p(10 * math.exp(-5))
    t_pos, z = math.e / (math.e + 10), math.exp(5) + 10
    ln = -(t_pos * math.log(math.exp(5) / z) + (1 - t_pos) * math.log(1 / z))
    assert softmax_ce(trained, labels).item() == pytest.approx(ce, rel=1e-6) == pytest.approx(0.06521, abs=1e-5)
    assert listnet(trained, labels).item() == pytest.approx(ln, rel=1e-6) == pytest.approx(3.9966, abs=1e-4)
    assert listnet(trained, labels).item() / softmax_ce(trained, labels).item() > 50
