"""The report's figures (matplotlib, Agg canvas, no pyplot global state).

Fixed size and dpi, no ``Software`` metadata, sorted iteration: the same study gives the same PNG bytes.
Every forecast mark is the default estimator's (:mod:`.analysis`: the held-out sizes and the next size);
no law curve is drawn. Rules a reader can trust: a distinct colour (and marker) per series, at most
:data:`MAX_SERIES` series per panel, the legend inside the saved canvas, no min-max stretching (a flat
series stays flat), one panel per objective (and supervision), families told apart by line style.

* :func:`size_figure` -- a metric vs model size: runs, size means, the forecasts of held-out sizes and of
  the next size with their intervals, BM25.
* :func:`exposure_figure` -- a metric vs examples seen, one line per run (largest budget), coloured by size.
* :func:`metrics_figure` -- every quality metric's relative change from the smallest size vs size, with the
  default estimator's forecast of the held-out size on the same scale.
* :func:`data_figure` -- the contrastive entropy vs the data budget D, one line per size (studies with budgets).
* :func:`frontier_figure` -- chained runs: the chain law's frontier (quality with its band vs cost per query),
  the measured chains, each first stage alone, the rerankers over BM25.
* :func:`retained_latency_figure` -- distilled query towers: the teacher's quality they retain vs their
  query-encoding latency, the teacher at 100%.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import polars as pl

from rerank_scaling.data.util import keep_library_caches_in_cache

keep_library_caches_in_cache()  # before matplotlib is imported: its font cache goes into our cache

from matplotlib import colormaps  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter  # noqa: E402

from rerank_scaling.evaluation.distilled import RETAINED  # noqa: E402
from rerank_scaling.report.analysis import LEVEL, NEXT_SIZE, Analysis  # noqa: E402
from rerank_scaling.report.study import Study  # noqa: E402
from rerank_scaling.report.tables import size as fmt_size  # noqa: E402
from rerank_scaling.scaling import direction, lower_is_better  # noqa: E402

DPI = 110
PANEL = (4.8, 3.7)  # inches per subplot
MIN_WIDTH = 7.5  # inches: room for the title and a legend row below a single panel
MAX_SERIES = 6  # series per panel; more are not told apart
# distinct hues, the order series are given them in (tab10 without its grey and olive)
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:cyan")
MARKERS = ("o", "s", "^", "v", "P", "X", "<", ">")  # no "D": an open diamond marks a held-out size
FAMILY_STYLES = ("-", "--", "-.", ":")  # one line style per model family
SIZE_AXIS = "non-embedding parameters N (log scale)"
EXPOSURE_AXIS = "examples seen (query groups, log scale)"
PANEL_KEYS = ("objective", "supervision")  # one panel per value combination that varies
SERIES_KEYS = ("family", "budget")  # one series per value combination that varies


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.replace("@", "")).strip("-") or "x"


def _figure(n_panels: int, sharey: bool = True) -> tuple[Figure, list]:
    ncols = min(n_panels, 3)
    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(max(PANEL[0] * ncols, MIN_WIDTH), PANEL[1] * nrows + 0.5), dpi=DPI, layout=None)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _finish(fig: Figure, handles: list, title: str, ncol: int = 3) -> None:
    """Suptitle and one legend below the panels; :func:`_save` keeps both inside the canvas."""
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(ncol, len(handles)),
                   fontsize=8, frameon=False)


def _short(v: float, _pos=None) -> str:
    return fmt_size(v).replace("K", "k")


def _log_axis(ax) -> None:
    """Log x axis labelled at 1, 2, 5 x 10^k in short units (2M, 5M, 10M): no overlapping minor labels."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_short))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _save(fig: Figure, path: Path) -> None:
    """PNG with everything drawn inside it (legends below the axes included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None}, bbox_inches="tight", pad_inches=0.15)


def _bm25(study: Study, eval_set: str, metric: str) -> float | None:
    rows = study.baseline.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    return float(rows["value"][0]) if rows.height else None


def _varying(df: pl.DataFrame, keys) -> list[str]:
    return [k for k in keys if k in df.columns and df[k].n_unique() > 1]


def _combos(df: pl.DataFrame, keys: list[str]) -> list[tuple]:
    if not keys:
        return [()]
    return sorted({tuple(r[k] for k in keys) for r in df.select(keys).iter_rows(named=True)},
                  key=lambda t: tuple((0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v)) for v in t))


def _where(df: pl.DataFrame, keys: list[str], values: tuple) -> pl.DataFrame:
    for k, v in zip(keys, values):
        df = df.filter(pl.col(k) == v)
    return df


def _matches(row: dict, keys: list[str], values: tuple) -> bool:
    return all(row.get(k) == v for k, v in zip(keys, values))


def _label(keys: list[str], values: tuple) -> str:
    """A series' name: its family, ``budget 64``, ..."""
    return ", ".join(f"budget {_short(v)}" if k == "budget" else str(v) for k, v in zip(keys, values))


