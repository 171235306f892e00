"""Our cross-encoder and losses compute what sentence-transformers' CrossEncoder computes.

Same weights (ST loads a folder we ``save_pretrained`` ours into), the same
real Cranfield pairs (2 queries x 10 judged documents, some truncated at
``max_length``), dropout off:

* ``CrossEncoder.score`` (our packed, CLS-pruned forward) equals ST's
  ``CrossEncoder.predict`` logits;
* each objective's loss, and the gradients it sends into the model, equal
  ST's loss of the same name on the same batch, or a stated multiple of it.

The loss comparisons run at trained-like scores: a fresh head scores every
pair of a group within ~0.01 of each other (near-uniform scores, where
several losses coincide), so both sides add the same fixed offsets
(``TRAINED_LIKE``, spread over ~7 logits, a negative above a positive, the two
positives' grades misordered in one group) to the model's scores -- ours
before the loss, ST's through the loss's ``activation_fn`` -- and the
gradients still flow through the whole model. The groups hold two positives
of different grades: points where a wrong target, gain, tie rule or
normalisation would show:

=============  ============================================  ====================
ours           sentence-transformers (defaults unless said)   relation
=============  ============================================  ====================
pointwise      BinaryCrossEntropyLoss                        equal
listnet        ListNetLoss                                   equal
softmax-ce     ListNetLoss, labels -inf where grade <= 0     equal
softmax-ce     MultipleNegativesRankingLoss (identity,       equal (1 positive)
               scale 1, no in-batch negatives)
pairwise       RankNetLoss                                   ours = ln 2 x ST
pairwise       RankNetLoss(reduction_log="natural")          equal
lambdarank     LambdaLoss(LambdaRankScheme(), natural log),  ours = ST x n_pairs
               labels log2(1 + grade)                        / sum of weights
=============  ============================================  ====================

``RankNetLoss``/``LambdaLoss`` report bits (log2) by default, we report nats.
``LambdaLoss`` averages ``w_ij l_ij`` over the pairs, ``lambdarank`` is the
weighted mean ``sum w l / sum w``; the weights carry no gradient in either, so
the factor ``n_pairs / sum w`` holds for the gradients too. ST's gain is
``2^y - 1``, ours the grade (our NDCG's linear gain): ST labels
``log2(1 + grade)`` give ST our gains and the same pairs. Needs
``sentence-transformers`` (the ``bench``/``test`` extra); skipped without it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

st = pytest.importorskip("sentence_transformers")
from sentence_transformers.cross_encoder.losses import (  # noqa: E402
    BinaryCrossEntropyLoss,
    LambdaLoss,
    LambdaRankScheme,
    ListNetLoss,
    MultipleNegativesRankingLoss,
    RankNetLoss,
)

from rerank_scaling.models.cross_encoder import load_cross_encoder  # noqa: E402
from rerank_scaling.models.ladder import ModelSpec  # noqa: E402
from rerank_scaling.models.packed import BertRunner  # noqa: E402
from rerank_scaling.objectives.reranking import BCE, LambdaRank, ListNet, RankNet, SoftmaxCE  # noqa: E402

MAX_LENGTH = 96  # short enough that most Cranfield pairs are truncated: truncation must agree too
GROUP = 10
# added to the model's scores on both sides (module docstring); row = group, positives first (grades 3/4, 2/...)
TRAINED_LIKE = torch.tensor([
    [2.0, 4.5, 3.0, -1.0, 0.5, -2.0, 1.0, -0.5, -3.0, 0.0],
    [1.5, -0.5, 2.5, 0.0, -1.5, 1.0, -2.5, 0.3, -1.0, 0.8],
])


class Shifted(torch.nn.Module):
    """ST's ``activation_fn``: the logits plus fixed offsets of the same layout as ours."""

    def __init__(self, offsets: torch.Tensor):
        super().__init__()
        self.offsets = offsets

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.offsets.reshape(logits.shape)


