"""Compute allocation from the joint law: the best (N, D) for a FLOP budget.

Cost model (N = non-embedding params, D = examples seen, tau = tokens per example):

    training   C_train = 6 * N * D * tau
    inference  C_inf   = 2 * N * tau_pair * K * Q          stage "rerank": K candidate pairs for each of Q queries
               C_inf   = 2 * N * (tau_q * Q + tau_d * M)   stage "retrieval" (a bi-encoder): Q queries encoded
                                                           online, the M corpus documents encoded offline once

(a forward pass costs 2 FLOPs per parameter and token; a retriever's tower of N
parameters encodes each query and each document once, a reranker reads each
pair).  Inference is linear in N, so a budget with inference pushes the best
model smaller (Fang et al., 2024).

For every size N on a log grid (a factor 4 beyond the sizes trained) the budget
fixes ``D = (C - C_inf) / (6 N tau)``; the joint law fitted to every checkpoint of
every run predicts the metric there, and the best point is reported with a
bootstrap interval.  ``tau`` comes from ``--tokens-per-example``, else from the
table (``tokens_seen / examples_seen``).

The grid's own equal-compute points are listed beside it: for each run, the
checkpoint whose cumulative cost is nearest the budget (kept when within
``tolerance``, default +-25%), with its actual value and the law's value.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.scaling.fit import fit_law
from rerank_scaling.scaling.forecast import group_label
from rerank_scaling.scaling.laws import JOINT_LAWS
from rerank_scaling.scaling.table import CONDITION_KEYS, as_table, select_metric
from rerank_scaling.scaling.util import jsonable

GROUP_KEYS = CONDITION_KEYS


@dataclass(frozen=True)
class GridPoint:
    run: str
    model: str
    params: float
    examples_seen: float
    flops: float
    actual: float
    predicted: float


STAGES = ("rerank", "retrieval")


def inference_per_param(stage: str = "rerank", queries: float = 0.0, *, candidates: float = 100.0,
                        tokens_per_pair: float | None = None, query_tokens: float | None = None,
                        doc_tokens: float | None = None, corpus_size: float = 0.0) -> float:
    """Inference FLOPs per model parameter (see module doc): multiply by N for the cost."""
    if stage not in STAGES:
        raise UserError(f"--stage must be one of {', '.join(STAGES)}, got {stage!r}")
    for flag, value in (("--inference-queries", queries), ("--candidates", candidates),
                        ("--corpus-size", corpus_size)):
        if value < 0:
            raise UserError(f"{flag} must be >= 0, got {value:g}")
    if stage == "rerank":
        for flag, value in (("--query-tokens", query_tokens), ("--doc-tokens", doc_tokens)):
            if value is not None:
                raise UserError(f"{flag} = {value:g} is a retrieval cost: it needs --stage retrieval")
        if corpus_size:
            raise UserError(f"--corpus-size = {corpus_size:g} is a retrieval cost: it needs --stage retrieval")
        if tokens_per_pair is None:
            raise UserError("--stage rerank needs the tokens of a scored pair (--tokens-per-pair)")
        return 2.0 * tokens_per_pair * candidates * queries
    if tokens_per_pair is not None:
        raise UserError(f"--tokens-per-pair = {tokens_per_pair:g} is a reranking cost: a retriever encodes queries "
                        "and documents apart (--query-tokens, --doc-tokens)")
    if queries and query_tokens is None:
        raise UserError(f"--stage retrieval with --inference-queries {queries:g} needs --query-tokens "
                        "(tokens of an encoded query)")
    if corpus_size and doc_tokens is None:
        raise UserError(f"--stage retrieval with --corpus-size {corpus_size:g} needs --doc-tokens "
                        "(tokens of an encoded document)")
    for flag, value in (("--query-tokens", query_tokens), ("--doc-tokens", doc_tokens)):
        if value is not None and value <= 0:
            raise UserError(f"{flag} must be positive, got {value:g}")
    return 2.0 * ((query_tokens or 0.0) * queries + (doc_tokens or 0.0) * corpus_size)


@dataclass(frozen=True)
class Allocation:
    metric: str
    objective: str
    eval_set: str
    flops: float
    law: str
    params: float
    examples: float
    tokens: float
    train_flops: float
    inference_flops: float
    predicted: float
    lower: float
    upper: float
    tokens_per_example: float
    at_edge: bool
    note: str
    fit_r2: float
    law_params: dict = field(default_factory=dict)
    supervision: str | None = None
    family: str | None = None  # the model family, where the table has one
    equal_compute: tuple[GridPoint, ...] = ()
    best_grid: GridPoint | None = None
    stage: str = "rerank"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["equal_compute"] = [asdict(p) for p in self.equal_compute]
        return jsonable(out)


def tokens_per_example_of(df: pl.DataFrame, given: float | None) -> float:
    if given is not None:
        if given <= 0:
            raise UserError(f"--tokens-per-example must be positive, got {given:g}")
        return float(given)
    if "tokens_seen" in df.columns and "examples_seen" in df.columns:
        ok = df.filter((pl.col("examples_seen") > 0) & (pl.col("tokens_seen") > 0))
        if ok.height:
            return float((ok["tokens_seen"] / ok["examples_seen"]).median())
    raise UserError("allocation needs --tokens-per-example (the table has no tokens_seen column)")


def allocate(
    table,
    metric: str,
    flops: float,
    *,
    tokens_per_example: float | None = None,
    inference_queries: float = 0.0,
    candidates: float = 100.0,
    tokens_per_pair: float | None = None,
    stage: str = "rerank",
    query_tokens: float | None = None,
    doc_tokens: float | None = None,
    corpus_size: float = 0.0,
    eval_set: str | None = None,
    objective: str | None = None,
    law: str = "joint",
    level: float = 0.9,
    n_boot: int = 200,
    tolerance: float = 0.25,
    seed: int = 0,
) -> list[Allocation]:
    """Best (N, D) for ``flops`` per objective/supervision/eval set (see module doc)."""
    if law not in JOINT_LAWS:
        raise UserError(f"unknown joint law '{law}' (choose from {', '.join(JOINT_LAWS)})")
    if flops <= 0:
        raise UserError(f"--flops must be positive, got {flops:g}")
    df = select_metric(as_table(table), metric, eval_set)
    if objective is not None:
        df = df.filter(pl.col("objective") == objective)
    df = df.filter(pl.col("exposure").is_not_null() & (pl.col("exposure") > 0))
    if df.height == 0:
        raise UserError("allocation needs training exposure (an examples_seen or step column)")
    tau = tokens_per_example_of(df, tokens_per_example)
    tau_pair = tau if tokens_per_pair is None and stage == "rerank" else tokens_per_pair
    inf_per_param = inference_per_param(stage, inference_queries, candidates=candidates, tokens_per_pair=tau_pair,
                                        query_tokens=query_tokens, doc_tokens=doc_tokens, corpus_size=corpus_size)
    keys = [k for k in GROUP_KEYS if k in df.columns]
    out = []
    for gi, (key_values, sub) in enumerate(df.group_by(keys, maintain_order=True)):
        key = dict(zip(keys, key_values))
        label = group_label(metric, key)
        N = sub["params"].to_numpy().astype(float)
        D = sub["exposure"].to_numpy().astype(float)
        y = sub["value"].to_numpy().astype(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_law(law, N, y, D=D, metric=metric, cells=sub["run"].to_numpy(), n_boot=n_boot,
                          level=level, seed=seed + gi, label=label)
        grid_n = np.geomspace(N.min() / 4, N.max() * 4, 600)
        d_grid = (flops - inf_per_param * grid_n) / (6.0 * grid_n * tau)
        ok = d_grid > 0
        if not ok.any():
            raise UserError(f"{label}: budget {flops:g} FLOPs does not cover inference for the smallest size")
        value = np.where(ok, fit.predict(grid_n, np.where(ok, d_grid, 1.0)), np.nan)
        best = int(np.nanargmax(fit.direction * value))
        n_star, d_star = float(grid_n[best]), float(d_grid[best])
        at_edge = best in (0, grid_n.size - 1) or not ok[max(best - 1, 0)]
        if fit.draws is not None and fit.draws.theta.shape[0] and fit.df >= 1:
            pred = float(fit.forecast([n_star], [d_star])[0])
            lo, hi = (float(v[0]) for v in fit.interval([n_star], [d_star]))
        else:
            pred, lo, hi = float(value[best]), float("nan"), float("nan")
        d_seen = D.max()
        notes = []
        if at_edge:
            notes.append("optimum at the edge of the size range searched (4x beyond the grid)")
        if d_star > 4 * d_seen or d_star < D.min() / 4:
            notes.append(f"D* = {d_star:.3g} is far outside the exposures trained ({D.min():.3g}..{d_seen:.3g})")
        points = _equal_compute(sub, fit, flops, tau, inf_per_param, tolerance)
        best_grid = max(points, key=lambda p: fit.direction * p.actual) if points else None
        out.append(Allocation(
            metric=metric, objective=str(key.get("objective")), eval_set=str(key.get("eval_set")),
            flops=float(flops), law=law, params=n_star, examples=d_star, tokens=d_star * tau,
            train_flops=6.0 * n_star * d_star * tau, inference_flops=inf_per_param * n_star,
            predicted=pred, lower=lo, upper=hi, tokens_per_example=tau, at_edge=bool(at_edge),
            note="; ".join(notes), fit_r2=fit.r2, law_params=dict(fit.params),
            supervision=key.get("supervision"), family=key.get("family"), equal_compute=tuple(points), best_grid=best_grid, stage=stage,
        ))
    return out


def _equal_compute(sub, fit, flops, tau, inf_per_param, tolerance) -> list[GridPoint]:
    tokens = sub["tokens_seen"] if "tokens_seen" in sub.columns else None
    if tokens is None or tokens.null_count() == sub.height:
        tokens = sub["exposure"] * tau
    cost = 6.0 * sub["params"] * tokens + inf_per_param * sub["params"]
    rows = sub.with_columns(_cost=cost, _gap=(cost / flops).log().abs())
    nearest = rows.sort("_gap").group_by("run", maintain_order=True).first()
    nearest = nearest.filter(pl.col("_gap") <= math.log1p(tolerance)).sort("params", "exposure")
    if nearest.height == 0:
        return []
    pred = fit.predict(nearest["params"].to_numpy().astype(float), nearest["exposure"].to_numpy().astype(float))
    return [
        GridPoint(run=r["run"], model=r["model"], params=float(r["params"]), examples_seen=float(r["exposure"]),
                  flops=float(r["_cost"]), actual=float(r["value"]), predicted=float(p))
        for r, p in zip(nearest.iter_rows(named=True), pred)
    ]
