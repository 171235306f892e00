"""Training: one LightningModule for every model family and objective, and its fit loop.

A training step, in full: the batch of global step ``s`` is a pure function
``batch_at(s)`` (the model family collates it from the training set's query
groups); ``model.group_scores(batch)`` scores it in the family's layout;
``objective(scores, labels, **extras)`` is the loss (``extras``: the batch
entries the objective ``requires``, e.g. teacher scores); AdamW with linear
warm-up and decay steps. Every ``every`` steps (and at the last) the
:class:`Checkpoints` callback logs, evaluates and saves a resumable
checkpoint.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, IterableDataset

from rerank_scaling.rundir import RunFolder


class NonFiniteLoss(RuntimeError):
    """Raised when the loss becomes NaN/inf; recorded as the run's failure reason."""


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    total_steps: int = 100


class TrainingModule(L.LightningModule):
    """A model of any family trained with any objective of a matching layout."""

    def __init__(self, model: torch.nn.Module, objective, optim: OptimConfig, seed: int = 0):
        super().__init__()
        self.model = model
        self.objective = objective
        self.optim = optim
        self.seed = seed
        self.tokens_seen = 0
        self.last_loss = math.nan
        self.extras = tuple(getattr(getattr(objective, "info", None), "requires", ()))

    def training_step(self, batch, batch_idx):
        # dropout masks are a function of (seed, step, rank): a resumed run matches an uninterrupted one
        torch.manual_seed(self.seed * 1_000_003 + self.global_step + 7_919 * self.global_rank)
        scores = self.model.group_scores(batch)
        loss = self.objective(scores.float(), batch["labels"], **{k: batch[k] for k in self.extras})
        tokens = torch.tensor(float(batch["tokens"]), device=loss.device)  # NCCL reduces device tensors only
        shown = loss.detach()
        if self._trainer is not None and self._trainer.world_size > 1:  # the global batch's loss and tokens, for logs
            shown = self.trainer.strategy.reduce(shown, reduce_op="mean")
            tokens = self.trainer.strategy.reduce(tokens, reduce_op="sum")
        if not torch.isfinite(shown):
            raise NonFiniteLoss(f"non-finite loss ({shown.item()}) at step {self.global_step}")
        self.tokens_seen += int(tokens)
        self.last_loss = float(shown)
        return loss

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
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
        params = list(self.model.parameters())
        if not all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params):
            return {}
        trainer = self._trainer
        mixed = trainer is not None and "mixed" in str(trainer.precision)
        return {"foreach": True} if mixed else {"fused": True}

    def on_save_checkpoint(self, checkpoint):
        checkpoint["tokens_seen"] = self.tokens_seen

    def on_load_checkpoint(self, checkpoint):
        self.tokens_seen = checkpoint.get("tokens_seen", 0)
        state = checkpoint.get("state_dict", {})
        if any(k.startswith("encoder.") for k in state):  # checkpoints of runs begun before models were families
            checkpoint["state_dict"] = {"model." + k.removeprefix("encoder."): v for k, v in state.items()}


class StepBatches(IterableDataset):
    """Yields ``batch_at(s, rank, world)`` for ``s`` from ``position()`` to ``steps - 1``: this
    process's share of the global batch of step ``s``.

    Each new iterator asks ``position()`` (the trainer's global step) where to
    begin, so the stream stays aligned with the optimizer steps however the
    fit loop restarts epochs -- after a resume Lightning ends the first epoch
    early and iterates the loader again, which must not replay batches.
    """

    def __init__(self, batch_at: Callable[[int, int, int], dict], steps: int, position: Callable[[], int],
                 rank: Callable[[], tuple[int, int]] = lambda: (0, 1)):
        self.batch_at, self.steps, self.position, self.rank = batch_at, steps, position, rank

    def __iter__(self):
        rank, world = self.rank()
        for step in range(self.position(), self.steps):
            yield self.batch_at(step, rank, world)


