"""Chained grids: a first stage's top k reranked by the grid's rerankers, end to end (real Cranfield, MiniLM 1L).

One module-scoped pair of tiny studies: a retriever study (a MiniLM-1L bi-encoder, 2 steps, saved model) and
a reranker study (a MiniLM-1L cross-encoder, 2 steps, saved) whose ``[chain]`` chains BM25 and that retriever
(``study:PATH``) to depths 3 and 5.
"""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from rerank_scaling.cli import main
from rerank_scaling.evaluation.chain import chain_flops
from rerank_scaling.evaluation.registry import kind

COMMON = """
[data]
train_collection = "cranfield"
data_root = "{shared}"
cache_dir = "{cache}"

[[eval]]
name = "cranfield-test"
collection = "cranfield"
split = "test"
max_queries = 6
in_domain = true

[candidates]
k = 20
rerank_k = 5

[train]
steps = 2
batch_size = 2
n_negatives = 1
max_length = 40
max_query_length = 16
eval_every = 2
ce_negatives = 3
lr = 1e-4
warmup_steps = 1
save_model = true

[hardware]
workers = 1
threads_per_worker = 1
"""

RETRIEVER = COMMON + """
[grid]
family = "bi-encoder"
ladder = "minilm"
sizes = ["1L"]
objectives = ["infonce-hard"]
supervision = ["human"]
budgets = [8]
"""

RERANKER = COMMON + """
[grid]
ladder = "minilm"
sizes = ["1L"]
objectives = ["pairwise"]
supervision = ["human"]
budgets = [8]

[chain]
first_stages = ["bm25", "study:{retriever}"]
first_stage_filter = {{objective = "infonce-hard", supervision = "human"}}
depths = [3, 5]
batch_queries = 4
latency_queries = 3
"""


@pytest.fixture(scope="module")
def studies(tmp_path_factory, shared_root):
    tmp = tmp_path_factory.mktemp("chains")
    cache = tmp / "cache"
    retriever, reranker = tmp / "retriever", tmp / "reranker"
    (tmp / "retriever.toml").write_text(RETRIEVER.format(shared=shared_root, cache=cache))
    (tmp / "reranker.toml").write_text(RERANKER.format(shared=shared_root, cache=cache, retriever=retriever))
    assert main(["grid", "run", str(tmp / "retriever.toml"), "--out", str(retriever)]) == 0
    assert main(["grid", "run", str(tmp / "reranker.toml"), "--out", str(reranker)]) == 0
    return tmp, retriever, reranker


def _values(table: pl.DataFrame, **where) -> dict[str, float]:
    rows = table.filter(*[pl.col(k) == v for k, v in where.items()])
    return dict(zip(rows["metric"], rows["value"]))


def _recall_at(lists: dict, qrels: dict, k: int) -> float:
    """Mean over judged queries of |relevant in top k| / |relevant| (grade >= 1), computed by hand."""
    out = []
    for q, judged in qrels.items():
        relevant = {d for d, g in judged.items() if g >= 1}
        if relevant:
            out.append(len(relevant & {d for d, _ in lists.get(q, [])[:k]}) / len(relevant))
    return sum(out) / len(out)


def test_chain_rows_reach_results_with_their_columns_and_costs(studies):
    _, _, reranker = studies
    table = pl.read_parquet(reranker / "results.parquet")
    chains = table.filter(pl.col("stage") == "chain")
    assert table.filter(pl.col("stage").is_null()).height > 0  # the cells' own rows stay as they were
    assert sorted(chains["first_stage"].unique()) == ["bi-encoder/minilm-1L", "bm25"]
    assert sorted(chains["depth"].unique()) == [0, 3, 5]
    for fs in ("bm25", "bi-encoder/minilm-1L"):
        for depth in (0, 3, 5):
            values = _values(chains, first_stage=fs, depth=depth)
            assert {"ndcg@10", "fs-recall", "chain-flops", "chain-ms", "chain-ms-batched"} <= set(values), (fs, depth)
            assert all(v > 0 for k, v in values.items() if k.startswith("chain-")), values
    alone = chains.filter(pl.col("depth") == 0)
    assert set(alone["model"]) == {"none"} and set(alone["params"]) == {0}
    assert alone["family"].null_count() == alone.height
    reranked = chains.filter(pl.col("depth") > 0)
    assert set(reranked["family"]) == {"cross-encoder"} and set(reranked["model"]) == {"minilm-1L"}
    assert reranked["step"].unique().to_list() == [2]  # the reranker's final checkpoint
    dense = chains.filter(pl.col("first_stage") == "bi-encoder/minilm-1L")["first_stage_params"].unique().to_list()
    assert len(dense) == 1 and dense[0] > 0
    assert chains.filter(pl.col("first_stage") == "bm25")["first_stage_params"].unique().to_list() == [0]
    # deeper reranking costs more FLOPs; BM25 alone costs only its postings
    for fs in ("bm25", "bi-encoder/minilm-1L"):
        flops = [_values(chains, first_stage=fs, depth=d)["chain-flops"] for d in (0, 3, 5)]
        assert flops[0] < flops[1] < flops[2]
    assert kind("chain-ms") == kind("chain-flops") == kind("chain-ms-batched") == "cost"
    queries = pl.read_parquet(reranker / "per_query.parquet")
    assert queries.filter(pl.col("run").str.starts_with("chain:") & (pl.col("metric") == "ndcg@10")).height == 6 * 6
    meta = (reranker / "chains" / "meta.json").read_text()
    assert '"device"' in meta and '"threads"' in meta