def _title(keys: list[str], values: tuple, df: pl.DataFrame) -> str:
    """A panel's title: ``objective: listnet; supervision: human`` (the objective even when it does not vary)."""
    named = dict(zip(keys, values))
    if "objective" not in named and "objective" in df.columns and df.height:
        named = {"objective": df["objective"][0], **named}
    return "; ".join(f"{k}: {v}" for k, v in named.items())


def _largest_budget(df: pl.DataFrame) -> pl.DataFrame:
    """One budget per configuration: the largest (figures by size show the best-fed models)."""
    if "budget" in df.columns and df["budget"].n_unique() > 1:
        keys = [c for c in ("family", "objective", "supervision") if c in df.columns]
        df = df.filter(pl.col("budget") == pl.col("budget").max().over(keys))
    return df


def _size_grid(study: Study) -> tuple[float, float]:
    sizes = study.param_sizes
    return sizes[0] / 1.5, sizes[-1] * NEXT_SIZE * 1.4


def _interval_mark(ax, x: float, row: dict, colour, marker: str, transform=lambda v: v) -> None:
    """A forecast: its marker at the prediction, a vertical bar over its interval (both through ``transform``)."""
    y = transform(row["predicted"])
    lo, hi = sorted((transform(row["lower"]), transform(row["upper"])))
    if math.isfinite(lo) and math.isfinite(hi):
        ax.errorbar([x], [y], yerr=[[max(y - lo, 0.0)], [max(hi - y, 0.0)]], fmt="none", ecolor=colour,
                    elinewidth=1.6, capsize=4, zorder=6)
    ax.plot([x], [y], marker, color=colour, markersize=10 if marker == "*" else 8, markeredgewidth=2,
            markeredgecolor=colour, markerfacecolor="white" if marker == "*" else colour, linestyle="", zorder=7)


