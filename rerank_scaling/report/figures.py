"""The report's figures (matplotlib, Agg canvas, no pyplot global state).

Fixed size and dpi, no ``Software`` metadata, sorted iteration: the same study
gives the same PNG bytes.

* :func:`size_figure` -- a metric vs model size per objective: runs, the fitted
  law, its prediction band, the forecasts of held-out sizes, BM25.
* :func:`exposure_figure` -- a metric vs examples seen, one line per run, coloured by size.
* :func:`metrics_figure` -- every metric min-max normalised (losses flipped) vs size,
  with its fitted law, so which metric extrapolates is visible at a glance.
* :func:`retained_latency_figure` -- distilled query towers: the teacher's quality they
  retain vs their query-encoding latency, the teacher at 100%.
"""

from __future__ import annotations

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
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from rerank_scaling.evaluation.distilled import RETAINED  # noqa: E402
from rerank_scaling.report.analysis import Analysis  # noqa: E402
from rerank_scaling.report.study import Study  # noqa: E402
from rerank_scaling.report.tables import size as fmt_size  # noqa: E402
from rerank_scaling.scaling import lower_is_better  # noqa: E402

DPI = 110
PANEL = (4.8, 3.7)  # inches per subplot
MIN_WIDTH = 7.5  # inches: room for the title and a legend row below a single panel
OBJECTIVE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
METRIC_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                  "tab:olive", "tab:cyan", "tab:gray")
SIZE_AXIS = "non-embedding parameters N (log scale)"
EXPOSURE_AXIS = "examples seen (query groups, log scale)"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.replace("@", "")).strip("-") or "x"


def _figure(n_panels: int, extra_height: float = 0.0) -> tuple[Figure, list]:
    ncols = min(n_panels, 3)
    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(max(PANEL[0] * ncols, MIN_WIDTH), PANEL[1] * nrows + 0.5 + extra_height), dpi=DPI, layout=None)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _finish(fig: Figure, handles: list, title: str, ncol: int = 4) -> None:
    """Suptitle, one legend below the panels, tight layout leaving room for both."""
    fig.suptitle(title, fontsize=12)
    height = fig.get_figheight()
    if handles:
        ncol = min(ncol, len(handles))
        rows = -(-len(handles) // ncol)
        fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, (0.22 * rows + 0.08) / height, 1, 1))
    else:
        fig.tight_layout()


def _short(v: float, _pos=None) -> str:
    return fmt_size(v).replace("K", "k")


