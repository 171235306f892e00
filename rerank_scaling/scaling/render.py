"""Rich tables for the scaling sub-commands (presentation only, no analysis)."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.table import Table

from rerank_scaling.scaling.allocate import Allocation
from rerank_scaling.scaling.util import format_size
from rerank_scaling.scaling.verdicts import Verdict, rule


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
    if rule is None:
        cal = "raw intervals (no calibrated width rule for this estimator and level)"
    elif rule.kind == "kappa":
        cal = f"misspecification scale kappa {rule.factor:.3g} calibrated on real ladders ({rule.n} targets)"
    else:
        cal = f"intervals widened x{rule.factor:.3g} by the conformal rule calibrated on {rule.n} backtest targets"
    table = Table(title=f"{first['metric']}: {first['estimator']} forecasts ({first['level']:.0%}; {cal})")
    keys = [k for k in ("family", "objective", "supervision", "budget", "eval_set") if any(r.get(k) is not None for r in rows)
            and len({r.get(k) for r in rows}) > 1 or k == "objective"]
    for name in [*keys, "model", "params", "predicted", "interval", "actual", "error", "in interval"]:
        table.add_column(name, justify="left" if name in keys else "right")
    for r in rows:
        table.add_row(*(str(r.get(k)) for k in keys), str(r.get("model") or "—"), _size(r["params"]),
                      _num(r["predicted"]),
                      f"[{_num(r['lower'])}, {_num(r['upper'])}]", _num(r["actual"]), _num(r["error"], "+.4f"),
                      "—" if r["covered"] is None else ("yes" if r["covered"] else "NO"))
    console.print(table)
    notes = sorted({r["noise"] for r in rows if r.get("noise")})
    for n in notes:
        console.print(f"  noise: {n}")
    checked = [r for r in rows if r["error"] is not None]
    if checked:
        rel = [r["error"] / abs(r["actual"]) for r in checked if r["actual"]]
        cover = sum(bool(r["covered"]) for r in checked) / len(checked)
        console.print(f"  held-out sizes: {len(checked)}, mean signed rel. error "
                      f"{sum(rel) / len(rel) if rel else float('nan'):+.2%}, interval coverage {cover:.0%}")


def _mark(v: Verdict) -> str:
    return {"extrapolates": "yes", "does not extrapolate": "NO", "not informative": "not informative",
            "not testable": "not testable"}.get(v.status, "—")


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
        console.print(rule(v.min_coverage, v.level).replace("*", ""))
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


def backtest(bt, console: Console | None = None) -> None:
    """The backtest: per hold-out and estimator (scaling ladders, widths fitted with each ladder left
    out), coverage per ladder of the engine's estimators, the controls apart, and the nested choice."""
    from rerank_scaling.scaling.backtest import per_ladder

    console = console or default_console()
    s = bt.summary
    roles = {r: sorted(bt.cases.filter(bt.cases["role"] == r)["ladder"].unique().to_list()) for r in ("scaling", "control")}
    console.print(f"backtest: scaling ladders {', '.join(roles['scaling']) or '-'}; negative controls "
                  f"{', '.join(roles['control']) or '-'}; {bt.level:.0%} intervals, each scaling ladder's widths "
                  "fitted without it (controls: on every scaling ladder); error = predicted - actual; "
                  "rel. IS = interval score / carry-forward's on the same target")
    for (axis, holdout), sub in s.group_by(["axis", "holdout"], maintain_order=True):
        what = "largest size(s)" if axis == "size" else "last checkpoint(s) per model"
        table = Table(title=f"scaling ladders, {axis}: {holdout} {what} hidden")
        for name in ("estimator", "cases", "failed", "MAE", "median |err|", "bias", "MAE common", "coverage",
                     "median width", "rel. IS"):
            table.add_column(name, justify="left" if name == "estimator" else "right")
        for r in sub.iter_rows(named=True):
            name = r["estimator"] + (" (baseline)" if r["estimator"] in ("curve-fit", "carry-forward") else "")
            table.add_row(name, str(r["n"]), str(r["n_failed"]), _num(r["mae"], ".4g"),
                          _num(r["median_abs_error"], ".4g"), _num(r["bias"], "+.4g"), _num(r["mae_common"], ".4g"),
                          _num(r["coverage"], ".0%"), _num(r["median_width"], ".4g"), _num(r["rel_is"], ".4g"))
        console.print(table)
    default = (bt.choice or {}).get("default")
    for (est, axis), rule in bt.rules.items():
        if rule.kind != "kappa" and est != default:
            continue
        what = f"kappa {rule.factor:.3g}" if rule.kind == "kappa" else f"factor {rule.factor:.3g}"
        for by in (("ladder",), ("regime",)) if est == default else (("ladder",),):
            table = Table(title=f"{est} ({axis}{', the default' if est == default else ''}): {what} on all scaling "
                                f"ladders; out of fold per {by[0]}")
            for name in ("role", by[0], "targets", "coverage", "median width", "MAE", "rel. IS"):
                table.add_column(name, justify="left" if name in ("role", by[0]) else "right")
            for r in per_ladder(bt.cases, est, axis, by=by).iter_rows(named=True):
                table.add_row(r["role"], r[by[0]], str(r["n"]), _num(r["coverage"], ".0%"),
                              _num(r["median_width"], ".4g"), _num(r["mae"], ".4g"), _num(r["rel_is"], ".3f"))
            console.print(table)
    c = bt.choice
    if c:
        console.print(f"default (nested rule: lowest mean rel. IS over scaling ladders, the simplest within one "
                      f"paired standard error): [bold]{c['default']}[/bold] {_num(c['score'], '.3f')}; runner-up "
                      f"{c['runner_up']} {_num(c['runner_up_score'], '.3f')}; margin {_num(c['margin'], '+.3f')} "
                      f"+- {_num(c['margin_se'], '.3f')} (SE over ladders); out-of-sample score of the rule "
                      f"{_num(c['nested_score'], '.3f')} +- {_num(c['nested_score_se'], '.3f')} (picks per left-out "
                      f"ladder: {', '.join(f'{k}: {v}' for k, v in c['nested_picks'].items())})")


