"""Test collections: loading, splits, data budgets and weak supervision."""

from rerank_scaling.data.loaders import load_beir_folder, load_collection, load_ir_dataset, model_text
from rerank_scaling.data.qrels import read_qrels
from rerank_scaling.data.splits import nested_budget, split_queries
from rerank_scaling.data.types import Collection, Ranking, rank
from rerank_scaling.data.util import default_cache_dir
from rerank_scaling.data.weak import weak_queries

__all__ = [
    "Collection",
    "Ranking",
    "default_cache_dir",
    "load_beir_folder",
    "load_collection",
    "load_ir_dataset",
    "model_text",
    "nested_budget",
    "rank",
    "read_qrels",
    "split_queries",
    "weak_queries",
]
