"""One training run, end to end, into its own folder.

Folder layout (every file written atomically; ``status.json`` last)::

    config.json         the resolved RunConfig
    data.json           training/evaluation query ids, split, data counts
    metrics.parquet     tidy table (see rerank_scaling.results), all checkpoints
    baseline.parquet    BM25 on the same candidate lists, same table schema
    runs/<eval>.trec    final reranked run per evaluation set
    train_log.jsonl     step, loss, lr, tokens seen, seconds
    checkpoints/last.ckpt   resumable Lightning checkpoint (removed when done)
    status.json         {"state": "done" | "failed", "reason", "seconds", ...}

A re-run of a finished folder does nothing; an interrupted one resumes from
its last checkpoint (rows after that checkpoint are dropped and recomputed).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from rerank_scaling.candidates.trec import write_trec_run
from rerank_scaling.data.util import atomic_write_text
from rerank_scaling.evaluation.rerank import rerank_and_evaluate, score_pairs
from rerank_scaling.models.ladder import load_cross_encoder, parameter_counts
from rerank_scaling.objectives import get_objective
from rerank_scaling.pipeline.config import RunConfig
from rerank_scaling.pipeline.prepare import Prepared, prepare
from rerank_scaling.results import frame, read_rows, write_parquet
from rerank_scaling.training import CheckpointEvaluator, NonFiniteLoss, OptimConfig, RerankerModule, StepBatches, fit

Progress = Callable[[str, dict], None]  # (event, details): "prepared", "step", "eval", "done"


def hardware() -> dict:
    """Where a run ran, for the report's hardware section.

    ``peak_rss_mb`` is the process's peak resident memory so far: the cell's
    own peak when it ran in a fresh process, and the peak of every cell a
    grid worker has run so far otherwise (an upper bound).
    """
    import platform
    import resource

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})"
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "host": platform.node(), "cpus": os.cpu_count(), "peak_rss_mb": round(peak_kb / 1024)}


def read_status(folder: Path) -> dict | None:
    path = Path(folder) / "status.json"
    return json.loads(path.read_text()) if path.exists() else None


def _write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _trim_log(path: Path, last_step: int) -> None:
    """Drop log lines past the checkpoint we resume from (they will be redone)."""
    if path.exists():
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= last_step]
        atomic_write_text(path, "".join(line + "\n" for line in keep))


def baseline_rows(config: RunConfig, prepared: Prepared) -> list[dict]:
    rows = []
    in_domain = {es.name: es.in_domain for es in prepared.evalsets}
    for name, values in prepared.baseline.items():
        for metric, value in values.items():
            rows.append({
                "run": "bm25", "model": "bm25", "ladder": "bm25", "size": "", "params": 0, "total_params": 0,
                "objective": "none", "supervision": "none", "budget": 0, "seed": 0, "step": 0,
                "examples_seen": 0, "tokens_seen": 0, "flops": 0.0, "eval_set": name,
                "in_domain": in_domain[name], "metric": metric, "value": float(value),
            })
    return rows


def train_run(config: RunConfig, folder: Path, progress: Progress | None = None) -> dict:
    """Train and evaluate one run into ``folder``; returns its status dict."""
    config.validate()
    folder = Path(folder)
    status = read_status(folder)
    if status and status.get("state") == "done":
        return status
    emit = progress or (lambda event, details: None)
    prepared = prepare(config)  # user errors in the data surface before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "runs").mkdir(exist_ok=True)
    (folder / "checkpoints").mkdir(exist_ok=True)
    _write_json(folder / "config.json", config.to_dict())
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    try:
        result = _train(config, prepared, folder, emit)
    except NonFiniteLoss as exc:
        result = {"state": "failed", "reason": str(exc)}
    except torch.cuda.OutOfMemoryError as exc:  # pragma: no cover - GPU only
        result = {"state": "failed", "reason": f"out of memory: {str(exc).splitlines()[0]}"}
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["run"] = config.run_id
    result["hardware"] = hardware()
    _write_json(folder / "status.json", result)
    emit("done", result)
    return result


def _train(config: RunConfig, prepared: Prepared, folder: Path, emit: Progress) -> dict:
    _write_json(folder / "data.json", prepared.info)
    write_parquet(frame(baseline_rows(config, prepared)), folder / "baseline.parquet")

    encoder = load_cross_encoder(config.model, config.seed, config.max_length, config.max_query_length,
                                 pooling=config.pooling)
    non_embedding, total = parameter_counts(encoder)
    tset = prepared.train
    # tokenise every text this run will see in a few batched calls
    encoder.pairs.warm(
        queries=[*tset.collection.queries.values(), *(q for es in prepared.evalsets for q in es.collection.queries.values())],
        docs=sorted({es.collection.docs[d] for es in prepared.evalsets for _, d in es.pairs()}),
    )
    module = RerankerModule(
        encoder,
        get_objective(config.objective),
        OptimConfig(config.lr, config.weight_decay, config.warmup_steps, config.steps),
        chunk_size=config.chunk_size,
        seed=config.seed,
    )
    base = {
        "run": config.run_id, "model": config.model.name, "ladder": config.ladder, "size": config.size,
        "params": non_embedding, "total_params": total, "objective": config.objective,
        "supervision": config.supervision, "budget": tset.info["queries"], "seed": config.seed,
    }
    metrics_path = folder / "metrics.parquet"
    ckpt = folder / "checkpoints" / "last.ckpt"
    resume = ckpt if ckpt.exists() else None
    # mmap: read the step without materialising the weights (Lightning loads them in fit)
    resume_step = torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)["global_step"] if resume else 0
    rows = [r for r in read_rows(metrics_path) if r["step"] <= resume_step]
    _trim_log(folder / "train_log.jsonl", resume_step)
    emit("prepared", {"run": config.run_id, "steps": config.steps, "resume_step": resume_step,
                      "params": non_embedding, "train": tset.info})

    def evaluate_at(mod: RerankerModule, step: int) -> None:
        score = lambda q, d: mod.encoder.score(q, d, batch_size=config.eval_batch_size)  # noqa: E731
        for es in prepared.evalsets:
            ranking, values = rerank_and_evaluate(score_pairs(score, es), es, config.metrics)
            for metric, value in values.items():
                rows.append({
                    **base, "step": step, "examples_seen": step * config.batch_size,
                    "tokens_seen": mod.tokens_seen, "flops": 6.0 * non_embedding * mod.tokens_seen,
                    "eval_set": es.name, "in_domain": es.in_domain, "metric": metric, "value": float(value),
                })
            if step == config.steps:
                write_trec_run(folder / "runs" / f"{es.name}.trec", ranking, tag=config.run_id)
        write_parquet(frame(rows), metrics_path)
        emit("eval", {"run": config.run_id, "step": step,
                      "values": {r["eval_set"] + ":" + r["metric"]: r["value"] for r in rows if r["step"] == step}})

    if resume_step < config.steps:
        evaluator = CheckpointEvaluator(
            config.eval_every, config.steps, evaluate_at, ckpt, folder / "train_log.jsonl",
            on_step=lambda s: emit("step", {"run": config.run_id, "step": s}),
        )
        batches = StepBatches(tset, encoder, config.batch_size, config.steps)
        fit(module, batches, evaluator, resume_from=resume, precision=config.precision,
            accelerator="auto")
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    final = {r["eval_set"] + ":" + r["metric"]: r["value"] for r in rows if r["step"] == config.steps}
    return {"state": "done", "params": non_embedding, "total_params": total, "final": final,
            "pid": os.getpid()}
