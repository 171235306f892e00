"""The cross-encoder on the real MiniLM backbone: tokenisation, sizes, chunking."""

import pytest
import torch

from rerank_scaling.errors import UserError
from rerank_scaling.models.backbone import minilm_path, parameter_counts
from rerank_scaling.models.cross_encoder import load_cross_encoder
from rerank_scaling.models.ladder import ModelSpec


@pytest.fixture(scope="module")
def minilm1():
    return load_cross_encoder(ModelSpec("minilm", "1L"), seed=0, max_length=64, max_query_length=16)


def test_pair_ids_equal_hf_pair_tokenisation(minilm1, cranfield):
    tok = minilm1.pairs.tokenizer
    qids = sorted(cranfield.queries)[:5]
    docs = sorted(cranfield.docs)[:5]
    queries = [cranfield.queries[q] for q in qids]
    texts = [cranfield.docs[d] for d in docs]
    encoded = minilm1.pairs.encode(queries, texts)
    for (ids, first), q, d in zip(encoded, queries, texts):
        q_short = tok.decode(tok(q, add_special_tokens=False)["input_ids"][:16])
        ref = tok(q_short, d, truncation="only_second", max_length=64)
        assert ids == ref["input_ids"]
        batch = minilm1.pairs.collate([(ids, first)])
        assert batch["token_type_ids"][0].tolist() == ref["token_type_ids"]


def test_minilm_ladder_sizes_count_non_embedding_parameters():
    sizes = {}
    for size in ("1L", "2L"):
        non_emb, total = parameter_counts(load_cross_encoder(ModelSpec("minilm", size)))
        sizes[size] = non_emb
        assert total - non_emb == 30522 * 384 + 512 * 384 + 2 * 384  # word + position + token type
    per_layer = 4 * 384 * 384 + 4 * 384 + 2 * 384 * 1536 + 1536 + 384 + 4 * 384
    assert sizes["2L"] - sizes["1L"] == per_layer


def test_chunked_forward_matches_full_forward_and_gradients(minilm1, cranfield):
    minilm1.eval()  # no dropout: both paths must agree exactly
    docs = [cranfield.docs[d] for d in sorted(cranfield.docs)[:6]]
    batch = minilm1.pairs.collate(minilm1.pairs.encode(["lift of wings"] * 6, docs))
    full = minilm1(batch)
    full.sum().backward()
    g_full = minilm1.head.weight.grad.clone()
    minilm1.zero_grad()
    chunked = minilm1(batch, chunk_size=4)
    chunked.sum().backward()
    assert torch.allclose(full, chunked, atol=1e-5)
    assert torch.allclose(g_full, minilm1.head.weight.grad, atol=1e-4)
    minilm1.zero_grad()


def test_score_returns_input_order_despite_length_bucketing(minilm1, cranfield):
    docs = [cranfield.docs[d] for d in sorted(cranfield.docs)[:9]]
    queries = ["shock waves"] * 9
    together = minilm1.score(queries, docs, batch_size=4)
    alone = [minilm1.score([q], [d])[0] for q, d in zip(queries, docs)]
    assert together.tolist() == pytest.approx(alone, abs=1e-5)


def test_scratch_ladder_works_offline_and_grows():
    small = parameter_counts(load_cross_encoder(ModelSpec("scratch", "L1-H64")))[0]
    big = parameter_counts(load_cross_encoder(ModelSpec("scratch", "L2-H128")))[0]
    assert 0 < small < big


def test_hf_ladder_loads_a_local_folder():
    encoder = load_cross_encoder(ModelSpec("hf", minilm_path()), pooling="cls")
    # all 6 layers + pooler + head: 10.8M non-embedding parameters, as the backbone card says
    assert encoder.pooling == "cls" and 10_700_000 < parameter_counts(encoder)[0] < 10_900_000


@pytest.mark.parametrize(
    "spec,message",
    [(ModelSpec("minilm", "5L"), "size '5L' is not in ladder 'minilm'"), (ModelSpec("gpt", "x"), "unknown model ladder 'gpt'")],
)
def test_bad_model_specs_are_user_errors(spec, message):
    with pytest.raises(UserError, match=message):
        spec.validate()


def test_mean_pooling_fast_path_equals_the_hugging_face_forward(minilm1, cranfield):
    minilm1.eval()
    assert minilm1._runner is not None  # the minilm ladder takes the fast path
    docs = [cranfield.docs[d] for d in sorted(cranfield.docs)[:8]]
    queries = ["boundary layer transition", "heat transfer at hypersonic speed"] * 4
    batch = minilm1.pairs.collate(minilm1.pairs.encode(queries, [d[: 40 + 60 * i] for i, d in enumerate(docs)]))
    assert batch["attention_mask"].float().mean() < 0.9  # padded enough for the packed path
    fast = minilm1(batch)
    fast.sum().backward()
    g_fast = minilm1.head.weight.grad.clone()
    minilm1.zero_grad()
    minilm1.fast_path = False
    try:
        slow = minilm1(batch)
        slow.sum().backward()
    finally:
        minilm1.fast_path = True
    assert torch.allclose(fast, slow, atol=1e-5)
    assert torch.allclose(g_fast, minilm1.head.weight.grad, atol=1e-4)
    minilm1.zero_grad()
