"""Rich tables for the scaling sub-commands (presentation only, no analysis)."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.table import Table

from rerank_scaling.scaling.allocate import Allocation
from rerank_scaling.scaling.forecast import Forecast
from rerank_scaling.scaling.util import format_size
from rerank_scaling.scaling.verdicts import Verdict


def default_console() -> Console:
    """The terminal's console; 160 columns when writing to a pipe or file."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _num(v: float | None, fmt: str = ".4f") -> str:
    return "—" if v is None else format(v, fmt)


_size = format_size


def condition(row) -> str:
    """A forecast's, verdict's or allocation's objective with its family and supervision (those given)."""
    extra = [x for x in (getattr(row, "family", None), getattr(row, "supervision", None)) if x]
    return row.objective + (f" ({', '.join(extra)})" if extra else "")


def forecasts(rows: list[Forecast], console: Console | None = None) -> None:
    console = console or default_console()
    if not rows:
        console.print("no models larger than the cut to forecast (use --predict-params to add sizes)")
        return
    first = rows[0]
    table = Table(title=f"{first.metric}: forecasts from runs with params <= {_size(first.fit_max_params)}"
                        f" ({first.level:.0%} prediction intervals)")
    show_sup = any(r.supervision for r in rows)
    show_family = len({r.family for r in rows}) > 1
    show_budget = any(r.budget is not None for r in rows)
    show_set = len({r.eval_set for r in rows}) > 1
    for name in [*(["family"] if show_family else []), "objective", *(["supervision"] if show_sup else []), *(["budget"] if show_budget else []),
                 *(["eval set"] if show_set else []), "model", "params", "predicted", "bias corr.", "interval",
                 "actual", "error", "rel. error", "in interval"]:
        table.add_column(name, justify="right" if name in ("params", "budget", "predicted", "actual", "error",
                                                             "rel. error", "bias corr.") else "left")
    for r in rows:
        table.add_row(
            *([r.family or "—"] if show_family else []), r.objective, *([r.supervision or "—"] if show_sup else []),
            *([_size(r.budget) if r.budget is not None else "—"] if show_budget else []),
            *([r.eval_set] if show_set else []), r.model, _size(r.params), _num(r.predicted),
            _num(None if r.raw_predicted is None else r.predicted - r.raw_predicted, "+.4f"),
            f"[{_num(r.lower)}, {_num(r.upper)}]", _num(r.actual), _num(r.error, "+.4f"),
            _num(r.rel_error, "+.1%"), "—" if r.covered is None else ("yes" if r.covered else "NO"),
        )
    console.print(table)
    reasons = defaultdict(list)
    for r in rows:
        reasons[r.law_reason].append(r.objective)
    for reason, objs in reasons.items():
        console.print(f"law ({', '.join(sorted(set(objs)))}): {reason}")
    checked = [r for r in rows if r.error is not None]
    if checked:
        mean_rel = sum(r.rel_error for r in checked) / len(checked)
        cover = sum(bool(r.covered) for r in checked) / len(checked)
        console.print(f"held-out models: {len(checked)}, mean signed rel. error {mean_rel:+.2%}, "
                      f"interval coverage {cover:.0%}")
    for note in sorted({w for r in rows for w in r.warnings}):
        console.print(f"[yellow]warning:[/yellow] {note}")


VERDICT_RULE = ("extrapolates = (a) moves: the span of the fitted levels exceeds run-to-run noise (studentized "
                "range q above its 95% quantile; else 'not informative'), (b) held-out MAE below carrying the "
                "largest fitted value forward and not above the log-linear extension, (c) at least {cov:.0%} of "
                "held-out actuals inside the {level:.0%} interval and an interval score no worse than the "
                "carry-forward's")



def fits(rows: list[dict], console: Console | None = None) -> None:
    """``fit``: one table per law, one row per group, parameters with their intervals."""
    console = console or default_console()
    if not rows:
        console.print("no group could be fitted")
        return
    by_law: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_law[r["law"]].append(r)
    for law, sub in by_law.items():
        names = list(sub[0]["params"])
        keys = [k for k in ("family", "objective", "supervision", "budget", "model", "eval_set")
                if any(r.get(k) is not None for r in sub)]
        table = Table(title=f"{sub[0]['metric']}: {sub[0]['formula']} ({sub[0]['level']:.0%} bootstrap intervals)")
        for name in [*keys, *names, "R^2", "points", "distinct"]:
            table.add_column(name, justify="left" if name in keys else "right")
        for r in sub:
            cells = []
            for n in names:
                lo_hi = r["intervals"].get(n)
                cells.append(f"{_num(r['params'][n], '.4g')}" + (f" [{_num(lo_hi[0], '.3g')}, {_num(lo_hi[1], '.3g')}]"
                                                                 if lo_hi else ""))
            table.add_row(*(str(r.get(k)) for k in keys), *cells, _num(r["r2"], ".3f"), str(r["n_points"]),
                          str(r["n_sizes"]))
        console.print(table)


