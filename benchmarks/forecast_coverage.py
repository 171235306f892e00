"""Coverage and width of the default forecast on well-specified synthetic laws, against the oracle.

    .venv/bin/python benchmarks/forecast_coverage.py [--reps 20]

Tables as in benchmarks/verdict_power.py (true laws only: ``a + b*N^c`` with c -0.1 / -0.25 / -0.5 and
log-linear, 0.60 at the smallest to 0.72 at the largest size; 3 objectives; 5, 6 or 8 sizes; 1 or 3
seeds per size; run noise sd 0.005 / 0.01 / 0.02 plus checkpoint noise sd/2). Every size but the largest
is fitted; the largest has ONE run, and the forecast is of that new run: the default estimator's
calibrated 90% interval (what ``rerank-scaling forecast`` prints) either covers it or not. The oracle
knows the law and the noise: its interval is the true mean +- 1.645 x the new run's noise sd. Goal:
coverage 85-95% at a median width <= 1.5x the oracle's.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import defaultdict

import numpy as np
import polars as pl

from benchmarks.synthetic import LADDER, SCALING, curve, curve_table
from rerank_scaling.scaling.calibration import FALLBACK, default_estimator, width_rule
from rerank_scaling.scaling.estimate import estimator_forecasts

SIZES = (5, 6, 8)
SEEDS = (1, 3)
NOISE = (0.005, 0.01, 0.02)
Z90 = 1.6448536269514722


def run(reps: int, seed: int = 0, estimator: str | None = None) -> dict:
    """``{(curve, sizes, seeds, sd): [(covered, width / oracle width), ...]}``."""
    name = estimator or default_estimator() or FALLBACK
    rule = width_rule(name)
    rng = np.random.default_rng(seed)
    out: dict = defaultdict(list)
    for law in SCALING:
        for k in SIZES:
            sizes = LADDER[:k]
            truth = curve(law, sizes)[-1]
            for seeds in SEEDS:
                for sd in NOISE:
                    oracle = 2 * Z90 * np.hypot(sd, sd / 2)  # a new run: run offset + final-checkpoint noise
                    for _ in range(reps):
                        table = curve_table(law, sizes, seeds, sd, rng)
                        table = table.filter((pl.col("params") < sizes[-1]) | (pl.col("seed") == 0))
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            rows = estimator_forecasts(table, "ndcg@10", sizes[-2] * 1.001, name, width_rule=rule)
                        for r, shift in zip(rows, (0.0, -0.01, -0.02)):
                            assert r["n_actual_runs"] == 1
                            out[(law, k, seeds, sd)].append((bool(r["covered"]), (r["upper"] - r["lower"]) / oracle,
                                                             r["predicted"] - (truth + shift)))
    return out


def summary(out: dict) -> str:
    def stats(items):
        cov = np.mean([c for c, _, _ in items])
        return cov, float(np.median([w for _, w, _ in items])), float(np.mean([e for _, _, e in items]))

    lines = ["| seeds | sizes | sd | coverage | median width / oracle | mean error |", "|---|---|---|---|---|---|"]
    for seeds in SEEDS:
        for k in SIZES:
            for sd in NOISE:
                items = [x for (law, kk, s, d), v in out.items() if kk == k and s == seeds and d == sd for x in v]
                cov, ratio, err = stats(items)
                lines.append(f"| {seeds} | {k} | {sd:g} | {cov:.0%} | {ratio:.2f} | {err:+.4f} |")
    lines.append("")
    for seeds in SEEDS:
        items = [x for (law, k, s, d), v in out.items() if s == seeds for x in v]
        cov, ratio, err = stats(items)
        lines.append(f"- **{seeds} seed(s) per size: coverage {cov:.1%}, median width {ratio:.2f}x the oracle's** "
                     f"({len(items)} forecasts)")
    for law in SCALING:
        items = [x for (lw, *_), v in out.items() if lw == law for x in v]
        cov, ratio, err = stats(items)
        lines.append(f"- {law}: coverage {cov:.1%}, median width {ratio:.2f}x, mean error {err:+.4f}")
    items = [x for v in out.values() for x in v]
    cov, ratio, err = stats(items)
    lines.append(f"- all: coverage {cov:.1%}, median width {ratio:.2f}x the oracle's")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=20, help="tables per cell (3 forecasts each; default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--estimator", default=None, help="default: the calibrated default")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    out = run(args.reps, args.seed, args.estimator)
    name = args.estimator or default_estimator() or FALLBACK
    print(f"estimator {name}, calibrated width {width_rule(name)}\n")
    print(summary(out))
    print(f"\n{sum(len(v) for v in out.values())} forecasts in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
