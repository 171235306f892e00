"""Training: one LightningModule for every model family and objective, and its fit loop.

A training step, in full: the batch of global step ``s`` is a pure function
``batch_at(s)`` (the model family collates it from the training set's query
groups); ``model.group_scores(batch)`` scores it in the family's layout;
``objective(scores, labels, **extras)`` is the loss (``extras``: the batch
entries the objective ``requires``, e.g. teacher scores), plus
``model.penalty(step)`` where the family has one (the sparse encoder's
sparsity regulariser); AdamW with linear
warm-up and decay steps. Every ``every`` steps (and at the last) the
:class:`Checkpoints` callback logs, evaluates and saves a resumable
checkpoint (and between them every ``checkpoint_every_min`` minutes, so a
requeued job loses at most that). With ``grad_accumulation = k`` each step is
``k`` micro-batches per device whose gradients add up to the step's.

Under DDP/FSDP every rank evaluates: each scores its share of the evaluation
batches and the scores are gathered (:mod:`rerank_scaling.evaluation.sharded`),
under the training precision; rank 0 alone writes.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import lightning as L
import torch
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy
from torch.utils.data import DataLoader, IterableDataset

from rerank_scaling.errors import UserError
from rerank_scaling.rundir import RunFolder


_FSDP_PREFIX = "_fsdp_wrapped_module."  # what FSDP puts into the names of the parameters it wraps


def _is_fsdp(module) -> bool:
    from torch.distributed.fsdp import FullyShardedDataParallel

    return isinstance(module, FullyShardedDataParallel)


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

    def __init__(self, model: torch.nn.Module, objective, optim: OptimConfig, seed: int = 0,
                 grad_accumulation: int = 1):
        super().__init__()
        self.model = model
        self.objective = objective
        self.optim = optim
        self.seed = seed
        self.grad_accumulation = grad_accumulation
        self.tokens_seen = 0
        self.last_loss = math.nan
        self._losses: tuple[int, list[float]] = (-1, [])  # (step, its micro-batches' losses)
        self.extras = tuple(getattr(getattr(objective, "info", None), "requires", ()))
        # decided on the whole parameters: once FSDP shards them, each is a flat 1-D piece of its shard
        self._decays = {name: not (p.ndim < 2 or "LayerNorm" in name or "norm" in name)
                        for name, p in model.named_parameters()}

    def training_step(self, batch, batch_idx):
        # dropout masks are a function of (seed, step, rank, micro-batch): a resumed run matches an
        # uninterrupted one (with one micro-batch, the formula of runs before accumulation)
        part = self.global_rank * self.grad_accumulation + batch_idx % self.grad_accumulation
        torch.manual_seed(self.seed * 1_000_003 + self.global_step + 7_919 * part)
        scores = self.model.group_scores(batch)
        loss = self.objective(scores.float(), batch["labels"], **{k: batch[k] for k in self.extras})
        penalty = getattr(self.model, "penalty", None)  # a family's own regulariser (sparse: FLOPS / L1)
        if penalty is not None:
            loss = loss + penalty(self.global_step)
        tokens = torch.tensor(float(batch["tokens"]), device=loss.device)  # NCCL reduces device tensors only
        shown = loss.detach()
        if self._trainer is not None and self._trainer.world_size > 1:  # the global batch's loss and tokens, for logs
            shown = self.trainer.strategy.reduce(shown, reduce_op="mean")
            tokens = self.trainer.strategy.reduce(tokens, reduce_op="sum")
        if not torch.isfinite(shown):
            raise NonFiniteLoss(f"non-finite loss ({shown.item()}) at step {self.global_step}")
        self.tokens_seen += int(tokens)
        step, losses = self._losses
        if step != self.global_step:  # the step's first micro-batch
            self._losses = step, losses = self.global_step, []
        losses.append(float(shown))
        self.last_loss = sum(losses) / len(losses)  # the step's loss: the mean over its equal micro-batches
        return loss

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:  # frozen weights (a LoRA backbone) get no optimizer state
                (decay if self._decays[name.replace(_FSDP_PREFIX, "")] else no_decay).append(p)
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
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params):
            return {}
        trainer = self._trainer
        mixed = trainer is not None and "mixed" in str(trainer.precision)
        return {"foreach": True} if mixed else {"fused": True}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """Clip by the global gradient norm. Under FSDP each process holds a shard of the gradients,
        which Lightning cannot clip by norm; the root FSDP module can (it reduces the norm over shards)."""
        root = self.trainer.strategy.model
        if gradient_clip_val and _is_fsdp(root):
            root.clip_grad_norm_(gradient_clip_val)
        else:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["tokens_seen"] = self.tokens_seen

    def on_load_checkpoint(self, checkpoint):
        self.tokens_seen = checkpoint.get("tokens_seen", 0)
        state = checkpoint.get("state_dict", {})
        if any(k.startswith("encoder.") for k in state):  # checkpoints of runs begun before models were families
            checkpoint["state_dict"] = {"model." + k.removeprefix("encoder."): v for k, v in state.items()}


class StepBatches(IterableDataset):
    """Yields ``batch_at(s, rank, world)`` for ``s`` from ``position()`` to ``steps - 1``: this
    process's share of the global batch of step ``s`` -- with ``accumulation = k``, its ``k``
    micro-batches ``batch_at(s, rank * k + j, world * k)`` one after the other.

    Each new iterator asks ``position()`` (the trainer's global step) where to
    begin, so the stream stays aligned with the optimizer steps however the
    fit loop restarts epochs -- after a resume Lightning ends the first epoch
    early and iterates the loader again, which must not replay batches.
    """

    def __init__(self, batch_at: Callable[[int, int, int], dict], steps: int, position: Callable[[], int],
                 rank: Callable[[], tuple[int, int]] = lambda: (0, 1), accumulation: int = 1):
        self.batch_at, self.steps, self.position, self.rank = batch_at, steps, position, rank
        self.accumulation = accumulation

    def __iter__(self):
        rank, world = self.rank()
        k = self.accumulation
        for step in range(self.position(), self.steps):
            for j in range(k):
                yield self.batch_at(step, rank * k + j, world * k)


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


def wandb_id(run: RunFolder, name: str) -> str:
    """The W&B run id of a cell: its name and a digest of its folder's path (two studies of the same
    cells are two runs), in W&B's alphabet; the same at every restart, so a restart resumes the run."""
    digest = hashlib.sha1(str(run.path.resolve()).encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)[:100]}-{digest}"