def estimator_forecasts(rows: list[dict], rule=None, console: Console | None = None) -> None:
    """``forecast --estimator``: one row per group and target size."""
    console = console or default_console()
    if not rows:
        console.print("nothing to forecast")
        return
    first = rows[0]
    cal = (f"intervals widened x{rule.factor:.3g} by the conformal rule calibrated on {rule.n} backtest cases"
           if rule is not None else "raw intervals (no calibrated width rule for this estimator and level)")
    table = Table(title=f"{first['metric']}: {first['estimator']} forecasts ({first['level']:.0%}; {cal})")
    keys = [k for k in ("family", "objective", "supervision", "budget", "eval_set") if any(r.get(k) is not None for r in rows)
            and len({r.get(k) for r in rows}) > 1 or k == "objective"]
    for name in [*keys, "params", "predicted", "interval", "actual", "error", "in interval"]:
        table.add_column(name, justify="left" if name in keys else "right")
    for r in rows:
        table.add_row(*(str(r.get(k)) for k in keys), _size(r["params"]), _num(r["predicted"]),
                      f"[{_num(r['lower'])}, {_num(r['upper'])}]", _num(r["actual"]), _num(r["error"], "+.4f"),
                      "—" if r["covered"] is None else ("yes" if r["covered"] else "NO"))
    console.print(table)


def _mark(v: Verdict) -> str:
    return {"extrapolates": "yes", "does not extrapolate": "NO", "not informative": "not informative"}.get(
        v.status, "—")


def verdict_table(rows: list[Verdict], title: str, console: Console) -> None:
    if not rows:
        console.print(f"{title}: nothing to check")
        return
    table = Table(title=title)
    for name in ("metric", "objective", "eval set", "extrapolates", "q / 95%", "MAE", "carry-fwd", "log-lin",
                 "coverage", "int. score / carry", "law", "held out"):
        table.add_column(name)
    for v in rows:
        obj = condition(v)
        q = "—" if v.moves_q is None else f"{v.moves_q:.3g} / {_num(v.moves_threshold, '.3g')}"
        score = "—" if v.interval_score is None else (
            f"{v.interval_score:.3g} / {_num(v.interval_score_carry_forward, '.3g')}")
        table.add_row(v.metric, obj, v.eval_set, _mark(v), q, _num(v.mae, ".3g"), _num(v.mae_carry_forward, ".3g"),
                      _num(v.mae_loglinear, ".3g"), _num(v.coverage, ".0%"), score, v.law, str(v.n_targets))
    console.print(table)
    for v in rows:
        console.print(f"  {v.metric} {v.objective}/{v.eval_set}: {v.reason}")


def verdicts(size: list[Verdict], exposure: list[Verdict], console: Console | None = None) -> None:
    console = console or default_console()
    rows = size or exposure
    if rows:
        v = rows[0]
        console.print(VERDICT_RULE.format(cov=v.min_coverage, level=v.level))
    verdict_table(size, "size check: fit small models, forecast larger ones", console)
    verdict_table(exposure, "exposure check: fit early checkpoints, forecast later ones", console)
    summary = Table(title="metrics side by side (groups that extrapolate / not informative / groups checked)")
    for name in ("metric", "size check", "exposure check", "MAE / carry-forward MAE (size)"):
        summary.add_column(name)
    for metric in sorted({v.metric for v in size + exposure}):
        def count(vs):
            judged = [v for v in vs if v.metric == metric and v.extrapolates is not None]
            flat = sum(v.status == "not informative" for v in judged)
            return f"{sum(v.extrapolates for v in judged)} / {flat} / {len(judged)}" if judged else "—"
        ratios = [v.mae / v.mae_carry_forward for v in size if v.metric == metric and v.mae is not None
                  and v.mae_carry_forward]
        summary.add_row(metric, count(size), count(exposure),
                        _num(sum(ratios) / len(ratios), ".2f") if ratios else "—")
    console.print(summary)


