"""InfoNCE over the in-batch layout: hand-computed values, and equivalence with sentence-transformers."""

import math

import pytest
import torch

from rerank_scaling.config import RunConfig
from rerank_scaling.examples import Group
from rerank_scaling.models import get_family
from rerank_scaling.objectives import OBJECTIVES, get_objective


def test_infonce_masks_the_other_relevant_columns_only():
    scores = torch.tensor([[2.0, 1.0, 0.5, -1.0], [0.0, 1.5, 3.0, 0.2]])
    labels = torch.tensor([[1, 0, 1, 0], [0, 2, 0, 0]])  # column 2 is also relevant to query 0
    targets = torch.tensor([0, 1])
    row0 = -2.0 + math.log(math.exp(2.0) + math.exp(1.0) + math.exp(-1.0))
    row1 = -1.5 + math.log(math.exp(0.0) + math.exp(1.5) + math.exp(3.0) + math.exp(0.2))
    loss = get_objective("infonce")(scores, labels, targets)
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_the_three_infonce_objectives_differ_only_in_their_negatives():
    infos = [OBJECTIVES[n] for n in ("infonce", "infonce-hard", "infonce-corpus")]
    assert {i.target for i in infos} == {"rerank_scaling.objectives.contrastive:InfoNCE"}
    assert [i.negatives for i in infos] == [("in-batch",), ("in-batch", "hard"), ("in-batch", "corpus")]
    assert all(i.layout == "in-batch" and i.requires == ("targets",) for i in infos)


@pytest.mark.parametrize("objective", ["infonce", "infonce-hard"])
def test_infonce_equals_sentence_transformers_multiple_negatives_ranking_loss(objective, cranfield):
    """Same model, same batch: our loss and ST's MultipleNegativesRankingLoss (cosine, scale 20 =
    temperature 0.05) on the (anchor, positive[, negative_1, negative_2]) columns, values and gradients."""
    losses = pytest.importorskip("sentence_transformers.losses")
    config = RunConfig(family="bi-encoder", objective=objective, ladder="minilm", size="1L", max_length=48,
                       max_query_length=16, dropout=0.0)
    model = get_family("bi-encoder").build(config)
    qids = [q for q in sorted(cranfield.queries, key=int)[:40]
            if any(g > 0 for g in cranfield.qrels.get(q, {}).values())][:4]
    taken = set()
    groups = []
    judged = set().union(*(cranfield.qrels[q] for q in qids))
    for qid in qids:  # distinct positives and negatives, none judged for another query of the batch
        others = set().union(*(cranfield.qrels[q] for q in qids if q != qid))
        pos = next(d for d, g in sorted(cranfield.qrels[qid].items()) if g > 0 and d not in taken | others)
        negs = [d for d in sorted(cranfield.docs, key=int) if d not in judged and d not in taken][:2]
        taken.update((pos, *negs))
        groups.append(Group(qid, (pos, *negs), (cranfield.qrels[qid][pos], 0, 0)))
    batch = model.training_batch(groups, cranfield)
    model.train()
    ours = get_objective(objective)(model.group_scores(batch), batch["labels"], batch["targets"])
    ours.backward()
    grad_ours = model.towers[0].backbone.encoder.layer[0].output.dense.weight.grad.clone()
    model.zero_grad()

    columns = [[cranfield.queries[g.qid] for g in groups]]
    per_group = 3 if objective == "infonce-hard" else 1
    columns += [[cranfield.docs[g.doc_ids[k]] for g in groups] for k in range(per_group)]
    embeddings = [model.embed(model.texts.collate(model.texts.encode(texts, k == 0)), "query" if k == 0 else "doc")
                  for k, texts in enumerate(columns)]
    reference = losses.MultipleNegativesRankingLoss(model=None, scale=20.0)
    theirs = reference.compute_loss_from_embeddings(embeddings, None)
    theirs.backward()
    grad_theirs = model.towers[0].backbone.encoder.layer[0].output.dense.weight.grad
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    assert grad_ours.abs().max() > 1e-4  # a real gradient; equal up to float rounding (batching differs)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-3, atol=1e-6)


def test_our_embeddings_equal_a_sentence_transformer_on_the_same_backbone(cranfield):
    st = pytest.importorskip("sentence_transformers")
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer

    from rerank_scaling.models.backbone import minilm_path

    module = Transformer(minilm_path(), max_seq_length=48, config_kwargs={"num_hidden_layers": 1})
    reference = st.SentenceTransformer(modules=[module, Pooling(384, "mean")], device="cpu")
    model = get_family("bi-encoder").build(RunConfig.from_dict(dict(
        family="bi-encoder", objective="infonce", ladder="minilm", size="1L", max_length=48, similarity="dot")))
    docs = [cranfield.docs[d] for d in ("1", "184", "900")]
    torch.testing.assert_close(model.encode(docs, "doc"), reference.encode(docs, convert_to_tensor=True),
                               rtol=1e-4, atol=1e-5)
