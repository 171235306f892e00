"""[grid] compute: training FLOPs held fixed across sizes, each cell's steps derived from its FLOPs per step."""

import json

import polars as pl
import pytest

from rerank_scaling.config import EvalSpec, RunConfig, load_experiment
from rerank_scaling.errors import UserError
from rerank_scaling.pipeline.prepare import prepare
from rerank_scaling.pipeline.run import fixed_compute, train_run


def test_steps_are_the_budget_over_the_flops_per_step():
    config = RunConfig(compute=1e12)
    assert config.steps_for_compute(1e9) == 1000
    assert config.steps_for_compute(4e9) == 250  # 4x the FLOPs per step: a quarter of the steps
    assert RunConfig(steps=7).steps_for_compute(1e9) == 7  # no compute: the steps as given
    with pytest.raises(UserError, match="less than one training step"):
        RunConfig(compute=1e6).steps_for_compute(1e9)


@pytest.mark.parametrize("value", [0, -1e12, "a lot", True])
def test_a_bad_compute_is_a_one_line_error(write_experiment, value):
    text = '[data]\ntrain_collection = "cranfield"\n[[eval]]\nname = "t"\ncollection = "cranfield"\n' \
           f"[grid]\nsizes = [\"2L\"]\ncompute = {json.dumps(value)}\n"
    with pytest.raises(UserError, match=r"grid\.compute must be a number > 0") as info:
        load_experiment(write_experiment(text))
    assert "\n" not in str(info.value)


def test_compute_and_steps_exclude_each_other(write_experiment):
    text = '[data]\ntrain_collection = "cranfield"\n[[eval]]\nname = "t"\ncollection = "cranfield"\n' \
           "[grid]\ncompute = 1e12\n[train]\nsteps = 10\n"
    with pytest.raises(UserError, match="compute derives each cell's steps"):
        load_experiment(write_experiment(text))


def _tiny(shared_root, tmp_path, **kw) -> RunConfig:
    return RunConfig(**{**dict(batch_size=2, n_negatives=2, max_length=32, max_query_length=16, candidates_k=10,
                               rerank_k=10, ce_negatives=3, warmup_steps=0, budget=6, data_root=str(shared_root),
                               cache_dir=str(tmp_path / "cache"), eval_every=1000,
                               evals=(EvalSpec("cranfield-test", "cranfield", "test", 3, True),)), **kw})


@pytest.mark.parametrize("family,objective", [("cross-encoder", "listwise"), ("bi-encoder", "infonce")])
def test_a_larger_model_gets_proportionally_fewer_steps(shared_root, tmp_path, family, objective):
    budget = 3e9
    cells = [_tiny(shared_root, tmp_path, family=family, objective=objective, ladder="scratch", size=size,
                   compute=budget) for size in ("L1-H64", "L2-H128")]
    resolved, per_step = [], []
    for cell in cells:
        prepared = prepare(cell)
        resolved.append(fixed_compute(cell, prepared))
        per_step.append(prepared.info["compute"]["flops_per_step"])
    assert per_step[1] > 4 * per_step[0]  # L2-H128 costs much more per step than L1-H64
    for r, f in zip(resolved, per_step):
        assert r.steps == round(budget / f)
    # steps proportional to 1 / FLOPs per step: the same compute for both sizes, to rounding
    assert resolved[0].steps / resolved[1].steps == pytest.approx(per_step[1] / per_step[0], rel=0.1)


def test_a_fixed_compute_cell_spends_its_budget(shared_root, tmp_path):
    budget = 2e9
    config = _tiny(shared_root, tmp_path, family="bi-encoder", objective="infonce", ladder="llama",
                   size="L1-H32", compute=budget)
    status = train_run(config, tmp_path / "run")
    assert status["state"] == "done"
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert recorded["steps"] == data["compute"]["steps"] > 1 and recorded["compute"] == budget
    rows = pl.read_parquet(tmp_path / "run" / "metrics.parquet")
    spent = rows.filter(pl.col("step") == recorded["steps"])["flops"][0]
    assert spent == pytest.approx(budget, rel=0.25)  # FLOPs per step measured on the first batches
