import pytest

from rerank_scaling.scaling.metrics import direction, lower_is_better, natural_bound


@pytest.mark.parametrize("metric", ["ce", "ce@64", "CE@8", "contrastive_entropy", "train_loss"])
def test_losses_decrease(metric):
    assert lower_is_better(metric)
    assert direction(metric) == -1


@pytest.mark.parametrize("metric", ["ndcg@10", "map", "mrr@10", "recall@100", "p@10", "cer@10", "ce@x"])
def test_quality_metrics_increase(metric):
    assert not lower_is_better(metric)
    assert direction(metric) == 1


def test_natural_bounds():
    assert natural_bound("ndcg@10") == 1.0
    assert natural_bound("ce@64") == 0.0
    assert natural_bound("bleu") is None
