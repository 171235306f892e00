"""Experiment files: a study described in TOML, expanded into grid cells.

Sections (all validated before any training; errors name the key and value)::

    [study]       name, description
    [data]        train_collection, train_split, data_root, cache_dir, split_seed
    [[eval]]      name, collection, split, max_queries, in_domain (one table per set)
    [candidates]  k, rerank_k, run (TREC file instead of BM25 for evaluation)
    [grid]        ladder, sizes, budgets, objectives, supervision, seeds
    [train]       steps, batch_size, lr, weight_decay, warmup_steps, n_negatives,
                  max_length, max_query_length, eval_every, ce_negatives,
                  eval_batch_size, chunk_size, pooling, precision
    [hardware]    workers, threads_per_worker, slurm_partition, slurm_gpus,
                  slurm_cpus, slurm_timeout_min (each cell trains on one device)

Relative paths (data_root, cache_dir, eval collections that are folders,
candidate run files) are resolved against the experiment file's folder.
A budget of ``"all"`` means every training query.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank_scaling.errors import UserError
from rerank_scaling.models.ladder import LADDERS, ModelSpec
from rerank_scaling.objectives import OBJECTIVES
from rerank_scaling.pipeline.config import SUPERVISION, EvalSpec, RunConfig

SECTIONS: dict[str, set[str]] = {
    "study": {"name", "description"},
    "data": {"train_collection", "train_split", "data_root", "cache_dir", "split_seed", "split_fractions"},
    "candidates": {"k", "rerank_k", "run"},
    "grid": {"ladder", "sizes", "budgets", "objectives", "supervision", "seeds"},
    "train": {"steps", "batch_size", "lr", "weight_decay", "warmup_steps", "n_negatives", "max_length",
              "max_query_length", "eval_every", "ce_negatives", "eval_batch_size", "chunk_size", "pooling",
              "precision", "metrics"},
    "hardware": {"workers", "threads_per_worker", "slurm_partition", "slurm_gpus", "slurm_timeout_min",
                 "slurm_cpus"},
    "eval": {"name", "collection", "split", "max_queries", "in_domain"},
}


@dataclass(frozen=True)
class Hardware:
    workers: int = 1
    threads_per_worker: int | None = None
    slurm_partition: str | None = None
    slurm_gpus: int = 1
    slurm_cpus: int = 8
    slurm_timeout_min: int = 240


@dataclass
class Experiment:
    name: str
    path: Path
    description: str
    cells: list[RunConfig]
    hardware: Hardware
    raw: dict[str, Any] = field(default_factory=dict)


def _fail(path: Path, message: str) -> UserError:
    return UserError(f"{path}: {message}")


def _as_list(path: Path, key: str, value: Any) -> list:
    if isinstance(value, list):
        if not value:
            raise _fail(path, f"{key} is empty")
        return value
    return [value]


def _resolve(base: Path, value: str | None) -> str | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return str((base / p).resolve()) if not p.is_absolute() else str(p)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.startswith("beir-folder:")


def load_experiment(path: Path | str) -> Experiment:
    """Parse and validate an experiment file into its grid cells (no data loaded yet)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"experiment file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"invalid TOML: {exc}") from None
    base = path.resolve().parent
    for section, value in raw.items():
        if section not in SECTIONS:
            raise _fail(path, f"unknown section [{section}] (sections: {', '.join(SECTIONS)})")
        tables = value if section == "eval" else [value]
        if section == "eval" and not isinstance(value, list):
            raise _fail(path, "evaluation sets are given as [[eval]] tables")
        for table in tables:
            if not isinstance(table, dict):
                raise _fail(path, f"[{section}] must be a table")
            unknown = sorted(set(table) - SECTIONS[section])
            if unknown:
                raise _fail(path, f"unknown key '{unknown[0]}' in [{section}]")
    study = raw.get("study", {})
    data = raw.get("data", {})
    cand = raw.get("candidates", {})
    grid = raw.get("grid", {})
    train = raw.get("train", {})
    hardware = Hardware(**raw.get("hardware", {}))
    if not isinstance(hardware.workers, int) or hardware.workers < 1:
        raise _fail(path, f"hardware.workers must be a positive integer, got {hardware.workers!r}")

    evals = []
    for table in raw.get("eval", []):
        for key in ("name", "collection"):
            if key not in table:
                raise _fail(path, f"an [[eval]] table lacks '{key}'")
        table = dict(table)
        if _looks_like_path(table["collection"]):
            prefix = "beir-folder:" if table["collection"].startswith("beir-folder:") else ""
            table["collection"] = prefix + _resolve(base, table["collection"].removeprefix(prefix))
        evals.append(EvalSpec(**table))
    if not evals:
        raise _fail(path, "no [[eval]] evaluation set")

    ladder = grid.get("ladder", "minilm")
    if ladder not in LADDERS and ladder != "hf":
        raise _fail(path, f"grid.ladder: unknown ladder '{ladder}' (choose from {', '.join([*LADDERS, 'hf'])})")
    sizes = _as_list(path, "grid.sizes", grid.get("sizes", list(LADDERS.get(ladder, ()))))
    for size in sizes:
        try:
            ModelSpec(ladder, str(size)).validate()
        except UserError as exc:
            raise _fail(path, f"grid.sizes: {exc}") from None
    objectives = _as_list(path, "grid.objectives", grid.get("objectives", ["listwise"]))
    for obj in objectives:
        if obj not in OBJECTIVES:
            raise _fail(path, f"grid.objectives: unknown objective '{obj}' (choose from {', '.join(OBJECTIVES)})")
    supervision = _as_list(path, "grid.supervision", grid.get("supervision", ["human"]))
    for sup in supervision:
        if sup not in SUPERVISION:
            raise _fail(path, f"grid.supervision: unknown supervision '{sup}' (choose from {', '.join(SUPERVISION)})")
    budgets = []
    for b in _as_list(path, "grid.budgets", grid.get("budgets", ["all"])):
        if b == "all":
            budgets.append(None)
        elif isinstance(b, int) and not isinstance(b, bool) and b > 0:
            budgets.append(b)
        else:
            raise _fail(path, f"grid.budgets: a budget must be a positive integer or \"all\", got {b!r}")
    seeds = _as_list(path, "grid.seeds", grid.get("seeds", [0]))
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool):
            raise _fail(path, f"grid.seeds: a seed must be an integer, got {s!r}")

    common: dict[str, Any] = {
        **{k: v for k, v in data.items() if k not in ("data_root", "cache_dir")},
        "data_root": _resolve(base, data.get("data_root")),
        "cache_dir": _resolve(base, data.get("cache_dir")),
        "candidates_k": cand.get("k", RunConfig.candidates_k),
        "rerank_k": cand.get("rerank_k", RunConfig.rerank_k),
        "candidates_run": _resolve(base, cand.get("run")),
        "threads": hardware.threads_per_worker,
        "evals": evals,
        **train,
    }
    cells = []
    for size, budget, objective, sup, seed in itertools.product(sizes, budgets, objectives, supervision, seeds):
        cfg = {**common, "ladder": ladder, "size": str(size), "budget": budget, "objective": objective,
               "supervision": sup, "seed": seed}
        try:
            cells.append(RunConfig.from_dict(cfg, where=str(path)))
        except TypeError as exc:
            raise _fail(path, f"bad value: {exc}") from None
        except UserError as exc:
            message = str(exc)
            raise (exc if message.startswith(str(path)) else _fail(path, message)) from None
    return Experiment(study.get("name", path.stem), path, study.get("description", ""), cells, hardware, raw)


def check_data(experiment: Experiment, cells: list[RunConfig] | None = None) -> dict[str, int]:
    """Load every collection and count training queries; fail on any bad budget or set.

    Also warms the on-disk caches (collections, BM25 candidates) so that grid
    cells running in parallel find them ready.
    """
    from rerank_scaling.pipeline.prepare import evaluation_set, training_set

    available: dict[str, int] = {}
    seen_train, seen_eval = set(), set()
    for cell in experiment.cells if cells is None else cells:
        key = (cell.train_collection, cell.train_split, cell.supervision, cell.seed, cell.n_negatives,
               cell.candidates_k, cell.budget)
        if key not in seen_train:
            seen_train.add(key)
            try:
                tset, _ = training_set(cell)
            except UserError as exc:
                raise _fail(experiment.path, str(exc)) from None
            available[cell.run_id] = len(tset.collection.queries)
        for spec in cell.evals:
            ekey = (spec, cell.candidates_k, cell.rerank_k, cell.ce_negatives, cell.candidates_run)
            if ekey not in seen_eval:
                seen_eval.add(ekey)
                try:
                    evaluation_set(cell, spec)
                except UserError as exc:
                    raise _fail(experiment.path, f"eval '{spec.name}': {exc}") from None
    return available
