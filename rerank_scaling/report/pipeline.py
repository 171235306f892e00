"""The report's section on chained runs (first stage -> reranker at a depth): the best chain under a few
budgets first, then every measured chain's measured vs predicted quality, the frontier figure, and the
chain law's backtest with the largest reranker hidden. Numbers from :func:`.analysis.chain_analysis`."""

from __future__ import annotations

from rerank_scaling.report.analysis import ChainAnalysis
from rerank_scaling.report.tables import size as fmt_size
from rerank_scaling.report.tables import md_table


def _name(c) -> str:
    return f"{c.first_stage} alone" if c.params == 0 else f"{c.first_stage} -> {c.reranker} @ {c.depth}"


def _iv(lo, hi) -> str:
    return "—" if lo is None or hi is None or lo != lo or hi != hi else f"[{lo:.3f}, {hi:.3f}]"


def pipeline_section(chains: ChainAnalysis | None, figure: str | None) -> list[str]:
    if chains is None:
        return []
    out = ["## 0. Whole pipeline: first stage x reranker x depth", ""]
    if not chains.fits:
        return out + [f"No chain law: {'; '.join(chains.notes)}", ""]
    m, cost = chains.metric, chains.cost_metric
    if chains.plans:
        out += [f"**Best chain under a budget** (predicted {m} by the chain law, 90% interval; budgets at the 25th, "
                f"50th and 90th percentile of the measured chains' {cost} per query):", ""]
        rows = []
        for p in chains.plans:
            b = p.best
            bm = p.best_measured
            rows.append([f"{p.budget:.4g}", p.eval_set, _name(b), f"{b.predicted:.3f}", _iv(b.lower, b.upper),
                         "—" if b.measured is None else f"{b.measured:.3f}", f"{b.cost:.4g}",
                         "—" if bm is None else f"{_name(bm)}: {bm.measured:.3f}"])
        out += [md_table(["budget (" + cost + ")", "eval set", "recommended chain", "predicted", "90% interval",
                          "measured", "its cost", "best measured chain under the budget"], rows), ""]
    fits = chains.fits
    out += ["The chain law, fitted per reranker condition on every measured chain: "
            f"`{fits[0]['formula']}` (y0: the first stage alone; r: its recall at the depth; scaling/README.md):", ""]
    out += [md_table(["condition", "b", "c", "gamma", "R²", "chains", "reranker sizes"],
                 [[", ".join(str(f.get(k)) for k in ("eval_set", "objective") if f.get(k) is not None),
                   f"{f['params']['b']:.3g}", f"{f['params']['c']:.3g}", f"{f['params']['gamma']:.3g}",
                   "—" if f["r2"] is None else f"{f['r2']:.3f}", str(f["chains"]),
                   ", ".join(fmt_size(s) for s in f["sizes"])] for f in fits]), ""]
    bt = chains.backtest
    if bt is not None:
        out += [f"**Backtest**: the law fitted without {bt['hidden']} forecasts its {bt['chains']} chains with mean "
                f"abs error {bt['mae']:.4f} (the first stage alone as the forecast: {bt['mae_first_stage_alone']:.4f}); "
                f"{bt['coverage']:.0%} of them inside their 90% interval (the rows marked *held out* below).", ""]
    if figure:
        out += [f"![chains vs cost]({figure})", "",
                f"*{m} on {chains.frontier_eval_set} vs {cost} per query: the law's frontier with its 90% band (grey), every measured chain "
                "(dots, one colour per first stage), each first stage alone (stars), the rerankers over BM25 "
                "joined by depth.*", ""]
    pts = chains.points.sort("eval_set", "first_stage", "params", "depth")
    rows = [[r["eval_set"], r["first_stage"], "—" if r["depth"] == 0 else r["model"]
             + (" (held out)" if r["held_out"] else ""), str(r["depth"]),
             "—" if r.get("recall") is None else f"{r['recall']:.3f}", f"{r['y']:.3f}",
             "(measured)" if r["depth"] == 0 else "—" if r["predicted"] is None else f"{r['predicted']:.3f}",
             "" if r["depth"] == 0 else _iv(r["lower"], r["upper"]),
             "—" if not cost or r.get(cost) is None else f"{r[cost]:.4g}"] for r in pts.iter_rows(named=True)]
    out += ["Every measured chain, measured vs forecast by the law fitted on all but the largest reranker size:", ""]
    out += [md_table(["eval set", "first stage", "reranker", "depth", "fs-recall", f"{m} measured", "forecast",
                      "90% interval", cost or "cost"], rows), ""]
    out += [f"*Note: {n}*" for n in chains.notes] + ([""] if chains.notes else [])
    return out