def _chain_name(c) -> str:
    return f"{c.first_stage} alone" if c.params == 0 else f"{c.first_stage} -> {c.reranker} @ {c.depth}"


def _candidate_row(c) -> list[str]:
    where = [w for w in ((("forecast size" if c.forecast_size else "") or ""),
                         ("" if c.recall_from in ("measured", "-") else f"recall {c.recall_from}"),
                         ("" if c.cost_from == "measured" else "cost scaled")) if w]
    return [_chain_name(c), f"{c.predicted:.4f}", f"[{_num(c.lower)}, {_num(c.upper)}]",
            _num(c.measured), f"{c.cost:.4g}",
            "measured (first stage alone)" if c.params == 0 else "; ".join(where) or "measured chain"]


def pipeline_plans(plans, console: Console | None = None) -> None:
    """``allocate --pipeline``: the recommended chain, the runner-ups and the Pareto frontier."""
    console = console or default_console()
    for p in plans:
        extra = ", ".join(f"{k}={v}" for k, v in p.key.items() if v is not None)
        b = p.best
        console.print(f"[bold]{p.metric}, {p.eval_set}[/bold] ({extra}): budget {p.budget:.4g} {p.cost_metric} "
                      f"per query; {p.candidates} chains searched")
        console.print(f"  best: [bold]{_chain_name(b)}[/bold]: predicted {b.predicted:.4f} "
                      f"[{_num(b.lower)}, {_num(b.upper)}] at {b.cost:.4g} {p.cost_metric}"
                      + (f" (measured {b.measured:.4f})" if b.measured is not None else ""))
        if p.best_measured is not None:
            m = p.best_measured
            console.print(f"  best measured chain under the budget: {_chain_name(m)}: {m.measured:.4f} at "
                          f"{m.cost:.4g} {p.cost_metric} (law {m.predicted:.4f})")
        law = p.fit
        console.print(f"  chain law: {law.get('formula')}; b {law['params']['b']:.3g}, c {law['params']['c']:.3g}, "
                      f"gamma {law['params']['gamma']:.3g}; R² {_num(law.get('r2'), '.3f')} on {law['chains']} "
                      f"chains of {len(law['sizes'])} reranker sizes")
        for title, rows in (("runner-ups", p.runner_ups), ("Pareto frontier (quality vs cost)", p.frontier)):
            table = Table(title=title)
            for name in ("chain", "predicted", f"{int(round(100 * law['level']))}% interval", "measured",
                         p.cost_metric, "from"):
                table.add_column(name)
            for c in rows:
                table.add_row(*_candidate_row(c))
            console.print(table)
        for note in p.notes:
            console.print(f"  [yellow]note:[/yellow] {note}")


def chain_backtest(bt, console: Console | None = None) -> None:
    """``backtest --chains``: the hidden chains' forecasts and their error and coverage."""
    console = console or default_console()
    table = Table(title=f"chain law, {bt.metric}: {bt.hidden} hidden, fitted on the rest")
    for name in ("hidden", "chain", "actual", "predicted", f"{int(round(100 * bt.level))}% interval", "inside"):
        table.add_column(name)
    for r in bt.cases.sort("hidden", "first_stage", "depth").iter_rows(named=True):
        inside = r["lower"] <= r["actual"] <= r["upper"]
        table.add_row(r["hidden"], f"{r['first_stage']} -> N {_size(r['params'])} @ {r['depth']}",
                      f"{r['actual']:.4f}", f"{r['predicted']:.4f}", f"[{_num(r['lower'])}, {_num(r['upper'])}]",
                      "yes" if inside else "no")
    console.print(table)
    console.print(f"  {bt.cases.height} hidden chains: mean abs error {bt.mae:.4f} (first stage alone: "
                  f"{bt.mae_first_stage:.4f}), coverage of the {int(round(100 * bt.level))}% interval "
                  f"{bt.coverage:.0%}")
    for note in bt.notes:
        console.print(f"  [yellow]note:[/yellow] {note}")