def _models(tmp_path_factory, layers: int):
    ours = load_cross_encoder(ModelSpec("minilm", f"{layers}L"), seed=0, max_length=MAX_LENGTH, pooling="cls")
    folder = tmp_path_factory.mktemp(f"st-minilm-{layers}L")
    ours.backbone.save_pretrained(folder)
    ours.pairs.tokenizer.save_pretrained(folder)
    theirs = st.CrossEncoder(str(folder), num_labels=1, max_length=MAX_LENGTH, device="cpu")
    return ours.eval(), theirs.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return _models(tmp_path_factory, 1)


@pytest.fixture(scope="module")
def groups(cranfield):
    """Two query groups of real judged documents: relevant ones first (graded), then non-relevant (label 0)."""
    out = []
    for qid in sorted(cranfield.queries):
        judged = cranfield.qrels.get(qid, {})
        relevant = sorted((d for d, g in judged.items() if g > 0), key=lambda d: (-judged[d], d))
        if len(relevant) < 2 or len({judged[d] for d in relevant}) < 2:
            continue
        positives = [relevant[0], next(d for d in relevant if judged[d] != judged[relevant[0]])]  # graded target
        negatives = [d for d in sorted(cranfield.docs) if d not in judged or judged[d] <= 0][: GROUP - 2]
        docs = positives + negatives
        labels = [judged[d] for d in positives] + [0] * len(negatives)
        out.append((cranfield.queries[qid], [cranfield.docs[d] for d in docs], labels))
        if len(out) == 2:
            break
    assert len(out) == 2
    return out


def _flat(groups):
    queries = [q for q, docs, _ in groups for _ in docs]
    docs = [d for _, ds, _ in groups for d in ds]
    return queries, docs


def test_fast_path_is_the_one_under_test(models):
    ours, _ = models
    assert ours._runner is not None and ours.fast_path


def test_scores_equal_sentence_transformers_predict(models, groups):
    ours, theirs = models
    queries, docs = _flat(groups)
    assert sum(len(ids) >= MAX_LENGTH for ids, _ in ours.pairs.encode(queries, docs)) >= 5  # truncation exercised
    mine = ours.score(queries, docs, batch_size=8)
    ref = theirs.predict(list(zip(queries, docs)), batch_size=8, activation_fn=torch.nn.Identity(),
                         show_progress_bar=False)
    np.testing.assert_allclose(mine, ref, atol=1e-4, rtol=0)
    ours.fast_path = False  # our Hugging Face forward agrees as well
    try:
        np.testing.assert_allclose(ours.score(queries, docs, batch_size=8), ref, atol=1e-4, rtol=0)
    finally:
        ours.fast_path = True


def test_two_layer_packed_scores_equal_sentence_transformers(tmp_path_factory, groups, monkeypatch):
    ours, theirs = _models(tmp_path_factory, 2)
    monkeypatch.setattr(BertRunner, "pack_threshold", 0.0)  # always pack: the multi-layer packed path
    queries, docs = _flat(groups)
    queries, docs = queries + ["shock"], docs + ["a short document"]  # a batch with much padding
    mine = ours.score(queries, docs, batch_size=32)
    ref = theirs.predict(list(zip(queries, docs)), batch_size=32, activation_fn=torch.nn.Identity(),
                         show_progress_bar=False)
    np.testing.assert_allclose(mine, ref, atol=1e-4, rtol=0)


def _our_loss_and_grads(ours, groups, objective, offsets=TRAINED_LIKE):
    queries, docs = _flat(groups)
    labels = torch.tensor([lab for _, _, lab in groups], dtype=torch.long)
    ours.zero_grad()
    scores = ours(ours.pairs.collate(ours.pairs.encode(queries, docs))).view(labels.shape) + offsets
    loss = objective(scores, labels)
    loss.backward()
    grads = {n.removeprefix("backbone."): p.grad.clone() for n, p in ours.named_parameters() if p.grad is not None}
    ours.zero_grad()
    return float(loss.detach()), grads, scores.detach(), labels


