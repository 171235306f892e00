"""A late-interaction grid beside bi-encoders, end to end on the real shared data: first-stage rows from
exhaustive MaxSim over each corpus, and the two-family report."""

import polars as pl

from rerank_scaling.candidates import read_trec_run
from rerank_scaling.cli import main
from rerank_scaling.results import collect

from tiny_experiment import TINY


def test_a_grid_of_late_interaction_and_bi_encoders_retrieves_and_reports(write_experiment, tmp_path, cranfield):
    text = TINY.replace('objectives = ["pointwise", "listwise"]',
                        'objectives = ["infonce"]\nfamilies = ["bi-encoder", "late-interaction"]'
                        ).replace("[train]", "[train]\nprojection = 32")
    out = tmp_path / "study"
    assert main(["grid", "run", str(write_experiment(text, steps=2)), "--out", str(out)]) == 0
    table, _ = collect(out)
    trained = table.filter(pl.col("model") != "bm25")
    assert set(trained["family"]) == {"bi-encoder", "late-interaction"} and trained["run"].n_unique() == 4
    late = trained.filter(pl.col("family") == "late-interaction")
    assert set(late["metric"]) == {"ndcg@10", "map", "mrr@10", "recall@100", "p@10", "ce@4"}
    # its lists are its own top 20 of the whole corpus (1,400 Cranfield documents), not BM25's reordered
    run = next(iter(late["run"].unique()))
    lists = read_trec_run(out / "cells" / run / "runs" / "cranfield-test.trec")
    assert lists and all(len(docs) == 20 for docs in lists.values())
    assert {d for docs in lists.values() for d, _ in docs} <= set(cranfield.docs)
    # projection = 32 reached the late-interaction cells (its own key) and the bi-encoders' (theirs)
    sizes = dict(zip(*trained.group_by("run").agg(pl.col("params").first()).sort("run").to_dict().values()))
    assert len(set(sizes.values())) == 4
    assert main(["report", str(out), "--out", str(out / "REPORT.md")]) == 0
    report = (out / "REPORT.md").read_text()
    assert "late-interaction" in report and "each retriever's own top-20 of the whole corpus" in report
