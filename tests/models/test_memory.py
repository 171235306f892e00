"""The memory estimate against real models: parameter counts, activations kept for the backward pass,
and what gradient checkpointing saves; precision defaults per GPU; the W&B run a cell resumes."""

import dataclasses
import re

import pytest
import torch

from rerank_scaling.config import RunConfig
from rerank_scaling.errors import UserError
from rerank_scaling.models import get_family
from rerank_scaling.models.ladder import NOMINAL_SIZES
from rerank_scaling.models.memory import activation_bytes_per_token, estimate, parameters, shape_of
from rerank_scaling.rundir import RunFolder
from rerank_scaling.training import enable_gradient_checkpointing, resolve_precision


@pytest.mark.parametrize("kwargs", [
    {"ladder": "minilm", "size": "1L"},  # mean pooling: a linear head
    {"ladder": "scratch", "size": "L2-H128", "pooling": "cls"},  # BERT's pooler + classifier
    {"ladder": "scratch", "size": "L2-H64", "family": "bi-encoder", "objective": "infonce"},
])
def test_parameters_from_the_shape_are_the_models(kwargs):
    config = RunConfig.from_dict(kwargs)
    model = get_family(config.family).build(config)
    assert parameters(shape_of(config.model), scorer=config.family == "cross-encoder") == model.parameter_counts()


def test_ettin_shapes_land_on_the_names():
    for size, nominal in NOMINAL_SIZES["ettin"].items():
        total = parameters(shape_of(RunConfig(ladder="ettin", size=size).model))[1]
        assert abs(total - nominal) / nominal < 0.06, (size, total)


def _saved_bytes(model, batch) -> int:
    """Bytes of the tensors autograd keeps for the backward pass (each storage once)."""
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(batch).sum()
    loss.backward()
    return sum(seen.values())


def test_activations_kept_match_the_estimate_and_checkpointing_keeps_far_less():
    # dropout off: on CPU, attention with dropout takes PyTorch's math path, which keeps the L x L
    # probabilities (1.55x the estimate here); the fused kernels of GPUs keep none, with or without dropout
    config = RunConfig.from_dict(dict(ladder="scratch", size="L4-H256", pooling="cls", max_length=128, dropout=0.0))
    torch.manual_seed(0)
    model = get_family("cross-encoder").build(config)
    model.fast_path = False  # the Hugging Face forward: what the estimate describes (packing keeps less)
    model.train()
    batch = {"input_ids": torch.randint(1000, 2000, (8, 128)), "attention_mask": torch.ones(8, 128, dtype=torch.long),
             "token_type_ids": torch.zeros(8, 128, dtype=torch.long)}
    plain = _saved_bytes(model, batch)
    estimated = 8 * 128 * activation_bytes_per_token(shape_of(config.model), "32-true", dropout=False)
    assert 0.8 < plain / estimated < 1.25, (plain, estimated)  # measured 1.10
    plain_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    assert enable_gradient_checkpointing(model) >= 1 and model.fast_path is False
    checkpointed = _saved_bytes(model, batch)
    assert checkpointed < 0.4 * plain
    for a, b in zip(plain_grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_the_estimate_follows_the_memory_controls():
    base = RunConfig(ladder="ettin", size="400m", batch_size=32, n_negatives=10, max_length=256,
                     precision="bf16-mixed")
    plain = estimate(base)
    halves = estimate(dataclasses.replace(base, grad_accumulation=2))
    assert halves.activations == pytest.approx(plain.activations / 2) and halves.states == plain.states
    assert estimate(dataclasses.replace(base, gradient_checkpointing=True)).activations < plain.activations / 10
    assert estimate(dataclasses.replace(base, chunk_size=44)).tokens == 44 * 256
    fsdp = estimate(dataclasses.replace(base, devices=4, strategy="fsdp"))
    assert fsdp.states < plain.states / 3 and fsdp.evaluation > plain.evaluation  # a whole replica to evaluate
    assert estimate(RunConfig(ladder="hf", size="/nowhere/model")) is None


def test_precision_defaults_to_what_the_gpu_has(monkeypatch):
    assert resolve_precision(None) == ("32-true" if not torch.cuda.is_available() else resolve_precision(None))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100-SXM2-32GB")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 0))
    assert resolve_precision(None) == "16-mixed"
    assert resolve_precision("32-true") == "32-true"
    with pytest.raises(UserError, match=r'"bf16-mixed": Tesla V100-SXM2-32GB \(compute capability 7.0\) has no '
                                        "native bf16"):
        resolve_precision("bf16-mixed")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    assert resolve_precision(None) == "bf16-mixed" and resolve_precision("bf16-mixed") == "bf16-mixed"


def test_a_cell_resumes_its_wandb_run_in_its_project(tmp_path, monkeypatch):
    import lightning.pytorch.loggers as loggers

    from rerank_scaling.training import make_logger

    made = []
    monkeypatch.setattr(loggers, "WandbLogger", lambda **kwargs: made.append(kwargs) or kwargs)
    run = RunFolder(tmp_path / "cells" / "hf:org/m__listwise")
    make_logger("wandb", run, "hf:org/m__listwise", 0, project="ettin-grid")
    make_logger("wandb", run, "hf:org/m__listwise", 4000, project="ettin-grid")  # after a requeue
    other = make_logger("wandb", RunFolder(tmp_path / "other" / "x"), "hf:org/m__listwise", 0)
    assert made[0]["id"] == made[1]["id"] and made[0]["resume"] == made[1]["resume"] == "allow"
    assert made[0]["project"] == "ettin-grid" and other["project"] == "rerank-scaling"
    assert other["id"] != made[0]["id"] and re.fullmatch(r"[A-Za-z0-9_-]+", made[0]["id"])  # W&B's alphabet