def allocations(rows: list[Allocation], console: Console | None = None) -> None:
    console = console or default_console()
    for a in rows:
        head = f"{a.metric}, objective={condition(a)}"
        console.print(f"[bold]{head}[/bold]: budget {a.flops:.3g} FLOPs, law {a.law} (R² {a.fit_r2:.3f}), "
                      f"{a.tokens_per_example:g} tokens/example")
        console.print(f"  best: N = {_size(a.params)} params, D = {a.examples:.3g} examples "
                      f"({a.tokens:.3g} tokens); train {a.train_flops:.3g} + inference {a.inference_flops:.3g} FLOPs"
                      + (f" ({a.stage})" if a.inference_flops else ""))
        console.print(f"  predicted {a.metric} = {a.predicted:.4f} [{_num(a.lower)}, {_num(a.upper)}]")
        if a.note:
            console.print(f"  [yellow]note:[/yellow] {a.note}")
        if not a.equal_compute:
            console.print("  no grid checkpoint within the tolerance of this budget")
            continue
        table = Table(title="grid checkpoints at about the same compute")
        for name in ("run", "params", "examples", "FLOPs", "actual", "law"):
            table.add_column(name)
        for p in a.equal_compute:
            table.add_row(p.run, _size(p.params), f"{p.examples_seen:.3g}", f"{p.flops:.3g}",
                          f"{p.actual:.4f}", f"{p.predicted:.4f}")
        console.print(table)
        if a.best_grid is not None:
            diff = a.predicted - a.best_grid.actual
            console.print(f"  best grid run {a.best_grid.run}: {a.best_grid.actual:.4f} (law there "
                          f"{a.best_grid.predicted:.4f}; the best of noisy runs reads high); "
                          f"law optimum {a.predicted:.4f} ({diff:+.4f} vs that run)")


def backtest(bt, calibration=(), ranking=None, console: Console | None = None) -> None:
    """The backtest summary: one row per axis, hold-out and estimator (baseline: curve-fit)."""
    console = console or default_console()
    s = bt.summary
    ladders = bt.cases["ladder"].unique().sort().to_list()
    console.print(f"backtest of {len(ladders)} ladder(s): {', '.join(ladders)}; {bt.level:.0%} intervals; "
                  "error = predicted - actual; z = error / measured run-to-run noise; 'common' = cases every "
                  "estimator forecast")
    for (axis, holdout), sub in s.group_by(["axis", "holdout"], maintain_order=True):
        what = "largest size(s)" if axis == "size" else "last checkpoint(s) per model"
        table = Table(title=f"{axis}: {holdout} {what} hidden")
        for name in ("estimator", "cases", "failed", "MAE", "median |err|", "bias", "mean |z|", "MAE common", "coverage",
                     "median width", "interval score"):
            table.add_column(name, justify="left" if name == "estimator" else "right")
        for r in sub.iter_rows(named=True):
            name = r["estimator"] + (" (baseline)" if r["estimator"] == "curve-fit" else "")
            table.add_row(name, str(r["n"]), str(r["n_failed"]), _num(r["mae"], ".4g"),
                          _num(r["median_abs_error"], ".4g"), _num(r["bias"], "+.4g"),
                          _num(r["mean_abs_z"], ".3g"), _num(r["mae_common"], ".4g"), _num(r["coverage"], ".0%"),
                          _num(r["median_width"], ".4g"), _num(r["interval_score"], ".4g"))
        console.print(table)
    for c in calibration:
        console.print(f"conformal calibration of {c['estimator']} ({c['axis']}, folds by {c['folds_by']}, "
                      f"{c['n']} cases): coverage {_num(c['coverage_raw'], '.0%')} -> "
                      f"{_num(c['coverage_calibrated'], '.0%')}, median width {_num(c['median_width_raw'], '.4g')} -> "
                      f"{_num(c['median_width_calibrated'], '.4g')} (factor on all cases "
                      f"{_num(c['factor'], '.3g')})")
    if ranking is not None and ranking.height:
        ladders = [c for c in ranking.columns if c not in ("estimator", "score", "n_ladders", "failed",
                                                           "with_interval", "eligible")]
        table = Table(title="default by the pre-registered rule (scaling/README.md): mean over ladders of "
                            "MAE / loglinear's MAE per metric and hold-out; lower is better")
        for name in ("estimator", "score", *ladders, "failed", "eligible"):
            table.add_column(name, justify="left" if name == "estimator" else "right")
        for r in ranking.iter_rows(named=True):
            table.add_row(r["estimator"], _num(r["score"], ".3f"), *(_num(r[c], ".3f") for c in ladders),
                          _num(r["failed"], ".0%"), "yes" if r["eligible"] else "no")
        console.print(table)
