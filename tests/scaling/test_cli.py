"""The sub-commands through the package CLI (rerank_scaling.cli.main)."""

import json

import pytest

from rerank_scaling.cli import main
from rerank_scaling.values import parse_amount


@pytest.fixture
def csv_path(tmp_path, small_user_table):
    path = tmp_path / "results.csv"
    small_user_table.write_csv(path)
    return path


def test_forecast_json_keys(csv_path, capsys):
    code = main(["forecast", str(csv_path), "--metric", "ndcg@10", "--fit-max-params", "150e6",
                 "--bootstrap", "100", "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    for row in rows:
        assert {"objective", "model", "params", "metric", "eval_set", "predicted", "lower", "upper",
                "actual"} <= set(row)
        assert row["metric"] == "ndcg@10" and row["lower"] <= row["predicted"] <= row["upper"]


def test_forecast_table_output(csv_path, capsys):
    assert main(["forecast", str(csv_path), "--metric", "ce@64", "--fit-max-params", "400M",
                 "--bootstrap", "50", "--law", "auto"]) == 0
    out = capsys.readouterr().out
    assert "ce-1b" in out and "law:auto" in out


def test_forecast_defaults_to_the_calibrated_estimator(csv_path, capsys):
    from rerank_scaling.scaling.calibration import default_estimator, width_rule

    name = default_estimator()
    if name is None:
        pytest.skip("no calibration.json: the default is the auto law")
    assert main(["forecast", str(csv_path), "--metric", "ce@64", "--fit-max-params", "400M", "--bootstrap", "50",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["estimator"] == name and r["calibrated"] == (width_rule(name) is not None) for r in rows)


def test_user_error_exit_code(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("objective,model,metric,value\nx,m,ndcg@10,0.5\n")
    assert main(["forecast", str(path), "--metric", "ndcg@10", "--fit-max-params", "1e8"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: bad.csv: missing required column 'params'"


def test_verdicts_and_allocate_json(tmp_path, study, capsys):
    path = tmp_path / "study.parquet"
    study.write_parquet(path)
    assert main(["verdicts", str(path), "--fit-max-params", "150e6", "--metrics", "ndcg@10",
                 "--bootstrap", "30", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["kind"] for r in rows} == {"size", "exposure"}
    assert all("extrapolates" in r and "r2" in r for r in rows)
    assert main(["allocate", str(path), "--metric", "ndcg@10", "--flops", "2e17", "--objective", "listwise",
                 "--bootstrap", "20", "--json"]) == 0
    (alloc,) = json.loads(capsys.readouterr().out)
    assert alloc["params"] > 0 and alloc["equal_compute"]


def test_parse_amount():
    assert parse_amount("400e6") == 400e6
    assert parse_amount("400M") == 400e6
    assert parse_amount("1.5B") == 1.5e9


def test_skipped_group_is_reported(tmp_path, capsys):
    import polars as pl

    from benchmarks.synthetic import synthetic_table

    a = synthetic_table(objectives=("listwise",), checkpoints=1, metrics=("map",), seed=1)
    b = synthetic_table(objectives=("pointwise",), sizes=(17e6, 1e9), checkpoints=1, metrics=("map",), seed=2)
    path = tmp_path / "mixed.csv"
    pl.concat([a, b]).write_csv(path)
    assert main(["forecast", str(path), "--metric", "map", "--fit-max-params", "150e6", "--bootstrap", "20",
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert {r["objective"] for r in json.loads(captured.out)} == {"listwise"}
    assert "warning: skipped: map, objective=pointwise" in captured.err


def test_a_bootstrap_too_small_for_the_level_is_warned(csv_path, capsys):
    assert main(["fit", str(csv_path), "--metric", "ndcg@10", "--law", "loglinear", "--bootstrap", "19",
                 "--level", "0.9", "--json"]) == 0
    assert ("warning: --bootstrap 19 at --level 0.9: no resample lies beyond either end of the interval, so its "
            "ends are the extreme resamples; use --bootstrap 20 or more") in capsys.readouterr().err
    assert main(["fit", str(csv_path), "--metric", "ndcg@10", "--law", "loglinear", "--bootstrap", "20",
                 "--json"]) == 0
    assert "--bootstrap" not in capsys.readouterr().err


def test_a_fitted_width_of_zero_is_a_calibrated_rule(monkeypatch):
    """kappa 0 (the engine's own intervals reached the target coverage) is a calibrated rule, not a missing
    one: forecasts say 'calibrated' and the CLI prints the default's trust line."""
    from rerank_scaling.scaling import calibration

    rules = {"size": {"mixture": {"level": 0.9, "factor": 0.0, "n": 12, "kind": "kappa"},
                      "averaged": {"level": 0.9, "factor": None, "n": 0}}}
    monkeypatch.setattr(calibration, "calibration", lambda: {"rules": rules})
    rule = calibration.width_rule("mixture", 0.9)
    assert rule is not None and (rule.factor, rule.kind, rule.n) == (0.0, "kappa", 12)
    assert calibration.width_rule("mixture", 0.8) is None  # fitted at another level
    assert calibration.width_rule("averaged", 0.9) is None and calibration.width_rule("curve-fit", 0.9) is None
