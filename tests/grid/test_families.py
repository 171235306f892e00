"""One experiment file, two families: a sparse and a dense decoder ladder (llama) in one grid at a fixed
compute per cell; the tidy table's family column keeps them apart in collecting, fitting and reporting."""

import polars as pl
import pytest

from rerank_scaling.grid.cli import run_grid
from rerank_scaling.report import build_report
from rerank_scaling.results import collect, conform, frame
from rerank_scaling.scaling.table import group_columns, normalise, run_values

TWO_FAMILIES = """
[data]
train_collection = "cranfield"
data_root = "{shared}"
cache_dir = "{cache}"

[[eval]]
name = "cranfield-test"
collection = "cranfield"
split = "test"
max_queries = 4
in_domain = true

[candidates]
k = 10
rerank_k = 10

[grid]
families = ["sparse", "bi-encoder"]
ladder = "llama"
sizes = ["L1-H32", "L2-H64"]
budgets = [8]
objectives = ["infonce"]
compute = 4e9

[train]
batch_size = 2
n_negatives = 2
max_length = 24
max_query_length = 12
eval_every = 1000
ce_negatives = 3
lr = 1e-3
warmup_steps = 0
bidirectional = true
lambda_q = 0.01
lambda_d = 0.01
temperature = 0.05

[hardware]
workers = 1
threads_per_worker = 1
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory, shared_root):
    root = tmp_path_factory.mktemp("families")
    path = root / "exp.toml"
    path.write_text(TWO_FAMILIES.format(shared=shared_root, cache=root / "cache"))
    out = run_grid(path, root / "study", workers=1)
    table, _ = collect(out)
    return out, table


def test_each_cell_is_of_its_family_and_the_table_says_which(study):
    out, table = study
    models = table.filter(pl.col("model") != "bm25")
    assert set(models["family"]) == {"sparse", "bi-encoder"}
    assert table.filter(pl.col("model") == "bm25")["family"].is_null().all()
    per_run = models.group_by("run").agg(pl.col("family").first(), pl.col("metric").unique())
    for row in per_run.to_dicts():
        assert row["run"].startswith(row["family"] + "__")
        assert ("active-q" in row["metric"]) == (row["family"] == "sparse")  # sparsity: sparse cells only


def test_the_budget_holds_across_sizes_and_families(study):
    _, table = study
    last = (table.filter(pl.col("model") != "bm25").sort("step")
            .group_by("run").agg(pl.col("family").first(), pl.col("params").first(), pl.col("step").last(),
                                 pl.col("flops").last()))
    assert last["flops"].to_numpy() == pytest.approx([4e9] * last.height, rel=0.3)
    for family in ("sparse", "bi-encoder"):
        sub = last.filter(pl.col("family") == family).sort("params")
        assert sub["step"][0] > sub["step"][1]  # the larger model takes fewer steps


def test_the_analyzer_and_report_group_by_family(study):
    out, table = study
    vals = run_values(normalise(table).filter((pl.col("metric") == "ndcg@10") & (pl.col("model") != "bm25")))
    assert "family" in group_columns(vals)
    groups = vals.group_by(group_columns(vals)).agg(pl.col("params").unique().sort())
    assert groups.height == 2  # one group per family, each with both sizes: separate curves
    assert all(len(p) == 2 for p in groups["params"])
    report = build_report(out, out / "REPORT.md", n_boot=20)
    text = report.read_text()
    assert "Model families" in text and "`sparse`" in text and "`bi-encoder`" in text
    assert "retrievers" in text and "Training compute" in text and "fixed at 4e+09 FLOPs per cell" in text


def test_a_table_written_before_the_family_column_is_one_familys():
    old = frame([]).drop("family", "trainable_params")
    row = {c: None for c in old.columns} | {"run": "r", "model": "minilm-2L", "params": 10, "metric": "m",
                                             "value": 1.0}
    bm25 = row | {"run": "bm25", "model": "bm25", "params": 0}
    old = pl.DataFrame([row, bm25], schema=old.schema)
    assert conform(old)["family"].to_list() == ["cross-encoder", None]  # a reranker, as before families
    assert conform(old, family="sparse")["family"].to_list() == ["sparse", None]  # the cell's config says
