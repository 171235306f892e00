"""Whole-pipeline allocation: the best first stage x reranker size x depth under a per-query budget.

Candidates: every first stage measured in the study (alone, and) x every reranker size trained plus
forecast ones (``size_factors`` x the largest) x depths (the measured ones and a grid). Quality: the chain
law (:mod:`rerank_scaling.scaling.chain`) with its interval; a first stage alone is its measured value.
Cost per query (``chain-flops``, ``chain-ms`` or ``chain-ms-batched``): a measured chain's measured cost;
otherwise the first stage alone's measured cost plus the rerank part scaled linearly in ``N`` and ``k``
from the measured per-pair cost per parameter (the median over measured chains of
``(cost - first stage alone) / (N k)``). The recall of an unmeasured depth is interpolated in ``log k``
between the first stage's measured recalls (its depths and its recall@100), held at the deepest measured
value beyond it and scaled down proportionally below the shallowest: each candidate says which parts were
measured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.scaling.chain import DEFAULT_METRIC, ChainFit, chain_points, conditions, fit_chain_law
from rerank_scaling.scaling.util import jsonable

COST_OF = {"ms": "chain-ms", "ms-batched": "chain-ms-batched", "flops": "chain-flops"}
DEPTH_GRID = (5, 10, 20, 30, 50, 75, 100)
SIZE_FACTORS = (2.0, 4.0)
ALONE_RECALL_DEPTH = 100  # a first stage alone's fs-recall row is its recall@100 (the contract)


@dataclass(frozen=True)
class Candidate:
    first_stage: str
    reranker: str  # model label, "none" for the first stage alone
    params: float  # the reranker's N (0: none)
    depth: int
    predicted: float
    lower: float
    upper: float
    cost: float
    measured: float | None = None  # the chain's measured quality, when it was run
    quality_from: str = "law"  # "law" / "measured (first stage alone)"
    cost_from: str = "measured"  # "measured" / "scaled from measured per-pair cost"
    forecast_size: bool = False  # a reranker size not trained
    recall: float | None = None
    recall_from: str = "measured"


@dataclass(frozen=True)
class PipelinePlan:
    metric: str
    eval_set: str
    key: dict
    budget: float
    cost_metric: str
    best: Candidate
    runner_ups: tuple[Candidate, ...]
    frontier: tuple[Candidate, ...]
    candidates: int
    fit: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    best_measured: Candidate | None = None  # the measured chain (or first stage alone) best under the budget

    def to_dict(self) -> dict:
        return jsonable({"metric": self.metric, "eval_set": self.eval_set, **self.key, "budget_per_query": self.budget,
                         "cost": self.cost_metric, "best": asdict(self.best),
                         "best_measured": None if self.best_measured is None else asdict(self.best_measured),
                         "runner_ups": [asdict(c) for c in self.runner_ups],
                         "frontier": [asdict(c) for c in self.frontier], "candidates": self.candidates,
                         "law": self.fit, "notes": list(self.notes)})


def recall_at(depths: list[int], recalls: list[float], k: float) -> tuple[float, str]:
    """A first stage's recall at ``k`` from its measured ``(depth, recall)`` points (see module doc)."""
    d = np.asarray(depths, dtype=float)
    r = np.asarray(recalls, dtype=float)
    order = np.argsort(d)
    d, r = d[order], np.maximum.accumulate(r[order])  # recall never falls with depth
    if k in d:
        return float(r[d == k][0]), "measured"
    if k > d[-1]:
        return float(r[-1]), f"held at its recall@{int(d[-1])}"
    if k < d[0]:
        return float(r[0] * k / d[0]), f"scaled down from its recall@{int(d[0])}"
    return float(np.interp(np.log(k), np.log(d), r)), "interpolated in log depth"


def _frontier(cands: list[Candidate]) -> list[Candidate]:
    out, best = [], -math.inf
    for c in sorted(cands, key=lambda c: (c.cost, -c.predicted)):
        if c.predicted > best:
            out.append(c)
            best = c.predicted
    return out


