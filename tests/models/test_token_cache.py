"""The pair tokenizer's cache is bounded: the same ids as tokenising afresh, never more than its cap held."""

from __future__ import annotations

from rerank_scaling.models.backbone import minilm_path
from rerank_scaling.models.cross_encoder import PairTokenizer


def test_cache_is_bounded_and_gives_the_same_ids(cranfield):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    docs = [cranfield.docs[d] for d in sorted(cranfield.docs)[:300]]
    unbounded = PairTokenizer(tokenizer, max_length=64)
    bounded = PairTokenizer(tokenizer, max_length=64)
    bounded.max_cached_tokens = 2000  # about 30 documents of 64 tokens
    expected = unbounded.ids(docs, False)
    for start in range(0, len(docs), 50):  # a stream of batches, as training and scoring ask
        assert bounded.ids(docs[start:start + 50], False) == expected[start:start + 50]
        assert bounded._cached_tokens <= 2000
        assert bounded._cached_tokens == sum(len(v) for v in bounded._cache.values())
    assert len(bounded._cache) < 40 and unbounded._cached_tokens > 9 * 2000
    # the oldest texts went first; what was dropped is tokenised again, identically
    assert (False, docs[0]) not in bounded._cache and (False, docs[-1]) in bounded._cache
    assert bounded.encode([cranfield.queries["1"]] * 3, docs[:3]) == unbounded.encode([cranfield.queries["1"]] * 3,
                                                                                     docs[:3])
    bounded.warm(docs=docs)  # warming more than the cap keeps the newest within it
    assert bounded._cached_tokens <= 2000
