"""The model-family contract, on the cross-encoder: build, batch, score, count, save, load."""

import numpy as np
import pytest
import torch

from rerank_scaling.config import RunConfig
from rerank_scaling.data import Collection
from rerank_scaling.errors import UserError
from rerank_scaling.examples import Group
from rerank_scaling.models import FAMILIES, get_family

COLLECTION = Collection(
    name="toy", docs={"d1": "lift of a swept wing", "d2": "boundary layer heat transfer", "d3": "shock waves"},
    titles={}, queries={"q1": "wing lift", "q2": "heat"}, qrels={"q1": {"d1": 2}, "q2": {"d2": 1}},
)


@pytest.fixture(scope="module", params=["mean", "cls"])
def model(request):
    config = RunConfig.from_dict(dict(ladder="minilm", size="1L", pooling=request.param, max_length=32,
                                      max_query_length=8))
    return get_family(config.family).build(config)


def test_registry_names_the_families():
    assert {"cross-encoder", "bi-encoder", "sparse", "query-distill"} <= set(FAMILIES)  # a new family: one entry
    assert FAMILIES["cross-encoder"].stage == "rerank" and FAMILIES["cross-encoder"].layout == "groups"
    with pytest.raises(UserError, match="unknown model family 'splade'"):
        get_family("splade")


def test_training_batch_and_group_scores_have_the_group_layout(model):
    groups = [Group("q1", ("d1", "d2", "d3"), (2, 0, 0)), Group("q2", ("d2", "d1", "d3"), (1, 0, 0))]
    batch = model.training_batch(groups, COLLECTION)
    assert batch["labels"].tolist() == [[2, 0, 0], [1, 0, 0]]
    assert batch["inputs"]["input_ids"].shape[0] == 6
    assert batch["tokens"] == int(batch["inputs"]["attention_mask"].sum())
    model.eval()
    with torch.no_grad():
        scores = model.group_scores(batch)
    assert scores.shape == (2, 3)
    direct = model.score(["wing lift"] * 3, [COLLECTION.docs[d] for d in ("d1", "d2", "d3")])
    np.testing.assert_allclose(scores[0].numpy(), direct, atol=1e-5)


def test_parameter_counts_and_flops(model):
    n, total = model.parameter_counts()
    assert 1_900_000 < n < 2_000_000 and total > n  # MiniLM 1 layer: 1.92M non-embedding
    assert model.training_flops(1000) == 6.0 * n * 1000


def test_save_then_load_scores_the_same(model, tmp_path):
    queries = ["wing lift", "heat", "shock"]
    docs = [COLLECTION.docs[d] for d in ("d1", "d2", "d3")]
    before = model.score(queries, docs)
    model.save(tmp_path / "model")
    loaded = get_family("cross-encoder").load(tmp_path / "model")
    assert loaded.pooling == model.pooling and loaded.parameter_counts() == model.parameter_counts()
    # the same weights; float32 sums may reorder with the thread count (2.8e-9 seen under load)
    np.testing.assert_allclose(loaded.score(queries, docs), before, rtol=1e-6, atol=1e-7)
