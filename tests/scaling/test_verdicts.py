import pytest

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import exposure_verdicts, verdicts


def test_size_verdicts_side_by_side(study):
    vs = verdicts(study, 150e6, metrics=["ndcg@10", "ce@64"], n_boot=100)
    assert {(v.metric, v.objective) for v in vs} == {
        (m, o) for m in ("ndcg@10", "ce@64") for o in ("pointwise", "pairwise", "listwise")
    }
    for v in vs:
        assert v.kind == "size" and v.n_targets == 4 and v.n_fits == 2
        assert v.r2 > 0.9 and v.residual_rmse is not None and len(v.residuals) == 24
        assert "rel err" in v.reason
    ndcg = [v for v in vs if v.metric == "ndcg@10"]
    assert all(v.extrapolates for v in ndcg)  # truth follows the law, noise 0.5%


def test_noisy_metric_fails_strict_thresholds(study):
    vs = verdicts(study, 150e6, metrics=["mrr@10"], n_boot=50, max_rel_error=0.001)
    assert not any(v.extrapolates for v in vs)
    assert all("> 0.1%" in v.reason for v in vs)


def test_nothing_held_out_gives_none(study):
    vs = verdicts(study, 2e9, metrics=["map"], n_boot=10)
    assert all(v.extrapolates is None and v.n_targets == 0 for v in vs)


def test_exposure_verdicts(study):
    vs = exposure_verdicts(study, metrics=["ndcg@10"], n_boot=50)
    assert len(vs) == 3
    for v in vs:
        assert v.kind == "exposure"
        assert set(v.law.split("/")) <= {"data", "data-loglinear"}
        assert v.n_targets > 0 and v.coverage is not None
        assert v.mean_abs_rel_error < 0.03


def test_exposure_needs_checkpoints(small_user_table):
    with pytest.raises(UserError, match="examples_seen or step"):
        exposure_verdicts(small_user_table)


def test_unfittable_metric_is_reported_not_fatal(small_user_table):
    vs = verdicts(small_user_table, 20e6, n_boot=10)  # 1 size below the cut for every metric
    assert {v.metric for v in vs} == {"ndcg@10", "ce@64"}
    assert all(v.extrapolates is None and "parameters but only 1" in v.reason for v in vs)
