"""One training run, end to end, into its own run folder (:class:`~rerank_scaling.rundir.RunFolder`).

Prepare the data (user errors surface before anything is written), build the
model of the config's family, train with checkpoint-wise evaluation, write
the tidy rows. A re-run of a finished folder does nothing; an interrupted one
resumes from its last checkpoint (rows after that checkpoint are dropped and
recomputed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from rerank_scaling.candidates.trec import write_trec_run
from rerank_scaling.config import RunConfig
from rerank_scaling.errors import UserError
from rerank_scaling.evaluation.checkpoint import evaluate_checkpoint, per_query_rows
from rerank_scaling.evaluation.distilled import distilled_rows, teacher_reference
from rerank_scaling.evaluation.metrics import mean_values
from rerank_scaling.evaluation.sharded import sharded
from rerank_scaling.models import get_family
from rerank_scaling.models.backbone import trainable_parameters
from rerank_scaling.models.ladder import nominal_params
from rerank_scaling.models.memory import GB, estimate, suggestions
from rerank_scaling.objectives import get_objective
from rerank_scaling.pipeline.prepare import Prepared, prepare
from rerank_scaling.pipeline.teacher import (distillation_targets, evaluate_teacher, scores_training_pairs,
                                              teacher_query_embeddings)
from rerank_scaling.results import frame, per_query_frame, read_rows, write_parquet
from rerank_scaling.rundir import RunFolder
from rerank_scaling.runtime import local_device, pin_allocator, process_rank, setup_process
from rerank_scaling.training import (Checkpoints, NonFiniteLoss, OptimConfig, TrainingModule,
                                     enable_gradient_checkpointing, fit, make_logger, resolve_precision)

Progress = Callable[[str, dict], None]  # (event, details): "warning", "prepared", "step", "eval", "done"
COMPUTE_SAMPLE_STEPS = 16  # [grid] compute: FLOPs per step measured on the first steps' batches


def hardware(config: RunConfig | None = None) -> dict:
    """Where a run ran, for the report's hardware section.

    ``peak_rss_mb`` is the process's peak resident memory so far: the cell's
    own peak when it ran in a fresh process, and the peak of every cell a
    grid worker has run so far otherwise (an upper bound). On a GPU,
    ``gpu_peak_mb`` is the most memory torch allocated on this process's
    device since the cell started (rank 0's under DDP/FSDP), ``gpu_reserved_peak_mb``
    what its caching allocator held, ``gpu_total_mb`` the device's; with ``config``,
    the precision the cell trained in and its memory estimate (``estimate_gb``).
    """
    import platform
    import resource

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})"
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out = {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "host": platform.node(), "cpus": os.cpu_count(), "peak_rss_mb": round(peak_kb / 1024)}
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        out["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    if torch.cuda.is_available():
        out.update(gpu_peak_mb=round(torch.cuda.max_memory_allocated() / 2**20),
                   gpu_reserved_peak_mb=round(torch.cuda.max_memory_reserved() / 2**20),
                   gpu_total_mb=round(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
                                      / 2**20))
    if config is not None:
        try:
            out["precision"] = resolve_precision(config.precision)
        except UserError:  # what the cell failed with already
            out["precision"] = config.precision
        est = estimate(config)
        if est is not None:
            out["estimate_gb"] = round(est.gb(), 2)
    return out


def memory_verdict(config: RunConfig, device_bytes: float, device_name: str) -> str | None:
    """Why the cell will not fit a device of ``device_bytes`` by its estimate (with what to change), or
    None when it fits (or has no estimate)."""
    est = estimate(config)
    if est is None or est.total <= device_bytes:
        return None
    return (f"memory: estimated {est.describe()} exceeds the {device_bytes / GB:.1f} GB of {device_name}; "
            f"try {'; '.join(suggestions(config))} ([hardware] memory_check = \"warn\" runs it anyway)")


def check_memory(config: RunConfig) -> None:
    """``[hardware] memory_check`` on this process's GPU, before the cell loads anything (CPU: nothing)."""
    if config.memory_check == "off" or not torch.cuda.is_available():
        return
    device = torch.device(local_device())
    verdict = memory_verdict(config, torch.cuda.get_device_properties(device).total_memory,
                             torch.cuda.get_device_name(device))
    if verdict and config.memory_check == "error":
        raise UserError(verdict)
    if verdict:
        import logging

        logging.getLogger(__name__).warning(verdict)


def out_of_memory(config: RunConfig, exc: BaseException) -> str:
    """A CUDA out-of-memory failure's reason: torch's first line, the cell's estimate, what to change."""
    est = estimate(config)
    said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    where = f"estimated {est.describe()}" if est is not None else "no estimate for this model"
    return f"out of memory: {said} ({where}); try {'; '.join(suggestions(config))}"


def baseline_per_query(prepared: Prepared) -> list[dict]:
    return [r for name, per_query in prepared.baseline.items() for r in per_query_rows("bm25", name, per_query)]


def baseline_rows(prepared: Prepared) -> list[dict]:
    rows = []
    in_domain = {es.name: es.in_domain for es in prepared.evalsets}
    for name, per_query in prepared.baseline.items():
        for metric, value in mean_values(per_query).items():
            rows.append({
                "run": "bm25", "family": None, "model": "bm25", "ladder": "bm25", "size": "", "params": 0,
                "total_params": 0, "trainable_params": 0, "size_axis": None,
                "objective": "none", "supervision": "none", "budget": 0, "seed": 0, "step": 0,
                "examples_seen": 0, "tokens_seen": 0, "flops": 0.0, "eval_set": name,
                "in_domain": in_domain[name], "metric": metric, "value": float(value),
            })
    return rows


def evalsets_at(config: RunConfig, evalsets: list, step: int) -> list:
    """The evaluation sets of the checkpoint at ``step``: every set at the last step; before it, as
    ``intermediate_evals`` says -- all, the in-domain ones, or the in-domain ones without their contrastive-entropy
    sets (``in-domain-ranking``: only the pairs the ranking metrics need are scored)."""
    if step >= config.steps or config.intermediate_evals == "all":
        return list(evalsets)
    home = [es for es in evalsets if es.in_domain]
    if config.intermediate_evals == "in-domain-ranking":
        home = [dataclasses.replace(es, contrastive={}, variants={}) for es in home]
    return home


def fixed_compute(config: RunConfig, prepared: Prepared) -> RunConfig:
    """``config`` with ``steps`` derived from ``[grid] compute`` (itself when compute is not set): a model
    of the cell's family measures its training FLOPs on the first ``COMPUTE_SAMPLE_STEPS`` batches (mean
    tokens per step), and ``steps = compute / FLOPs per step``. Recorded in ``data.json`` (``compute``).
    Deterministic (the batches are a function of seed and step), so a resumed cell derives the same steps."""
    if config.compute is None:
        return config
    probe = get_family(config.family).build(config)
    tokens = [probe.training_batch(prepared.train.batch(s, config.batch_size), prepared.train.collection)["tokens"]
              for s in range(COMPUTE_SAMPLE_STEPS)]
    per_step = probe.training_flops(sum(tokens) / len(tokens))
    del probe
    steps = config.steps_for_compute(per_step)
    prepared.info["compute"] = {"flops": config.compute, "flops_per_step": per_step, "steps": steps,
                                "tokens_per_step": sum(tokens) / len(tokens), "sampled_steps": len(tokens)}
    return dataclasses.replace(config, steps=steps)


def other_run(config: RunConfig, run: RunFolder) -> None:
    """:class:`UserError` when ``run`` already holds a run of another config: resuming it would mix two runs,
    and a finished one would be handed back as this one's result. A key its ``config.json`` predates (absent
    there) counts only when set away from its default; ``steps`` is derived there when ``compute`` is set."""
    saved = run.read_config()
    if not saved:
        return
    now, defaults = (json.loads(json.dumps(c)) for c in (
        config.to_dict(), RunConfig().to_dict() | dataclasses.asdict(type(config.family_settings)())))
    for key, value in now.items():
        old = saved.get(key, defaults[key])
        if old != value and not (key == "steps" and config.compute is not None):
            raise UserError(f"{run.path} holds a run with {key} = {old!r}, not {value!r}: resume it with the same "
                            "settings, or give another --out")


def train_run(config: RunConfig, folder: Path | RunFolder, progress: Progress | None = None) -> dict:
    """Train and evaluate one run into ``folder``; returns its status dict."""
    config.validate()
    run = folder if isinstance(folder, RunFolder) else RunFolder(folder)
    leader = process_rank() == 0  # with devices > 1, the other processes train and write nothing
    if leader:
        run.repair()  # a crash can tear a status, table, checkpoint or log line: resume from what is whole
    if leader:
        other_run(config, run)
    status = run.read_status()
    if status and status.get("state") == "done":
        return status
    emit = progress or (lambda event, details: None)
    check_memory(config)  # before any data or weights: a cell that cannot fit fails in seconds
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()  # gpu_peak_mb is this cell's (a grid worker may run several)
    prepared = prepare(config)  # user errors in the data surface before anything is written
    for message in prepared.info["warnings"]:
        emit("warning", {"run": config.run_id, "message": message})
    setup_process(config.threads)
    config = fixed_compute(config, prepared)  # [grid] compute: this cell's steps
    if not leader:
        _train(config, prepared, run, emit, leader=False)
        return {"state": "done", "run": config.run_id, "rank": process_rank()}
    run.create()
    run.write_json(run.config, config.to_dict())
    started = time.perf_counter()
    try:
        result = _train(config, prepared, run, emit)
    except NonFiniteLoss as exc:
        result = {"state": "failed", "reason": str(exc)}
    except torch.cuda.OutOfMemoryError as exc:
        result = {"state": "failed", "reason": out_of_memory(config, exc)}
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["run"] = config.run_id
    result["hardware"] = hardware(config)
    run.write_status(result)
    emit("done", result)
    return result


def _train(config: RunConfig, prepared: Prepared, run: RunFolder, emit: Progress, leader: bool = True) -> dict:
    if leader:
        run.write_json(run.data, prepared.info)
        write_parquet(frame(baseline_rows(prepared)), run.baseline)

    family = get_family(config.family)
    model = family.build(config)
    non_embedding, total = model.parameter_counts()
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    pin_allocator(config.malloc_pin, non_embedding)
    tset = prepared.train
    # tokenise every text this run will see in a few batched calls
    texts = {
        "queries": [*tset.collection.queries.values(),
                    *(q for es in prepared.evalsets for q in es.collection.queries.values())],
        "docs": sorted({es.collection.docs[d] for es in prepared.evalsets for _, d in es.pairs()}),
    }
    model.warm(**texts)

    def replica():  # under FSDP, rank 0 evaluates and saves an unsharded model of the same family
        copy = family.build(config)
        copy.warm(**texts)
        return copy
    objective = get_objective(config.objective, config)
    # a distillation objective's teacher scores every pair of the training set once (cached on disk);
    # query-distill's embeds every training query once (the student's teacher cache)
    teacher = (distillation_targets(config, tset) if "teacher_scores" in objective.info.requires else
               teacher_query_embeddings(model, tset, config.eval_batch_size)
               if "teacher_embeddings" in objective.info.requires else None)
    reference: dict = {}  # query-distill: the teacher measured as its students are (once, at the first evaluation)
    module = TrainingModule(model, objective,
                            OptimConfig(config.lr, config.weight_decay, config.warmup_steps, config.steps),
                            seed=config.seed, grad_accumulation=config.grad_accumulation)
    size = nominal_params(config.model) if config.size_axis == "nominal" else non_embedding
    columns = {
        "run": config.run_id, "family": config.family, "model": config.model.name, "ladder": config.ladder,
        "size": config.size, "params": size, "total_params": total, "trainable_params": trainable_parameters(model),
        "size_axis": config.size_axis, "objective": config.objective,
        "supervision": config.supervision, "budget": tset.info["queries"], "seed": config.seed,
    }
    resume = run.checkpoint if run.checkpoint.exists() else None
    # mmap: read the step without materialising the weights (Lightning loads them in fit)
    start = torch.load(resume, map_location="cpu", weights_only=False, mmap=True)["global_step"] if resume else 0
    rows = [r for r in read_rows(run.metrics) if r["step"] <= start] if leader else []
    if leader:
        run.trim_log(start)
    emit("prepared", {"run": config.run_id, "steps": config.steps, "resume_step": start,
                      "params": non_embedding, "train": tset.info})

    def evaluate_at(whole, tokens_seen: int, step: int) -> list[dict]:  # whole: the model, all its parameters
        # every rank of a multi-device cell comes here: each scores its share, all get every score
        at = {**columns, "step": step, "examples_seen": step * config.batch_size, "tokens_seen": tokens_seen,
              "flops": whole.training_flops(tokens_seen)}
        evalsets = evalsets_at(config, prepared.evalsets, step)
        new, rankings, queries = evaluate_checkpoint(sharded(whole), evalsets, config.metrics, at,
                                                     config.eval_batch_size, depth=config.candidates_k,
                                                     chunk=config.eval_chunk_docs, dtype=config.embedding_dtype)
        if not leader:  # rank 0 writes
            return new
        if hasattr(whole, "teacher_retriever"):  # a student over its teacher's index: retained quality, latency
            timed = config.family_settings.latency_queries
            if not reference:
                reference.update(teacher_reference(whole, prepared.evalsets, config.metrics, config.eval_batch_size,
                                                   config.candidates_k, timed, config.eval_chunk_docs,
                                                   config.embedding_dtype))
            new += distilled_rows(whole, new, reference, evalsets, config.metrics,
                                  timed if step == config.steps else None)
        rows.extend(new)
        if step == config.steps:
            if config.save_model:
                whole.save(run.model)
            for name, ranking in rankings.items():
                write_trec_run(run.run_file(name), ranking, tag=config.run_id)
            teacher = ([r for name, pq in evaluate_teacher(config, prepared.evalsets).items()
                        for r in per_query_rows("teacher", name, pq)] if scores_training_pairs(config) else [])
            write_parquet(per_query_frame(queries + baseline_per_query(prepared) + teacher), run.per_query)
        write_parquet(frame(rows), run.metrics)
        emit("eval", {"run": config.run_id, "step": step,
                      "values": {r["eval_set"] + ":" + r["metric"]: r["value"] for r in new}})
        return new

    if start < config.steps:
        callback = Checkpoints(config.eval_every, config.steps, evaluate_at, run,
                               on_step=lambda s: emit("step", {"run": config.run_id, "step": s}), replica=replica,
                               every_min=config.checkpoint_every_min)
        def batch_at(step: int, rank: int = 0, world: int = 1) -> dict:  # this process's share of the batch
            groups = tset.batch(step, config.batch_size)[rank::world]
            batch = model.training_batch(groups, tset.collection)
            if teacher is not None:
                batch[teacher.entry] = teacher.groups(groups)
            return batch

        fit(module, batch_at, config.steps, start, callback, resume_from=resume, precision=config.precision,
            logger=make_logger(config.logger, run, config.run_id, start, config.wandb_project) if leader else None,
            devices=config.devices, strategy=config.strategy, grad_accumulation=config.grad_accumulation,
            nodes=config.nodes, timeout_min=config.process_group_timeout_min)
    if leader:
        run.clear_checkpoints()
    final = {r["eval_set"] + ":" + r["metric"]: r["value"] for r in rows if r["step"] == config.steps}
    out = {"state": "done", "params": non_embedding, "total_params": total, "final": final, "pid": os.getpid()}
    return {**out, "teacher": reference} if reference else out
