"""The bi-encoder family on real Cranfield texts: layout, towers, pooling, counts, save/load, config checks."""

import numpy as np
import pytest
import torch

from rerank_scaling.config import RunConfig
from rerank_scaling.errors import UserError
from rerank_scaling.models import FAMILIES, get_family

from cranfield_groups import judged


def build(**kw):
    kw.setdefault("objective", "infonce-hard")
    config = RunConfig.from_dict(dict(family="bi-encoder", ladder="minilm", size="1L", max_length=48,
                                      max_query_length=16, **kw))
    return get_family("bi-encoder").build(config)


@pytest.fixture(scope="module")
def shared():
    return build()


def test_registry_names_the_family_classes():
    for name in FAMILIES:
        assert get_family(name).name == name


def test_in_batch_layout_labels_every_column_for_every_query(shared, cranfield):
    groups = judged(cranfield, 3)
    batch = shared.training_batch(groups, cranfield)
    assert batch["targets"].tolist() == [0, 3, 6]
    labels = batch["labels"]
    assert labels.shape == (3, 9)
    columns = [d for g in groups for d in g.doc_ids]
    for i, g in enumerate(groups):
        for j, doc in enumerate(columns):
            assert labels[i, j] == max(cranfield.qrels[g.qid].get(doc, 0), 0)
    shared.eval()
    with torch.no_grad():
        scores = shared.group_scores(batch)
    # the training path and the evaluation path give the same scores
    direct = shared.score([cranfield.queries[groups[1].qid]] * 9, [cranfield.docs[d] for d in columns])
    np.testing.assert_allclose(scores[1].numpy(), direct, rtol=1e-5, atol=1e-5)
    assert batch["tokens"] == int(batch["inputs"]["queries"]["attention_mask"].sum()
                                  + batch["inputs"]["docs"]["attention_mask"].sum())


def test_in_batch_objective_encodes_only_the_positives(cranfield):
    model = build(objective="infonce")
    groups = judged(cranfield, 3)
    batch = model.training_batch(groups, cranfield)
    assert batch["labels"].shape == (3, 3) and batch["targets"].tolist() == [0, 1, 2]
    # each distinct document is encoded once (Cranfield queries 1 and 2 share their first positive)
    distinct = {g.doc_ids[0] for g in groups}
    assert len(distinct) == 2 and batch["inputs"]["docs"]["input_ids"].shape[0] == len(distinct)


def test_corpus_negatives_are_shared_and_a_function_of_the_batch(cranfield):
    model = build(objective="infonce-corpus", corpus_negatives=20)
    groups = judged(cranfield, 2)
    first, again = model.training_batch(groups, cranfield), model.training_batch(groups, cranfield)
    assert first["labels"].shape == (2, 22)
    assert torch.equal(first["inputs"]["columns"], again["inputs"]["columns"])
    other = model.training_batch(judged(cranfield, 3)[1:], cranfield)
    assert not torch.equal(first["inputs"]["docs"]["input_ids"][2:], other["inputs"]["docs"]["input_ids"][2:])


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_packed_fast_path_equals_the_hugging_face_forward(pooling, cranfield):
    model = build(pooling=pooling)
    docs = [cranfield.docs[d] for d in ("1", "2", "3", "184")]
    fast = model.encode(docs, "doc")
    model.towers[0].fast_path = False
    torch.testing.assert_close(model.encode(docs, "doc"), fast, rtol=1e-4, atol=1e-5)


def test_cosine_embeddings_are_unit_and_last_token_pooling_differs_from_mean(cranfield):
    docs = [cranfield.docs[d] for d in ("1", "2")]
    mean = build().encode(docs, "doc")
    assert torch.allclose(mean.norm(dim=1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(build(pooling="last").encode(docs, "doc"), mean, atol=1e-3)


def test_parameter_counts_and_flops_count_the_towers(shared):
    n, total = shared.parameter_counts()
    assert 1_700_000 < n < 1_800_000 and total > n  # MiniLM 1 layer without its unused pooler: 1.78M
    separate = build(towers="separate", projection=32)
    n2, _ = separate.parameter_counts()
    assert n2 == 2 * (n + 384 * 32 + 32)
    assert shared.training_flops(1000) == 6.0 * n * 1000
    assert separate.training_flops(1000) == 6.0 * (n2 // 2) * 1000  # a token passes through one tower


@pytest.mark.parametrize("kw", [{}, {"towers": "separate", "projection": 24, "similarity": "dot", "pooling": "cls"}])
def test_save_then_load_scores_the_same(kw, cranfield, tmp_path):
    model = build(**kw)
    if kw:  # make the towers differ, as training would
        with torch.no_grad():
            model.towers[1].backbone.encoder.layer[0].output.dense.bias.add_(0.1)
    queries = [cranfield.queries[q] for q in ("1", "2", "4")]
    docs = [cranfield.docs[d] for d in ("184", "29", "12")]
    before = model.score(queries, docs)
    model.save(tmp_path / "model")
    loaded = get_family("bi-encoder").load(tmp_path / "model")
    assert loaded.parameter_counts() == model.parameter_counts() and loaded.shared == model.shared
    np.testing.assert_allclose(loaded.score(queries, docs), before, rtol=1e-6, atol=1e-6)


def test_temperature_divides_the_similarity(cranfield):
    q, d = [cranfield.queries["1"]], [cranfield.docs["184"]]
    cos = build(temperature=1.0).score(q, d)[0]
    assert -1.0 <= cos <= 1.0
    assert build().score(q, d)[0] == pytest.approx(cos / 0.05, rel=1e-5)


@pytest.mark.parametrize("kw, message", [
    ({"family": "bi-encoder", "objective": "listwise"}, "objective 'listwise' does not train family 'bi-encoder'"),
    ({"objective": "infonce"}, "objective 'infonce' does not train family 'cross-encoder'"),
    ({"towers": "separate"}, "towers = 'separate' applies to family 'bi-encoder' only"),
    ({"pooling": "last"}, "unknown pooling 'last' \\(choose from cls, mean\\)"),  # the cross-encoder's own choices
    ({"corpus_negatives": 32}, "corpus_negatives = 32 applies to family 'bi-encoder' / 'sparse' / "),  # retrievers
    ({"family": "bi-encoder", "objective": "infonce", "temperature": 0.0}, "temperature"),
])
def test_bad_combinations_are_one_line_user_errors(kw, message):
    with pytest.raises(UserError, match=message) as info:
        RunConfig.from_dict(kw)
    assert "\n" not in str(info.value)


def test_the_settings_of_a_family_leave_out_other_families_keys():
    from rerank_scaling.config.run import train_settings

    assert "towers" in train_settings("bi-encoder") and "towers" not in train_settings("cross-encoder")
    assert set(train_settings("cross-encoder")) < set(train_settings("bi-encoder")) < set(train_settings())
    assert "lambda_q" in train_settings("sparse") and "lambda_q" not in train_settings("bi-encoder")
