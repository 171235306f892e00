"""The bootstrap prediction interval covers new runs at about its nominal rate."""

import numpy as np

from rerank_scaling.scaling import fit_law

from scaling_helpers import saturating

SIZES = np.array([10e6, 17e6, 32e6, 68e6, 150e6])
TARGETS = np.array([400e6, 1e9])
REPEATS, N_BOOT, SD = 150, 100, 0.01
# Binomial sd of coverage over 150 x 2 (correlated) checks is about 0.025; the
# band allows ~3 sd around 0.90 minus the small-sample undercoverage measured in
# README.md (0.85-0.89 with one run per size).
BAND = (0.80, 0.97)


def _coverage(seeds_per_size: int, scheme: str) -> float:
    N = np.repeat(SIZES, seeds_per_size)
    hits = []
    for rep in range(REPEATS):
        rng = np.random.default_rng(10_000 + rep)
        y = saturating(N) + rng.normal(0, SD, N.size)
        fit = fit_law("size", N, y, metric="ndcg@10", n_boot=N_BOOT, seed=rep, bootstrap_scheme=scheme)
        lo, hi = fit.interval(TARGETS, level=0.9)
        new_runs = saturating(TARGETS) + rng.normal(0, SD, TARGETS.size)
        hits.extend((lo <= new_runs) & (new_runs <= hi))
    return float(np.mean(hits))


def test_prediction_interval_coverage_one_run_per_size():
    cov = _coverage(1, "auto")  # auto -> wild cluster bootstrap here
    assert BAND[0] <= cov <= BAND[1], cov


def test_prediction_interval_coverage_three_seeds():
    cov = _coverage(3, "wild")
    assert BAND[0] <= cov <= BAND[1], cov


def test_prediction_interval_coverage_cell_resampling():
    """Five runs per size: auto resamples whole runs within each size ("cells")."""
    N = np.repeat(SIZES, 5)
    fit = fit_law("size", N, saturating(N), metric="ndcg@10", n_boot=10)
    assert fit.bootstrap_scheme == "cells" and fit.draws.spread == np.sqrt(5 / 4)
    cov = _coverage(5, "auto")
    assert BAND[0] <= cov <= BAND[1], cov
