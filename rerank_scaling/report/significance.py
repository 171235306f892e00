"""Is a difference real? Paired tests over the queries of an evaluation set.

Each comparison pairs two systems' values on the same queries (the final
checkpoint; a model's values are averaged over its seeds first) and asks
whether the mean difference could be noise: a two-sided paired randomization
test (Fisher's sign-flip test, the one IR evaluation recommends, Smucker et
al. 2007) with ``N_FLIPS`` seeded flips, then Holm's correction over the
comparisons of one list (every reranker against BM25; every pair of
objectives at one size). Reads ``per_query.parquet`` (written by each cell at
its final checkpoint, collected beside ``results.parquet``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import polars as pl

N_FLIPS = 10_000
ALPHA = 0.05


def randomization_p(a: np.ndarray, b: np.ndarray, seed: int = 0, flips: int = N_FLIPS) -> float:
    """Two-sided p-value of ``mean(a - b) == 0`` by random sign flips of the paired differences."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size == 0 or not np.any(d):
        return 1.0
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(flips, d.size))
    null = np.abs((signs * d).mean(axis=1))
    return float((1 + np.sum(null >= abs(d.mean()) - 1e-12)) / (flips + 1))


def holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error over the list)."""
    order = np.argsort(ps)
    out, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


@dataclass(frozen=True)
class Test:
    system: str  # e.g. "`minilm-6L` (listwise)"
    other: str  # e.g. "BM25"
    delta: float  # mean(system - other) over the queries
    p: float
    p_holm: float
    queries: int

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


def _several_families(finals: pl.DataFrame) -> bool:
    return "family" in finals.columns and finals["family"].drop_nulls().n_unique() > 1


def _systems(per_query: pl.DataFrame, finals: pl.DataFrame, eval_set: str, metric: str) -> dict[tuple, pl.DataFrame]:
    """(model, objective, params, variant..., [family]) -> qid/value frame, averaged over seeds; the family is
    the key's last entry when the study has several (a sparse and a dense model of one size are two systems)."""
    runs = finals.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    keys = [k for k in ("model", "objective", "params", "supervision", "budget") if k in runs.columns]
    keys += ["family"] if _several_families(finals) else []
    rows = per_query.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    out = {}
    for key, group in runs.group_by(keys, maintain_order=True):
        values = rows.filter(pl.col("run").is_in(group["run"].unique().to_list()))
        if values.height:
            out[tuple(key)] = values.group_by("qid").agg(pl.col("value").mean()).sort("qid")
    return out


def _pair(a: pl.DataFrame, b: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    joined = a.join(b, on="qid", suffix="_b")
    return joined["value"].to_numpy(), joined["value_b"].to_numpy()


def _tests(pairs: list[tuple[str, str, pl.DataFrame, pl.DataFrame]]) -> list[Test]:
    raw = []
    for i, (name, other, a, b) in enumerate(pairs):
        x, y = _pair(a, b)
        raw.append((name, other, float((x - y).mean()) if x.size else float("nan"), randomization_p(x, y, seed=i), x.size))
    adjusted = holm([r[3] for r in raw]) if raw else []
    return [Test(n, o, d, p, q, k) for (n, o, d, p, k), q in zip(raw, adjusted)]


def label(key: tuple, family: bool = False) -> str:
    """``model`` (objective), with the family first when the key carries one (``family``: its last entry)."""
    return f"`{key[0]}` ({key[-1]}, {key[1]})" if family else f"`{key[0]}` ({key[1]})"


def versus_bm25(per_query: pl.DataFrame, finals: pl.DataFrame, eval_set: str, metric: str) -> list[Test]:
    """Every reranker against BM25 on ``eval_set``, Holm-corrected together."""
    bm25 = per_query.filter((pl.col("run") == "bm25") & (pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    if not bm25.height:
        return []
    bm25 = bm25.select("qid", "value").sort("qid")
    systems, fam = _systems(per_query, finals, eval_set, metric), _several_families(finals)
    return _tests([(label(k, fam), "BM25", v, bm25) for k, v in systems.items()])


def between_objectives(per_query: pl.DataFrame, finals: pl.DataFrame, eval_set: str, metric: str) -> list[Test]:
    """Every pair of objectives at the same model (and supervision, budget), Holm-corrected together."""
    systems, fam = _systems(per_query, finals, eval_set, metric), _several_families(finals)
    by_model: dict[tuple, list[tuple]] = {}
    for key in systems:
        by_model.setdefault((key[0], *key[2:]), []).append(key)
    pairs = []
    for keys in by_model.values():
        for a, b in combinations(sorted(keys, key=lambda k: k[1]), 2):
            pairs.append((label(a, fam), f"{b[1]}", systems[a], systems[b]))
    return _tests(pairs)


def between_families(per_query: pl.DataFrame, finals: pl.DataFrame, eval_set: str, metric: str) -> list[Test]:
    """Every pair of families at the same model name and objective (and supervision, budget): a sparse and a
    dense retriever of one backbone trained alike; Holm-corrected together. Empty for a one-family study."""
    if not _several_families(finals):
        return []
    systems = _systems(per_query, finals, eval_set, metric)
    # the key without params (a sparse model's N includes its MLM head) and family
    by_cell: dict[tuple, list[tuple]] = {}
    for key in systems:
        by_cell.setdefault((key[0], key[1], *key[3:-1]), []).append(key)
    pairs = []
    for keys in by_cell.values():
        for a, b in combinations(sorted(keys, key=lambda k: str(k[-1])), 2):
            pairs.append((label(a, True), f"{b[-1]}", systems[a], systems[b]))
    return _tests(pairs)