def make_logger(kind: str, run: RunFolder, name: str, start_step: int, project: str = "rerank-scaling"):
    """The Lightning logger a user watches (None for ``"none"``): loss, lr and tokens/s every
    step, every checkpoint evaluation. Written under ``run.logs``, one version per (re)start
    (``from-step-<n>``), so a resumed run adds a file rather than replacing the first; W&B has one
    run per cell (:func:`wandb_id`, ``resume="allow"``) in ``project``, continued after a restart."""
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

        return WandbLogger(save_dir=str(run.path), name=name, id=wandb_id(run, name), resume="allow",
                           project=project)
    return None


class Checkpoints(L.Callback):
    """After every step: a log line; every ``every`` steps (and at the last): evaluate, then
    save a resumable checkpoint (atomically, inside the run folder); with ``every_min``, also a
    checkpoint whenever that many minutes passed since the last one. With a Lightning logger,
    the same numbers (and each evaluation's rows) go to it too.

    ``evaluate(model, tokens_seen, step)`` runs on every rank, under the training precision
    (the precision plugin's forward context), with a model holding the whole parameters: the
    module's own, or under FSDP (each process holds a shard) ``replica()``, an unsharded model of
    the same family built once per rank, loaded at each evaluation with the full state dict
    every process takes part in gathering; it moves to the training device for the evaluation
    and back to CPU after. (With several ranks ``evaluate`` shares the scoring out among them
    and rank 0 writes; see :mod:`rerank_scaling.pipeline.run`.)
    """

    def __init__(self, every: int, total: int, evaluate: Callable[[torch.nn.Module, int, int], list | None],
                 run: RunFolder, on_step: Callable[[int], None] | None = None,
                 replica: Callable[[], torch.nn.Module] | None = None, every_min: float | None = None):
        self.every, self.total, self.evaluate, self.run, self.on_step = every, total, evaluate, run, on_step
        self.replica, self._replica = replica, None
        self.every_s = None if every_min is None else 60.0 * every_min
        self._t0 = self._last = self._saved_at = time.perf_counter()
        self._tokens = None
        self._step: int | None = None

    def on_train_start(self, trainer, module):
        self._step = trainer.global_step
        self._saved_at = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step == self._step:  # a micro-batch of gradient accumulation: the optimizer has not stepped
            return
        self._step = step
        evaluate = step % self.every == 0 or step == self.total
        save = step < self.total and (evaluate or self._time_due(trainer))
        whole = self._whole_model(trainer, module) if evaluate else None  # collective under FSDP
        staged = self.run.checkpoint.with_suffix(".tmp")
        if save:  # every rank takes part (some strategies save collectively)
            trainer.save_checkpoint(staged)
            self._saved_at = time.perf_counter()
        if trainer.is_global_zero:
            self._log(trainer, module, step)
        if evaluate:
            self._evaluate(trainer, module, step, whole)
        if save and trainer.is_global_zero:
            os.replace(staged, self.run.checkpoint)
        if save or evaluate:
            trainer.strategy.barrier()

    def _time_due(self, trainer) -> bool:
        """Whether ``every_min`` minutes passed since the last checkpoint (rank 0's clock decides for all)."""
        if self.every_s is None:
            return False
        due = time.perf_counter() - self._saved_at >= self.every_s
        return bool(trainer.strategy.broadcast(due, src=0)) if trainer.world_size > 1 else due

    def _whole_model(self, trainer, module: TrainingModule) -> torch.nn.Module:
        """The model to evaluate (and save on rank 0): the module's own, or under FSDP every rank's replica
        loaded with the full state dict."""
        if not _is_fsdp(trainer.strategy.model):
            return module.model
        state = trainer.strategy.full_state_dict_on_every_rank()  # collective
        if self.replica is None:
            raise RuntimeError("FSDP training needs Checkpoints(replica=...) to evaluate the whole model")
        if self._replica is None:
            self._replica = self.replica()
        prefix = "model."  # TrainingModule.model
        self._replica.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
        return self._replica

    def _log(self, trainer, module, step: int) -> None:
        """Rank 0: the step's log line (the files of a run have one writer)."""
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

    def _evaluate(self, trainer, module, step: int, whole: torch.nn.Module) -> None:
        if whole is self._replica:
            whole.to(module.device)
        try:
            with trainer.precision_plugin.forward_context():  # evaluation under the training precision
                rows = self.evaluate(whole, module.tokens_seen, step) or []
        finally:
            if whole is self._replica:
                whole.to("cpu")  # the training device holds shards only between evaluations
        if trainer.is_global_zero and trainer.logger is not None:
            trainer.logger.log_metrics({f"eval/{r['eval_set']}/{r['metric']}": r["value"] for r in rows}, step=step)
            trainer.logger.save()


