"""Shared synthetic fixtures for the scaling-analyzer tests (small, seeded)."""

from __future__ import annotations

import warnings

import pytest

from benchmarks.synthetic import synthetic_table

SIZES6 = (17e6, 32e6, 68e6, 150e6, 400e6, 1e9)



@pytest.fixture(scope="session")
def study():
    """3 objectives x 8 sizes x 2 budgets x 2 seeds, 6 checkpoints, 4 metrics."""
    return synthetic_table(budgets=(50_000, 200_000), seeds=(0, 1), checkpoints=6, seed=1)


@pytest.fixture(scope="session")
def small_user_table():
    """The common real case: one final value per size, 6 sizes, no checkpoints."""
    return synthetic_table(
        objectives=("listwise",), sizes=SIZES6, checkpoints=1, metrics=("ndcg@10", "ce@64"), seed=3
    ).drop("step", "examples_seen", "tokens_seen", "budget", "run")


@pytest.fixture(autouse=True)
def _quiet_few_points():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*barely determined.*")
        warnings.filterwarnings("ignore", message=".*evaluation limit.*")
        yield