def plan_pipeline(table, *, budget: float, cost: str = "ms", metric: str = DEFAULT_METRIC,
                  eval_set: str | None = None, depths=DEPTH_GRID, size_factors=SIZE_FACTORS, level: float = 0.9,
                  n_boot: int = 200, seed: int = 0, top: int = 5) -> list[PipelinePlan]:
    """The best chain under ``budget`` (per query, in ``cost`` units) per reranker condition; see module doc."""
    if cost not in COST_OF:
        raise UserError(f"cost must be one of {', '.join(COST_OF)}, got {cost!r}")
    if not budget > 0:
        raise UserError(f"the budget must be positive, got {budget:g}")
    cost_metric = COST_OF[cost]
    points = chain_points(table, metric, eval_set)
    if cost_metric not in points.columns or points[cost_metric].is_null().all():
        raise UserError(f"the chain rows have no '{cost_metric}': no cost to budget")
    plans = []
    for i, (key, sub) in enumerate(conditions(points)):
        fit = fit_chain_law(sub, metric, key=key, level=level, n_boot=n_boot, seed=seed + i)
        cands, notes = _candidates(sub, fit, cost_metric, depths, size_factors)
        feasible = [c for c in cands if c.cost <= budget]
        if not feasible:
            cheapest = min(cands, key=lambda c: c.cost)
            raise UserError(f"budget {budget:g} {cost_metric} is below the cheapest chain "
                            f"({_name(cheapest)}: {cheapest.cost:.4g})")
        ranked = sorted(feasible, key=lambda c: (-c.predicted, c.cost))
        measured = [c for c in feasible if c.measured is not None and c.cost_from == "measured"]
        best_measured = max(measured, key=lambda c: (c.measured, -c.cost)) if measured else None
        plans.append(PipelinePlan(metric, key["eval_set"], {k: v for k, v in key.items() if k != "eval_set"},
                                  float(budget), cost_metric, ranked[0], tuple(ranked[1:top]), tuple(_frontier(cands)),
                                  len(cands), fit.to_dict(), tuple(notes + ([fit.note] if fit.note else [])),
                                  best_measured))
    return plans


def _name(c: Candidate) -> str:
    return c.first_stage if c.params == 0 else f"{c.first_stage} -> {c.reranker} @ {c.depth}"


def _candidates(sub: pl.DataFrame, fit: ChainFit, cost_metric: str, depths, size_factors):
    alone = sub.filter(pl.col("depth") == 0)
    chains = sub.filter(pl.col("depth") > 0)
    # the rerank part's cost per reranker parameter and pair, from every measured chain
    joined = chains.join(alone.select("first_stage", pl.col(cost_metric).alias("_fs")), on="first_stage")
    per = ((joined[cost_metric] - joined["_fs"]) / (joined["params"] * joined["depth"])).drop_nulls()
    per = per.filter(per > 0)
    if per.len() == 0:
        raise UserError(f"no measured chain costs more than its first stage alone in '{cost_metric}': the rerank "
                        "part's cost cannot be scaled")
    per_pair = float(per.median())
    sizes = sorted({(float(r["params"]), r["model"]) for r in chains.iter_rows(named=True)})
    largest = sizes[-1][0]
    sizes += [(largest * f, f"{f:g}x {sizes[-1][1]}") for f in size_factors]
    measured_depths = sorted(set(chains["depth"].to_list()))
    all_depths = sorted(set(int(d) for d in depths) | set(measured_depths))
    out: list[Candidate] = []
    # a measured chain (its runs' mean, when the reranker was trained with several seeds)
    means = chains.group_by("first_stage", "params", "depth").agg(pl.col("y").mean(), pl.col(cost_metric).mean())
    index = {(r["first_stage"], float(r["params"]), int(r["depth"])): r for r in means.iter_rows(named=True)}
    for fs in alone.iter_rows(named=True):
        f = fs["first_stage"]
        if fs[cost_metric] is None:
            raise UserError(f"first stage '{f}' alone has no '{cost_metric}' row: its chains' cost is unknown")
        mine = chains.filter(pl.col("first_stage") == f).group_by("depth").agg(pl.col("recall").mean()).sort("depth")
        known_d = mine["depth"].to_list() + ([ALONE_RECALL_DEPTH] if fs["recall"] is not None
                                             and ALONE_RECALL_DEPTH not in mine["depth"].to_list() else [])
        known_r = mine["recall"].to_list() + ([fs["recall"]] if len(known_d) > mine.height else [])
        out.append(Candidate(f, "none", 0.0, 0, fs["y"], fs["y"], fs["y"], float(fs[cost_metric]), fs["y"],
                             "measured (first stage alone)", "measured", False, None, "-"))
        grid = []
        for n, label in sizes:
            for k in all_depths:
                r, r_from = recall_at(known_d, known_r, k)
                grid.append((n, label, k, r, r_from))
        n_arr = np.array([g[0] for g in grid])
        r_arr = np.array([g[3] for g in grid])
        pred, lo, hi = fit.interval(n_arr, r_arr, np.full(n_arr.size, fs["y"]))
        for (n, label, k, r, r_from), p, a, b in zip(grid, pred, lo, hi):
            row = index.get((f, n, k))
            if row is not None and row[cost_metric] is not None:
                cost, cost_from = float(row[cost_metric]), "measured"
            else:
                cost, cost_from = float(fs[cost_metric]) + per_pair * n * k, "scaled from measured per-pair cost"
            out.append(Candidate(f, label, n, k, float(p), float(a), float(b), cost,
                                 None if row is None else float(row["y"]), "law", cost_from, n > largest, r, r_from))
    notes = [f"unmeasured chains: the rerank part costs {per_pair:.3g} {cost_metric} per reranker parameter and pair "
             f"(median over {per.len()} measured chains), scaled linearly in N and depth; the first stage's part is "
             "its measured cost alone",
             f"reranker sizes {', '.join(f'{f:g}x' for f in size_factors)} the largest trained are forecasts"]
    return out, notes