def test_fs_recall_is_the_first_stage_recall_and_depth_0_is_the_first_stage(studies, shared_root):
    import json

    from rerank_scaling.data import load_collection

    tmp, retriever, reranker = studies
    table = pl.read_parquet(reranker / "results.parquet")
    chains = table.filter(pl.col("stage") == "chain")
    cran = load_collection("cranfield", data_root=shared_root, cache_dir=tmp / "cache")
    for fs, key in (("bm25", "bm25"), ("bi-encoder/minilm-1L", None)):
        folder = reranker / "chains" / "first-stages"
        path = folder / "bm25" if key else next(p for p in folder.iterdir() if p.name != "bm25")
        record = json.loads((path / "cranfield-test.json").read_text())
        qrels = {q: cran.qrels[q] for q in record["queries"]}
        for depth in (3, 5):
            assert _values(chains, first_stage=fs, depth=depth)["fs-recall"] == pytest.approx(
                _recall_at(record["ranking"], qrels, depth))
        assert _values(chains, first_stage=fs, depth=0)["fs-recall"] == pytest.approx(
            _recall_at(record["ranking"], qrels, 100))
    # depth 0 = the first stage's own metrics: BM25's baseline rows, the retriever run's final rows
    bm25 = _values(table.filter(pl.col("stage").is_null()), run="bm25", eval_set="cranfield-test")
    alone = _values(chains, first_stage="bm25", depth=0)
    for metric in ("ndcg@10", "mrr@10", "p@10"):
        assert alone[metric] == pytest.approx(bm25[metric]), metric
    own = pl.read_parquet(retriever / "results.parquet")
    dense = _values(own.filter((pl.col("model") == "minilm-1L") & (pl.col("step") == 2)), eval_set="cranfield-test")
    alone = _values(chains, first_stage="bi-encoder/minilm-1L", depth=0)
    for metric in ("ndcg@10", "mrr@10", "p@10"):
        assert alone[metric] == pytest.approx(dense[metric], abs=1e-6), metric
    # a reranked chain keeps the first stage's tail: a set-based metric past the depth does not move
    for fs in ("bm25", "bi-encoder/minilm-1L"):
        for depth in (3, 5):
            assert _values(chains, first_stage=fs, depth=depth)["recall@100"] == pytest.approx(
                _values(chains, first_stage=fs, depth=0)["recall@100"])


def test_resuming_skips_finished_chains_and_redoes_a_missing_one(studies, capsys):
    tmp, _, reranker = studies
    rows = reranker / "chains" / "rows"
    files = {p.name: p.stat().st_mtime_ns for p in rows.iterdir()}
    assert len(files) == 2 * (1 + 2)  # two first stages, each alone and at two depths
    gone = next(name for name in files if "__k5" in name and name.startswith("bm25"))
    (rows / gone).unlink()
    assert main(["grid", "run", str(tmp / "reranker.toml"), "--out", str(reranker)]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in rows.iterdir()}
    assert after.keys() == files.keys()
    assert [n for n in files if after[n] != files[n]] == [gone]
    assert "1 evaluated, 5 done before" in capsys.readouterr().err


def test_chain_flops_by_hand():
    # a bi-encoder of N = 1e6 encodes an 8-token query, searches 1,000 documents of 384 dimensions exhaustively,
    # and a reranker of N = 2e6 reads 3 pairs of 40, 50 and 60 tokens
    assert chain_flops(1e6, 8, 1000 * 384, 2e6, [40, 50, 60]) == 2 * 1e6 * 8 + 2 * 384_000 + 2 * 2e6 * 150
    assert chain_flops(0.0, 5, 1234, 0.0, ()) == 2 * 1234  # BM25 alone: its postings


@pytest.mark.parametrize("line,expected", [
    ('depths = [0]', "chain.each value of depths must be a positive integer, got 0"),
    ('first_stages = ["bm26"]', 'chain.each value of first_stages must be "bm25", "grid" or "study:PATH"'),
    ('first_stage_filter = {model = "x"}', "chain.first_stage_filter: unknown key 'model'"),
    ('colour = 3', "unknown key 'colour' in [chain]"),
    ('depths = [5, 5]', "chain.depths names 5 twice"),
])
def test_a_bad_chain_key_is_a_one_line_error(tmp_path, shared_root, capsys, line, expected):
    text = RERANKER.format(shared=shared_root, cache=tmp_path / "cache", retriever=tmp_path / "none")
    text = text.replace("depths = [3, 5]", "") + line + "\n" if line.startswith("colour") else \
        text.replace(text[text.index(line.split(" =")[0] + " ="):].splitlines()[0], line)
    (tmp_path / "exp.toml").write_text(text)
    assert main(["grid", "run", str(tmp_path / "exp.toml"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_a_missing_study_is_a_note_in_the_plan_and_an_error_before_any_cell(tmp_path, shared_root, capsys):
    text = RERANKER.format(shared=shared_root, cache=tmp_path / "cache", retriever=tmp_path / "none")
    (tmp_path / "exp.toml").write_text(text)
    assert main(["grid", "run", str(tmp_path / "exp.toml"), "--dry-run", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "chains: 1 first stages x 1 rerankers x depths 3, 5" in out and "not a study folder" in out
    assert main(["grid", "run", str(tmp_path / "exp.toml"), "--out", str(tmp_path / "s")]) == 2
    assert "not a study folder" in capsys.readouterr().err
    assert not (tmp_path / "s" / "cells").exists()


def test_a_chain_without_a_saved_reranker_is_refused(tmp_path, shared_root, capsys):
    text = RERANKER.format(shared=shared_root, cache=tmp_path / "cache", retriever=tmp_path / "none")
    (tmp_path / "exp.toml").write_text(text.replace("save_model = true", "save_model = false"))
    assert main(["grid", "run", str(tmp_path / "exp.toml"), "--dry-run"]) == 2
    assert "[chain] has no reranker" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
