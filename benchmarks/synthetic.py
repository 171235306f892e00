"""Synthetic study tables with known truth, for tests, benchmarks and the bias study (not part of the package).

Truth per (objective, metric) is the joint additive law
``y = a - s*(g*(N/1e8)^c + h*(D/d0)^e)`` (``s`` = metric direction, see
:mod:`rerank_scaling.scaling.laws`).  Each run gets one random offset
(``run_sd``, seed-to-seed variation, shared by all its checkpoints) and each
checkpoint its own noise (``ckpt_sd``, evaluation noise).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from rerank_scaling.scaling.metrics import direction

SIZES = (4e6, 8e6, 17e6, 32e6, 68e6, 150e6, 400e6, 1e9)
OBJECTIVES = ("pointwise", "pairwise", "listwise")
OBJECTIVE_OFFSET = {"pointwise": -0.03, "pairwise": -0.015, "listwise": 0.0}


@dataclass(frozen=True)
class MetricTruth:
    """Known law of one metric; ``a`` is the asymptote, ``g``/``h`` the gaps at N=1e8 / D=d0."""

    metric: str
    a: float
    g: float
    c: float
    h: float
    e: float
    d0: float = 1e5
    run_sd: float = 0.004
    ckpt_sd: float = 0.003

    def mean(self, N, D=None) -> np.ndarray:
        """Law value; ``D=None`` means fully trained (the D term vanishes)."""
        s = direction(self.metric)
        size = self.g * (np.asarray(N, dtype=float) / 1e8) ** self.c
        data = 0.0 if D is None else self.h * (np.asarray(D, dtype=float) / self.d0) ** self.e
        return self.a - s * (size + data)


TRUTHS = {
    "ndcg@10": MetricTruth("ndcg@10", a=0.76, g=0.08, c=-0.3, h=0.04, e=-0.5),
    "map": MetricTruth("map", a=0.52, g=0.07, c=-0.3, h=0.035, e=-0.5),
    "mrr@10": MetricTruth("mrr@10", a=0.92, g=0.06, c=-0.35, h=0.03, e=-0.5, run_sd=0.015, ckpt_sd=0.012),
    "ce@64": MetricTruth("ce@64", a=0.9, g=0.5, c=-0.35, h=0.25, e=-0.4, run_sd=0.02, ckpt_sd=0.015),
}


def truth(metric: str, objective: str = "listwise", truths: dict | None = None) -> MetricTruth:
    """The truth of ``metric`` for ``objective`` (objectives shift the asymptote)."""
    base = (truths or {}).get(metric) or TRUTHS[metric]
    shift = OBJECTIVE_OFFSET.get(objective, 0.0) * (1.0 if direction(metric) > 0 else -5.0)
    return replace(base, a=base.a + shift)


def model_name(params: float) -> str:
    return f"ce-{params / 1e9:g}b" if params >= 1e9 else f"ce-{params / 1e6:g}m"


def synthetic_table(
    *,
    objectives=OBJECTIVES,
    sizes=SIZES,
    budgets=(100_000,),
    seeds=(0,),
    checkpoints: int = 8,
    metrics=("ndcg@10", "map", "mrr@10", "ce@64"),
    epochs: float = 2.0,
    tokens_per_example: int = 384,
    noise_scale: float = 1.0,
    eval_set: str = "default",
    with_bm25: bool = True,
    truths: dict[str, MetricTruth] | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """One row per run x checkpoint x metric, in the schema of :mod:`rerank_scaling.results`.

    Checkpoints are log-spaced in examples seen up to ``budget * epochs``.
    ``truths`` replaces the default law of a metric (objective offsets still apply).
    """
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in (
        "run", "model", "params", "objective", "budget", "seed", "step", "examples_seen",
        "tokens_seen", "eval_set", "metric", "value",
    )}
    fractions = np.geomspace(1.0 / checkpoints, 1.0, checkpoints) if checkpoints > 1 else np.array([1.0])
    for obj in objectives:
        for n in sizes:
            for budget in budgets:
                for sd in seeds:
                    run = f"{model_name(n)}__{obj}__human__{budget}__{sd}"
                    total = budget * epochs
                    examples = np.round(fractions * total)
                    for metric in metrics:
                        t = truth(metric, obj, truths)
                        offset = rng.normal(0.0, t.run_sd * noise_scale)
                        values = t.mean(n, examples) + offset
                        values = values + rng.normal(0.0, t.ckpt_sd * noise_scale, size=examples.size)
                        for k, (ex, v) in enumerate(zip(examples, values)):
                            cols["run"].append(run)
                            cols["model"].append(model_name(n))
                            cols["params"].append(int(n))
                            cols["objective"].append(obj)
                            cols["budget"].append(int(budget))
                            cols["seed"].append(int(sd))
                            cols["step"].append(int(ex // 32))
                            cols["examples_seen"].append(int(ex))
                            cols["tokens_seen"].append(int(ex * tokens_per_example))
                            cols["eval_set"].append(eval_set)
                            cols["metric"].append(metric)
                            cols["value"].append(float(v))
    df = pl.DataFrame(cols)
    if with_bm25:
        bm25 = pl.DataFrame({
            "run": "bm25", "model": "bm25", "params": 0, "objective": "none", "budget": 0, "seed": 0,
            "step": 0, "examples_seen": 0, "tokens_seen": 0, "eval_set": eval_set,
            "metric": list(metrics),
            "value": [0.3 if direction(m) > 0 else 3.0 for m in metrics],
        }).cast(df.schema)
        df = pl.concat([df, bm25])
    return df


# --- ladders of one curve, for the verdict-power and forecast-coverage benchmarks ---------------------

LADDER = (17e6, 32e6, 68e6, 150e6, 400e6, 1e9, 2.5e9, 6e9)  # the reference study's sizes, then two more
LOW, HIGH = 0.60, 0.72  # a [0, 1] metric: smallest to largest size of a true law (the bias study's span)
CURVES = ("law c=-0.1", "law c=-0.25", "law c=-0.5", "log-linear", "flat", "decreasing", "plateau at largest",
          "broken at largest")
SCALING = CURVES[:4]  # the curves a verdict should call "extrapolates"


def curve(name: str, sizes) -> np.ndarray:
    """The true mean of ``name`` at ``sizes`` (ascending): a law rises from ``LOW`` at the smallest to
    ``HIGH`` at the largest size; ``flat`` stays at their middle; ``decreasing`` falls by half the span;
    ``plateau at largest`` follows ``law c=-0.1`` but its largest size scores as the second largest;
    ``broken at largest`` falls 0.02 below the second largest there."""
    N = np.asarray(sizes, float)
    if name.startswith("law"):
        c = float(name.split("=")[1])
        u = (N / 1e8) ** c
        return LOW + (HIGH - LOW) * (u[0] - u) / (u[0] - u[-1])
    if name == "log-linear":
        t = np.log(N)
        return LOW + (HIGH - LOW) * (t - t[0]) / (t[-1] - t[0])
    if name == "flat":
        return np.full(N.size, (LOW + HIGH) / 2)
    if name == "decreasing":
        t = np.log(N)
        return HIGH - (HIGH - LOW) / 2 * (t - t[0]) / (t[-1] - t[0])
    base = curve("law c=-0.1", N)
    if name == "plateau at largest":
        base[-1] = base[-2]
        return base
    if name == "broken at largest":
        base[-1] = base[-2] - 0.02
        return base
    raise ValueError(f"unknown curve {name!r}")


def curve_table(name: str, sizes, seeds: int, sd: float, rng: np.random.Generator, *,
                objectives=("pointwise", "pairwise", "listwise"), checkpoints: int = 5, ckpt_sd: float | None = None,
                metric: str = "ndcg@10") -> pl.DataFrame:
    """One table of ``objectives`` groups (each the curve shifted by -0.01 x its index) x ``sizes`` x
    ``seeds`` runs: each run a random offset (``sd``) and ``checkpoints`` checkpoints at the last 40% of
    training (steps 60..100) with their own evaluation noise (``ckpt_sd``, default ``sd / 2``), no trend."""
    ckpt_sd = sd / 2 if ckpt_sd is None else ckpt_sd
    steps = np.linspace(60, 100, checkpoints) if checkpoints > 1 else np.array([100.0])
    mean = curve(name, sizes)
    rows = []
    for oi, obj in enumerate(objectives):
        for n, mu in zip(sizes, mean):
            for s in range(seeds):
                run = mu - 0.01 * oi + rng.normal(0, sd)
                for st in steps:
                    rows.append(dict(objective=obj, model=model_name(n), params=float(n), seed=s, step=float(st),
                                     metric=metric, value=float(np.clip(run + rng.normal(0, ckpt_sd), 0, 1))))
    return pl.DataFrame(rows)
