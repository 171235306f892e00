"""The tidy results table every downstream stage reads.

One row per run x checkpoint step x evaluation set x metric. Columns:

=============  =========================================================
run            run id ([family__]model__objective__supervision__budget__seed)
family         the model family, e.g. ``cross-encoder``, ``bi-encoder``, ``sparse`` (null
               for BM25): a sparse and a dense model of one size are different models.
               Tables written before the column held one family, the cells' own
               (``config.json``), else the cross-encoder's (see :func:`conform`)
model          model name, e.g. ``minilm-2L`` (``bm25`` for the baseline)
ladder, size   the ladder and its rung
params         model size N on the run's size axis (0 for BM25)
total_params   all parameters
trainable_params  parameters the optimizer updated: ``total_params`` in full
               fine-tuning, the adapters (and new heads) under LoRA; null in
               tables written before the column
size_axis      what ``params`` counts: ``non-embedding`` parameters (the
               default) or the ladder's ``nominal`` size (ettin ``17m`` =
               17e6); null for BM25. Tables written before the column
               existed counted non-embedding parameters (see :func:`conform`)
objective      the registered name the config gave, e.g. ``listnet`` (``none`` for BM25)
supervision    human / weak
budget         training queries used (data budget)
seed           run seed
step           optimizer steps done at this checkpoint
examples_seen  query groups processed (step x batch size)
tokens_seen    tokens processed in training (pairs x their lengths)
flops          training FLOPs so far, ``6 * N * tokens_seen`` with N the
               non-embedding parameters whatever the size axis (compute spent)
eval_set       evaluation set name
in_domain      whether the evaluation set is the training domain
metric, value  e.g. ``ndcg@10`` / 0.41
stage          ``chain`` on a chain's rows (``[chain]``: a first stage's top
               ``depth`` reranked, :mod:`rerank_scaling.grid.chains`); null on
               every other row. A chain row's run ... flops columns are its
               reranker's (final checkpoint); depth 0 (the first stage alone):
               run / model / objective ``none``, params 0, family null
first_stage    a chain's first stage: ``bm25`` or ``<family>/<model>``
first_stage_params  its N (non-embedding; 0 for BM25)
depth          the first-stage candidates the reranker reorders (0: none)
=============  =========================================================

A chain's per-query values sit in ``per_query.parquet`` under the run
``chain:<chain id>`` (:attr:`rerank_scaling.grid.chains.Chain.id`).
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from rerank_scaling.data.util import atomic_write_bytes
from rerank_scaling.errors import UserError
from rerank_scaling.rundir import StudyFolder

SCHEMA = {
    "run": pl.Utf8,
    "family": pl.Utf8,
    "model": pl.Utf8,
    "ladder": pl.Utf8,
    "size": pl.Utf8,
    "params": pl.Int64,
    "total_params": pl.Int64,
    "trainable_params": pl.Int64,
    "size_axis": pl.Utf8,
    "objective": pl.Utf8,
    "supervision": pl.Utf8,
    "budget": pl.Int64,
    "seed": pl.Int64,
    "step": pl.Int64,
    "examples_seen": pl.Int64,
    "tokens_seen": pl.Int64,
    "flops": pl.Float64,
    "eval_set": pl.Utf8,
    "in_domain": pl.Boolean,
    "metric": pl.Utf8,
    "value": pl.Float64,
    "stage": pl.Utf8,
    "first_stage": pl.Utf8,
    "first_stage_params": pl.Int64,
    "depth": pl.Int64,
}


# the value a column added to the schema later had implicitly in tables written before it
DEFAULTS_OF_OLDER_TABLES = {"size_axis": "non-embedding", "family": "cross-encoder"}
BASELINE_NULLS = ("family",)  # BM25's rows leave it null: the baseline is no model family


def conform(df: pl.DataFrame, family: str | None = None) -> pl.DataFrame:
    """A table written under an older schema, with the columns it lacks (their implicit value,
    else null; a missing ``family`` is ``family`` where the caller knows it -- the cell's config --
    else the cross-encoder's, the only family before the column), in the schema's order and types.
    BM25's rows keep those columns null."""
    implicit = {**DEFAULTS_OF_OLDER_TABLES, **({"family": family} if family else {})}
    bm25 = pl.col("model") == "bm25"
    missing = {c: (pl.when(bm25).then(None).otherwise(pl.lit(implicit[c])) if c in BASELINE_NULLS and c in implicit
                   else pl.lit(implicit.get(c))).cast(t) for c, t in SCHEMA.items() if c not in df.columns}
    return df.with_columns(**missing).select([pl.col(c).cast(t) for c, t in SCHEMA.items()])


PER_QUERY_SCHEMA = {"run": pl.Utf8, "eval_set": pl.Utf8, "metric": pl.Utf8, "qid": pl.Utf8, "value": pl.Float64}


def per_query_frame(rows: list[dict]) -> pl.DataFrame:
    """Per-query rows ``run, eval_set, metric, qid, value`` (a run's final checkpoint)."""
    return pl.DataFrame(rows, schema=PER_QUERY_SCHEMA, orient="row") if rows else pl.DataFrame(schema=PER_QUERY_SCHEMA)


def frame(rows: list[dict]) -> pl.DataFrame:
    """Rows -> a DataFrame with exactly the schema's columns and types."""
    return pl.DataFrame(rows, schema=SCHEMA, orient="row") if rows else pl.DataFrame(schema=SCHEMA)


def write_parquet(df: pl.DataFrame, path: Path) -> None:
    """Write atomically (temp file + rename): readers never see half a table."""
    buf = io.BytesIO()
    df.write_parquet(buf)
    atomic_write_bytes(path, buf.getvalue())


def read_table(path: Path) -> pl.DataFrame:
    """A parquet file of the schema; a damaged one is a :class:`UserError` naming it."""
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UserError(f"{path}: not a readable parquet table ({' '.join(str(exc).split())[:160]})") from None


def read_rows(path: Path) -> list[dict]:
    return conform(read_table(path)).to_dicts() if path.exists() else []


def collect(study: Path | str) -> tuple[pl.DataFrame, Path]:
    """Concatenate every finished cell (+ one BM25 baseline, + every finished chain's rows) into the study's
    results.parquet (and their per-query values into per_query.parquet)."""
    folder = StudyFolder(study)
    frames, baselines = [], []
    folder.check()
    queries = []
    for cell in folder.cells():
        torn = [f"{path} {what}" for path, what in cell.damaged_files().items() if path != cell.log]
        if torn:
            raise UserError(f"{torn[0]} (`rerank-scaling grid run` repairs and reruns the cell)")
        if (cell.read_status() or {}).get("state") != "done":
            continue
        frames.append(conform(read_table(cell.metrics), family=cell.read_config().get("family")))
        baselines.append(conform(read_table(cell.baseline)))
        if cell.per_query.exists():
            queries.append(read_table(cell.per_query))
    if not frames:
        raise UserError(f"{folder.path}: no finished cell to collect")
    chains = sorted(folder.chain_rows().glob("*.parquet")) if folder.chain_rows().is_dir() else []
    frames += [conform(read_table(path)) for path in chains]
    queries += [read_table(p) for path in chains if (p := folder.chain_per_query(path.stem)).exists()]
    baseline = pl.concat(baselines).unique(subset=["eval_set", "metric"], keep="first", maintain_order=True)
    table = pl.concat([baseline, *frames]).select(list(SCHEMA)).sort(
        ["run", "step", "eval_set", "metric", "first_stage", "depth"], nulls_last=False)
    write_parquet(table, folder.results)
    if queries:
        per_query = pl.concat(queries).unique(subset=["run", "eval_set", "metric", "qid"], keep="first",
                                              maintain_order=True).sort(["run", "eval_set", "metric", "qid"])
        write_parquet(per_query, folder.per_query)
    return table, folder.results
