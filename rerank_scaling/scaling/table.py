"""Read and normalise the tidy results table; derive per-run values.

Input: one row per run x checkpoint x eval set x metric (see
:mod:`rerank_scaling.results`).  Required columns: ``objective``, ``model``,
``params``, ``metric``, ``value``.  Optional: ``examples_seen``/``step``
(exposure D; ``examples_seen`` preferred), ``eval_set`` (default ``"default"``),
``seed``, ``run``, ``budget``, ``supervision``, ``in_domain``, ``tokens_seen``,
``total_params``, ``flops``, ``family`` (the model family: a sparse and a dense
model of one size are separate curves; absent: one family), ``stage`` /
``first_stage`` / ``first_stage_params`` / ``depth`` (a chained evaluation's
rows, ``stage == "chain"``: a first stage whose top ``depth`` a reranker
reorders; read by :mod:`rerank_scaling.scaling.chain` only -- every other
analysis drops them, :func:`normalise`), ``size_axis`` (what ``params`` counts; absent:
whatever the table's author counted -- our older tables, non-embedding
parameters). A table whose models' ``size_axis`` values differ is refused:
their ``params`` are not on one axis.

:func:`normalise` adds three columns every analysis uses:

* ``exposure`` -- D, from ``examples_seen`` else ``step`` (null if neither);
* ``run`` -- kept if given, else built from objective/model/params/supervision/budget/seed;
* ``baseline`` -- ``model == "bm25"`` or null/zero ``params``: never fitted.

Every row is checked as data before anything is fitted (:func:`normalise`): a
non-numeric or non-finite number, a negative size, exposure or count, an empty
metric, an unreadable ``in_domain``, and two rows of the same run, eval set,
metric and checkpoint (one would count twice) are each an error naming the
file, row and column. Nothing is dropped silently: rows of a model without a
size (treated as baselines) and checkpoints at exposure 0 (which the exposure
laws cannot use) are counted in a one-line warning.

Row numbers in error messages count data rows from 1 (the header is not a row).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rerank_scaling.errors import UserError, warn

REQUIRED = ("objective", "model", "params", "metric", "value")
NUMERIC = ("params", "value", "examples_seen", "step", "seed", "budget", "tokens_seen", "total_params", "flops",
           "first_stage_params", "depth")
TEXT = ("objective", "model", "metric", "eval_set", "run", "supervision", "size_axis", "family", "stage",
        "first_stage")
CHAIN = "chain"  # the ``stage`` of a chained evaluation's rows (first stage -> reranker at a depth)
NULL_TOKENS = ("", "na", "n/a", "null", "none")
TRUE_TOKENS, FALSE_TOKENS = ("true", "1", "yes", "t", "y"), ("false", "0", "no", "f", "n")
# what identifies one measurement: two rows equal on these would count one checkpoint twice
ROW_KEY = ("ladder", "family", "objective", "supervision", "eval_set", "budget", "seed", "run", "model", "params", "metric",
           "exposure", "first_stage", "depth")
# What sets one curve apart from another, stated once: a condition (model family,
# objective, supervision, eval set) and, within it, the data budget. Verdicts and
# allocation compare laws per condition; fits are per condition x budget.
CONDITION_KEYS = ("family", "objective", "supervision", "eval_set")
GROUP_COLUMNS = (*CONDITION_KEYS, "budget")
# what D is for the data and joint laws: examples seen (every checkpoint) or the data budget (one point per run)
DATA_AXES = ("exposure", "budget")


def load_results(path: str | Path, chains: bool = False) -> pl.DataFrame:
    """Read a study folder (``DIR/results.parquet``) or a .parquet/.csv file, validated; chain rows
    (``stage == "chain"``) are dropped unless ``chains``."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.parquet"
        if not path.exists():
            raise UserError(f"{path.parent}: no results.parquet in this study folder")
    if not path.exists():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            df = pl.read_parquet(path)
        elif suffix == ".csv":
            df = pl.read_csv(path, infer_schema=False)
        else:
            raise UserError(f"{path.name}: unsupported file type '{suffix}' (use .parquet or .csv)")
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path.name}: cannot read table ({first})") from None
    return normalise(df, source=path.name, chains=chains)


