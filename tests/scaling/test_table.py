"""Reading tables: one-line UserErrors naming file and column; derived columns."""

from pathlib import Path

import polars as pl
import pytest

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import load_results, run_values
from rerank_scaling.scaling.table import select_metric

ROWS = {
    "objective": ["listwise"] * 4,
    "model": ["m-17m", "m-17m", "m-32m", "bm25"],
    "params": ["17e6", "17e6", "32e6", "0"],
    "metric": ["ndcg@10"] * 4,
    "value": ["0.51", "0.55", "0.58", "0.30"],
    "step": ["100", "200", "200", "0"],
}


def _csv(tmp_path, **changes):
    rows = {k: list(v) for k, v in ROWS.items()}
    for k, v in changes.items():
        if v is None:
            rows.pop(k)
        else:
            rows[k] = v
    path = tmp_path / "results.csv"
    pl.DataFrame(rows).write_csv(path)
    return path


def test_missing_column_names_file_and_column(tmp_path):
    with pytest.raises(UserError) as err:
        load_results(_csv(tmp_path, params=None))
    assert str(err.value) == "results.csv: missing required column 'params'"


def test_non_numeric_value_names_column_value_and_row(tmp_path):
    with pytest.raises(UserError) as err:
        load_results(_csv(tmp_path, params=["17e6", "17e6", "big", "0"]))
    msg = str(err.value)
    assert msg == "results.csv: column 'params' has non-numeric value 'big' (row 3)"
    assert "\n" not in msg


def test_empty_value_is_an_error(tmp_path):
    with pytest.raises(UserError, match="column 'value' is empty \\(row 2\\)"):
        load_results(_csv(tmp_path, value=["0.5", "", "0.6", "0.3"]))


def test_folder_parquet_and_unsupported(tmp_path):
    df = load_results(_csv(tmp_path))
    df.drop("exposure", "baseline").write_parquet(tmp_path / "results.parquet")
    again = load_results(tmp_path)
    assert again.height == 4 and again["params"].dtype == pl.Float64
    (tmp_path / "empty_study").mkdir()
    with pytest.raises(UserError, match="no results.parquet"):
        load_results(tmp_path / "empty_study")
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(UserError, match="unsupported file type"):
        load_results(tmp_path / "x.txt")


def test_derived_columns_and_baselines(tmp_path):
    df = load_results(_csv(tmp_path))
    assert df["eval_set"].unique().to_list() == ["default"]
    assert df["exposure"].to_list() == [100.0, 200.0, 200.0, 0.0]
    assert df["baseline"].to_list() == [False, False, False, True]
    assert df["run"][0] == "listwise__m-17m__17000000"
    fit_rows = select_metric(df, "ndcg@10")
    assert "bm25" not in fit_rows["model"].to_list()
    with pytest.raises(UserError, match="metric 'map' not in the table"):
        select_metric(df, "map")


def test_run_values_final_and_late(tmp_path):
    df = load_results(_csv(tmp_path))
    final = run_values(select_metric(df, "ndcg@10"))
    assert final.filter(pl.col("model") == "m-17m")["value"].item() == pytest.approx(0.55)
    late = run_values(select_metric(df, "ndcg@10"), evidence="late", late_fraction=0.5)
    assert late.filter(pl.col("model") == "m-17m")["value"].item() == pytest.approx(0.53)


def test_examples_seen_preferred_over_step(tmp_path):
    path = _csv(tmp_path, examples_seen=["3200", "6400", "6400", "0"])
    assert load_results(path)["exposure"].to_list() == [3200.0, 6400.0, 6400.0, 0.0]


def test_size_axis_column_is_optional_and_one_axis_per_table(tmp_path):
    assert "size_axis" not in load_results(_csv(tmp_path)).columns  # other people's tables: no such column
    one = load_results(_csv(tmp_path, size_axis=["nominal", "nominal", "nominal", ""]))
    assert one["size_axis"].to_list()[:3] == ["nominal"] * 3
    with pytest.raises(UserError, match="results.csv: column 'size_axis' mixes 'nominal' and 'non-embedding'"):
        load_results(_csv(tmp_path, size_axis=["nominal", "nominal", "non-embedding", ""]))


@pytest.mark.parametrize(
    "changes,message",
    [(dict(value=["0.51", "nan", "0.58", "0.30"]), "column 'value' has nan (row 2); every value must be a finite number"),
     (dict(params=["17e6", "17e6", "inf", "0"]), "column 'params' has inf (row 3); every value must be a finite"),
     (dict(params=["17e6", "17e6", "-32e6", "0"]),
      "column 'params' has -32000000 (row 3); a model size is never negative (0 or empty: a baseline)"),
     (dict(step=["100", "-200", "200", "0"]), "column 'step' has -200 (row 2); never negative"),
     (dict(metric=["ndcg@10", " ", "ndcg@10", "ndcg@10"]), "column 'metric' is empty (row 2)"),
     (dict(step=["100", "100", "200", "0"]),
      "rows 1 and 2 are one measurement (run 'listwise__m-17m__17000000', eval_set 'default', metric 'ndcg@10', "
      "exposure 100.0): it would count twice"),
     (dict(in_domain=["yes", "maybe", "no", "no"]), "column 'in_domain' has 'maybe' (row 2); expected true or false")],
)
def test_every_row_is_checked_as_data_naming_file_row_and_column(tmp_path, changes, message):
    with pytest.raises(UserError) as err:
        load_results(_csv(tmp_path, **changes))
    assert str(err.value).startswith(f"results.csv: {message}"), str(err.value)


def test_rows_no_law_uses_are_counted_not_dropped_silently(tmp_path, capsys):
    df = load_results(_csv(tmp_path, model=["m-17m", "m-17m", "m-32m", "random"], step=["0", "200", "200", "0"]))
    err = capsys.readouterr().err
    assert "warning: results.csv: 1 rows of 1 model(s) without a size (params empty or 0, e.g. 'random') are " \
           "baselines: shown, never fitted" in err
    assert "warning: results.csv: 1 rows are at exposure 0 (evaluated before training): the exposure laws skip them" \
           in err
    assert df.height == 4  # nothing dropped


LADDERS = Path(__file__).resolve().parents[2] / "reports" / "ladders"


@pytest.mark.parametrize("path", sorted([*LADDERS.glob("published/*.csv"), *LADDERS.glob("*/results.parquet")]),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_published_and_our_ladder_tables_pass_the_checks(path, capsys):
    df = load_results(path)
    assert df.height and (df.filter(~pl.col("baseline"))["params"] > 0).all()
    assert "warning" not in capsys.readouterr().err