def size_figure(study: Study, analysis: Analysis, eval_set: str, metric: str, path: Path) -> None:
    finals = _largest_budget(study.finals.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric)))
    panel_keys, series_keys = _varying(finals, PANEL_KEYS), _varying(finals, SERIES_KEYS)
    panels, series = _combos(finals, panel_keys), _combos(finals, series_keys)[:MAX_SERIES]
    fig, axes = _figure(len(panels))
    bm25 = _bm25(study, eval_set, metric)
    held = [f for f in analysis.default_forecasts.get(metric, []) if f["eval_set"] == eval_set]
    nxt = [f for f in analysis.next_forecasts.get(metric, []) if f["eval_set"] == eval_set]
    families = study.families
    for i, (ax, pv) in enumerate(zip(axes, panels)):
        sub = _where(finals, panel_keys, pv)
        for si, sv in enumerate(series):
            colour, marker = COLOURS[si % len(COLOURS)], MARKERS[si % len(MARKERS)]
            pts = _where(sub, series_keys, sv)
            if pts.height == 0:
                continue
            family = dict(zip(series_keys, sv)).get("family") or (pts["family"][0] if "family" in pts.columns else None)
            style = FAMILY_STYLES[families.index(family) % len(FAMILY_STYLES)] if family in families else "-"
            cut = analysis.cut_of(family)
            means = pts.group_by("params").agg(pl.col("value").mean()).sort("params")
            ax.plot(pts["params"].to_numpy(), pts["value"].to_numpy(), marker, color=colour, markersize=4,
                    alpha=0.45, linestyle="", zorder=3)
            ax.plot(means["params"].to_numpy(), means["value"].to_numpy(), style, color=colour, linewidth=1.4,
                    zorder=4)
            fitted = means.filter(pl.col("params") <= cut)
            out = means.filter(pl.col("params") > cut)
            ax.plot(fitted["params"].to_numpy(), fitted["value"].to_numpy(), marker, color=colour, markersize=6,
                    linestyle="", zorder=5)
            ax.plot(out["params"].to_numpy(), out["value"].to_numpy(), "D", markerfacecolor="white",
                    markeredgecolor=colour, markeredgewidth=1.8, markersize=8, linestyle="", zorder=5)
            for f in held + nxt:
                if _matches(f, panel_keys, pv) and _matches(f, series_keys, sv) and \
                        (f.get("family") in (None, family)):
                    _interval_mark(ax, f["params"] * (1.06 if f in held else 1.0), f, colour, "x" if f in held else "*")
        if bm25 is not None:
            ax.axhline(bm25, color="dimgray", linestyle="--", linewidth=1.2)
        if not analysis.cuts:
            ax.axvline(analysis.cut, color="gray", linestyle=":", linewidth=1.0)
        _log_axis(ax)
        ax.set_xlim(*_size_grid(study))
        ax.set_title(_title(panel_keys, pv, sub), fontsize=11)
        ax.set_xlabel(SIZE_AXIS)
        if i % 3 == 0:
            ax.set_ylabel(f"{metric} (final checkpoint)")
        ax.grid(True, which="both", alpha=0.25)
    handles = [Line2D([], [], color=COLOURS[si % len(COLOURS)], marker=MARKERS[si % len(MARKERS)],
                      linestyle=_style_of(sv, series_keys, families), label=_label(series_keys, sv))
               for si, sv in enumerate(series) if series_keys]
    handles += [
        Line2D([], [], color="0.3", marker="o", linestyle="", label="size in the fit (mean; small: runs)"),
        Line2D([], [], color="0.3", marker="D", markerfacecolor="white", linestyle="", label="held-out size (actual)"),
        Line2D([], [], color="0.3", marker="x", markeredgewidth=2, linestyle="-",
               label=f"default forecast, {analysis.level:.0%} interval"),
        Line2D([], [], color="0.3", marker="*", markerfacecolor="white", linestyle="-",
               label=f"forecast at {NEXT_SIZE:g}x the largest N"),
    ]
    if not analysis.cuts:
        handles.append(Line2D([], [], color="gray", linestyle=":", label=f"fit cut ({fmt_size(analysis.cut)})"))
    if bm25 is not None:
        handles.append(Line2D([], [], color="dimgray", linestyle="--", label=f"BM25 ({bm25:.3f})"))
    _finish(fig, handles, f"{metric} vs model size: {eval_set} ({study.eval_set(eval_set).domain})")
    _save(fig, path)


def _style_of(sv: tuple, series_keys: list[str], families: list[str]) -> str:
    family = dict(zip(series_keys, sv)).get("family")
    return FAMILY_STYLES[families.index(family) % len(FAMILY_STYLES)] if family in families else "-"


def _size_colours(sizes: list[float]) -> dict[float, tuple]:
    """Ordered, distinct colours for model sizes (viridis without its pale yellow end)."""
    cmap = colormaps["viridis"]
    return {p: cmap(0.85 * k / max(len(sizes) - 1, 1)) for k, p in enumerate(sizes)}