class InPlaceCheckpointIO(TorchCheckpointIO):
    """Write a checkpoint straight to the path it is given (inside the run folder).

    Lightning's own writer serialises the whole checkpoint to memory and stages
    it through a temporary file in ``$TMPDIR``; a kill during the save then
    orphans a full-size file there. :class:`Checkpoints` saves to ``*.tmp``
    beside the real checkpoint and renames it, so this writer needs no staging.
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("storage_options are not supported")
        with open(path, "wb") as fh:
            torch.save(checkpoint, fh)
            fh.flush()
            os.fsync(fh.fileno())


def make_logger(kind: str, run: RunFolder, name: str, start_step: int):
    """The Lightning logger a user watches (None for ``"none"``): loss, lr and tokens/s every
    step, every checkpoint evaluation. Written under ``run.logs``, one version per (re)start
    (``from-step-<n>``), so a resumed run adds a file rather than replacing the first."""
    version = f"from-step-{start_step}"
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(run.path), name=RunFolder.logs, version=version)
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(run.path), name=RunFolder.logs, version=version,
                                 default_hp_metric=False)
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(save_dir=str(run.path), name=name, version=f"{name}-{version}", project="rerank-scaling")
    return None


class Checkpoints(L.Callback):
    """After every step: a log line; every ``every`` steps (and at the last): evaluate, then
    save a resumable checkpoint (atomically, inside the run folder). With a Lightning
    logger, the same numbers (and each evaluation's rows) go to it too."""

    def __init__(self, every: int, total: int, evaluate: Callable[[TrainingModule, int], None], run: RunFolder,
                 on_step: Callable[[int], None] | None = None):
        self.every, self.total, self.evaluate, self.run, self.on_step = every, total, evaluate, run, on_step
        self._t0 = self._last = time.perf_counter()
        self._tokens = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step % self.every == 0 or step == self.total:
            if step < self.total:  # every rank takes part (some strategies save collectively)
                trainer.save_checkpoint(self.run.checkpoint.with_suffix(".tmp"))
            if trainer.is_global_zero:
                self._rank_zero(trainer, module, step)
                if step < self.total:
                    os.replace(self.run.checkpoint.with_suffix(".tmp"), self.run.checkpoint)
            trainer.strategy.barrier()
        elif trainer.is_global_zero:
            self._rank_zero(trainer, module, step)

    def _rank_zero(self, trainer, module, step: int) -> None:
        """Log the step; at an evaluation step, evaluate (the files of a run have one writer)."""
        now = time.perf_counter()
        record = {
            "step": step,
            "loss": module.last_loss,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "tokens_seen": module.tokens_seen,
            "seconds": round(now - self._t0, 3),
        }
        self.run.append_log(record)
        if trainer.logger is not None:
            done = module.tokens_seen - (self._tokens if self._tokens is not None else module.tokens_seen)
            metrics = {"train/loss": record["loss"], "train/lr": record["lr"]}
            if self._tokens is not None:  # a rate needs two steps
                metrics["train/tokens_per_s"] = done / max(now - self._last, 1e-9)
            trainer.logger.log_metrics(metrics, step=step)
        self._last, self._tokens = now, module.tokens_seen
        if self.on_step:
            self.on_step(step)
        if step % self.every == 0 or step == self.total:
            rows = self.evaluate(module, step) or []
            if trainer.logger is not None:
                trainer.logger.log_metrics({f"eval/{r['eval_set']}/{r['metric']}": r["value"] for r in rows},
                                           step=step)
                trainer.logger.save()


def fit(
    module: TrainingModule,
    batch_at: Callable[[int, int, int], dict],
    steps: int,
    start_step: int,
    callback: Checkpoints,
    resume_from=None,
    precision: str | None = None,
    accelerator: str = "auto",
    logger=None,
    devices: int = 1,
    strategy: str = "auto",
) -> None:
    """Train from ``start_step`` (restored from ``resume_from`` when > 0) to ``steps``.

    ``batch_at(step, rank, world)`` is this process's share of step ``step``'s global
    batch; with ``devices > 1`` (strategy ``ddp``) Lightning starts one process per device
    and averages gradients, so the update equals one process's on the whole global batch.
    """
    if start_step > 0 and resume_from is None:
        raise ValueError(f"start_step {start_step} needs a checkpoint to resume from")

    def position() -> int:
        if module.global_step < start_step:
            raise RuntimeError(f"checkpoint restored step {module.global_step}, expected {start_step}")
        return module.global_step

    batches = StepBatches(batch_at, steps, position, rank=lambda: (module.global_rank, module.trainer.world_size))

    class _Data(L.LightningDataModule):
        def train_dataloader(self_inner):
            return DataLoader(batches, batch_size=None, num_workers=0)

    module.model.train()  # from_pretrained hands back eval mode; dropout on for training
    plugins = [InPlaceCheckpointIO()]
    if SLURMEnvironment.detect():  # submitit requeues timed-out cells; Lightning's own handler would fight it
        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer = L.Trainer(
        max_steps=steps,
        max_epochs=-1,
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        precision=precision or ("bf16-mixed" if torch.cuda.is_available() else "32-true"),
        logger=logger if logger is not None else False,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        plugins=plugins,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
    )
    trainer.fit(module, datamodule=_Data(), ckpt_path=str(resume_from) if resume_from else None)