class ShardedStrategy(FSDPStrategy):
    """Lightning's FSDP strategy (full state dicts: gathered to rank 0, offloaded to CPU), on
    CUDA unchanged, and made to run on CPU (gloo), where Lightning 2.6 with torch 2.13 does not:

    * the trainer refuses ``FSDPStrategy`` off CUDA by an exact type check ("requires a GPU
      accelerator"), which a subclass passes;
    * Lightning wraps with ``device_id=root_device.index``, None on CPU, with which FSDP looks
      for an accelerator ("FSDP needs a non-CPU accelerator device"): here the CPU device;
    * with ``offload_to_cpu=True`` and parameters on CPU, FSDP's full model state dict
      segfaults and its full optimizer state dict comes back with wrong moments (a resumed
      run then diverges): on CPU the state is gathered without offloading (it is there already).
    """

    def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.root_device.type != "cpu":
            return super()._setup_model(model)
        from torch.distributed.fsdp import FullyShardedDataParallel

        return FullyShardedDataParallel(module=model, cpu_offload=self.cpu_offload,
                                        mixed_precision=self.mixed_precision_config,
                                        sharding_strategy=self.sharding_strategy, device_id=self.root_device,
                                        **self.kwargs)

    def _full_state_in_place(self):
        from torch.distributed.fsdp import (FullOptimStateDictConfig, FullStateDictConfig,
                                            FullyShardedDataParallel, StateDictType)

        return FullyShardedDataParallel.state_dict_type(
            self.model, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=False, rank0_only=True),
            FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=True))

    def lightning_module_state_dict(self) -> dict:
        if self.root_device.type != "cpu":
            return super().lightning_module_state_dict()
        with self._full_state_in_place():
            return self.model.state_dict()

    def full_state_dict_on_every_rank(self) -> dict:
        """The whole parameters, gathered to every rank (a collective; to CPU memory on GPUs), so that every
        rank can evaluate its share with an unsharded replica."""
        from torch.distributed.fsdp import FullStateDictConfig, FullyShardedDataParallel, StateDictType

        config = FullStateDictConfig(offload_to_cpu=self.root_device.type != "cpu", rank0_only=False)
        with FullyShardedDataParallel.state_dict_type(self.model, StateDictType.FULL_STATE_DICT, config):
            return self.model.state_dict()

    def optimizer_state(self, optimizer) -> dict:
        if self.root_device.type != "cpu":
            return super().optimizer_state(optimizer)
        from torch.distributed.fsdp import FullyShardedDataParallel, OptimStateKeyType

        optimizer = getattr(optimizer, "_optimizer", optimizer)  # a LightningOptimizer's own
        with self._full_state_in_place():  # as FSDPStrategy.optimizer_state, without the offload
            state = FullyShardedDataParallel.optim_state_dict(self.model, optimizer)
            if self.global_rank == 0:
                state = FullyShardedDataParallel.rekey_optim_state_dict(state, OptimStateKeyType.PARAM_ID, self.model)
            return state