def exposure_figure(study: Study, eval_set: str, metric: str, path: Path) -> bool:
    """Learning curves; False (nothing written) when no run has three checkpoints or more to draw."""
    rows = _largest_budget(study.trained.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric)
                                                  & pl.col("exposure").is_not_null() & (pl.col("exposure") > 0)))
    counts = rows.group_by("run").agg(pl.col("exposure").n_unique().alias("n"))
    keep = counts.filter(pl.col("n") >= 3)["run"].to_list()
    rows = rows.filter(pl.col("run").is_in(keep))
    if rows.height == 0:
        return False
    panel_keys = _varying(rows, PANEL_KEYS)
    panels = _combos(rows, panel_keys)
    fig, axes = _figure(len(panels))
    sizes = sorted({float(p) for p in rows["params"].unique().to_list()})
    colour = _size_colours(sizes)
    families = study.families
    names = {(float(m["params"]), m.get("family")): m["model"] for m in study.models()}
    bm25 = _bm25(study, eval_set, metric)
    for i, (ax, pv) in enumerate(zip(axes, panels)):
        sub = _where(rows, panel_keys, pv)
        for run in sorted(sub["run"].unique().to_list()):
            r = sub.filter(pl.col("run") == run).sort("exposure")
            p, fam = float(r["params"][0]), r["family"][0] if "family" in r.columns else None
            style = FAMILY_STYLES[families.index(fam) % len(FAMILY_STYLES)] if fam in families else "-"
            ax.plot(r["exposure"].to_numpy(), r["value"].to_numpy(), marker="o", linestyle=style, color=colour[p],
                    markersize=3.5, linewidth=1.3, alpha=0.9)
        if bm25 is not None:
            ax.axhline(bm25, color="dimgray", linestyle="--", linewidth=1.2)
        _log_axis(ax)
        ax.set_title(_title(panel_keys, pv, sub), fontsize=11)
        ax.set_xlabel(EXPOSURE_AXIS)
        if i % 3 == 0:
            ax.set_ylabel(metric)
        ax.grid(True, which="both", alpha=0.25)
    several = len(families) > 1
    present = sorted({(float(p), f) for p, f in rows.select("params", "family").iter_rows()}, key=lambda t: t[0]) \
        if "family" in rows.columns else [(p, None) for p in sizes]
    handles = [Line2D([], [], color=colour[p], marker="o",
                      linestyle=FAMILY_STYLES[families.index(f) % len(FAMILY_STYLES)] if several and f in families
                      else "-", label=f"{(f + ' ') if several and f else ''}{names.get((p, f), '')} (N = {fmt_size(p)})")
               for p, f in present]
    if bm25 is not None:
        handles.append(Line2D([], [], color="dimgray", linestyle="--", label=f"BM25 ({bm25:.3f})"))
    _finish(fig, handles, f"{metric} vs training exposure: {eval_set} ({study.eval_set(eval_set).domain})")
    _save(fig, path)
    return True


def metrics_figure(study: Study, analysis: Analysis, eval_set: str, path: Path) -> bool:
    """Every quality metric's relative change from the smallest size; False when there is nothing to draw."""
    # a retained-<metric> is its metric over a constant (the teacher's): the same relative change, drawn once
    metrics = [m for m in analysis.quality if m in study.metrics and not m.startswith(RETAINED)][:MAX_SERIES]
    finals = _largest_budget(study.finals.filter((pl.col("eval_set") == eval_set) & pl.col("metric").is_in(metrics)))
    if "supervision" in finals.columns and finals["supervision"].n_unique() > 1:  # one supervision: the human one
        sups = sorted(s for s in finals["supervision"].unique().to_list() if s is not None)
        finals = finals.filter(pl.col("supervision") == ("human" if "human" in sups else sups[0]))
    if finals.height == 0 or finals["params"].n_unique() < 2:
        return False
    metrics = [m for m in metrics if m in set(finals["metric"].to_list())]
    objectives = sorted(finals["objective"].unique().to_list())
    fig, axes = _figure(len(objectives))
    held = [f for m in metrics for f in analysis.default_forecasts.get(m, []) if f["eval_set"] == eval_set]
    for i, (ax, objective) in enumerate(zip(axes, objectives)):
        sub = finals.filter(pl.col("objective") == objective)
        family = sub["family"][0] if "family" in sub.columns else None
        cut = analysis.cut_of(family)
        for k, m in enumerate(metrics):
            colour, marker = COLOURS[k % len(COLOURS)], MARKERS[k % len(MARKERS)]
            means = sub.filter(pl.col("metric") == m).group_by("params").agg(pl.col("value").mean()).sort("params")
            if means.height < 2:
                continue
            x, v = means["params"].to_numpy(), means["value"].to_numpy()
            base, s = float(v[0]), direction(m)

            def rel(value, base=base, s=s):
                return s * (value - base) / abs(base) if base else math.nan

            y = np.array([rel(val) for val in v])
            ax.plot(x, y, "-", color=colour, linewidth=1.2, zorder=3)
            inside = x <= cut
            ax.plot(x[inside], y[inside], marker, color=colour, markersize=6, linestyle="", zorder=4)
            ax.plot(x[~inside], y[~inside], "D", markerfacecolor="white", markeredgecolor=colour,
                    markeredgewidth=1.8, markersize=8, linestyle="", zorder=5)
            for f in held:
                if f["metric"] == m and f.get("objective") == objective and f.get("family") in (None, family) \
                        and f.get("supervision") in (None, *sub["supervision"].unique().to_list()) \
                        and f.get("budget") in (None, *(sub["budget"].unique().to_list() if "budget" in sub.columns
                                                         else [])):
                    _interval_mark(ax, f["params"] * (1.0 + 0.03 * (k + 1)), f, colour, "x", rel)
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        if cut < finals["params"].max():
            ax.axvline(cut, color="gray", linestyle=":", linewidth=1.0)
        _log_axis(ax)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_title(f"objective: {objective}", fontsize=11)
        ax.set_xlabel(SIZE_AXIS)
        if i % 3 == 0:
            ax.set_ylabel("change from the smallest size (up = better)")
        ax.grid(True, which="both", alpha=0.25)
    handles = [Line2D([], [], color=COLOURS[k % len(COLOURS)], marker=MARKERS[k % len(MARKERS)],
                      label=f"{m} (lower is better: flipped)" if lower_is_better(m) else m)
               for k, m in enumerate(metrics)]
    handles += [Line2D([], [], color="0.3", marker="D", markerfacecolor="white", linestyle="",
                       label="held-out size (actual)"),
                Line2D([], [], color="0.3", marker="x", markeredgewidth=2, linestyle="-",
                       label=f"default forecast, {analysis.level:.0%} interval")]
    _finish(fig, handles, f"Quality metrics side by side: {eval_set} ({study.eval_set(eval_set).domain}), "
            "relative change from the smallest size")
    _save(fig, path)
    return True


