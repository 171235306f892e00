"""``forecast``, ``fit``, ``verdicts``, ``allocate`` and ``backtest`` sub-commands (see :func:`register`).

Only the standard library and :mod:`rerank_scaling.errors` are imported here at
module level: ``rerank-scaling --help`` builds every parser, and numpy, scipy,
polars and the analyzer are imported inside the command functions.  The
choices below are checked against the analyzer's own lists by the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from rerank_scaling.errors import UserError, warn
from rerank_scaling.values import (AMOUNT, FRACTION, LEVEL, NON_NEGATIVE, NON_NEGATIVE_AMOUNT, OUTPUT_FILE, POSITIVE,
                                   POSITIVE_INT, SEED, Choice, ListOf, Number, PathValue, Text)

# mirrors of the analyzer's constants (tests/scaling/test_cli.py checks they agree)
LAW_CHOICES = ("auto", "cv", "size", "fang", "loglinear", "bounded", "joint", "joint-fang")
JOINT_LAWS = ("joint", "joint-fang")
DATA_LAWS = ("data", "data-fang", "data-loglinear")
FIT_LAW_CHOICES = (*LAW_CHOICES, *DATA_LAWS)
DATA_AXES = ("exposure", "budget")
STAGES = ("rerank", "retrieval")
CHAIN_HIDE = ("largest-reranker", "first-stage")
DEFAULT_MIN_COVERAGE = 0.5
ESTIMATOR_NAMES = ("mixture", "mixture-pooled", "mixture-shared", "loglinear-scaled", "curve-fit", "carry-forward", "loglinear", "auto",
                   "averaged", "pooled-objectives")
EXPOSURE_ESTIMATOR_NAMES = ("mixture", "curve-fit", "carry-forward", "loglinear", "data")
ENGINE_NAMES = ("loglinear-scaled", "mixture", "mixture-pooled", "mixture-shared")
FAST_ESTIMATORS = (*ENGINE_NAMES, "curve-fit", "carry-forward", "loglinear")  # backtest's default set

# every flag's type and range (rerank_scaling.values; the help text shows it); values only a table can
# check (a metric, an eval set, an objective) are checked against the table before anything is fitted
METRIC = Text("a metric of the table", example="no-such-metric")
METRICS = ListOf(METRIC)
EVAL_SET = Text("an eval set of the table", example="no-such-set")
OBJECTIVE = Text("an objective of the table", example="no-such-objective")
TABLE = PathValue("exists", "results table or study folder")
OPEN_FRACTION = Number(float, lo=0, hi=1, lo_open=True, hi_open=True)


def _dump(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def checked(table, args):
    """``table``, once the flags whose values only it knows (a metric, an eval set, an objective) name values
    of its fitted rows -- a value it lacks is an error naming the flag and listing what it has -- and with a
    warning when --bootstrap is too small for --level to have interval ends of their own."""
    level, n_boot = getattr(args, "level", None), getattr(args, "bootstrap", None)
    if level and n_boot and n_boot * (1 - level) / 2 < 1:
        warn(f"--bootstrap {n_boot} at --level {level:g}: no resample lies beyond either end of the interval, so "
             f"its ends are the extreme resamples; use --bootstrap {math.ceil(2 / (1 - level) - 1e-9)} or more")
    rows = table.filter(~table["baseline"])
    for flag, column in (("metric", "metric"), ("metrics", "metric"), ("eval_set", "eval_set"),
                         ("objective", "objective")):
        given = getattr(args, flag, None)
        have = sorted(str(v) for v in rows[column].unique().drop_nulls()) if column in rows.columns else []
        for value in [given] if isinstance(given, str) else given or ():
            if value not in have:
                raise UserError(f"--{flag.replace('_', '-')} '{value}' is not in the table (it has: "
                                f"{', '.join(have) or 'no fitted row'})")
    return table


def _report_skipped(caught) -> None:
    """Groups that could not be fitted are skipped; say so on stderr."""
    for msg in dict.fromkeys(str(w.message) for w in caught):
        if msg.startswith("skipped:"):
            print(f"warning: {msg}", file=sys.stderr)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=TABLE, help="study folder (DIR/results.parquet) or a .parquet/.csv table")
    p.add_argument("--eval-set", type=EVAL_SET, default=None, help="only this evaluation set (default: each one)")
    p.add_argument("--level", type=LEVEL, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--seed", type=SEED, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _run_forecast(args) -> int:
    """Every forecast goes through one path: an estimator (``--law X`` is the estimator ``law:X``), by
    default the calibrated default of :mod:`rerank_scaling.scaling.calibration`."""
    import warnings

    from rerank_scaling.scaling import render
    from rerank_scaling.scaling.calibration import FALLBACK, default_estimator, trust_line, width_rule
    from rerank_scaling.scaling.estimate import estimator_forecasts
    from rerank_scaling.scaling.table import load_results

    table = checked(load_results(args.results), args)
    if args.law is not None and args.estimator is None:
        name, rule = f"law:{args.law}", None
    else:
        name = args.estimator or default_estimator() or FALLBACK
        rule = None if args.uncalibrated else width_rule(name, args.level)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = estimator_forecasts(table, args.metric, args.fit_max_params, name, eval_set=args.eval_set,
                                   objective=args.objective, level=args.level, predict_params=args.predict_params,
                                   n_boot=args.bootstrap, seed=args.seed, width_rule=rule)
    _report_skipped(caught)
    if args.json:
        _dump(rows)
    else:
        render.estimator_forecasts(rows, rule)
        if rows and rule is not None and name == default_estimator():
            print(f"trust: {trust_line(name)}")
    return 0


def _run_fit(args) -> int:
    import warnings

    from rerank_scaling.scaling import render
    from rerank_scaling.scaling.forecast import fit_groups
    from rerank_scaling.scaling.table import load_results

    table = checked(load_results(args.results), args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        groups = fit_groups(table, args.metric, math.inf if args.max_params is None else args.max_params,
                            eval_set=args.eval_set, law=args.law, level=args.level, n_boot=args.bootstrap,
                            seed=args.seed, objective=args.objective, data_axis=args.data)
    _report_skipped(caught)
    rows = [fit_row(g) for g in groups]
    if args.json:
        _dump(rows)
    else:
        render.fits(rows)
    return 0


def fit_row(group) -> dict:
    """One fitted group as a plain dict: its key, the law, its formula, parameters with intervals, R^2."""
    from rerank_scaling.scaling.util import jsonable

    fit = group.fit
    return jsonable({**group.key, **({"model": group.points["model"][0]} if group.fit.law.inputs == ("D",) else {}),
                     "metric": group.metric, "law": fit.law.name, "formula": fit.law.formula,
                     "params": dict(fit.params),
                     "intervals": {k: list(v) for k, v in fit.param_intervals.items()},
                     "level": fit.level, "r2": fit.r2, "rmse": fit.rmse, "n_points": fit.n_points,
                     "n_sizes": fit.n_distinct, "law_reason": group.choice.reason})


def _run_verdicts(args) -> int:
    import warnings

    from rerank_scaling.scaling import render
    from rerank_scaling.scaling.table import load_results
    from rerank_scaling.scaling.verdicts import exposure_verdicts, verdicts

    table = checked(load_results(args.results), args)
    sizes = table.filter(~table["baseline"])["params"] if "baseline" in table.columns else table["params"]
    if args.fit_max_params is not None and sizes.len() and args.fit_max_params < sizes.min():
        print(f"warning: size check: --fit-max-params {args.fit_max_params:g} is below every model size "
              f"(smallest N = {sizes.min():,.0f}): no size law can be fitted", file=sys.stderr)
    opts = dict(metrics=args.metrics, eval_set=args.eval_set, level=args.level, seed=args.seed,
                max_rel_error=args.max_rel_error, min_coverage=args.min_coverage)
    est = _verdict_estimator(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        size = verdicts(table, args.fit_max_params, law=args.law, n_boot=args.bootstrap, **est, **opts)
        exposure = []
        if not args.no_exposure and not table["exposure"].is_null().all():
            exposure = exposure_verdicts(table, fit_fraction=args.exposure_fraction,
                                         n_boot=min(args.bootstrap, 200), **opts)
    _report_skipped(caught)
    if args.json:
        _dump([v.to_dict() for v in size + exposure])
    else:
        render.verdicts(size, exposure)
    return 0


def _verdict_estimator(args) -> dict:
    """``--law`` given: that law, raw intervals; otherwise ``--estimator`` (default: the calibrated default
    of the real-ladder backtest), its calibrated interval unless ``--uncalibrated``."""
    from rerank_scaling.scaling.calibration import FALLBACK, default_estimator, width_rule

    if args.law is not None and args.estimator is None:
        return {}
    name = args.estimator or default_estimator() or FALLBACK
    return {"estimator": name, "width_rule": None if args.uncalibrated else width_rule(name, args.level)}


def _run_allocate(args) -> int:
    from rerank_scaling.scaling import render
    from rerank_scaling.scaling.allocate import allocate
    from rerank_scaling.scaling.table import load_results

    if args.pipeline is not None:
        return _run_pipeline(args)
    for flag, value in (("--budget-ms", args.budget_ms), ("--budget-flops", args.budget_flops),
                        ("--depths", args.depths), ("--size-factors", args.size_factors)):
        if value is not None:
            raise UserError(f"{flag} is a whole-pipeline budget: it needs --pipeline STUDY")
    for what, value in (("a results table or study folder", args.results), ("--metric", args.metric),
                        ("--flops", args.flops)):
        if value is None:
            raise UserError(f"allocate needs {what} (or --pipeline STUDY with --budget-ms / --budget-flops)")
    table = checked(load_results(args.results), args)
    rows = allocate(
        table, args.metric, args.flops, tokens_per_example=args.tokens_per_example,
        inference_queries=args.inference_queries, candidates=args.candidates, tokens_per_pair=args.tokens_per_pair,
        stage=args.stage, query_tokens=args.query_tokens, doc_tokens=args.doc_tokens, corpus_size=args.corpus_size,
        eval_set=args.eval_set, objective=args.objective, law=args.law, level=args.level, n_boot=args.bootstrap,
        tolerance=args.tolerance, seed=args.seed,
    )
    if args.json:
        _dump([a.to_dict() for a in rows])
    else:
        render.allocations(rows)
    return 0


def _run_pipeline(args) -> int:
    from rerank_scaling.scaling import render
    from rerank_scaling.scaling.pipeline import DEPTH_GRID, SIZE_FACTORS, plan_pipeline

    if args.results is not None:
        raise UserError(f"allocate --pipeline takes its study after --pipeline; drop '{args.results}'")
    if args.flops is not None:
        raise UserError("--flops is a training budget; a pipeline's is per query: --budget-flops")
    if (args.budget_ms is None) == (args.budget_flops is None):
        raise UserError("allocate --pipeline needs one budget: --budget-ms X or --budget-flops F (per query)")
    if args.batched and args.budget_ms is None:
        raise UserError("--batched is a timing: it goes with --budget-ms")
    cost = "flops" if args.budget_flops is not None else ("ms-batched" if args.batched else "ms")
    plans = plan_pipeline(args.pipeline, budget=args.budget_flops or args.budget_ms, cost=cost,
                          metric=args.metric or "ndcg@10", eval_set=args.eval_set,
                          depths=args.depths or DEPTH_GRID, size_factors=args.size_factors or SIZE_FACTORS,
                          level=args.level, seed=args.seed, n_boot=args.bootstrap)
    if args.json:
        _dump([p.to_dict() for p in plans])
    else:
        render.pipeline_plans(plans)
    return 0


def _chain_backtest(args) -> int:
    from rerank_scaling.scaling import render
    from rerank_scaling.scaling.chain import DEFAULT_METRIC, backtest_chains

    if len(args.tables) != 1 or args.controls:
        raise UserError("backtest --chains takes one study (its chain rows), no --controls")
    metrics = args.metrics or [DEFAULT_METRIC]
    results = [backtest_chains(args.tables[0], m, hide=args.hide, level=args.level, n_boot=args.bootstrap,
                               seed=args.seed) for m in metrics]
    if args.cases:
        import polars as pl

        pl.concat([r.cases.with_columns(metric=pl.lit(r.metric)) for r in results],
                  how="diagonal_relaxed").write_csv(args.cases)
    if args.json:
        _dump([r.to_dict(cases=args.json_cases) for r in results])
    else:
        for r in results:
            render.chain_backtest(r)
    return 0


def _run_backtest(args) -> int:
    import warnings

    import polars as pl

    from rerank_scaling.scaling import render
    from rerank_scaling.scaling.backtest import backtest, calibration_json
    from rerank_scaling.scaling.table import load_results

    if args.chains:
        return _chain_backtest(args)
    checked(pl.concat([load_results(t).select("metric", "baseline")
                       for t in (*args.tables, *(args.controls or ()))]), args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = backtest(args.tables, controls=args.controls or (), metrics=args.metrics,
                      estimators=args.estimators or list(FAST_ESTIMATORS),
                      exposure_estimators=args.exposure_estimators, holdouts=tuple(args.holdouts),
                      exposure=args.exposure, level=args.level, n_boot=args.bootstrap, seed=args.seed,
                      candidates=args.candidates)
    if bt.cases.height == 0:
        raise UserError("nothing to backtest: no group has enough sizes or checkpoints "
                        "(3 fitted + the hidden ones)")
    if args.cases:
        bt.cases.write_csv(args.cases)
    if args.write_calibration:
        if not bt.choice:
            raise UserError("--write-calibration needs a default: give at least 3 scaling ladders and the "
                            "engine's estimators")
        import os
        from pathlib import Path

        path = Path(args.write_calibration)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(calibration_json(bt), indent=2) + "\n")
        os.replace(tmp, path)  # a reader never sees half a file
    if args.json:
        out = bt.to_dict()
        if not args.json_cases:
            out.pop("cases")
        _dump(out)
    else:
        render.backtest(bt)
    return 0


def register(subparsers) -> None:
    """Add ``forecast``, ``verdicts``, ``allocate`` and ``backtest`` to an argparse subparsers object."""
    p = subparsers.add_parser("forecast", help="fit a size law on small models, forecast larger ones",
                              description="Fit a size law on runs with params <= --fit-max-params and "
                                          "forecast every larger model, with prediction intervals.")
    _common(p)
    p.add_argument("--metric", type=METRIC, required=True, help="metric to forecast, e.g. ndcg@10")
    p.add_argument("--fit-max-params", type=AMOUNT, required=True, help="largest size fitted, e.g. 400e6")
    p.add_argument("--law", choices=LAW_CHOICES, default=None,
                   help="fit this law instead of the default estimator: auto (a+b*N^c, bias-corrected), cv "
                        "(lowest leave-largest-out error), a size law, or joint/joint-fang (N x D law on every "
                        "checkpoint of the fitted runs, forecast at the larger model's final exposure)")
    p.add_argument("--bootstrap", type=POSITIVE_INT, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--evidence", choices=("final", "late"), default="final",
                   help="per-run value: final checkpoint (default) or mean of the late checkpoints")
    p.add_argument("--loss", choices=("linear", "huber"), default="linear", help="fit loss (default linear)")
    p.add_argument("--no-bias-correction", action="store_true", help="report the raw law fit")
    p.add_argument("--predict-params", type=ListOf(AMOUNT), default=[],
                   help="extra sizes to forecast, e.g. 1e9,3e9")
    p.add_argument("--objective", type=OBJECTIVE, default=None, help="only this objective")
    p.add_argument("--estimator", choices=ESTIMATOR_NAMES, default=None,
                   help="forecast with an estimator the backtest scores; default: the one the real-ladder backtest "
                        "chose (scaling/README.md), its interval calibrated on real ladders")
    p.add_argument("--uncalibrated", action="store_true", help="the estimator's raw intervals (no misspecification "
                                                               "term or conformal factor)")
    p.set_defaults(func=_run_forecast)

    p = subparsers.add_parser("fit", help="fit a law and print its parameters in the law's own form",
                              description="Fit LAW to every group (objective, eval set, ...) of METRIC and print "
                                          "its parameters in the law's own form (size: a, b, c; fang: A, alpha, "
                                          "delta; data-fang: B, beta, delta, per model; joint-fang: A, alpha, B, "
                                          "beta, delta), with bootstrap intervals and R^2, to compare exponents "
                                          "with a paper's.")
    _common(p)
    p.add_argument("--metric", type=METRIC, required=True, help="metric to fit, e.g. ce@15")
    p.add_argument("--law", choices=FIT_LAW_CHOICES, default="auto",
                   help="law (default auto); data laws (data, data-fang, data-loglinear) are fitted per model")
    p.add_argument("--data", choices=DATA_AXES, default="exposure",
                   help="what D is for data and joint laws: exposure (examples seen, every checkpoint a point; "
                        "default) or budget (training queries: each run's final value a point, runs that differ "
                        "only in budget fitted together)")
    p.add_argument("--max-params", type=AMOUNT, default=None, help="fit only runs up to this size (default all)")
    p.add_argument("--bootstrap", type=POSITIVE_INT, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--objective", type=OBJECTIVE, default=None, help="only this objective")
    p.set_defaults(func=_run_fit)

    p = subparsers.add_parser("verdicts", help="which metrics extrapolate (size and exposure checks)",
                              description="Per metric, objective and eval set: fit small models (and early "
                                          "checkpoints), forecast the held-out ones. A metric extrapolates when "
                                          "it moves beyond its run-to-run noise, its forecast beats carrying the "
                                          "largest value forward and the log-linear extension, and its intervals "
                                          "cover and score no worse than the carry-forward's; a metric that does "
                                          "not move is 'not informative'.")
    _common(p)
    p.add_argument("--fit-max-params", type=AMOUNT, required=True, help="largest size fitted, e.g. 150e6")
    p.add_argument("--metrics", type=METRICS, default=None, help="comma-separated (default: all in the table)")
    p.add_argument("--law", choices=LAW_CHOICES[:6], default=None,
                   help="judge this size law's forecasts (raw bootstrap intervals) instead of the default estimator's")
    p.add_argument("--estimator", choices=ESTIMATOR_NAMES, default=None,
                   help="judge this estimator's forecasts (default: the estimator the real-ladder backtest chose, "
                        "with its calibrated intervals)")
    p.add_argument("--uncalibrated", action="store_true", help="with an estimator: its raw intervals")
    p.add_argument("--bootstrap", type=POSITIVE_INT, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--max-rel-error", type=POSITIVE, default=None,
                   help="also require mean |relative error| <= this (default: off; the rule compares the error "
                        "with the carry-forward and log-linear forecasts instead)")
    p.add_argument("--min-coverage", type=FRACTION, default=DEFAULT_MIN_COVERAGE,
                   help=f"smallest share of actuals inside their interval that passes (default {DEFAULT_MIN_COVERAGE})")
    p.add_argument("--exposure-fraction", type=OPEN_FRACTION, default=0.5,
                   help="exposure check fits checkpoints with D <= this x final D (default 0.5)")
    p.add_argument("--no-exposure", action="store_true", help="skip the exposure check")
    p.set_defaults(func=_run_verdicts)

    p = subparsers.add_parser("allocate", help="best model size and data for a FLOP budget; --pipeline: the best "
                                               "first stage x reranker x depth for a per-query budget",
                              description="Fit the joint law and find the (N, D) that maximises the metric "
                                          "for a budget of 6*N*tokens training (+ inference) FLOPs. With --pipeline "
                                          "STUDY: fit the chain law on the study's chained runs and find the first "
                                          "stage, reranker size and depth with the best predicted quality under "
                                          "--budget-ms or --budget-flops per query.")
    p.add_argument("results", nargs="?", type=TABLE, default=None,
                   help="study folder (DIR/results.parquet) or a .parquet/.csv table (not with --pipeline)")
    p.add_argument("--eval-set", type=EVAL_SET, default=None, help="only this evaluation set (default: each one)")
    p.add_argument("--level", type=LEVEL, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--seed", type=SEED, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--metric", type=METRIC, default=None,
                   help="metric to optimise, e.g. ndcg@10 (required; with --pipeline default ndcg@10)")
    p.add_argument("--flops", type=AMOUNT, default=None, help="total FLOP budget, e.g. 1e18 (required without "
                                                              "--pipeline)")
    p.add_argument("--pipeline", type=TABLE, default=None, metavar="STUDY",
                   help="allocate a whole chain (first stage x reranker size x depth) from this study's chain rows")
    p.add_argument("--budget-ms", type=POSITIVE, default=None, help="--pipeline: milliseconds per query (chain-ms, "
                                                                    "batch 1; --batched: chain-ms-batched)")
    p.add_argument("--budget-flops", type=AMOUNT, default=None, help="--pipeline: FLOPs per query (chain-flops)")
    p.add_argument("--batched", action="store_true", help="--pipeline with --budget-ms: the batched timing")
    p.add_argument("--depths", type=ListOf(POSITIVE_INT), default=None,
                   help="--pipeline: depths searched besides the measured ones (default 5,10,20,30,50,75,100)")
    p.add_argument("--size-factors", type=ListOf(POSITIVE), default=None,
                   help="--pipeline: forecast reranker sizes, as multiples of the largest trained (default 2,4)")
    p.add_argument("--tokens-per-example", type=POSITIVE, default=None,
                   help="training tokens per example (default: tokens_seen / examples_seen from the table)")
    p.add_argument("--inference-queries", type=NON_NEGATIVE_AMOUNT, default=0.0,
                   help="queries served over the model's life (reranked, or encoded online by a retriever)")
    p.add_argument("--stage", choices=STAGES, default="rerank",
                   help="inference cost model: rerank (2*N*tokens-per-pair*candidates per query; default) or "
                        "retrieval (a bi-encoder: 2*N*query-tokens per query online, 2*N*doc-tokens*corpus-size "
                        "once offline)")
    p.add_argument("--candidates", type=NON_NEGATIVE, default=100.0,
                   help="rerank: candidates scored per query (default 100)")
    p.add_argument("--tokens-per-pair", type=POSITIVE, default=None,
                   help="rerank: tokens per scored query-passage pair (default: tokens per example)")
    p.add_argument("--query-tokens", type=POSITIVE, default=None, help="retrieval: tokens of an encoded query")
    p.add_argument("--doc-tokens", type=POSITIVE, default=None, help="retrieval: tokens of an encoded document")
    p.add_argument("--corpus-size", type=NON_NEGATIVE_AMOUNT, default=0.0,
                   help="retrieval: documents encoded offline once (default 0)")
    p.add_argument("--objective", type=OBJECTIVE, default=None, help="only this objective")
    p.add_argument("--law", choices=JOINT_LAWS, default="joint", help="joint law (default joint)")
    p.add_argument("--bootstrap", type=POSITIVE_INT, default=200, help="bootstrap resamples (default 200)")
    p.add_argument("--tolerance", type=NON_NEGATIVE, default=0.25,
                   help="grid checkpoints within this relative compute distance are listed (default 0.25)")
    p.set_defaults(func=_run_allocate)

    p = subparsers.add_parser("backtest", help="score forecast estimators by hiding the largest sizes of real ladders",
                              description="For every ladder (table, or its ladder column), metric, objective and "
                                          "eval set: hide the largest 1 and 2 sizes, forecast them with every "
                                          "estimator, calibrate each estimator's width with one scaling ladder left "
                                          "out at a time, and report per estimator mean abs error, bias, coverage, "
                                          "median width and interval score relative to carry-forward's; choose the "
                                          "default inside the leave-one-ladder-out loop. --controls ladders "
                                          "(negative controls) are scored with widths from the scaling ladders.")
    p.add_argument("tables", nargs="+", type=TABLE, help="scaling ladders: tidy tables (.parquet/.csv) or study folders")
    p.add_argument("--controls", nargs="+", type=TABLE, default=None,
                   help="negative-control ladders (models that do not scale): scored, never calibrating")
    p.add_argument("--metrics", type=METRICS, default=None, help="comma-separated (default: all)")
    p.add_argument("--estimators", type=ListOf(Choice(ESTIMATOR_NAMES, "estimator")), default=None,
                   help=f"size estimators (default: {', '.join(FAST_ESTIMATORS)}; all: {', '.join(ESTIMATOR_NAMES)})")
    p.add_argument("--candidates", type=ListOf(Choice(ESTIMATOR_NAMES, "estimator")), default=None,
                   help=f"estimators the default is chosen among, simplest first (default: {', '.join(ENGINE_NAMES)})")
    p.add_argument("--exposure", action="store_true", help="also hide each model's last 1 and 2 checkpoints")
    p.add_argument("--exposure-estimators", type=ListOf(Choice(EXPOSURE_ESTIMATOR_NAMES, "exposure estimator")),
                   default=None,
                   help=f"exposure estimators (default all: {', '.join(EXPOSURE_ESTIMATOR_NAMES)})")
    p.add_argument("--holdouts", type=ListOf(POSITIVE_INT), default=[1, 2],
                   help="how many largest sizes / last checkpoints to hide, each separately (default 1,2)")
    p.add_argument("--level", type=LEVEL, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--bootstrap", type=POSITIVE_INT, default=200, help="bootstrap resamples per fit of the bootstrap "
                                                                       "estimators (default 200)")
    p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    p.add_argument("--cases", type=OUTPUT_FILE, default=None, help="also write every case to this CSV")
    p.add_argument("--write-calibration", type=OUTPUT_FILE, default=None, metavar="FILE",
                   help="write the chosen default, every estimator's calibrated width and the default's trust "
                        "record to FILE (the analyzer reads rerank_scaling/scaling/calibration.json)")
    p.add_argument("--json", action="store_true", help="print JSON (summary, widths, choice) instead of tables")
    p.add_argument("--json-cases", action="store_true", help="with --json, include every case")
    p.add_argument("--chains", action="store_true",
                   help="backtest the chain law on one study's chain rows instead: hide chains (--hide), fit on the "
                        "rest, forecast them (mean abs error, coverage)")
    p.add_argument("--hide", choices=CHAIN_HIDE, default=CHAIN_HIDE[0],
                   help="with --chains: largest-reranker (every chain of the largest reranker size; default) or "
                        "first-stage (each first stage in turn)")
    p.set_defaults(func=_run_backtest)