def as_table(table: pl.DataFrame | str | Path, chains: bool = False) -> pl.DataFrame:
    """A path is loaded; a DataFrame is validated unless it already was. Chain rows are dropped unless
    ``chains`` (a validated table that holds them is filtered too: no analysis but the chain law sees them)."""
    if isinstance(table, pl.DataFrame):
        if {"exposure", "baseline"} <= set(table.columns):
            return table if chains else without_chains(table)
        return normalise(table, chains=chains)
    return load_results(table, chains=chains)


def is_chain(df: pl.DataFrame) -> pl.Expr:
    """Rows of a chained evaluation (``stage == "chain"``); none in a table without the column."""
    return (pl.col("stage") == CHAIN).fill_null(False) if "stage" in df.columns else pl.lit(False)


def without_chains(df: pl.DataFrame) -> pl.DataFrame:
    """The table without its chain rows: what every analysis but the chain law reads."""
    return df.filter(~is_chain(df)) if "stage" in df.columns else df


def _numeric(df: pl.DataFrame, col: str, source: str) -> pl.Series:
    s = df[col]
    if s.dtype.is_numeric():
        return s.cast(pl.Float64)
    text = s.cast(pl.Utf8, strict=False).str.strip_chars()
    text = pl.Series(col, [None if v is None or v.lower() in NULL_TOKENS else v for v in text.to_list()])
    num = text.cast(pl.Float64, strict=False)
    bad = (num.is_null() & text.is_not_null()).arg_true()
    if len(bad):
        i = int(bad[0])
        raise UserError(f"{source}: column '{col}' has non-numeric value {text[i]!r} (row {i + 1})")
    return num


