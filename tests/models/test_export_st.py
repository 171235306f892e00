"""Saved models load in sentence-transformers as trained: the same scores there as here.

Each family's ``save`` (``rerank_scaling.models.export``) is loaded by
sentence-transformers' own classes from the folder alone -- ``CrossEncoder``,
``SentenceTransformer``, ``SparseEncoder`` -- and scores real Cranfield pairs:
the cross-encoder's ``predict`` equals our ``score`` (CLS pooling, and mean
pooling with its linear head); the bi-encoder's embeddings equal our query and
document embeddings (CLS pooling with a projection and cosine; separate mean
towers with dot), and its similarity over our temperature equals our score; the
SPLADE model's sparse vectors equal ours. Heads and projections are drawn at
random, so a layout that dropped one (a silent fallback to mean pooling, a
missing projection) would not match. Needs ``sentence-transformers`` (the
``test`` extra); skipped without it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

st = pytest.importorskip("sentence_transformers")

from rerank_scaling.config import RunConfig  # noqa: E402
from rerank_scaling.models import get_family  # noqa: E402

MAX_LENGTH = 96  # many Cranfield documents are cut: truncation must agree too


@pytest.fixture(scope="module")
def pairs(cranfield):
    qids = sorted(cranfield.queries)[:3]
    docs = sorted(cranfield.docs)[:4]
    return [cranfield.queries[q] for q in qids for _ in docs], [cranfield.docs[d] for _ in qids for d in docs]


def _config(**overrides) -> RunConfig:
    base = dict(ladder="minilm", size="1L", max_length=MAX_LENGTH, max_query_length=32, seed=3)
    return RunConfig.from_dict({**base, **overrides})


def _perturb(module: torch.nn.Module, seed: int) -> None:
    """Move every weight a little: a saved layout that lost one would no longer agree."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_cross_encoder_loads_in_sentence_transformers(pooling, pairs, tmp_path):
    model = get_family("cross-encoder").build(_config(pooling=pooling)).eval()
    _perturb(model, 1)
    with torch.no_grad():  # a fresh head scores every pair alike: spread its scores as training would
        (model.head if pooling == "mean" else model.backbone.classifier).weight.mul_(100.0)
    model.save(tmp_path / "model")
    theirs = st.CrossEncoder(str(tmp_path / "model"), device="cpu")  # the folder alone: no num_labels, no activation
    queries, docs = pairs
    ours = model.score(queries, docs, batch_size=8)
    ref = theirs.predict(list(zip(queries, docs)), batch_size=8, show_progress_bar=False)
    assert np.ptp(ours) > 0.05  # the pairs score differently: a constant would match nothing below
    np.testing.assert_allclose(ours, ref, atol=2e-5, rtol=0)
    again = get_family("cross-encoder").load(tmp_path / "model")
    np.testing.assert_allclose(again.score(queries, docs, batch_size=8), ours, atol=1e-6, rtol=0)


@pytest.mark.parametrize("towers,pooling,projection,similarity",
                         [("shared", "cls", 48, "cosine"), ("separate", "mean", None, "dot")])
def test_bi_encoder_loads_in_sentence_transformers(towers, pooling, projection, similarity, pairs, tmp_path):
    config = _config(family="bi-encoder", objective="infonce", towers=towers, pooling=pooling,
                     projection=projection, similarity=similarity)
    model = get_family("bi-encoder").build(config).eval()
    _perturb(model, 2)
    model.save(tmp_path / "model")
    theirs = st.SentenceTransformer(str(tmp_path / "model"), device="cpu")
    queries, docs = pairs
    q_texts, d_texts = list(dict.fromkeys(queries)), list(dict.fromkeys(docs))
    with torch.inference_mode():
        ours_q, ours_d = model.encode(q_texts, "query"), model.encode(d_texts, "doc")
    if towers == "shared":
        ref_q = theirs.encode(q_texts, convert_to_tensor=True)
        ref_d = theirs.encode(d_texts, convert_to_tensor=True)
    else:
        ref_q = theirs.encode_query(q_texts, convert_to_tensor=True)
        ref_d = theirs.encode_document(d_texts, convert_to_tensor=True)
        assert not torch.allclose(ours_q, model.encode(q_texts, "doc"), atol=1e-3)  # two towers, two encodings
    torch.testing.assert_close(ref_q, ours_q, atol=2e-5, rtol=0)
    torch.testing.assert_close(ref_d, ours_d, atol=2e-5, rtol=0)
    assert theirs.similarity_fn_name == similarity
    ref_scores = theirs.similarity(ref_q, ref_d) / model.temperature
    torch.testing.assert_close(ref_scores, model.similarity(ours_q, ours_d), atol=1e-3, rtol=1e-5)
    again = get_family("bi-encoder").load(tmp_path / "model")
    np.testing.assert_allclose(again.score(queries, docs), model.score(queries, docs), atol=1e-5, rtol=0)


def test_sparse_encoder_loads_in_sentence_transformers(pairs, shared_root, tmp_path):
    config = RunConfig.from_dict(dict(family="sparse", objective="infonce", ladder="hf",
                                      size=str(shared_root / "models" / "splade-tiny"), max_length=MAX_LENGTH,
                                      max_query_length=32))
    model = get_family("sparse").build(config).eval()
    _perturb(model, 4)
    model.save(tmp_path / "model")
    theirs = st.SparseEncoder(str(tmp_path / "model"), device="cpu")
    queries, docs = pairs
    texts = list(dict.fromkeys(docs))
    ours = model.encode(texts, "doc").toarray()
    ref = theirs.encode(texts, convert_to_tensor=True).to_dense().numpy()
    assert (ours > 0).sum() > 50  # active terms, not an empty vector
    np.testing.assert_allclose(ref, ours, atol=1e-4, rtol=1e-5)
    assert theirs.similarity_fn_name == "dot"


def test_models_saved_in_the_earlier_layout_still_load(pairs, tmp_path):
    """Run folders written before the sentence-transformers layout (``backbone/`` + ``head.pt``) load."""
    model = get_family("cross-encoder").build(_config(pooling="mean")).eval()
    _perturb(model, 5)
    old = tmp_path / "old"
    model.backbone.save_pretrained(old / "backbone")
    model.pairs.tokenizer.save_pretrained(old / "backbone")
    torch.save(model.head.state_dict(), old / "head.pt")
    (old / "family.json").write_text(json.dumps({"family": "cross-encoder", "pooling": "mean",
                                                 "max_length": MAX_LENGTH, "max_query_length": 32}))
    queries, docs = pairs
    loaded = get_family("cross-encoder").load(old)
    np.testing.assert_allclose(loaded.score(queries, docs), model.score(queries, docs), atol=1e-6, rtol=0)