def _log_axis(ax) -> None:
    """Log x axis labelled at 1, 2, 5 x 10^k in short units (2M, 5M, 10M): no overlapping minor labels."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_short))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})


def _variant(df: pl.DataFrame) -> pl.DataFrame:
    """One training variant per objective: the largest budget, human supervision when present."""
    if "supervision" in df.columns and df["supervision"].n_unique() > 1:
        sups = sorted(s for s in df["supervision"].unique().to_list() if s is not None)
        df = df.filter(pl.col("supervision") == ("human" if "human" in sups else sups[0]))
    if "budget" in df.columns and df["budget"].n_unique() > 1:
        df = df.filter(pl.col("budget") == pl.col("budget").max().over("objective"))
    return df


def _bm25(study: Study, eval_set: str, metric: str) -> float | None:
    rows = study.baseline.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    return float(rows["value"][0]) if rows.height else None


def _size_grid(study: Study) -> np.ndarray:
    sizes = study.param_sizes
    return np.geomspace(sizes[0] / 1.6, sizes[-1] * 1.6, 240)


def _groups(analysis: Analysis, metric: str, eval_set: str, objective: str) -> list:
    fits = analysis.fits.get(metric)
    if fits is None:
        return []
    return [g for g in fits.groups if g.key.get("eval_set") == eval_set and g.key.get("objective") == objective]


VARIANT_MARKERS = ("o", "s", "^", "v", "P", "X")
VARIANT_STYLES = ("-", "--", "-.", ":")


def _variant_label(key: dict, groups: list) -> str:
    if len(groups) < 2:
        return ""
    parts = [f"{k}={_short(v) if k == 'budget' else v}" for k, v in key.items()
             if k in ("family", "supervision", "budget") and v is not None]
    return ", ".join(parts)


def _of_group(df: pl.DataFrame, key: dict) -> pl.DataFrame:
    for k, v in key.items():
        if k in df.columns and v is not None:
            df = df.filter(pl.col(k) == v)
    return df


def size_figure(study: Study, analysis: Analysis, eval_set: str, metric: str, path: Path) -> None:
    finals = study.finals.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    objectives = sorted(finals["objective"].unique().to_list())
    fig, axes = _figure(len(objectives))
    grid = _size_grid(study)
    bm25 = _bm25(study, eval_set, metric)
    cut = analysis.cut
    variants: list[str] = []
    drew_band = False
    for i, (ax, objective) in enumerate(zip(axes, objectives)):
        colour = OBJECTIVE_COLOURS[i % len(OBJECTIVE_COLOURS)]
        pts = finals.filter(pl.col("objective") == objective)
        groups = _groups(analysis, metric, eval_set, objective)
        for gi, g in enumerate(groups):
            style, marker = VARIANT_STYLES[gi % 4], VARIANT_MARKERS[gi % len(VARIANT_MARKERS)]
            tag = _variant_label(g.key, groups)
            if tag and tag not in variants:
                variants.append(tag)
            fit = g.fit
            if fit.draws is not None and fit.draws.theta.shape[0] and fit.df >= 1:
                lo, hi = fit.interval(grid)
                if np.isfinite(lo).all() and np.isfinite(hi).all():
                    ax.fill_between(grid, lo, hi, color=colour, alpha=0.15 if gi == 0 else 0.08, linewidth=0)
                    drew_band = True
            ax.plot(grid, fit.predict(grid), style, color=colour, linewidth=1.6)
            mine, g_cut = _of_group(pts, g.key), analysis.cut_of(g.key.get("family"))
            fitted, held = mine.filter(pl.col("params") <= g_cut), mine.filter(pl.col("params") > g_cut)
            ax.plot(fitted["params"].to_numpy(), fitted["value"].to_numpy(), marker, color=colour, markersize=6,
                    linestyle="", zorder=4)
            ax.plot(held["params"].to_numpy(), held["value"].to_numpy(), "D", markerfacecolor="white",
                    markeredgecolor="crimson", markeredgewidth=1.8, markersize=7, linestyle="", zorder=6)
            if g.forecasts:
                ax.plot([f.params for f in g.forecasts], [f.predicted for f in g.forecasts], "x", color="black",
                        markersize=8, markeredgewidth=2, linestyle="", zorder=7)
        if not groups:
            ax.plot(pts["params"].to_numpy(), pts["value"].to_numpy(), "o", color=colour, markersize=6, zorder=4)
            ax.text(0.5, 0.5, "not enough sizes to fit", transform=ax.transAxes, ha="center", va="center",
                    fontsize=10, color="crimson", bbox={"facecolor": "white", "edgecolor": "crimson"})
        if bm25 is not None:
            ax.axhline(bm25, color="dimgray", linestyle="--", linewidth=1.2)
        ax.axvline(cut, color="gray", linestyle=":", linewidth=1.0)
        _log_axis(ax)
        ax.set_title(f"objective: {objective}", fontsize=11)
        ax.set_xlabel(SIZE_AXIS)
        if i % 3 == 0:
            ax.set_ylabel(f"{metric} (final checkpoint)")
        ax.grid(True, which="both", alpha=0.25)
    handles = [
        Line2D([], [], color="0.3", marker="o", linestyle="", label="run used in the fit"),
        Line2D([], [], color="crimson", marker="D", markerfacecolor="white", linestyle="", label="held-out run"),
        Line2D([], [], color="0.3", linestyle="-", label="fitted law"),
        *([Patch(color="0.3", alpha=0.25, label=f"{analysis.level:.0%} prediction interval")] if drew_band else []),
        Line2D([], [], color="black", marker="x", markeredgewidth=2, linestyle="", label="forecast"),
        Line2D([], [], color="gray", linestyle=":", label=f"fit cut ({fmt_size(cut)})"),
    ]
    if bm25 is not None:
        handles.append(Line2D([], [], color="dimgray", linestyle="--", label=f"BM25 ({bm25:.3f})"))
    for gi, tag in enumerate(variants):
        handles.append(Line2D([], [], color="0.3", linestyle=VARIANT_STYLES[gi % 4],
                              marker=VARIANT_MARKERS[gi % len(VARIANT_MARKERS)], label=tag))
    _finish(fig, handles, f"{metric} vs model size: {eval_set} ({study.eval_set(eval_set).domain})")
    _save(fig, path)


def exposure_figure(study: Study, eval_set: str, metric: str, path: Path) -> None:
    rows = study.trained.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric)
                                  & pl.col("exposure").is_not_null() & (pl.col("exposure") > 0))
    objectives = sorted(rows["objective"].unique().to_list())
    fig, axes = _figure(max(len(objectives), 1))
    sizes = study.param_sizes
    cmap = colormaps["viridis"]
    colour = {p: cmap(0.9 * k / max(len(sizes) - 1, 1)) for k, p in enumerate(sizes)}
    names = {float(r["params"]): r["model"] for r in study.models()}
    bm25 = _bm25(study, eval_set, metric)
    for i, (ax, objective) in enumerate(zip(axes, objectives)):
        sub = rows.filter(pl.col("objective") == objective)
        for run in sorted(sub["run"].unique().to_list()):
            r = sub.filter(pl.col("run") == run).sort("exposure")
            p = float(r["params"][0])
            ax.plot(r["exposure"].to_numpy(), r["value"].to_numpy(), "o-", color=colour[p], markersize=3.5,
                    linewidth=1.3, alpha=0.9)
        if bm25 is not None:
            ax.axhline(bm25, color="dimgray", linestyle="--", linewidth=1.2)
        _log_axis(ax)
        ax.set_title(f"objective: {objective}", fontsize=11)
        ax.set_xlabel(EXPOSURE_AXIS)
        if i % 3 == 0:
            ax.set_ylabel(metric)
        ax.grid(True, which="both", alpha=0.25)
    present = sorted({float(p) for p in rows["params"].unique().to_list()})
    handles = [Line2D([], [], color=colour[p], marker="o", label=f"{names.get(p, '')} (N = {fmt_size(p)})")
               for p in present]
    if bm25 is not None:
        handles.append(Line2D([], [], color="dimgray", linestyle="--", label=f"BM25 ({bm25:.3f})"))
    _finish(fig, handles, f"{metric} vs training exposure: {eval_set} ({study.eval_set(eval_set).domain})", ncol=3)
    _save(fig, path)


def metrics_figure(study: Study, analysis: Analysis, eval_set: str, path: Path) -> None:
    finals = _variant(study.finals.filter(pl.col("eval_set") == eval_set))
    means = finals.group_by("metric", "objective", "params").agg(pl.col("value").mean()).sort(
        "metric", "objective", "params")
    metrics = [m for m in study.metrics if m in set(means["metric"].to_list())]
    objectives = sorted(means["objective"].unique().to_list())
    fig, axes = _figure(max(len(objectives), 1))
    grid = _size_grid(study)
    span, constant = {}, set()
    for m in metrics:
        v = means.filter(pl.col("metric") == m)["value"].to_numpy()
        lo, hi = float(v.min()), float(v.max())
        if hi - lo <= 1e-9 * max(1.0, abs(lo)):  # the same at every size: nothing to fit, flagged
            constant.add(m)
        span[m] = (lo, hi if hi > lo else lo + 1e-9)

    def norm(m: str, v):
        lo, hi = span[m]
        v = np.asarray(v, dtype=float)
        if m in constant:
            return np.full(v.shape, 0.5)
        return (hi - v) / (hi - lo) if lower_is_better(m) else (v - lo) / (hi - lo)

    cut = analysis.cut
    chosen = {}  # objective -> the (supervision, budget) shown
    for objective in objectives:
        sub = finals.filter(pl.col("objective") == objective)
        chosen[objective] = {k: sub[k][0] for k in ("supervision", "budget") if k in sub.columns and sub.height}
    for i, (ax, objective) in enumerate(zip(axes, objectives)):
        if grid[-1] > cut:
            ax.axvspan(cut, grid[-1], color="0.92", zorder=0)
        for k, m in enumerate(metrics):
            colour = METRIC_COLOURS[k % len(METRIC_COLOURS)]
            pts = means.filter((pl.col("metric") == m) & (pl.col("objective") == objective))
            x, y = pts["params"].to_numpy(), norm(m, pts["value"].to_numpy())
            inside = x <= cut
            ax.plot(x[inside], y[inside], "o", color=colour, markersize=5, zorder=4)
            spread = 1.0 + 0.035 * (k - (len(metrics) - 1) / 2)  # side by side, not stacked
            ax.plot(x[~inside] * spread, y[~inside], "D", markerfacecolor="white", markeredgecolor=colour,
                    markeredgewidth=1.8, markersize=7, zorder=5)
            if m in constant:
                continue
            groups = [g for g in _groups(analysis, m, eval_set, objective)
                      if all(g.key.get(c) in (None, v) for c, v in chosen[objective].items())]
            for g in groups[:1]:
                ax.plot(grid, norm(m, g.fit.predict(grid)), "--", color=colour, linewidth=1.2, zorder=3)
        ax.axvline(cut, color="gray", linestyle=":", linewidth=1.0)
        _log_axis(ax)
        ax.set_ylim(-0.35, 1.35)
        ax.set_title(f"objective: {objective}", fontsize=11)
        ax.set_xlabel(SIZE_AXIS)
        if i % 3 == 0:
            ax.set_ylabel("normalised score (0 worst, 1 best)")
        ax.grid(True, which="both", alpha=0.25)
    handles = [Line2D([], [], color=METRIC_COLOURS[k % len(METRIC_COLOURS)], marker="o",
                      linestyle="" if m in constant else "--",
                      label=f"{m} (constant at every size: no law)" if m in constant
                      else f"{m} (flipped: lower is better)" if lower_is_better(m) else m)
               for k, m in enumerate(metrics)]
    handles += [Line2D([], [], color="black", marker="o", linestyle="", label="size used in the fit"),
                Line2D([], [], color="black", marker="D", markerfacecolor="white", linestyle="",
                       label="held-out size (actual)"),
                Line2D([], [], color="black", linestyle="--", label="fitted law (normalised)"),
                Patch(color="0.92", label="held out (forecast region)")]
    _finish(fig, handles, f"Which metrics extrapolate: {eval_set} ({study.eval_set(eval_set).domain}), "
            "min-max normalised per metric")
    _save(fig, path)


def retained_latency_figure(study: Study, eval_set: str, points, teacher: dict, metric: str, latency: str,
                            path: Path) -> None:
    """One point per student (``points``: :class:`rerank_scaling.report.query_distill.Student`), x its
    ``latency`` (ms/query, log scale), y its retained ``metric``; the teacher at (its ms, 100%)."""
    fig, (ax,) = _figure(1)
    cmap = colormaps["viridis"]
    sizes = sorted({p.params for p in points})
    for p in points:
        colour = cmap(0.9 * sizes.index(p.params) / max(len(sizes) - 1, 1))
        x, y = p.values[latency], p.values[RETAINED + metric]
        ax.plot([x], [y], "o", color=colour, markersize=8, zorder=4)
        ax.annotate(f"{p.model} ({fmt_size(p.params)})", (x, y), textcoords="offset points", xytext=(6, 4),
                    fontsize=8)
    handles = [Line2D([], [], color=cmap(0.45), marker="o", linestyle="", label="distilled query tower")]
    t_ms = teacher.get("query_ms")
    if t_ms:
        ax.plot([t_ms], [1.0], "*", color="crimson", markersize=14, zorder=5)
        handles.append(Line2D([], [], color="crimson", marker="*", markersize=10, linestyle="",
                              label=f"teacher ({fmt_size(teacher.get('params', 0))}, {t_ms:.1f} ms)"))
    ax.axhline(1.0, color="dimgray", linestyle="--", linewidth=1.0)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"query-encoding latency, ms/query, batch 1 ({latency.rsplit('-', 1)[-1]}, log scale)")
    ax.set_ylabel(f"retained {metric} (student / teacher)")
    ax.grid(True, which="both", alpha=0.25)
    _finish(fig, handles, f"Retained {metric} vs latency: {eval_set} ({study.eval_set(eval_set).domain})", ncol=2)
    _save(fig, path)
