"""The late-interaction (ColBERT) family on real Cranfield texts: MaxSim by hand, the in-batch layout,
exhaustive retrieval, counts, save/load and its config."""

import numpy as np
import pytest
import torch

from rerank_scaling.config import RunConfig
from rerank_scaling.errors import UserError
from rerank_scaling.models import FAMILIES, get_family
from rerank_scaling.models.backbone import parameter_counts
from rerank_scaling.models.late_interaction import TokenEmbeddings, maxsim

from cranfield_groups import judged


def build(**kw):
    kw.setdefault("objective", "infonce-hard")
    return get_family("late-interaction").build(RunConfig.from_dict(dict(
        family="late-interaction", ladder="minilm", size="1L", max_length=48, max_query_length=16, **kw)))


@pytest.fixture(scope="module")
def model():
    return build().eval()  # dropout off: training batches and scoring agree


def test_registered_as_a_first_stage_family_of_the_in_batch_layout():
    info = FAMILIES["late-interaction"]
    assert (info.stage, info.layout, info.objectives) == ("retrieval", "in-batch", ("contrastive",))
    assert get_family("late-interaction").name == "late-interaction" and build().stage == "retrieval"


def test_maxsim_by_hand_and_in_blocks():
    torch.manual_seed(0)
    q = TokenEmbeddings(torch.randn(3, 4, 5), torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]).bool())
    d = TokenEmbeddings(torch.randn(7, 6, 5), torch.rand(7, 6) > 0.3)
    d.mask[:, 0] = True
    q.values[~q.mask], d.values[~d.mask] = 0.0, 0.0  # as encode() gives them
    expected = torch.tensor([[sum(max(float(q.values[a, i] @ d.values[b, j]) for j in range(6) if d.mask[b, j])
                                  for i in range(4) if q.mask[a, i]) for b in range(7)] for a in range(3)])
    torch.testing.assert_close(maxsim(q, d), expected)
    torch.testing.assert_close(maxsim(q, d, block=1), expected)  # one document per block
    torch.testing.assert_close(maxsim(q[1:], d[2:5]), expected[1:, 2:5])


def test_in_batch_scores_are_the_maxsim_of_every_query_and_column(model, cranfield):
    groups = judged(cranfield, 3)
    batch = model.training_batch(groups, cranfield)
    assert batch["targets"].tolist() == [0, 3, 6] and batch["labels"].shape == (3, 9)
    with torch.no_grad():
        scores = model.group_scores(batch)
    assert scores.shape == (3, 9)
    queries = [cranfield.queries[g.qid] for g in groups]
    docs = [cranfield.docs[d] for g in groups for d in g.doc_ids]
    pairs = model.score([q for q in queries for _ in docs], docs * 3).reshape(3, 9)
    np.testing.assert_allclose(scores.numpy(), pairs, rtol=1e-4, atol=1e-4)
    full = model.similarity(model.encode(queries, "query"), model.encode(docs, "doc"))
    np.testing.assert_allclose(full.numpy(), pairs, rtol=1e-4, atol=1e-4)
    # token vectors: unit length at real tokens, zero at padding
    enc = model.encode(docs, "doc")
    norms = enc.values.norm(dim=-1)
    torch.testing.assert_close(norms[enc.mask], torch.ones(int(enc.mask.sum())))
    assert float(norms[~enc.mask].abs().sum()) == 0.0


def test_retrieval_searches_every_document_exhaustively(model, cranfield):
    """The evaluation's chunked search over the corpus (small chunks: several blocks of MaxSim) returns the
    same top documents as scoring every pair of the query with all 1,400 documents one by one."""
    from rerank_scaling.evaluation.rerank import EvalSet
    from rerank_scaling.evaluation.retrieval import search_corpus

    qid = sorted(cranfield.queries, key=int)[0]
    evalset = EvalSet("q", cranfield.subset([qid]), {}, {}, "ce@7")
    (ranking,), _, _, stats = search_corpus(model, cranfield.docs, [evalset], k=1400, chunk=300)
    assert stats is None and len(ranking[qid]) == len(cranfield.docs) == 1400
    ids = [d for d, _ in ranking[qid]]
    by_pairs = model.score([cranfield.queries[qid]] * 1400, [cranfield.docs[d] for d in ids])
    np.testing.assert_allclose([v for _, v in ranking[qid]], by_pairs, rtol=1e-4, atol=1e-4)
    assert ids[0] == ids[int(np.argmax(by_pairs))] and list(by_pairs) == sorted(by_pairs, reverse=True)


def test_size_and_flops_count_the_encoder_and_projection_only(model):
    n, total = model.parameter_counts()
    encoder, _ = parameter_counts(model.encoder)
    assert model.encoder.pooler is None and n == encoder + 384 * 128  # the projection: 128 x 384, no bias
    assert model.training_flops(1000) == 6.0 * n * 1000 and total > n


def test_save_then_load_scores_the_same(model, cranfield, tmp_path):
    queries = [cranfield.queries[q] for q in ("1", "2")]
    docs = [cranfield.docs[d] for d in ("1", "184")]
    before = model.score(queries, docs)
    model.save(tmp_path / "model")
    loaded = get_family("late-interaction").load(tmp_path / "model")
    assert loaded.parameter_counts() == model.parameter_counts() and loaded.temperature == model.temperature
    np.testing.assert_allclose(loaded.score(queries, docs), before, rtol=1e-5, atol=1e-5)


def test_its_own_keys_and_objectives():
    custom = build(projection=32, temperature=0.5, objective="infonce")
    assert custom.projection.out_features == 32 and custom.temperature == 0.5
    with pytest.raises(UserError, match="objective 'marginmse' does not train family 'late-interaction'"):
        RunConfig(family="late-interaction", objective="marginmse", teacher="t")
    with pytest.raises(UserError, match="towers = 'separate' applies to family 'bi-encoder' only"):
        RunConfig.from_dict(dict(family="late-interaction", objective="infonce", towers="separate"))
    with pytest.raises(UserError, match="projection must be a positive integer, got 0"):
        RunConfig.from_dict(dict(family="late-interaction", objective="infonce", projection=0))
