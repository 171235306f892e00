"""Training: one LightningModule shared by every objective, and its fit loop.

The module owns a :class:`CrossEncoder` and an :class:`Objective`; a batch is
``B`` query groups of ``G`` documents, scored as ``B*G`` pairs and reshaped to
``[B, G]`` for the loss. Evaluation runs inside training at a fixed cadence
(the *training exposure* axis) through :class:`CheckpointEvaluator`, which
also saves a resumable Lightning checkpoint after each evaluation.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from rerank_scaling.examples import TrainingSet
from rerank_scaling.models.cross_encoder import CrossEncoder
from rerank_scaling.objectives import Objective


def release_freed_memory() -> None:
    """Give freed activation buffers back to the OS (glibc only).

    glibc raises its mmap threshold each time a large block is freed, after
    which activations of every step stay in the heap and RSS climbs step by
    step. Pinning the threshold (128 KiB) makes large tensors mmap-backed and
    returned on free; the peak RSS of a CPU grid cell then stays at one step's
    working set.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(-3, 128 << 10)  # M_MMAP_THRESHOLD: 128 KiB
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            pass


class NonFiniteLoss(RuntimeError):
    """Raised when the loss becomes NaN/inf; recorded as the run's failure reason."""


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    total_steps: int = 100


class StepBatches(IterableDataset):
    """The batch of global step ``s`` is ``self[s]``; iteration starts at ``start()``.

    Each new iterator asks ``start()`` (the trainer's global step) where to
    begin, so the stream stays aligned with the optimizer steps however the
    fit loop restarts epochs -- after a resume Lightning ends the first epoch
    early and iterates the loader again, which must not replay batches.
    """

    def __init__(self, tset: TrainingSet, encoder: CrossEncoder, batch_size: int, steps: int,
                 start: Callable[[], int] = lambda: 0):
        self.tset, self.encoder, self.batch_size, self.steps, self.start = tset, encoder, batch_size, steps, start

    def __iter__(self):
        for step in range(self.start(), self.steps):
            yield self[step]

    def __getitem__(self, step: int) -> dict:
        groups = self.tset.batch(step, self.batch_size)
        docs = self.tset.collection.docs
        queries = self.tset.collection.queries
        q_texts = [queries[g.qid] for g in groups for _ in g.doc_ids]
        d_texts = [docs[d] for g in groups for d in g.doc_ids]
        encoded = self.encoder.pairs.encode(q_texts, d_texts)
        return {
            "inputs": self.encoder.pairs.collate(encoded),
            "labels": torch.tensor([g.labels for g in groups], dtype=torch.long),
            "tokens": sum(len(ids) for ids, _ in encoded),
        }


class RerankerModule(L.LightningModule):
    def __init__(
        self, encoder: CrossEncoder, objective: Objective, optim: OptimConfig, chunk_size: int | None = None, seed: int = 0
    ):
        super().__init__()
        self.seed = seed
        self.encoder = encoder
        self.objective = objective
        self.optim = optim
        self.chunk_size = chunk_size
        self.tokens_seen = 0
        self.last_loss = math.nan

    def training_step(self, batch, batch_idx):
        labels = batch["labels"]
        # dropout masks are a function of (seed, step): a resumed run matches an uninterrupted one
        torch.manual_seed(self.seed * 1_000_003 + self.global_step)
        scores = self.encoder(batch["inputs"], chunk_size=self.chunk_size).view(labels.shape)
        loss = self.objective(scores.float(), labels)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss ({loss.item()}) at step {self.global_step}")
        self.tokens_seen += int(batch["tokens"])
        self.last_loss = float(loss.detach())
        return loss

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.encoder.named_parameters():
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "norm" in name else decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.optim.lr,
            **self._adamw_implementation(),
        )
        warm, total = self.optim.warmup_steps, max(self.optim.total_steps, 1)

        def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0
            if step < warm:
                return (step + 1) / (warm + 1)
            return max(0.0, (total - step) / max(total - warm, 1))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _adamw_implementation(self) -> dict:
        """The same AdamW update over all parameters at once instead of a Python loop per tensor
        (MiniLM-2L on a 2-core CPU: ~0.05 s fused, ~0.2 s foreach, ~0.5 s looped per step).
        Lightning refuses gradient clipping with a fused optimizer under mixed precision: foreach there."""
        params = list(self.encoder.parameters())
        if not all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params):
            return {}
        trainer = self._trainer
        mixed = trainer is not None and "mixed" in str(trainer.precision)
        return {"foreach": True} if mixed else {"fused": True}

    def on_save_checkpoint(self, checkpoint):
        checkpoint["tokens_seen"] = self.tokens_seen

    def on_load_checkpoint(self, checkpoint):
        self.tokens_seen = checkpoint.get("tokens_seen", 0)


class CheckpointEvaluator(L.Callback):
    """Every ``every`` steps (and at the last one): evaluate, log, checkpoint."""

    def __init__(
        self,
        every: int,
        total: int,
        evaluate: Callable[[RerankerModule, int], None],
        checkpoint_path: Path | None,
        log_path: Path,
        on_step: Callable[[int], None] | None = None,
    ):
        self.every, self.total, self.evaluate = every, total, evaluate
        self.checkpoint_path, self.log_path, self.on_step = checkpoint_path, log_path, on_step
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        with open(self.log_path, "a") as fh:
            fh.write(json.dumps({
                "step": step,
                "loss": module.last_loss,
                "lr": trainer.optimizers[0].param_groups[0]["lr"],
                "tokens_seen": module.tokens_seen,
                "seconds": round(time.perf_counter() - self._t0, 3),
            }) + "\n")
        if self.on_step:
            self.on_step(step)
        if step % self.every == 0 or step == self.total:
            self.evaluate(module, step)
            if self.checkpoint_path is not None and step < self.total:
                tmp = self.checkpoint_path.with_suffix(".tmp")
                trainer.save_checkpoint(tmp)
                os.replace(tmp, self.checkpoint_path)


def fit(
    module: RerankerModule,
    batches: StepBatches,
    evaluator: CheckpointEvaluator,
    resume_from: Path | None = None,
    precision: str | None = None,
    accelerator: str = "auto",
) -> None:
    """Run the Lightning fit loop for ``batches.steps`` optimizer steps."""

    batches.start = lambda: module.global_step  # restored from the checkpoint on resume

    class _Data(L.LightningDataModule):
        def train_dataloader(self_inner):
            return DataLoader(batches, batch_size=None, num_workers=0)

    release_freed_memory()
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_utilities"):
        logging.getLogger(name).setLevel(logging.ERROR)
    module.encoder.train()  # from_pretrained hands back eval mode; dropout on for training
    trainer = L.Trainer(
        max_steps=batches.steps,
        max_epochs=-1,
        accelerator=accelerator,
        devices=1,
        precision=precision or ("bf16-mixed" if torch.cuda.is_available() else "32-true"),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[evaluator],
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch ended.*")
        warnings.filterwarnings("ignore", ".*GPU available but not used.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        warnings.filterwarnings("ignore", ".*weights_only.*")
        warnings.filterwarnings("ignore", ".*litlogger.*")
        trainer.fit(module, datamodule=_Data(), ckpt_path=str(resume_from) if resume_from else None)