def _st_loss_and_grads(theirs, loss_fn, inputs, labels):
    theirs.zero_grad()
    loss = loss_fn(inputs, labels)
    loss.backward()
    grads = {n.split("model.", 1)[1]: p.grad.clone() for n, p in theirs.named_parameters() if p.grad is not None}
    theirs.zero_grad()
    return float(loss.detach()), grads


def _assert_same_grads(mine, ref, factor: float = 1.0) -> float:
    """``mine == factor * ref`` tensor by tensor; returns the largest absolute difference."""
    assert set(mine) == set(ref)
    overall = max(float(g.abs().max()) for g in ref.values()) * abs(factor)
    assert overall > 0
    worst = 0.0
    for name, g in ref.items():
        if name.endswith("attention.self.key.bias"):
            continue  # mathematically zero (softmax ignores a per-row constant): float noise only
        torch.testing.assert_close(mine[name], factor * g, rtol=1e-3, atol=1e-3 * overall, msg=name)
        worst = max(worst, float((mine[name] - factor * g).abs().max()))
    return worst


def _listwise_inputs(groups):
    return [[q for q, _, _ in groups], [docs for _, docs, _ in groups]]


def test_trained_like_scores_are_where_losses_can_differ(models, groups):
    ours, _ = models
    _, _, scores, labels = _our_loss_and_grads(ours, groups, SoftmaxCE())
    assert float((scores - TRAINED_LIKE).std(dim=1).max()) < 0.01  # the model alone: near-uniform
    assert float(scores.std(dim=1).min()) > 1.0  # spread over several logits
    assert len(set(scores.flatten().tolist())) == scores.numel()  # no tied scores: ranks are well defined
    assert all(len({x for x in row if x > 0}) == 2 for row in labels.tolist())  # two positives, two grades
    top = scores.argmax(dim=1)
    assert any(int(labels[b, top[b]]) == 0 for b in range(len(top)))  # a negative ranked first somewhere


def test_pointwise_loss_equals_st_binary_cross_entropy(models, groups):
    ours, theirs = models
    queries, docs = _flat(groups)
    mine, g_mine, _, _ = _our_loss_and_grads(ours, groups, BCE())
    labels = torch.tensor([float(x > 0) for _, _, lab in groups for x in lab])
    loss = BinaryCrossEntropyLoss(theirs, activation_fn=Shifted(TRAINED_LIKE))
    ref, g_ref = _st_loss_and_grads(theirs, loss, [queries, docs], labels)
    assert mine == pytest.approx(ref, abs=1e-5)
    _assert_same_grads(g_mine, g_ref)


def test_listnet_equals_st_listnet_with_its_defaults(models, groups):
    ours, theirs = models
    mine, g_mine, _, _ = _our_loss_and_grads(ours, groups, ListNet())
    labels = [torch.tensor([float(x) for x in lab]) for _, _, lab in groups]  # the grades, as ST takes them
    loss = ListNetLoss(theirs, activation_fn=Shifted(TRAINED_LIKE))  # only the trained-like shift added
    ref, g_ref = _st_loss_and_grads(theirs, loss, _listwise_inputs(groups), labels)
    assert mine == pytest.approx(ref, abs=1e-5)
    _assert_same_grads(g_mine, g_ref)


def test_softmax_ce_equals_st_listnet_given_minus_inf_for_non_relevant(models, groups):
    ours, theirs = models
    mine, g_mine, _, _ = _our_loss_and_grads(ours, groups, SoftmaxCE())
    labels = [torch.tensor([float(x) if x > 0 else -math.inf for x in lab]) for _, _, lab in groups]
    loss = ListNetLoss(theirs, mini_batch_size=-1, activation_fn=Shifted(TRAINED_LIKE))
    ref, g_ref = _st_loss_and_grads(theirs, loss, _listwise_inputs(groups), labels)
    assert mine == pytest.approx(ref, abs=1e-5)
    _assert_same_grads(g_mine, g_ref)
    # and it is not ListNet here: all the target's mass is on the positives, vs (e^3 + e^2) / (e^3 + e^2 + 8)
    # = 0.77 of it for ListNet on grades 3, 2 and 8 negatives
    assert abs(mine - _our_loss_and_grads(ours, groups, ListNet())[0]) > 0.1


