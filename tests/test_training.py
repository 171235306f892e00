"""The training step: what it hands the objective, and where fit starts."""

import pytest
import torch

from rerank_scaling.objectives import ObjectiveInfo
from rerank_scaling.training import OptimConfig, TrainingModule, fit


class _Scorer(torch.nn.Module):
    """A one-weight model: score = w * feature."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(1.0))

    def group_scores(self, batch):
        return self.w * batch["features"]


class _Distil:
    """An objective that needs teacher scores: MSE to them."""

    info = ObjectiveInfo("mse-to-teacher", "tests:_Distil", "distillation", requires=("teacher_scores",))

    def __init__(self):
        self.seen = []

    def __call__(self, scores, labels, teacher_scores):
        self.seen.append(teacher_scores)
        return ((scores - teacher_scores) ** 2).mean()


def test_the_step_passes_what_the_objective_requires():
    objective = _Distil()
    module = TrainingModule(_Scorer(), objective, OptimConfig(total_steps=1))
    batch = {"features": torch.tensor([[1.0, 2.0]]), "labels": torch.tensor([[1, 0]]),
             "teacher_scores": torch.tensor([[3.0, 0.0]]), "tokens": 4}
    loss = module.training_step(batch, 0)
    assert objective.seen[0] is batch["teacher_scores"]
    assert loss.item() == pytest.approx(((1 - 3) ** 2 + (2 - 0) ** 2) / 2)
    assert module.tokens_seen == 4


def test_a_start_step_needs_a_checkpoint():
    module = TrainingModule(_Scorer(), _Distil(), OptimConfig(total_steps=4))
    with pytest.raises(ValueError, match="start_step 2 needs a checkpoint"):
        fit(module, lambda step: {}, steps=4, start_step=2, callback=None)


LABELS = [[2, 0, 0, 1, 0], [1, 0, 0, 0, 0], [3, 1, 0, 0, 0]]


def _extras(name, like):
    """The batch entries an objective requires (distillation: teacher scores, or query-distill's teacher
    embeddings, ``like`` then being the student's), shaped and placed like ``like``."""
    from rerank_scaling.objectives import OBJECTIVES

    teacher = torch.linspace(3, -1, like.numel()).view_as(like).to(like.device, like.dtype).detach()
    return {k: teacher for k in ("teacher_scores", "teacher_embeddings") if k in OBJECTIVES[name].requires}


@pytest.mark.parametrize("name", sorted(__import__("rerank_scaling.objectives", fromlist=["OBJECTIVES"]).OBJECTIVES))
def test_every_objective_makes_its_tensors_on_the_inputs_device(name):
    """The device audit, on CPU: on the meta device a tensor made without ``device=`` lands on the
    CPU and the op fails, exactly as it would on CUDA."""
    from rerank_scaling.objectives import get_objective

    scores = torch.randn(3, 5, device="meta", requires_grad=True)
    loss = get_objective(name)(scores, torch.tensor(LABELS, device="meta"), **_extras(name, scores))
    assert loss.device.type == "meta" and loss.dim() == 0


@pytest.mark.parametrize("name", sorted(__import__("rerank_scaling.objectives", fromlist=["OBJECTIVES"]).OBJECTIVES))
def test_every_objective_keeps_a_bf16_dtype_and_gives_finite_gradients(name):
    from rerank_scaling.objectives import get_objective

    scores = torch.linspace(-2, 3, 15).view(3, 5).to(torch.bfloat16).requires_grad_()
    loss = get_objective(name)(scores, torch.tensor(LABELS), **_extras(name, scores))
    assert loss.dtype == torch.bfloat16 and torch.isfinite(loss.float())
    loss.backward()
    assert torch.isfinite(scores.grad.float()).all() and scores.grad.abs().sum() > 0


def test_a_real_run_trains_under_bf16_mixed_precision_on_cpu(shared_root, tmp_path):
    from rerank_scaling.config import EvalSpec, RunConfig
    from rerank_scaling.pipeline.run import train_run

    config = RunConfig(ladder="scratch", size="L1-H64", objective="pairwise", steps=2, eval_every=2, batch_size=2,
                       n_negatives=3, max_length=48, candidates_k=20, rerank_k=10, ce_negatives=4, lr=1e-3,
                       warmup_steps=1, precision="bf16-mixed", data_root=str(shared_root),
                       cache_dir=str(tmp_path / "cache"), budget=10,
                       evals=(EvalSpec("cranfield-test", "cranfield", "test", 4, True),))
    status = train_run(config, tmp_path / "run")
    assert status["state"] == "done", status
    assert all(v == v for v in status["final"].values())  # no NaN anywhere
