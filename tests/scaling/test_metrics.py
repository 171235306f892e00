"""The analyzer's metric conventions are the metric registry's declarations, read without patterns."""

import pytest

from rerank_scaling.errors import UserError
from rerank_scaling.scaling.metrics import bounds, direction, kind, lower_is_better, natural_bound


@pytest.mark.parametrize("metric", ["ce", "ce@64", "CE@8", "ce-corpus@256", "ce-candidates@31", "loss",
                                    "active-q", "active-d", "flops", "query-ms-cpu", "query-ms-cuda"])
def test_losses_and_costs_decrease(metric):
    assert lower_is_better(metric)
    assert direction(metric) == -1
    assert natural_bound(metric) == 0.0 and bounds(metric) == (0.0, None)


@pytest.mark.parametrize("metric", ["ndcg@10", "map", "mrr@10", "recall@100", "p@10", "hit_rate@5", "r-precision",
                                    "acc", " NDCG@10 "])
def test_rank_metrics_increase_in_zero_one(metric):
    assert not lower_is_better(metric)
    assert direction(metric) == 1
    assert bounds(metric) == (0.0, 1.0) and natural_bound(metric) == 1.0


def test_a_retained_fraction_rises_without_an_upper_bound():
    assert direction("retained-ndcg@10") == 1 and bounds("retained-ndcg@10") == (0.0, None)
    assert natural_bound("retained-ndcg@10") is None


@pytest.mark.parametrize("metric", ["bleu", "cer@10", "ce@x", "ce@0", "p", "r-precision@5", "query-ms-",
                                    "contrastive_entropy", "train_loss"])
def test_an_undeclared_metric_has_no_direction_and_says_so(metric):
    """What the old patterns guessed (``*loss*`` falls, anything else rises) is now a one-line error."""
    with pytest.raises(UserError, match=f"metric '{metric}' is not declared") as err:
        direction(metric)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError):
        lower_is_better(metric)
    assert kind(metric) == "unknown" and bounds(metric) == (None, None) and natural_bound(metric) is None


def test_kinds():
    assert [kind(m) for m in ("ndcg@10", "ce@7", "retained-map", "flops", "query-ms-cpu")] == [
        "quality", "quality", "quality", "cost", "cost"]
    # a reranker of the top 20 cannot change which documents are in the top 20 or more
    assert kind("recall@100", rerank_depth=20) == kind("p@20", rerank_depth=20) == "invariant"
    assert kind("recall@10", rerank_depth=20) == "quality"  # it can move a document out of the top 10
    assert kind("ndcg@100", rerank_depth=20) == kind("map", rerank_depth=20) == "quality"  # order-sensitive
