"""Our SPLADE pieces compute what sentence-transformers' SparseEncoder pieces compute, on the same batch.

Real inputs: the pretrained SPLADE model in ``../shared/models/splade-tiny``
run over real Cranfield queries and documents of different lengths (padding
in the batch), dropout off.

* ``splade_pool`` (max over the logits, then ``log(1 + relu)``) equals
  ``SpladePooling("max", "relu")`` (activation per token, then the max), and
  so do the gradients it sends into the logits;
* the ``flops`` regulariser equals ``FlopsLoss`` (no threshold) on the pooled
  queries and on the pooled documents;
* ``marginmse`` on the sparse family's in-batch scores equals
  ``MarginMSELoss`` (dot product) given the teacher's (positive, negatives)
  scores as labels.

sentence-transformers >= 5 (the version installed here is checked by the
import; the test skips without it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

st_sparse = pytest.importorskip("sentence_transformers.sparse_encoder")

from rerank_scaling.config import RunConfig  # noqa: E402
from rerank_scaling.models import get_family  # noqa: E402
from rerank_scaling.models.sparse import splade_pool  # noqa: E402
from rerank_scaling.objectives import get_objective  # noqa: E402
from rerank_scaling.objectives.regularizers import flops  # noqa: E402

SPLADE_TINY = Path(__file__).resolve().parents[3] / "shared" / "models" / "splade-tiny"


def _st(name):
    import importlib

    for module in ("sentence_transformers.sparse_encoder.modules", "sentence_transformers.sparse_encoder.losses",
                   "sentence_transformers.sentence_transformer.losses", "sentence_transformers.sparse_encoder.models",
                   "sentence_transformers.losses"):  # sentence-transformers 6 paths first, then 5's
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    pytest.skip(f"sentence-transformers has no {name}")


@pytest.fixture(scope="module")
def model(shared_root):
    config = RunConfig(family="sparse", objective="infonce-hard", ladder="hf", size=str(SPLADE_TINY), max_length=48)
    m = get_family("sparse").build(config)
    m.eval()
    return m


@pytest.fixture(scope="module")
def texts(cranfield):
    qids = sorted(cranfield.queries)[:3]
    docs = [d for q in qids for d in sorted(cranfield.positives(q))[:2]]
    return [cranfield.queries[q] for q in qids], [cranfield.docs[d] for d in docs]


def test_splade_pooling_equals_sentence_transformers(model, texts):
    SpladePooling = _st("SpladePooling")
    batch = model.texts.collate(model.texts.encode(texts[0] + texts[1], False))
    assert (batch["attention_mask"] == 0).any()  # padding in the batch
    logits = model.mlm(**batch).logits.detach()
    ours_in = logits.clone().requires_grad_(True)
    theirs_in = logits.clone().requires_grad_(True)
    ours = splade_pool(ours_in, batch["attention_mask"])
    pooling = SpladePooling(pooling_strategy="max", activation_function="relu").train()
    theirs = pooling({"token_embeddings": theirs_in, "attention_mask": batch["attention_mask"]})["sentence_embedding"]
    assert ours.shape == (len(texts[0]) + len(texts[1]), 30522)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    assert 0 < int((ours > 0).sum(1).min()) < 1000  # sparse: a few hundred active terms at most
    weights = torch.randn_like(ours)
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    torch.testing.assert_close(ours_in.grad, theirs_in.grad, rtol=1e-5, atol=1e-6)


def test_flops_regulariser_equals_flops_loss(model, texts):
    FlopsLoss = _st("FlopsLoss")
    loss = FlopsLoss(model=None)
    for group, is_query in ((texts[0], True), (texts[1], False)):
        with torch.no_grad():
            w = model.embed(model.texts.collate(model.texts.encode(group, is_query)))
        torch.testing.assert_close(flops(w), loss.compute_loss_from_embeddings(w))
        hand = sum(float(w[:, j].abs().mean()) ** 2 for j in torch.nonzero(w.sum(0)).flatten().tolist())
        assert abs(float(flops(w)) - hand) < 1e-4 * max(hand, 1)


def test_marginmse_equals_sentence_transformers(model, cranfield):
    MarginMSELoss = _st("MarginMSELoss")
    from rerank_scaling.examples import Group

    qids = sorted(q for q in cranfield.queries if len(cranfield.positives(q)) >= 1)[:3]
    pool = sorted(cranfield.docs)[:20]
    groups = [Group(q, (sorted(cranfield.positives(q))[0], *[d for d in pool if d not in cranfield.positives(q)][i:i + 3]),
                    (1, 0, 0, 0)) for i, q in enumerate(qids)]
    batch = model.training_batch(groups, cranfield)
    teacher = torch.tensor([[3.0, -1.0, 0.5, 2.0], [1.0, 1.5, -2.0, 0.0], [4.0, 0.0, 1.0, -3.0]])
    scores = model.group_scores(batch)
    ours = get_objective("marginmse")(scores, batch["labels"], teacher_scores=teacher, targets=batch["targets"])
    q = model.embed(batch["inputs"]["queries"])
    d = model.embed(batch["inputs"]["docs"])[batch["inputs"]["columns"]].view(len(groups), 4, -1)
    theirs = MarginMSELoss(model=None).compute_loss_from_embeddings([q, *[d[:, j] for j in range(4)]], teacher)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