def data_figure(study: Study, metric: str, eval_set: str, path: Path) -> bool:
    """``metric`` (final) vs the data budget D, one panel per supervision, one line per size."""
    rows = study.finals.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    if "budget" not in rows.columns or rows["budget"].n_unique() < 2:
        return False
    panel_keys = _varying(rows, ("objective", "supervision", "family"))
    panels = _combos(rows, panel_keys)
    fig, axes = _figure(len(panels))
    sizes = sorted({float(p) for p in rows["params"].unique().to_list()})
    colour = _size_colours(sizes)
    names = {float(m["params"]): m["model"] for m in study.models()}
    for i, (ax, pv) in enumerate(zip(axes, panels)):
        sub = _where(rows, panel_keys, pv)
        for k, p in enumerate(sizes):
            pts = sub.filter(pl.col("params") == p).group_by("budget").agg(pl.col("value").mean()).sort("budget")
            if pts.height:
                ax.plot(pts["budget"].to_numpy(), pts["value"].to_numpy(), marker=MARKERS[k % len(MARKERS)],
                        color=colour[p], linewidth=1.4, markersize=6)
        ax.set_xscale("log")
        budgets = sorted(float(b) for b in sub["budget"].unique().to_list())
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(_title(panel_keys, pv, sub), fontsize=11)
        ax.set_xlabel("training budget D (queries, log scale)")
        if i % 3 == 0:
            ax.set_ylabel(f"{metric} (final; lower is better)" if lower_is_better(metric) else metric)
        ax.grid(True, which="both", alpha=0.25)
    handles = [Line2D([], [], color=colour[p], marker=MARKERS[k % len(MARKERS)], label=f"{names.get(p, '')} "
                      f"(N = {fmt_size(p)})") for k, p in enumerate(sizes)]
    _finish(fig, handles, f"{metric} vs data budget: {eval_set} ({study.eval_set(eval_set).domain})")
    _save(fig, path)
    return True


