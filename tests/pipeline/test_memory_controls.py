"""Memory controls of one run: gradient accumulation trains the full batch's trajectory, a time-based
checkpoint between evaluations resumes to the same numbers, a CUDA OOM is recorded with the estimate."""

import dataclasses
import json

import polars as pl
import pytest
import torch

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.models.memory import estimate
from rerank_scaling.pipeline.run import memory_verdict, train_run
from rerank_scaling.rundir import RunFolder
from rerank_scaling.training import TrainingModule

COLS = ["step", "eval_set", "metric", "value"]


@pytest.fixture(scope="module")
def config(shared_root, tmp_path_factory):
    return RunConfig(
        ladder="minilm", size="1L", objective="listwise", steps=6, eval_every=3, batch_size=4, n_negatives=3,
        max_length=48, candidates_k=20, rerank_k=10, ce_negatives=4, lr=1e-3, warmup_steps=1, dropout=0.0,
        threads=1, budget=20, data_root=str(shared_root), cache_dir=str(tmp_path_factory.mktemp("cache")),
        evals=(EvalSpec("cranfield-test", "cranfield", "test", 6, True),))


@pytest.fixture(scope="module")
def full_batch(config, tmp_path_factory):
    folder = RunFolder(tmp_path_factory.mktemp("full"))
    assert train_run(config, folder)["state"] == "done"
    return folder


def _log(folder: RunFolder) -> list[dict]:
    return [json.loads(line) for line in folder.log.read_text().splitlines()]


def _rows(folder: RunFolder):
    return pl.read_parquet(folder.metrics).select(COLS).sort(COLS[:3])


def test_accumulated_micro_batches_train_the_full_batch_trajectory_and_resume_from_a_timed_checkpoint(
        config, full_batch, tmp_path, monkeypatch):
    accumulated = dataclasses.replace(config, grad_accumulation=2, checkpoint_every_min=1e-9)  # a checkpoint a step
    folder = RunFolder(tmp_path / "accumulated")
    step = TrainingModule.training_step

    def stop_at_step_five(self, batch, batch_idx):
        if self.global_step == 4:
            raise RuntimeError("node lost")
        return step(self, batch, batch_idx)

    monkeypatch.setattr(TrainingModule, "training_step", stop_at_step_five)
    with pytest.raises(RuntimeError, match="node lost"):
        train_run(accumulated, folder)
    saved = torch.load(folder.checkpoint, map_location="cpu", weights_only=False, mmap=True)
    assert saved["global_step"] == 4 and 4 % config.eval_every  # saved by the clock, not by an evaluation
    monkeypatch.setattr(TrainingModule, "training_step", step)
    assert train_run(accumulated, folder)["state"] == "done"  # resumed at step 4
    want, got = _log(full_batch), _log(folder)
    assert [e["step"] for e in got] == [1, 2, 3, 4, 5, 6]
    assert want[0]["loss"] - want[-1]["loss"] > 0.01  # the trajectory moves, so a wrong update would show
    for a, b in zip(want, got):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5)  # the mean over the two micro-batches
        assert b["tokens_seen"] == a["tokens_seen"]
    w, g = _rows(full_batch), _rows(folder)
    assert w.select(COLS[:3]).equals(g.select(COLS[:3]))
    for x, y in zip(w["value"], g["value"]):
        assert y == pytest.approx(x, rel=1e-3, abs=1e-4)


def test_a_cuda_out_of_memory_is_recorded_with_the_estimate_and_what_to_change(config, tmp_path, monkeypatch):
    def out_of_memory(self, batch, batch_idx):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.1 GiB total)")

    monkeypatch.setattr(TrainingModule, "training_step", out_of_memory)
    status = train_run(dataclasses.replace(config, steps=2, eval_every=2), tmp_path / "oom")
    assert status["state"] == "failed"
    reason = status["reason"]
    assert reason.startswith("out of memory: CUDA out of memory. Tried to allocate 20.00 GiB")
    assert "estimated" in reason and "GB per device" in reason
    assert "gradient_checkpointing = true" in reason and "batch_per_device" in reason and "chunk_size" in reason
    assert status["hardware"]["estimate_gb"] > 0 and status["hardware"]["precision"] == "32-true"


def test_a_cell_that_cannot_fit_its_device_is_refused_with_suggestions(config):
    big = dataclasses.replace(config, ladder="ettin", size="1b", batch_size=32, n_negatives=10, max_length=256,
                              precision="bf16-mixed", dropout=None)
    verdict = memory_verdict(big, 80e9, "NVIDIA A100-SXM4-80GB")
    assert estimate(big).gb() > 140  # 149 GB: Ettin-1B, 32 groups of 11 pairs at 256 tokens on one device
    assert verdict.startswith(f"memory: estimated {estimate(big).gb():.1f} GB per device (states 16.5, activations")
    assert "exceeds the 80.0 GB of NVIDIA A100-SXM4-80GB" in verdict
    assert "gradient_checkpointing = true" in verdict
    assert memory_verdict(dataclasses.replace(big, size="17m"), 80e9, "A100") is None
    sharded = dataclasses.replace(big, devices=4, strategy="fsdp", grad_accumulation=1)
    assert memory_verdict(sharded, 80e9, "A100") is None  # 4 x 8 groups on 4 GPUs fits
