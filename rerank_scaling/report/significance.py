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


SYSTEM_COLUMNS = ("model", "objective", "params", "supervision", "budget")


def _several_families(finals: pl.DataFrame) -> bool:
    return "family" in finals.columns and finals["family"].drop_nulls().n_unique() > 1


def system_columns(finals: pl.DataFrame) -> list[str]:
    """The columns that name a system (its key in :func:`versus_bm25_by_system`), as present in ``finals``;
    ``family`` last when the study has several (a sparse and a dense model of one size are two systems)."""
    return [k for k in SYSTEM_COLUMNS if k in finals.columns] + (["family"] if _several_families(finals) else [])


def _systems(per_query: pl.DataFrame, finals: pl.DataFrame, eval_set: str, metric: str) -> dict[tuple, pl.DataFrame]:
    """(model, objective, params, variant..., [family]) -> qid/value frame, averaged over seeds; the family is
    the key's last entry when the study has several (a sparse and a dense model of one size are two systems)."""
    runs = finals.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    keys = system_columns(finals)
    rows = per_query.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    out = {}
    for key, group in runs.group_by(keys, maintain_order=True):
        values = rows.filter(pl.col("run").is_in(group["run"].unique().to_list()))
        if values.height:
            out[tuple(key)] = values.group_by("qid").agg(pl.col("value").mean()).sort("qid")
    return out


def _varying(finals: pl.DataFrame, eval_set: str) -> list[tuple[int, str]]:
    """(position in a system key, column) of the variant columns (supervision, budget) that differ between runs."""
    runs = finals.filter(pl.col("eval_set") == eval_set)
    return [(i, k) for i, k in enumerate(system_columns(runs)) if k in ("supervision", "budget")
            and runs[k].n_unique() > 1]


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


def label(key: tuple, variant: list[tuple[int, str]] = (), family: bool = False) -> str:
    """"`model` (objective)"; with ``variant`` ((position, column) of the key's varying columns) their values
    after a semicolon: "`model` (objective; human, budget 30)"; with ``family`` (the key's last entry) the
    family first: "`model` (sparse, objective)"."""
    extra = ", ".join(str(key[i]) if column == "supervision" else f"{column} {key[i]}" for i, column in variant)
    head = f"{key[-1]}, {key[1]}" if family else f"{key[1]}"
    return f"`{key[0]}` ({head}{'; ' + extra if extra else ''})"


