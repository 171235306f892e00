"""The metric registry: every metric the toolkit writes is declared beside the code that computes it."""

from pathlib import Path

import polars as pl
import pytest

from rerank_scaling.evaluation import registry
from rerank_scaling.evaluation.contrastive import parse_variant
from rerank_scaling.evaluation.distilled import latency_metric
from rerank_scaling.evaluation.metrics import DEFAULT_METRICS, ranx_metric_name
from rerank_scaling.evaluation.registry import MetricInfo, declare, kind, metric_info, parse

ROOT = Path(__file__).resolve().parents[2]


def test_every_metric_of_every_committed_table_is_declared():
    """Our own grids' tables and the published ones the ladder analysis reads."""
    tables = [pl.read_parquet(t, columns=["metric"]) for t in sorted(ROOT.glob("reports/**/results.parquet"))]
    tables += [pl.read_csv(t, columns=["metric"]) for t in sorted(ROOT.glob("reports/ladders/published/*.csv"))]
    assert len(tables) >= 6
    names = {m for t in tables for m in t["metric"].unique().to_list()}
    assert {"ndcg@10", "ce-corpus@16", "acc", "loss"} <= names
    assert [m for m in sorted(names) if metric_info(m) is None] == []


def test_every_metric_the_evaluation_writes_is_declared():
    from rerank_scaling.evaluation.contrastive import ce_name
    from rerank_scaling.evaluation.distilled import RETAINED
    from rerank_scaling.evaluation.sparsity import SPARSITY_METRICS

    written = [*DEFAULT_METRICS, ce_name(7), "ce-corpus@256", *SPARSITY_METRICS, RETAINED + "ndcg@10",
               latency_metric("cpu"), latency_metric("cuda")]
    assert [m for m in written if metric_info(m) is None] == []
    assert [kind(m) for m in SPARSITY_METRICS] == ["cost"] * 3


def test_each_name_is_read_by_its_declaration():
    assert parse("ndcg@10") == registry.Parsed(metric_info("ndcg"), 10)
    assert parse("ce-corpus@256").info.name == "ce-corpus" and parse("ce-corpus@256").k == 256
    assert parse("query-ms-cuda").rest == "cuda" and parse("query-ms-cuda").info.kind == "cost"
    assert latency_metric("cuda:1") == "query-ms-cuda" and metric_info(latency_metric("cpu")).direction == -1
    assert parse_variant("ce@31") == ("candidates", 31) and parse_variant("ce-corpus@16") == ("corpus", 16)
    for bad in ("ce@007", "CE@31", "ce-corpus", "ndcg@10"):
        with pytest.raises(ValueError):
            parse_variant(bad)
    assert all(metric_info(m) is not None for m in DEFAULT_METRICS)
    assert [ranx_metric_name(m) for m in ("p@10", "hit_rate@3", "r-precision")] == [
        "precision@10", "hit_rate@3", "r-precision"]


def test_declarations_live_beside_the_code_that_computes_them():
    homes = {m: i.name for m in registry.DECLARING for i in __import__(m, fromlist=["METRICS"]).METRICS}
    assert homes and set(registry.DECLARING) == {m for m in homes}
    assert {i.name for i in registry.declared()} >= {"ndcg", "ce", "active-q", "retained-", "query-ms-", "acc"}
    assert all(i.kind in ("quality", "cost") for i in registry.declared())  # invariant: by context (kind())


def test_another_toolkits_metric_can_be_declared(monkeypatch):
    monkeypatch.setattr(registry, "_declared", [])
    registry._table.cache_clear()
    assert kind("bleu") == "unknown"
    declare(MetricInfo("bleu", "quality", 1, (0.0, 100.0)))
    assert kind("bleu") == "quality" and metric_info("BLEU").bounds == (0.0, 100.0)
    with pytest.raises(ValueError, match="declared twice"):
        declare(MetricInfo("ndcg", "quality", -1, (0.0, 1.0), "cutoff"))
    monkeypatch.setattr(registry, "_declared", [])
    registry._table.cache_clear()
    assert kind("bleu") == "unknown"
