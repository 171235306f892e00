"""Our cross-encoder computes what sentence-transformers' CrossEncoder computes.

Same weights (ST loads a folder we ``save_pretrained`` ours into), the same
real Cranfield pairs (2 queries x 10 judged documents, some truncated at
``max_length``), dropout off:

* ``CrossEncoder.score`` (our packed, CLS-pruned forward) equals ST's
  ``CrossEncoder.predict`` logits;
* our pointwise loss equals ST's ``BinaryCrossEntropyLoss`` and our listwise
  loss equals ST's ``ListNetLoss`` on the same batch -- and so do the
  gradients they send into the model.

ST's ListNet target is ``softmax(labels)`` over the whole list, ours is the
softmax of the grades of the relevant documents only; ST labels of ``grade``
for relevant and ``-inf`` for non-relevant documents make the two targets
identical. Needs ``sentence-transformers`` (the ``bench``/``test`` extra);
skipped without it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

st = pytest.importorskip("sentence_transformers")
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, ListNetLoss  # noqa: E402

from rerank_scaling.models.cross_encoder import load_cross_encoder  # noqa: E402
from rerank_scaling.models.ladder import ModelSpec  # noqa: E402
from rerank_scaling.models.cross_encoder import _BertRunner  # noqa: E402
from rerank_scaling.objectives.reranking import BCE, ListNet  # noqa: E402

MAX_LENGTH = 96  # short enough that most Cranfield pairs are truncated: truncation must agree too
GROUP = 10


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
    monkeypatch.setattr(_BertRunner, "pack_threshold", 0.0)  # always pack: the multi-layer packed path
    queries, docs = _flat(groups)
    queries, docs = queries + ["shock"], docs + ["a short document"]  # a batch with much padding
    mine = ours.score(queries, docs, batch_size=32)
    ref = theirs.predict(list(zip(queries, docs)), batch_size=32, activation_fn=torch.nn.Identity(),
                         show_progress_bar=False)
    np.testing.assert_allclose(mine, ref, atol=1e-4, rtol=0)


def _our_loss_and_grads(ours, groups, objective):
    queries, docs = _flat(groups)
    labels = torch.tensor([lab for _, _, lab in groups], dtype=torch.long)
    ours.zero_grad()
    scores = ours(ours.pairs.collate(ours.pairs.encode(queries, docs))).view(labels.shape)
    loss = objective(scores, labels)
    loss.backward()
    grads = {n.removeprefix("backbone."): p.grad.clone() for n, p in ours.named_parameters() if p.grad is not None}
    ours.zero_grad()
    return float(loss.detach()), grads


def _st_loss_and_grads(theirs, loss_fn, inputs, labels):
    theirs.zero_grad()
    loss = loss_fn(inputs, labels)
    loss.backward()
    grads = {n.split("model.", 1)[1]: p.grad.clone() for n, p in theirs.named_parameters() if p.grad is not None}
    theirs.zero_grad()
    return float(loss.detach()), grads


def _assert_same_grads(mine, ref):
    assert set(mine) == set(ref)
    overall = max(float(g.abs().max()) for g in ref.values())
    for name, g in ref.items():
        if name.endswith("attention.self.key.bias"):
            continue  # mathematically zero (softmax ignores a per-row constant): float noise only
        torch.testing.assert_close(mine[name], g, rtol=1e-3, atol=1e-3 * overall, msg=name)


def test_pointwise_loss_equals_st_binary_cross_entropy(models, groups):
    ours, theirs = models
    queries, docs = _flat(groups)
    mine, g_mine = _our_loss_and_grads(ours, groups, BCE())
    labels = torch.tensor([float(x > 0) for _, _, lab in groups for x in lab])
    ref, g_ref = _st_loss_and_grads(theirs, BinaryCrossEntropyLoss(theirs),
                                    [queries, docs], labels)
    assert mine == pytest.approx(ref, abs=1e-5)
    _assert_same_grads(g_mine, g_ref)


def test_listwise_loss_equals_st_listnet(models, groups):
    ours, theirs = models
    mine, g_mine = _our_loss_and_grads(ours, groups, ListNet())
    inputs = [[q for q, _, _ in groups], [docs for _, docs, _ in groups]]
    labels = [torch.tensor([float(x) if x > 0 else -math.inf for x in lab]) for _, _, lab in groups]
    ref, g_ref = _st_loss_and_grads(theirs, ListNetLoss(theirs, mini_batch_size=-1),
                                    inputs, labels)
    assert mine == pytest.approx(ref, abs=1e-5)
    _assert_same_grads(g_mine, g_ref)