def retained_latency_figure(study: Study, eval_set: str, points, teacher: dict, metric: str, latency: str,
                            path: Path) -> None:
    """One point per student (``points``: :class:`rerank_scaling.report.query_distill.Student`), x its
    ``latency`` (ms/query, log scale), y its retained ``metric``; the teacher at (its ms, 100%)."""
    fig, (ax,) = _figure(1)
    colours = _size_colours(sorted({p.params for p in points}))
    for p in points:
        colour = colours[p.params]
        x, y = p.values[latency], p.values[RETAINED + metric]
        ax.plot([x], [y], "o", color=colour, markersize=8, zorder=4)
        ax.annotate(f"{p.model} ({fmt_size(p.params)})", (x, y), textcoords="offset points", xytext=(6, 4),
                    fontsize=8)
    handles = [Line2D([], [], color=colours[min(colours)], marker="o", linestyle="",
                      label="distilled query tower (colour: size)")]
    t_ms = teacher.get("query_ms")
    if t_ms:
        ax.plot([t_ms], [1.0], "*", color="crimson", markersize=14, zorder=5)
        handles.append(Line2D([], [], color="crimson", marker="*", markersize=10, linestyle="",
                              label=f"teacher ({fmt_size(teacher.get('params', 0))}, {t_ms:.1f} ms)"))
    ax.axhline(1.0, color="dimgray", linestyle="--", linewidth=1.0)
    ax.set_xscale("log")
    ax.margins(x=0.1, y=0.1)  # the teacher's star and the labels stay inside the axes
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"query-encoding latency, ms/query, batch 1 ({latency.rsplit('-', 1)[-1]}, log scale)")
    ax.set_ylabel(f"retained {metric} (student / teacher)")
    ax.grid(True, which="both", alpha=0.25)
    _finish(fig, handles, f"Retained {metric} vs latency: {eval_set} ({study.eval_set(eval_set).domain})", ncol=2)
    _save(fig, path)


def frontier_figure(chains, path: Path) -> bool:
    """The chain law's Pareto frontier (predicted quality with its band vs cost per query), the measured
    chains as points (one colour per first stage), each first stage alone as a marked baseline, and the
    rerankers over BM25 joined by a line. ``chains``: :class:`~rerank_scaling.report.analysis.ChainAnalysis`."""
    if not chains.frontier or not chains.cost_metric:
        return False
    fig, (ax,) = _figure(1)
    front = sorted(chains.frontier, key=lambda c: c.cost)
    x = [c.cost for c in front]
    ax.fill_between(x, [c.lower for c in front], [c.upper for c in front], step="post", color="0.85",
                    label=f"law's frontier, {int(round(100 * LEVEL))}% band")
    ax.step(x, [c.predicted for c in front], where="post", color="0.3", label="law's frontier (predicted)")
    pts = chains.points.filter(pl.col("eval_set") == chains.frontier_eval_set)
    stages = sorted(pts["first_stage"].unique().to_list())
    handles = []
    for i, fs in enumerate(stages[:len(COLOURS)]):
        mine = pts.filter(pl.col("first_stage") == fs)
        chained = mine.filter(pl.col("depth") > 0)
        colour = COLOURS[i]
        ax.scatter(chained[chains.cost_metric].to_list(), chained["y"].to_list(), color=colour, s=14, alpha=0.8)
        alone = mine.filter(pl.col("depth") == 0)
        ax.scatter(alone[chains.cost_metric].to_list(), alone["y"].to_list(), color=colour, marker="*", s=90,
                   edgecolor="black", linewidth=0.5)
        handles.append(Line2D([], [], color=colour, marker="o", linestyle="", label=fs))
        if fs == "bm25":
            for _, run in chained.sort("params", "depth").group_by("run", maintain_order=True):
                ax.plot(run[chains.cost_metric].to_list(), run["y"].to_list(), color=colour, linewidth=0.8,
                        alpha=0.6)
    handles += [Line2D([], [], color="black", marker="*", linestyle="", label="first stage alone"),
                Line2D([], [], color=COLOURS[stages.index("bm25")] if "bm25" in stages else "black",
                       linewidth=0.8, label="a reranker over BM25, by depth")]
    ax.set_xscale("log")
    ax.set_xlabel(f"{chains.cost_metric} per query (log scale)")
    ax.set_ylabel(chains.metric)
    h, _ = ax.get_legend_handles_labels()
    _finish(fig, h + handles, f"{chains.metric} on {chains.frontier_eval_set}: chains vs cost per query", ncol=3)
    _save(fig, path)
    return True

