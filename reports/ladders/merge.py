"""Merge a grid's finished cells into a committed ladder table (issue 11's ladders grow across sessions).

    python reports/ladders/merge.py reports/ladders/minilm runs/ladders3/minilm

Collects STUDY (``rerank-scaling grid collect``), then writes LADDER/results.parquet and
LADDER/per_query.parquet: every run of STUDY replaces the committed run of the same id, the
committed runs STUDY lacks are kept, the BM25 baseline rows are kept once (a ladder with no table
yet starts from STUDY's). Prints the runs per
seed before and after. A grid started from a copy of the ladder's experiment file with fewer seeds
(``seeds = [1, 2]``) adds those seeds' cells without rerunning the others.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from rerank_scaling.results import collect, conform, read_table, write_parquet


def _runs_per_seed(df: pl.DataFrame) -> dict:
    trained = df.filter(pl.col("model") != "bm25").select("run", "seed").unique()
    return dict(sorted(trained.group_by("seed").len().iter_rows()))


def merge(ladder: Path, study: Path) -> pl.DataFrame:
    new, _ = collect(study)
    new = conform(new)
    table = ladder / "results.parquet"
    # a ladder's first cells: nothing committed yet but the study's own BM25 rows
    old = conform(read_table(table)) if table.exists() else new.filter(pl.col("model") == "bm25")
    fresh = set(new.filter(pl.col("model") != "bm25")["run"].unique().to_list())
    kept = old.filter(~pl.col("run").is_in(list(fresh)) | (pl.col("model") == "bm25"))
    merged = pl.concat([kept, new.filter(pl.col("model") != "bm25")]).sort("run", "eval_set", "step", "metric")
    pq_old, pq_new = ladder / "per_query.parquet", study / "per_query.parquet"
    if pq_new.exists():
        b = read_table(pq_new)
        a = read_table(pq_old) if pq_old.exists() else b.filter(~pl.col("run").is_in(list(fresh)))
        queries = pl.concat([a.filter(~pl.col("run").is_in(list(fresh))), b.filter(pl.col("run").is_in(list(fresh)))])
        write_parquet(queries.sort("run", "eval_set", "metric", "qid"), pq_old)
    print(f"{ladder}: runs per seed {_runs_per_seed(old)} -> {_runs_per_seed(merged)}")
    write_parquet(merged, ladder / "results.parquet")
    return merged


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    merge(Path(sys.argv[1]), Path(sys.argv[2]))
