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