def normalise(df: pl.DataFrame, source: str = "table", chains: bool = False) -> pl.DataFrame:
    """Validate types and add ``exposure``, ``run``, ``baseline`` (see module doc). Every row is checked
    (row numbers count the file's rows); chain rows are then dropped unless ``chains``."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise UserError(f"{source}: missing required column '{missing[0]}'")
    cols = {c: _numeric(df, c, source) for c in NUMERIC if c in df.columns}
    cols.update({c: df[c].cast(pl.Utf8) for c in TEXT if c in df.columns})
    df = df.with_columns(**cols)
    nulls = df["value"].is_null().arg_true()
    if len(nulls):
        raise UserError(f"{source}: column 'value' is empty (row {int(nulls[0]) + 1})")
    for col in ("objective", "model", "metric"):
        nulls = (df[col].is_null() | (df[col].str.strip_chars() == "")).arg_true()
        if len(nulls):
            raise UserError(f"{source}: column '{col}' is empty (row {int(nulls[0]) + 1})")
    _check_numbers(df, source)
    if "eval_set" not in df.columns:
        df = df.with_columns(eval_set=pl.lit("default"))
    df = df.with_columns(pl.col("eval_set").fill_null("default"), pl.col("metric").str.strip_chars())
    if "in_domain" in df.columns and df["in_domain"].dtype != pl.Boolean:
        lowered = df["in_domain"].cast(pl.Utf8).str.to_lowercase().str.strip_chars()
        bad = (lowered.is_not_null() & ~lowered.is_in([*TRUE_TOKENS, *FALSE_TOKENS, *NULL_TOKENS])).arg_true()
        if len(bad):
            i = int(bad[0])
            raise UserError(f"{source}: column 'in_domain' has {df['in_domain'][i]!r} (row {i + 1}); "
                            "expected true or false")
        df = df.with_columns(in_domain=lowered.is_in(TRUE_TOKENS))
    exposure = pl.lit(None, dtype=pl.Float64)
    if "step" in df.columns:
        exposure = pl.col("step")
    if "examples_seen" in df.columns:
        exposure = pl.coalesce(pl.col("examples_seen"), exposure)
    df = df.with_columns(exposure=exposure.cast(pl.Float64))
    if "run" not in df.columns:
        parts = [c for c in ("family", "objective", "model", "params", "supervision", "budget", "seed")
                 if c in df.columns]
        text = [
            (pl.col(c).cast(pl.Int64, strict=False) if c in NUMERIC else pl.col(c)).cast(pl.Utf8).fill_null("-")
            for c in parts
        ]
        df = df.with_columns(run=pl.concat_str(text, separator="__"))
    df = df.with_columns(pl.col("run").fill_null("-"))
    baseline = (pl.col("model").str.to_lowercase() == "bm25") | pl.col("params").is_null() | (pl.col("params") <= 0)
    df = df.with_columns(baseline=baseline)
    if "size_axis" in df.columns:
        axes = sorted(df.filter(~pl.col("baseline"))["size_axis"].drop_nulls().unique().to_list())
        if len(axes) > 1:
            raise UserError(f"{source}: column 'size_axis' mixes {axes[0]!r} and {axes[1]!r}: params are not"
                            " on one axis (keep the rows of one)")
    _check_rows(df, source)
    return df if chains else without_chains(df)


def _check_numbers(df: pl.DataFrame, source: str) -> None:
    """Every number finite; sizes, exposures and counts not negative (file, row and column named)."""
    for col in (c for c in NUMERIC if c in df.columns):
        s = df[col]
        bad = (s.is_not_null() & (s.is_nan() | s.is_infinite())).arg_true()
        if len(bad):
            i = int(bad[0])
            raise UserError(f"{source}: column '{col}' has {s[i]} (row {i + 1}); every value must be a finite number")
        if col == "value":
            continue
        bad = (s.is_not_null() & (s < 0)).arg_true()
        if len(bad):
            i = int(bad[0])
            what = "a model size is never negative (0 or empty: a baseline)" if col == "params" else "never negative"
            shown = f"{s[i]:.0f}" if float(s[i]).is_integer() else f"{s[i]:g}"
            raise UserError(f"{source}: column '{col}' has {shown} (row {i + 1}); {what}")


def _check_rows(df: pl.DataFrame, source: str) -> None:
    """Two rows of one measurement are an error; rows no law uses are counted in a warning."""
    rows = df.with_row_index("_row").filter(~pl.col("baseline"))
    key = [c for c in ROW_KEY if c in rows.columns]
    dup = rows.filter(pl.len().over(key) > 1)
    if dup.height:
        first = dup.row(0, named=True)
        same = dup.filter(pl.all_horizontal(pl.col(c).eq_missing(first[c]) for c in key))["_row"].to_list()
        where = ", ".join(f"{c} {first[c]!r}" for c in ("run", "eval_set", "metric", "exposure") if c in key)
        raise UserError(f"{source}: rows {same[0] + 1} and {same[1] + 1} are one measurement ({where}): it would "
                        "count twice (remove one, or tell them apart with a seed, run or step column)")
    # a chain's first stage alone (depth 0, reranker "none") is a baseline by design: not counted
    unsized = df.filter(pl.col("baseline") & (pl.col("model").str.to_lowercase() != "bm25") & ~is_chain(df))
    if unsized.height:
        models = sorted(unsized["model"].unique().to_list())
        warn(f"{source}: {unsized.height} rows of {len(models)} model(s) without a size (params empty or 0, e.g. "
             f"{models[0]!r}) are baselines: shown, never fitted")
    start = rows.filter(pl.col("exposure") == 0).height
    if start:
        warn(f"{source}: {start} rows are at exposure 0 (evaluated before training): the exposure laws skip them")


def group_columns(df: pl.DataFrame) -> list[str]:
    """Columns that define separately fitted groups (family, objective, supervision, eval set, budget)."""
    return [c for c in GROUP_COLUMNS if c in df.columns]


def select_metric(df: pl.DataFrame, metric: str, eval_set: str | None = None) -> pl.DataFrame:
    """Non-baseline rows of one metric (and eval set); :class:`UserError` if absent."""
    df = as_table(df)
    metrics = sorted(df["metric"].unique().to_list())
    if metric not in metrics:
        raise UserError(f"metric '{metric}' not in the table (has: {', '.join(metrics)})")
    out = df.filter((pl.col("metric") == metric) & ~pl.col("baseline"))
    if eval_set is not None:
        sets = sorted(out["eval_set"].unique().to_list())
        if eval_set not in sets:
            raise UserError(f"eval set '{eval_set}' not in the table for {metric} (has: {', '.join(sets)})")
        out = out.filter(pl.col("eval_set") == eval_set)
    if out.height == 0:
        raise UserError(f"metric '{metric}' has no non-baseline rows to fit")
    return out


def run_values(df: pl.DataFrame, evidence: str = "final", late_fraction: float = 0.7) -> pl.DataFrame:
    """One row per run (and eval set/metric): its value at the end of training.

    ``evidence="final"``: the value at the run's largest exposure (its last row
    if there is no exposure column).  ``evidence="late"``: the mean over the
    run's checkpoints with exposure >= ``late_fraction`` x its final exposure
    (less checkpoint noise, slightly low if the run is still improving).
    Columns: group columns, run, model, params, seed (if any), exposure, value, n_checkpoints.
    """
    if evidence not in ("final", "late"):
        raise UserError(f"unknown evidence '{evidence}' (choose final or late)")
    keys = [*group_columns(df), "metric", "run"]
    df = df.with_row_index("_order").with_columns(
        _dmax=pl.col("exposure").max().over(keys), _last=pl.col("_order").max().over(keys)
    )
    has_d = pl.col("_dmax").is_not_null()
    if evidence == "final":
        keep = pl.when(has_d).then(pl.col("exposure") == pl.col("_dmax")).otherwise(pl.col("_order") == pl.col("_last"))
    else:
        keep = pl.when(has_d).then(pl.col("exposure") >= late_fraction * pl.col("_dmax")).otherwise(
            pl.col("_order") == pl.col("_last")
        )
    extra = [pl.col("seed").first()] if "seed" in df.columns else []
    return (
        df.filter(keep)
        .group_by(keys, maintain_order=True)
        .agg(
            pl.col("model").first(),
            pl.col("params").first(),
            *extra,
            pl.col("_dmax").first().alias("exposure"),
            pl.col("value").mean(),
            pl.len().alias("n_checkpoints"),
        )
        .sort([*group_columns(df), "metric", "params", "run"], nulls_last=True)
    )


def budget_axis(vals: pl.DataFrame) -> pl.DataFrame:
    """Per-run values (:func:`run_values`) with D on the data-budget axis: ``exposure`` holds
    each run's budget (annotated training queries) and the ``budget`` column is dropped, so
    runs that differ only in budget fall into one group; :class:`UserError` without two
    budgets."""
    if "budget" not in vals.columns or vals["budget"].is_null().all():
        raise UserError("data axis 'budget' needs a budget column (training queries of each run)")
    bad = vals.filter(pl.col("budget").is_null() | (pl.col("budget") <= 0))
    if bad.height:
        raise UserError(f"data axis 'budget': run '{bad['run'][0]}' has no positive budget")
    if vals["budget"].n_unique() < 2:
        raise UserError(f"data axis 'budget' needs runs at two budgets or more, the table has one "
                        f"({vals['budget'][0]:g}); list several in [grid] budgets")
    return vals.with_columns(exposure=pl.col("budget")).drop("budget")
