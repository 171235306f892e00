"""The plan of a grid, without running it: every cell's resources, memory estimate, steps and FLOPs.

What ``grid run --dry-run`` prints. Torch-free and offline: model shapes come
from the ladders (:mod:`rerank_scaling.models.memory`), never from weights,
and no data is read, so it answers in a second for a 1B grid on a laptop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rerank_scaling.config import Experiment, RunConfig
from rerank_scaling.models.memory import estimate, flops_per_step, parameters, shape_of

@dataclass(frozen=True)
class CellPlan:
    run: str
    size: str
    params: int | None  # non-embedding N, from the ladder's shape
    devices: int
    nodes: int
    strategy: str
    precision: str  # "auto": bf16-mixed on GPUs with bf16, 16-mixed on older ones, 32-true on CPU
    micro_batch: int
    grad_accumulation: int
    gradient_checkpointing: bool
    chunk_size: int | None
    memory_gb: float | None  # per device
    steps: int
    steps_estimated: bool  # [grid] compute: steps from FLOPs per step at max_length (a lower bound)
    flops: float | None
    timeout_min: int
    mem: str | None
    partition: str | None
    account: str | None
    qos: str | None
    constraint: str | None
    gres: str | None
    cpus_per_task: int
    submission: int  # which job array the cell goes into (cells of equal resources share one)
    state: str = "planned"


def cell_plan(experiment: Experiment, config: RunConfig, state: str = "planned", submission: int = 0) -> CellPlan:
    shape = shape_of(config.model)
    non_embedding = parameters(shape, scorer=config.family == "cross-encoder")[0] if shape else None
    est = estimate(config)
    per_step = flops_per_step(config, non_embedding) if non_embedding else None
    steps, estimated = config.steps, False
    if config.compute is not None and per_step:
        steps, estimated = max(1, round(config.compute / per_step)), True
    slurm = experiment.slurm_of(config)
    return CellPlan(
        config.run_id, config.size, non_embedding, config.devices, config.nodes, config.strategy,
        config.precision or "auto", config.micro_batch, config.grad_accumulation, config.gradient_checkpointing,
        config.chunk_size, None if est is None else round(est.gb(), 1), steps, estimated,
        None if per_step is None else per_step * steps, slurm.timeout_min, slurm.mem, slurm.partition,
        slurm.account, slurm.qos, slurm.constraint, slurm.gres, slurm.cpus_per_task, submission, state)


def plan(experiment: Experiment, states: dict[str, str] | None = None) -> list[CellPlan]:
    """Every cell's plan, in the experiment's order (``states``: run id -> state of an existing study), with
    the SLURM job array it would be submitted in (:func:`rerank_scaling.grid.executors.submissions`)."""
    from rerank_scaling.grid.executors import submissions

    states = states or {}
    groups = submissions([(c, None) for c in experiment.cells], experiment.slurm_of, "slurm")
    array = {c.run_id: i for i, (_, _, cells) in enumerate(groups) for c, _ in cells}
    return [cell_plan(experiment, c, states.get(c.run_id, "planned"), array[c.run_id]) for c in experiment.cells]


def as_json(experiment: Experiment, cells: list[CellPlan]) -> dict:
    return {"study": experiment.name, "experiment": str(experiment.path), "cells": [asdict(c) for c in cells],
            "submissions": len({c.submission for c in cells})}


def _si(value: float | None) -> str:
    if value is None:
        return "?"
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def table(experiment: Experiment, cells: list[CellPlan], gpu_memory_gb: float | None = None):
    """A rich table of the plan; with ``gpu_memory_gb``, cells whose estimate exceeds it in red."""
    from rich.table import Table

    subs = len({c.submission for c in cells})
    title = (f"{experiment.name}: {len(cells)} cells, {subs} submission{'s' * (subs != 1)} "
             "(one SLURM job array per resource profile); memory per device, estimated from the ladder's shapes")
    out = Table(title=title)
    out.add_column("cell", no_wrap=True, min_width=max((len(c.run) for c in cells), default=4))
    for col in ("N", "devices", "strategy", "precision", "batch/dev x acc", "ckpt", "GB/device", "steps",
                "FLOPs", "time", "mem", "array", "state"):
        out.add_column(col, justify="right" if col in ("N", "GB/device", "steps", "FLOPs") else "left")
    for c in cells:
        memory = "?" if c.memory_gb is None else f"{c.memory_gb:.1f}"
        if gpu_memory_gb is not None and c.memory_gb is not None and c.memory_gb > gpu_memory_gb:
            memory = f"[red]{memory}[/]"
        ckpt = "layers" if c.gradient_checkpointing else (f"chunk {c.chunk_size}" if c.chunk_size else "-")
        devices = f"{c.devices}" + (f"x{c.nodes} nodes" if c.nodes > 1 else "")
        out.add_row(c.run, _si(c.params), devices, c.strategy, c.precision,
                    f"{c.micro_batch} x {c.grad_accumulation}", ckpt, memory,
                    ("~" if c.steps_estimated else "") + f"{c.steps:,}", _si(c.flops), f"{c.timeout_min} min",
                    c.mem or "-", str(c.submission), c.state)
    return out
