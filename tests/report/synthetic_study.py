"""A synthetic but complete study folder for the report tests (importable helper).

The study folder is ``results.parquet`` in the exact
schema of :mod:`rerank_scaling.results`, generated from a known law, plus
``experiment.toml`` and ``cells/<run>/{config.json,status.json,data.json}``
(two cells failed with a reason). BM25 is built to lose on the in-domain set
and to win on the out-of-domain set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rerank_scaling.results import frame, write_parquet

# scratch-ladder-like sizes: (size, layers, hidden) -> non-embedding / total params
LADDER = (("L1-H64", 1, 64), ("L2-H128", 2, 128), ("L4-H256", 4, 256), ("L4-H384", 4, 384),
          ("L6-H512", 6, 512), ("L8-H768", 8, 768))
OBJECTIVES = ("listwise", "pointwise")
OBJECTIVE_OFFSET = {"listwise": 0.0, "pointwise": -0.03}
EVALS = (("cranfield-test", "cranfield", "test", True, 45), ("cisi", "beir-folder:/data/beir/cisi", None, False, 30))
# metric: (asymptote, gap at N=1e6, size exponent, gap at D=1e3, exposure exponent), in-domain
TRUTH = {
    "ndcg@10": (0.72, 0.10, -0.3, 0.04, -0.5),
    "map": (0.55, 0.08, -0.3, 0.03, -0.5),
    "mrr@10": (0.85, 0.08, -0.35, 0.03, -0.5),
    "ce@16": (1.00, 0.60, -0.35, 0.20, -0.4),  # lower is better
}
OOD_SHIFT = 0.20  # out-of-domain sets score this much lower (higher for ce)
BM25 = {"cranfield-test": {"ndcg@10": 0.30, "map": 0.25, "mrr@10": 0.45},
        "cisi": {"ndcg@10": 0.90, "map": 0.60, "mrr@10": 0.95}}  # cisi: BM25 wins
BATCH = 8


def params_of(layers: int, hidden: int) -> tuple[int, int]:
    non_embedding = layers * 12 * hidden * hidden + hidden * hidden + hidden + 1
    return non_embedding, non_embedding + (30522 + 512 + 2) * hidden


def true_value(metric: str, objective: str, eval_set: str, n: float, d: float) -> float:
    a, g, c, h, e = TRUTH[metric]
    ood = eval_set != "cranfield-test"
    if metric.startswith("ce"):
        return a + 5 * OBJECTIVE_OFFSET[objective] * -1 + (OOD_SHIFT * 3 if ood else 0) + g * (n / 1e6) ** c \
            + h * (d / 1e3) ** e
    return a + OBJECTIVE_OFFSET[objective] - (OOD_SHIFT if ood else 0) - g * (n / 1e6) ** c - h * (d / 1e3) ** e


def experiment_toml(sizes: list[str], seeds: list[int]) -> str:
    evals = "".join(
        f'\n[[eval]]\nname = "{name}"\ncollection = "{coll}"\n' + (f'split = "{split}"\n' if split else "")
        + f"max_queries = {q}\nin_domain = {'true' if dom else 'false'}\n"
        for name, coll, split, dom, q in EVALS
    )
    return f'''[study]
name = "synthetic-scratch"
description = "Synthetic study with a known law: scratch BERTs on Cranfield, evaluated in and out of domain."

[data]
train_collection = "cranfield"
data_root = "../shared"
{evals}
[candidates]
k = 50
rerank_k = 20

[grid]
ladder = "scratch"
sizes = {json.dumps(sizes)}
budgets = ["all"]
objectives = {json.dumps(list(OBJECTIVES))}
seeds = {json.dumps(seeds)}

[train]
steps = 150
batch_size = {BATCH}
eval_every = 25
ce_negatives = 16

[hardware]
workers = 2
threads_per_worker = 1
'''


def config_of(size: str, objective: str, seed: int, steps: int, eval_every: int) -> dict:
    return {
        "train_collection": "cranfield", "train_split": "train", "supervision": "human", "budget": None,
        "candidates_k": 50, "rerank_k": 20, "candidates_run": None, "ladder": "scratch", "size": size,
        "objective": objective, "n_negatives": 7, "max_length": 128, "steps": steps, "batch_size": BATCH,
        "lr": 2e-4, "seed": seed, "eval_every": eval_every, "ce_negatives": 16, "threads": 1,
        "evals": [{"name": n, "collection": c, "split": s, "max_queries": q, "in_domain": d}
                  for n, c, s, d, q in EVALS],
        "metrics": ["ndcg@10", "map", "mrr@10"],
    }


def make_study(root: Path, n_sizes: int = 5, seeds=(0,), checkpoints: int = 6, noise: float = 0.004,
               failed: bool = True, write_results: bool = True) -> Path:
    """A complete synthetic study folder; the largest ladder rung (beyond n_sizes) failed."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ladder = LADDER[:n_sizes]
    grid_sizes = [s for s, _, _ in LADDER[: n_sizes + (1 if failed else 0)]]
    (root / "experiment.toml").write_text(experiment_toml(grid_sizes, list(seeds)))
    eval_every = 25
    steps = eval_every * checkpoints
    rows, per_run = [], {}
    for size, layers, hidden in ladder:
        n, total = params_of(layers, hidden)
        for objective in OBJECTIVES:
            for seed in seeds:
                run = f"scratch-{size}__{objective}__human__ball__s{seed}"
                offsets = {m: rng.normal(0, noise * (5 if m.startswith("ce") else 1)) for m in TRUTH}
                final = {}
                for step in range(eval_every, steps + 1, eval_every):
                    d = step * BATCH
                    for name, _, _, dom, _ in EVALS:
                        for metric in TRUTH:
                            value = true_value(metric, objective, name, n, d) + offsets[metric]
                            value += rng.normal(0, noise / 2)
                            per_run.setdefault(run, []).append({
                                "run": run, "model": f"scratch-{size}", "ladder": "scratch", "size": size,
                                "params": n, "total_params": total, "objective": objective, "supervision": "human",
                                "budget": 120, "seed": seed, "step": step, "examples_seen": d,
                                "tokens_seen": d * 8 * 100, "flops": 6.0 * n * d * 800, "eval_set": name,
                                "in_domain": dom, "metric": metric, "value": float(value),
                            })
                            if step == steps:
                                final[f"{name}:{metric}"] = float(value)
                cell = root / "cells" / run
                cell.mkdir(parents=True)
                (cell / "config.json").write_text(json.dumps(config_of(size, objective, seed, steps, eval_every)))
                (cell / "status.json").write_text(json.dumps({
                    "state": "done", "seconds": round(30.0 + n / 2e5, 2), "run": run, "params": n,
                    "total_params": total, "final": final, "hardware": {"peak_rss_mb": 900 + n // 10**5}}))
                (cell / "data.json").write_text(json.dumps({
                    "train": {"queries": 120, "instances": 700, "supervision": "human"},
                    "eval": {name: {"queries": q, "queries_without_candidates": 0} for name, _, _, _, q in EVALS}}))
    bm25 = []
    for name, _, _, dom, _ in EVALS:
        for metric, value in BM25[name].items():
            bm25.append({
                "run": "bm25", "model": "bm25", "ladder": "bm25", "size": "", "params": 0, "total_params": 0,
                "objective": "none", "supervision": "none", "budget": 0, "seed": 0, "step": 0,
                "examples_seen": 0, "tokens_seen": 0, "flops": 0.0, "eval_set": name, "in_domain": dom,
                "metric": metric, "value": value,
            })
    if failed:
        size = LADDER[n_sizes][0]
        for objective, reason in (("listwise", "non-finite loss at step 37 (lr too high?)"),
                                  ("pointwise", "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB")):
            run = f"scratch-{size}__{objective}__human__ball__s{seeds[0]}"
            cell = root / "cells" / run
            cell.mkdir(parents=True)
            (cell / "config.json").write_text(json.dumps(config_of(size, objective, seeds[0], steps, eval_every)))
            (cell / "status.json").write_text(json.dumps({"state": "failed", "reason": reason, "seconds": 12.5,
                                                          "run": run}))
    for run, run_rows in per_run.items():  # what a finished cell holds, for `collect`
        write_parquet(frame(run_rows), root / "cells" / run / "metrics.parquet")
        write_parquet(frame(bm25), root / "cells" / run / "baseline.parquet")
        rows += run_rows
    if write_results:
        write_parquet(frame(bm25 + rows), root / "results.parquet")
    return root


def write_cell(root: Path, run: str, config: dict, rows: list[dict], bm25: list[dict], seconds: float = 30.0,
               data: dict | None = None) -> Path:
    """A finished cell as the grid leaves it: config, status, (data,) its metrics and BM25's baseline."""
    cell = root / "cells" / run
    cell.mkdir(parents=True)
    (cell / "config.json").write_text(json.dumps(config))
    (cell / "status.json").write_text(json.dumps({"state": "done", "seconds": seconds, "run": run}))
    if data is not None:
        (cell / "data.json").write_text(json.dumps(data))
    write_parquet(frame(rows), cell / "metrics.parquet")
    write_parquet(frame(bm25), cell / "baseline.parquet")
    return cell


N_BOOT = 60  # small but real bootstrap: keeps the tests fast
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("## Summary", "## 1. The study", "## 2. BM25 against the rerankers", "## 3. Scaling with model size",
            "### Forecasts of the held-out sizes", "## 4. Which metrics extrapolate", "### Size check",
            "### Exposure check", "## 5. Training exposure", "## 6. Caveats", "## Appendix", "### A. Size laws",
            "### C. Compute allocation")


def section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]