def versus_bm25_by_system(per_query: pl.DataFrame, finals: pl.DataFrame, eval_set: str,
                          metric: str) -> dict[tuple, Test]:
    """Every system against BM25 on ``eval_set`` on ``metric``, Holm-corrected together, keyed by the
    system's key (the values of :func:`system_columns`; seeds averaged per query)."""
    bm25 = per_query.filter((pl.col("run") == "bm25") & (pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    if not bm25.height:
        return {}
    bm25 = bm25.select("qid", "value").sort("qid")
    systems = _systems(per_query, finals, eval_set, metric)
    variant, fam = _varying(finals, eval_set), _several_families(finals)
    tests = _tests([(label(k, variant, fam), "BM25", v, bm25) for k, v in systems.items()])
    return dict(zip(systems, tests))


TEACHER = "teacher"  # the per-query rows of a distillation teacher (pipeline.teacher.evaluate_teacher)


def teacher_versus_bm25(per_query: pl.DataFrame, eval_set: str, metric: str) -> tuple[float, float, Test] | None:
    """(teacher mean, BM25 mean, the paired test of teacher - BM25) on ``eval_set``, one test (no correction:
    the question is asked once); None where either has no per-query values."""
    def of(run: str) -> pl.DataFrame:
        return (per_query.filter((pl.col("run") == run) & (pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
                .select("qid", "value").sort("qid"))
    teacher, bm25 = of(TEACHER), of("bm25")
    if not teacher.height or not bm25.height:
        return None
    test = _tests([("teacher", "BM25", teacher, bm25)])[0]
    x, y = _pair(teacher, bm25)
    return float(x.mean()), float(y.mean()), test


def versus_bm25(per_query: pl.DataFrame, finals: pl.DataFrame, eval_set: str, metric: str) -> list[Test]:
    """Every reranker against BM25 on ``eval_set``, Holm-corrected together."""
    return list(versus_bm25_by_system(per_query, finals, eval_set, metric).values())


def between_objectives(per_query: pl.DataFrame, finals: pl.DataFrame, eval_set: str, metric: str) -> list[Test]:
    """Every pair of objectives at the same model (and supervision, budget), Holm-corrected together."""
    systems = _systems(per_query, finals, eval_set, metric)
    variant, fam = _varying(finals, eval_set), _several_families(finals)
    by_model: dict[tuple, list[tuple]] = {}
    for key in systems:
        by_model.setdefault((key[0], *key[2:]), []).append(key)
    pairs = []
    for keys in by_model.values():
        for a, b in combinations(sorted(keys, key=lambda k: k[1]), 2):
            pairs.append((label(a, variant, fam), f"{b[1]}", systems[a], systems[b]))
    return _tests(pairs)


def between_families(per_query: pl.DataFrame, finals: pl.DataFrame, eval_set: str, metric: str) -> list[Test]:
    """Every pair of families at the same model name and objective (and supervision, budget): a sparse and a
    dense retriever of one backbone trained alike; Holm-corrected together. Empty for a one-family study."""
    if not _several_families(finals):
        return []
    systems = _systems(per_query, finals, eval_set, metric)
    variant = _varying(finals, eval_set)
    # the key without params (a sparse model's N includes its MLM head) and family
    by_cell: dict[tuple, list[tuple]] = {}
    for key in systems:
        by_cell.setdefault((key[0], key[1], *key[3:-1]), []).append(key)
    pairs = []
    for keys in by_cell.values():
        for a, b in combinations(sorted(keys, key=lambda k: str(k[-1])), 2):
            pairs.append((label(a, variant, True), f"{b[-1]}", systems[a], systems[b]))
    return _tests(pairs)


def between_sizes(per_query: pl.DataFrame, finals: pl.DataFrame, eval_set: str, metric: str) -> list[Test]:
    """The largest model against the smallest of each objective (and supervision, budget, family): does size
    help on these queries? Holm-corrected together; empty where a configuration has one size."""
    systems = _systems(per_query, finals, eval_set, metric)
    variant, fam = _varying(finals, eval_set), _several_families(finals)
    by_config: dict[tuple, list[tuple]] = {}
    for key in systems:  # the key without model and params: (objective, variant..., [family])
        by_config.setdefault(key[1:2] + key[3:], []).append(key)
    pairs = []
    for keys in by_config.values():
        if len(keys) >= 2:
            small, large = min(keys, key=lambda k: float(k[2])), max(keys, key=lambda k: float(k[2]))
            pairs.append((label(large, variant, fam), f"`{small[0]}`", systems[large], systems[small]))
    return _tests(pairs)


def standard_error(values: pl.DataFrame) -> float | None:
    """The standard error of a system's mean over queries (``qid``/``value``, seeds already averaged)."""
    n = values.height
    if n < 2:
        return None
    return float(values["value"].std() / np.sqrt(n))


def system_values(per_query: pl.DataFrame, finals: pl.DataFrame, eval_set: str,
                  metric: str) -> dict[tuple, pl.DataFrame]:
    """Per system (the key of :func:`system_columns`), its per-query values on ``eval_set`` (seeds averaged)."""
    return _systems(per_query, finals, eval_set, metric)


def bm25_values(per_query: pl.DataFrame, eval_set: str, metric: str) -> pl.DataFrame:
    """BM25's per-query values on ``eval_set`` (``qid``/``value``; empty when not recorded)."""
    return (per_query.filter((pl.col("run") == "bm25") & (pl.col("eval_set") == eval_set)
                             & (pl.col("metric") == metric)).select("qid", "value").sort("qid"))