def shard_units(model: torch.nn.Module) -> set[type]:
    """The module classes FSDP wraps as units of their own: the blocks Hugging Face models name
    as never to be split across devices (``_no_split_modules``: BERT's layers and embeddings).
    Empty for a model without them: one unit, the whole model."""
    names = {n for m in model.modules() for n in (getattr(m, "_no_split_modules", None) or ())}
    return {type(m) for m in model.modules() if type(m).__name__ in names}


def enable_gradient_checkpointing(model: torch.nn.Module) -> int:
    """Recompute activations in the backward pass: every Hugging Face backbone inside ``model`` checkpoints
    each of its layers (their own ``gradient_checkpointing_enable``, non-reentrant); our packed forward,
    which calls the layers' parts directly and so would bypass it, is switched off (``fast_path``).
    Returns the number of backbones; :class:`UserError` when none supports it."""
    backbones = [m for m in model.modules() if getattr(m, "supports_gradient_checkpointing", False)
                 and hasattr(m, "gradient_checkpointing_enable")]
    for backbone in backbones:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    for m in model.modules():
        if hasattr(m, "fast_path"):
            m.fast_path = False
    if not backbones:
        raise UserError(f"gradient_checkpointing: no backbone of {type(model).__name__} supports it")
    return len(backbones)


def resolve_precision(precision: str | None) -> str:
    """The precision a cell trains in: ``precision``, or by default 32-true on CPU, bf16-mixed on a GPU
    with native bf16 (compute capability 8.0+: A100, H100, L40) and 16-mixed (with loss scaling) on older
    ones (V100, T4). bf16 asked of a GPU without it is a :class:`UserError`."""
    if not torch.cuda.is_available():
        return precision or "32-true"
    major, minor = torch.cuda.get_device_capability()
    native_bf16 = major >= 8
    if precision is None:
        return "bf16-mixed" if native_bf16 else "16-mixed"
    if precision.startswith("bf16") and not native_bf16:
        raise UserError(f'precision = "{precision}": {torch.cuda.get_device_name()} (compute capability '
                        f'{major}.{minor}) has no native bf16; use "16-mixed" or "32-true", or leave precision '
                        "unset (16-mixed there)")
    return precision


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
    grad_accumulation: int = 1,
    nodes: int = 1,
    timeout_min: float = 30.0,
) -> None:
    """Train from ``start_step`` (restored from ``resume_from`` when > 0) to ``steps``.

    ``batch_at(step, rank, world)`` is this process's share of step ``step``'s global
    batch; with ``devices > 1`` Lightning starts one process per device and averages
    gradients, so the update equals one process's on the whole global batch. Strategy
    ``ddp`` keeps a whole copy of the model (and optimizer state) per process; ``fsdp``
    shards parameters, gradients and optimizer state over the processes, one FSDP unit per
    transformer layer (:func:`shard_units`), and saves checkpoints as one file holding the
    full state (gathered to rank 0) for an FSDP run over the same model to resume. ``devices`` are
    per node, over ``nodes`` (SLURM); the processes wait ``timeout_min`` at a collective before
    failing. ``grad_accumulation`` micro-batches make one step (Lightning averages their losses, so
    the update is the whole batch's).
    """
    if start_step > 0 and resume_from is None:
        raise ValueError(f"start_step {start_step} needs a checkpoint to resume from")

    def position() -> int:
        if module.global_step < start_step:
            raise RuntimeError(f"checkpoint restored step {module.global_step}, expected {start_step}")
        return module.global_step

    batches = StepBatches(batch_at, steps, position, rank=lambda: (module.global_rank, module.trainer.world_size),
                          accumulation=grad_accumulation)

    class _Data(L.LightningDataModule):
        def train_dataloader(self_inner):
            return DataLoader(batches, batch_size=None, num_workers=0)

    timeout = timedelta(minutes=timeout_min)
    if strategy == "fsdp":
        strategy = ShardedStrategy(auto_wrap_policy=shard_units(module.model) or None, state_dict_type="full",
                                   timeout=timeout)
    elif strategy == "ddp":
        strategy = DDPStrategy(timeout=timeout)
    module.model.train()  # from_pretrained hands back eval mode; dropout on for training
    plugins = [InPlaceCheckpointIO()]
    if SLURMEnvironment.detect():  # submitit requeues timed-out cells; Lightning's own handler would fight it
        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer = L.Trainer(
        max_steps=steps,
        max_epochs=-1,
        accelerator=accelerator,
        devices=devices,
        num_nodes=nodes,
        strategy=strategy,
        precision=resolve_precision(precision),
        accumulate_grad_batches=grad_accumulation,
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
