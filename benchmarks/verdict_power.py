"""How often the size verdict says "extrapolates", on synthetic ladders whose truth is known.

    .venv/bin/python benchmarks/verdict_power.py [--reps 20] [--markdown]

Each table is one curve (benchmarks/synthetic.py ``CURVES``) for three objectives (shifted by 0.01),
``sizes`` sizes of the reference ladder (17M, 32M, 68M, 150M, 400M, 1B, 2.5B, 6B), ``seeds`` runs per
size with run noise ``sd`` on a 0-1 metric, and 5 checkpoints per run in the last 40% of training
(evaluation noise ``sd/2``, no trend). The verdict fits every size but the largest and forecasts it,
with the default estimator and its calibrated intervals (rerank_scaling/scaling/calibration.json),
exactly as ``rerank-scaling verdicts`` does.

* Power: the share of groups called "extrapolates" on a true law (``a + b*N^c``, c -0.1 / -0.25 /
  -0.5, and log-linear; 0.60 at the smallest size to 0.72 at the largest). Goal: >= 80% with 5+ sizes
  and 3 seeds.
* False "extrapolates": on flat, decreasing, plateau-at-largest (the largest scores as the second
  largest, where the law still gains ~0.01-0.02) and broken-at-largest (0.02 below the second largest)
  curves. Goal: <= 5%.

The minimum meaningful effect is the verdict's (0.01 of a [0, 1] metric): a change smaller than that is
not worth forecasting, and a deviation smaller than that is not a failure to extrapolate.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import defaultdict

import numpy as np

from scipy import stats

from benchmarks.synthetic import CURVES, LADDER, SCALING, curve, curve_table
from rerank_scaling.scaling.verdicts import verdicts

SIZES = (5, 6, 8)
SEEDS = (1, 3)
NOISE = (0.005, 0.01, 0.02)


def run(reps: int, seed: int = 0) -> dict:
    """``{(curve, sizes, seeds, sd): [status per group]}``."""
    rng = np.random.default_rng(seed)
    out: dict = defaultdict(list)
    for name in CURVES:
        for k in SIZES:
            sizes = LADDER[:k]
            for seeds in SEEDS:
                for sd in NOISE:
                    for _ in range(reps):
                        table = curve_table(name, sizes, seeds, sd, rng)
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            vs = verdicts(table, sizes[-2] * 1.001, metrics=["ndcg@10"])
                        out[(name, k, seeds, sd)].extend(v.status for v in vs)
    return out


def share(statuses, status="extrapolates") -> float:
    return float(np.mean([s == status for s in statuses])) if statuses else float("nan")


def oracle_power(name: str, k: int, seeds: int, sd: float) -> float:
    """The power of the best possible test of "the law continues" against "the largest size plateaus at
    the second largest's value", knowing the law and the noise (Neyman-Pearson, 5% false positives): the
    held-out mean of ``seeds`` runs (run noise ``sd``, final-checkpoint noise ``sd/2``) beats the
    plateau value by its one-sided 95% margin. A ceiling for any verdict that keeps plateaus out."""
    mu = curve(name, LADDER[:k])
    sigma = np.hypot(sd, sd / 2) / np.sqrt(seeds)
    return float(stats.norm.cdf((mu[-1] - mu[-2]) / sigma - stats.norm.ppf(0.95)))


def tables(out: dict) -> str:
    lines = ["| curve | sizes | seeds | " + " | ".join(f"sd {sd:g}" for sd in NOISE) + " |",
             "|---|---|---|" + "---|" * len(NOISE)]
    for name in CURVES:
        for k in SIZES:
            for seeds in SEEDS:
                cells = [f"{share(out[(name, k, seeds, sd)]):.0%}" for sd in NOISE]
                lines.append(f"| {name} | {k} | {seeds} | " + " | ".join(cells) + " |")
    goal = [s for (name, k, seeds, _), v in out.items() if name in SCALING and k >= 5 and seeds == 3 for s in v]
    neg = [s for (name, *_), v in out.items() if name not in SCALING for s in v]
    ceiling = np.mean([oracle_power(name, k, seeds, sd) for (name, k, seeds, sd) in out
                       if name in SCALING and k >= 5 and seeds == 3])
    lines += ["", f"**True laws, 5+ sizes, 3 seeds: {share(goal):.0%} 'extrapolates'** (goal >= 80%; "
                  f"{len(goal)} groups); the oracle test of law vs plateau (law and noise known, 5% false "
                  f"positives) on the same cells: {ceiling:.0%}",
              f"**Other curves: {share(neg):.1%} 'extrapolates'** (goal <= 5%; {len(neg)} groups)"]
    for seeds in SEEDS:
        law = [s for (name, k, sd_, sd), v in out.items() if name in SCALING and sd_ == seeds for s in v]
        bad = [s for (name, k, sd_, sd), v in out.items() if name not in SCALING and sd_ == seeds for s in v]
        lines.append(f"- {seeds} seed(s): true laws {share(law):.0%}, others {share(bad):.1%}")
    for sd in NOISE:
        law = [s for (name, k, se, d), v in out.items() if name in SCALING and se == 3 and d == sd for s in v]
        orc = np.mean([oracle_power(name, k, 3, sd) for name in SCALING for k in SIZES])
        lines.append(f"- 3 seeds, sd {sd:g}: true laws {share(law):.0%} (oracle {orc:.0%})")
    for name in CURVES:
        v = [s for (n, *_), ss in out.items() if n == name for s in ss]
        counts = {st: share(v, st) for st in ("extrapolates", "does not extrapolate", "not informative", "not testable")}
        lines.append(f"- {name}: " + ", ".join(f"{st} {p:.0%}" for st, p in counts.items()))
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=20, help="tables per cell (3 groups each; default 20)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    out = run(args.reps, args.seed)
    print(tables(out))
    print(f"\n{sum(len(v) for v in out.values())} verdicts in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
