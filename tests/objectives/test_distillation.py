"""Distillation objectives on the in-batch layout: hand-computed values, the right columns, CL+KD's average."""

import math

import pytest
import torch

from rerank_scaling.config import RunConfig
from rerank_scaling.errors import UserError
from rerank_scaling.models import owners
from rerank_scaling.objectives import OBJECTIVES, get_objective
from rerank_scaling.objectives.regularizers import flops, l1, warmup_scale

# two queries, groups of 3 (positive first) in columns 0-2 and 3-5, one corpus column 6
SCORES = torch.tensor([[5.0, 1.0, 2.0, 0.5, 0.0, 3.0, 1.0],
                       [0.0, 1.0, 0.0, 4.0, 3.0, 1.0, 2.0]])
LABELS = torch.tensor([[1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0]])
TARGETS = torch.tensor([0, 3])
TEACHER = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, -1.0]])


def test_marginmse_by_hand():
    loss = get_objective("marginmse")(SCORES, LABELS, teacher_scores=TEACHER, targets=TARGETS)
    # query 0: margins (4, 3) vs (2, 1); query 1: (1, 3) vs (0, 2)
    assert float(loss) == pytest.approx(((4 - 2) ** 2 + (3 - 1) ** 2 + (1 - 0) ** 2 + (3 - 2) ** 2) / 4)


def test_kl_by_hand_and_zero_at_the_teacher():
    def kl(s, t):
        ps, pt = torch.softmax(torch.tensor(s, dtype=torch.float32), 0), torch.softmax(torch.tensor(t, dtype=torch.float32), 0)
        return float((pt * (pt.log() - ps.log())).sum())

    loss = get_objective("kl")(SCORES, LABELS, teacher_scores=TEACHER, targets=TARGETS)
    assert float(loss) == pytest.approx((kl([5, 1, 2], [2, 0, 1]) + kl([4, 3, 1], [1, 1, -1])) / 2, rel=1e-5)
    shifted = SCORES.clone()
    shifted[0, :3], shifted[1, 3:6] = TEACHER[0] + 7, TEACHER[1] - 2  # a softmax ignores a shift
    assert float(get_objective("kl")(shifted, LABELS, teacher_scores=TEACHER, targets=TARGETS)) == pytest.approx(0, abs=1e-6)


def test_cl_kd_is_the_mean_of_infonce_and_kl():
    both = get_objective("cl-kd")(SCORES, LABELS, teacher_scores=TEACHER, targets=TARGETS)
    ce = get_objective("infonce")(SCORES, LABELS, targets=TARGETS)
    kl = get_objective("kl")(SCORES, LABELS, teacher_scores=TEACHER, targets=TARGETS)
    assert float(both) == pytest.approx((float(ce) + float(kl)) / 2)
    row0 = math.log(sum(math.exp(v) for v in SCORES[0].tolist())) - 5.0  # all 7 columns in the contrastive part
    row1 = math.log(sum(math.exp(v) for v in SCORES[1].tolist())) - 4.0
    assert float(ce) == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_registry_and_config_rules():
    for name in ("marginmse", "kl", "cl-kd"):
        info = OBJECTIVES[name]
        assert info.kind == "distillation" and "teacher_scores" in info.requires and "hard" in info.negatives
    with pytest.raises(UserError, match="objective 'marginmse' distils a teacher: set teacher"):
        RunConfig(family="sparse", objective="marginmse")
    RunConfig(family="bi-encoder", objective="infonce", teacher="x")  # a grid's CL cells share [train]: ignored
    with pytest.raises(UserError, match="does not train family 'cross-encoder'"):
        RunConfig(family="cross-encoder", objective="kl", teacher="x")
    with pytest.raises(UserError, match="lambda_q = 0.1 applies to family 'sparse' only"):
        RunConfig.from_dict(dict(family="bi-encoder", objective="infonce", lambda_q=0.1))
    with pytest.raises(UserError, match=r"regularizer_warmup must be a fraction in \[0, 1\], got 2"):
        RunConfig.from_dict(dict(family="sparse", objective="infonce", regularizer_warmup=2))
    takers = " / ".join(f"'{f}'" for f in owners("pooling"))  # the registry's: cross-encoder, bi-encoder, ...
    with pytest.raises(UserError, match=f"pooling = 'mean' applies to family {takers} only"):
        RunConfig.from_dict(dict(family="sparse", objective="infonce", pooling="mean"))


def test_regularisers_by_hand_and_the_quadratic_warmup():
    w = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert float(flops(w)) == pytest.approx(2.0 ** 2 + 0 + 1.0 ** 2)
    assert float(l1(w)) == pytest.approx((3 + 3) / 2)
    assert [warmup_scale(s, 10) for s in (0, 5, 10, 20)] == [0.0, 0.25, 1.0, 1.0]
    assert warmup_scale(0, 0) == 1.0


def test_the_shipped_demo_resolves_its_teacher_folder_and_keeps_a_hub_id():
    from pathlib import Path

    from rerank_scaling.config import load_experiment

    experiments = Path(__file__).resolve().parents[2] / "experiments"
    demo = load_experiment(experiments / "sparse-dense-demo.toml")
    # the teacher lives in the git-ignored runs/ (model weights are never committed), resolved against the file
    assert {Path(c.teacher).resolve() for c in demo.cells} == {(experiments.parent / "runs" / "teacher-6L").resolve()}
    assert {c.teacher_bm25_weight for c in demo.cells} == {0.7}  # the weight chosen on dev queries (README)
    assert {c.objective for c in demo.cells} == {"infonce-hard", "marginmse", "cl-kd"} and len(demo.cells) == 36
    assert {c.supervision for c in demo.cells} == {"human", "human-noise50"}
    gpu = load_experiment(experiments / "sparse-dense-cl-kd.toml")
    assert {c.teacher for c in gpu.cells} == {"cross-encoder/ms-marco-MiniLM-L12-v2"}
