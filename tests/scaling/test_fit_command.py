"""``rerank-scaling fit``: a law's parameters in its own form, recovered from a table made by that law."""

import json

import numpy as np
import polars as pl
import pytest

from rerank_scaling.cli import main


def fang_table(A=2e6, alpha=0.3, delta=1.5, seeds=3, noise=0.002) -> pl.DataFrame:
    """Contrastive entropy y = (A/N)^alpha + delta (Fang et al.'s size law), 6 sizes x 3 seeds."""
    rng = np.random.default_rng(0)
    rows = []
    for n in (1e6, 2e6, 4e6, 8e6, 16e6, 32e6):
        for s in range(seeds):
            rows.append(dict(objective="infonce", model=f"m{n:g}", run=f"m{n:g}-s{s}", params=n, metric="ce@15",
                             value=float((A / n) ** alpha + delta + rng.normal(0, noise))))
    return pl.DataFrame(rows)


def test_fit_prints_fang_parameters_with_intervals(tmp_path, capsys):
    path = tmp_path / "t.csv"
    fang_table().write_csv(path)
    assert main(["fit", str(path), "--metric", "ce@15", "--law", "fang", "--bootstrap", "200", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["law"] == "fang" and set(row["params"]) == {"A", "alpha", "delta"}
    assert row["params"]["alpha"] == pytest.approx(0.3, abs=0.05)
    assert row["params"]["delta"] == pytest.approx(1.5, abs=0.05)
    lo, hi = row["intervals"]["alpha"]
    assert lo < row["params"]["alpha"] < hi and row["r2"] > 0.99 and row["n_points"] == 18


def test_fit_table_output_names_the_formula(tmp_path, capsys):
    path = tmp_path / "t.csv"
    fang_table().write_csv(path)
    assert main(["fit", str(path), "--metric", "ce@15", "--law", "size", "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "a + b*N^c" in out and "R^2" in out
