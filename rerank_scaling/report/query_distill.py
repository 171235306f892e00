"""The ScalingNote section: distilled query towers against their teacher, quality and latency.

Only for studies with ``retained-*`` rows (``query-distill`` runs,
:mod:`rerank_scaling.evaluation.distilled`). The teacher's values come from the
cells' ``status.json`` (``teacher``: measured in each student's run, over the
same cached document index, on the same device); the students' from the tidy
table. Per eval set: each query tower's quality, the fraction of the teacher's
it keeps, its query-encoding latency and its speed-up over the teacher's query
tower, and the default estimator's forecast of the retained quality of the held-out size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import median

import polars as pl

from rerank_scaling.evaluation.distilled import LATENCY_PREFIX, RETAINED
from rerank_scaling.report import tables as T
from rerank_scaling.report.analysis import Analysis
from rerank_scaling.report.study import HEADLINE, Study

SHOWN = ("ndcg@10", "map", "mrr@10", "recall@100")


@dataclass(frozen=True)
class Student:
    run: str
    model: str
    params: float
    variant: tuple
    values: dict  # metric -> final value (retained-* and query-ms-* included)


def applies(study: Study) -> bool:
    return any(m.startswith(RETAINED) for m in study.metrics)


def teachers(study: Study) -> dict[str, dict]:
    """Each finished cell's record of its teacher (measured in that cell's run), by run id."""
    return {c.run: c.teacher for c in study.cells if c.state == "done" and c.teacher}


def teacher_info(study: Study) -> dict:
    """The study's teacher: the first cell's record, its latency the median over the cells' timings
    (``query_ms_all``: every cell's)."""
    records = list(teachers(study).values())
    if not records:
        return {}
    times = sorted(r["query_ms"] for r in records if T.finite(r.get("query_ms")))
    return {**records[0], "query_ms": median(times) if times else None, "query_ms_all": times}


def latency_metric(study: Study) -> str | None:
    return next((m for m in study.metrics if m.startswith(LATENCY_PREFIX)), None)


def retained_metric(study: Study) -> str | None:
    """The metric whose retained fraction the section leads with: the headline, else the first shown."""
    return next((m for m in (HEADLINE, *SHOWN) if RETAINED + m in study.metrics), None)


def _variant_keys(study: Study) -> list[str]:
    """The student columns that vary across the study (supervision, budget)."""
    return [k for k in ("supervision", "budget") if len(study.column_values(k)) > 1]


def students(study: Study, eval_set: str) -> list[Student]:
    """One entry per run with retained rows on ``eval_set``, by size."""
    finals = study.finals.filter(pl.col("eval_set") == eval_set)
    keys = _variant_keys(study)
    out = []
    for run in sorted(finals["run"].unique().to_list()):
        rows = finals.filter(pl.col("run") == run)
        values = dict(zip(rows["metric"].to_list(), rows["value"].to_list()))
        if not any(m.startswith(RETAINED) for m in values):
            continue
        first = rows.row(0, named=True)
        out.append(Student(run, first["model"], float(first["params"]), tuple(first.get(k) for k in keys), values))
    return sorted(out, key=lambda s: (s.params, s.model, tuple(map(str, s.variant))))


def figure_points(study: Study, eval_set: str) -> tuple[list[Student], dict, str, str] | None:
    """What :func:`rerank_scaling.report.figures.retained_latency_figure` draws, or None."""
    latency = latency_metric(study)
    metric = retained_metric(study)
    teacher = teacher_info(study)
    points = [s for s in students(study, eval_set) if latency in s.values and RETAINED + metric in s.values] \
        if latency and metric else []
    return (points, teacher, metric, latency) if points else None


def _law_lines(analysis: Analysis, metric: str, eval_set: str) -> list[str]:
    """The default estimator's forecast of the held-out student sizes' retained quality, against the measured."""
    rows = [f for f in analysis.default_forecasts.get(RETAINED + metric, []) if f["eval_set"] == eval_set]
    if not rows:
        why = analysis.estimator_note or "no student size larger than the fit cut"
        return [f"No forecast of `{RETAINED + metric}`: {why}.", ""]
    lines = [f"Default estimator (`{analysis.estimator}`) on the student sizes up to {T.size(analysis.cut)}:"]
    for fc in rows:
        lines.append(f"`{fc['model']}` (N = {T.size(fc['params'])}) forecast {T.num(fc['predicted'])} "
                     f"{T.interval(fc['lower'], fc['upper'])}, measured {T.num(fc['actual'])} "
                     f"({'inside' if fc['covered'] else 'outside'} the interval).")
    return [" ".join(lines), ""]


def scalingnote_section(study: Study, analysis: Analysis, figures: dict[str, str]) -> list[str]:
    if not applies(study):
        return []
    teacher, latency = teacher_info(study), latency_metric(study)
    device = latency.removeprefix(LATENCY_PREFIX) if latency else "?"
    t_ms = teacher.get("query_ms")
    name = Path(str(teacher.get("source", "teacher"))).name or "teacher"
    lines = ["## 0. Query-tower distillation (ScalingNote)", "",
             "Each student is a small query tower distilled from the teacher's query tower (`query-distill`: "
             "MSE + (1 - cosine) between their query embeddings; Huang et al., 2024); every student searches the "
             "teacher's document index (the teacher's document embeddings, encoded once and cached), so a "
             "student's quality against the teacher's is what its query tower keeps. *Retained* = student / "
             f"teacher on the same eval set. Latency: median ms to encode one query (batch 1) on {device}, over "
             "the same timed queries for every model, tokenisation excluded; the teacher is timed in every "
             "student's run, and each *speed-up* is the teacher's ms over the student's in the same run (CPU "
             "timings move with what else the machine runs). N counts the query tower only (the document tower "
             "is the teacher's, fixed).", ""]
    times = teacher.get("query_ms_all") or []
    if len(times) > 1:
        lines += [f"The teacher's latency over the {len(times)} runs: median {T.num(t_ms, 2)} ms, range "
                  f"{T.num(times[0], 2)}-{T.num(times[-1], 2)} ms.", ""]
    if not teacher:
        lines += ["The cells record no teacher (status.json `teacher`): the teacher's own row is missing.", ""]
    metric, shown, keys, per_run = retained_metric(study), [m for m in SHOWN if m in study.metrics], \
        _variant_keys(study), teachers(study)
    for es in study.eval_sets:
        rows_s = students(study, es.name)
        if not rows_s:
            continue
        t_values = (teacher.get("values") or {}).get(es.name, {})
        head = ["query tower", "N", *keys]
        for m in shown:
            head += [m, "retained"]
        head += ["ms/query", "speed-up"]
        body = [[f"teacher `{name}`", T.size(teacher.get("params")) if teacher.get("params") else T.DASH,
                 *[T.DASH] * len(keys),
                 *[c for m in shown for c in (T.num(t_values.get(m)), "100%" if t_values.get(m) else T.DASH)],
                 T.num(t_ms, 2), "1.0x" if T.finite(t_ms) else T.DASH]]
        for s in rows_s:
            ms = s.values.get(latency) if latency else None
            own = per_run.get(s.run, {}).get("query_ms")
            speed = f"{own / ms:.1f}x" if T.finite(own) and T.finite(ms) and ms > 0 else T.DASH
            body.append([f"`{s.model}`", T.size(s.params), *[T.plain(v) for v in s.variant],
                         *[c for m in shown for c in (T.num(s.values.get(m)), T.pct(s.values.get(RETAINED + m)))],
                         T.num(ms, 2), speed])
        lines += [f"### {es.name} ({es.domain})", "",
                  T.md_table(head, body, "ll" + "l" * len(keys) + "rr" * len(shown) + "rr"), ""]
        if metric:
            best = max(rows_s, key=lambda s: s.values.get(RETAINED + metric, float("-inf")))
            lines += [f"**Best retained {metric}**: `{best.model}` keeps "
                      f"{T.pct(best.values.get(RETAINED + metric))} of the teacher's {metric} "
                      f"({T.num(best.values.get(metric))} vs {T.num(t_values.get(metric))})"
                      + (f" at {T.num(best.values.get(latency), 2)} ms/query vs the teacher's {T.num(t_ms, 2)}."
                         if latency and T.finite(best.values.get(latency)) else "."), ""]
            lines += _law_lines(analysis, metric, es.name)
        if es.name in figures:
            lines += [f"![retained {metric} vs latency]({figures[es.name]})", "",
                      f"*Retained {metric} vs query-encoding latency, one point per student; the teacher at 100%.*",
                      ""]
    return lines