def test_softmax_ce_with_one_positive_equals_st_multiple_negatives_ranking(models, groups, monkeypatch):
    ours, theirs = models
    single = [(q, [docs[0], *docs[2:]], [1] + [0] * (len(docs) - 2)) for q, docs, _ in groups]  # one positive each
    offsets = TRAINED_LIKE[:, [0, *range(2, GROUP)]]
    mine, g_mine, _, _ = _our_loss_and_grads(ours, single, SoftmaxCE(), offsets)
    loss = MultipleNegativesRankingLoss(theirs, num_negatives=None, scale=1.0, activation_fn=Shifted(offsets))
    monkeypatch.setattr(loss, "get_in_batch_negatives", lambda anchors, candidates: iter(()))  # hard negatives only
    columns = [[q for q, _, _ in single]] + [[docs[i] for _, docs, _ in single] for i in range(len(single[0][1]))]
    ref, g_ref = _st_loss_and_grads(theirs, loss, columns, torch.ones(len(single)))
    assert mine == pytest.approx(ref, abs=1e-5)
    _assert_same_grads(g_mine, g_ref)


def test_pairwise_ranknet_is_ln2_times_st_ranknet(models, groups):
    ours, theirs = models
    mine, g_mine, _, _ = _our_loss_and_grads(ours, groups, RankNet())
    labels = [torch.tensor([float(x) for x in lab]) for _, _, lab in groups]
    shift = dict(activation_fn=Shifted(TRAINED_LIKE), mini_batch_size=-1)  # batching: speed only
    bits, g_bits = _st_loss_and_grads(theirs, RankNetLoss(theirs, **shift), _listwise_inputs(groups), labels)
    assert mine == pytest.approx(math.log(2) * bits, abs=1e-5)  # ST reports bits, we report nats
    _assert_same_grads(g_mine, g_bits, factor=math.log(2))
    nats, g_nats = _st_loss_and_grads(theirs, RankNetLoss(theirs, reduction_log="natural", **shift),
                                      _listwise_inputs(groups), labels)
    assert mine == pytest.approx(nats, abs=1e-5)
    _assert_same_grads(g_mine, g_nats)


def test_lambdarank_is_st_lambdaloss_with_lambdarank_weights_renormalised(models, groups):
    ours, theirs = models
    objective = LambdaRank()
    mine, g_mine, scores, labels = _our_loss_and_grads(ours, groups, objective)
    weights = objective.pair_weights(scores, labels)
    n_pairs = int(objective.pair_mask(labels).sum())
    assert n_pairs == 2 * (2 * 8 + 1)  # per group: 2 positives x 8 negatives + the graded pair
    factor = n_pairs / float(weights.sum())  # ST: mean over pairs; ours: weighted mean
    st_labels = [torch.tensor([math.log2(1 + x) for x in lab]) for _, _, lab in groups]  # 2^y - 1 = grade
    loss = LambdaLoss(theirs, weighting_scheme=LambdaRankScheme(), reduction_log="natural",
                      activation_fn=Shifted(TRAINED_LIKE), mini_batch_size=-1)  # batching: speed only
    ref, g_ref = _st_loss_and_grads(theirs, loss, _listwise_inputs(groups), st_labels)
    assert mine == pytest.approx(factor * ref, abs=1e-5)
    _assert_same_grads(g_mine, g_ref, factor=factor)
    # ST's exponential gain on the raw grades is a different weighting: not a constant away
    raw = [torch.tensor([float(x) for x in lab]) for _, _, lab in groups]
    other, _ = _st_loss_and_grads(theirs, loss, _listwise_inputs(groups), raw)
    assert abs(mine - factor * other) > 1e-3
