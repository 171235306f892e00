"""Build a study's report: REPORT.md plus figures/*.png beside it, written atomically.

Everything is produced in a temporary folder next to the output first; only
when all of it succeeded are the figures moved into ``figures/`` and, last,
the markdown renamed into place.  On any error nothing is left half-written.
A report written outside its study folder first gets the study's data beside it
(:func:`~rerank_scaling.report.study.export_study`, each file written atomically)
and is built from there, so that folder regenerates the same report.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path

from rerank_scaling.errors import UserError
from rerank_scaling.report import figures as F
from rerank_scaling.report import sections as S
from rerank_scaling.report.analysis import analyse, chain_analysis
from rerank_scaling.report.caveats import caveats
from rerank_scaling.report.data_scaling import data_appendix, data_section
from rerank_scaling.report.first_stage import first_stage_section
from rerank_scaling.report.pipeline import pipeline_section
from rerank_scaling.report.query_distill import figure_points, scalingnote_section
from rerank_scaling.report.robustness import robustness_section
from rerank_scaling.report.study import HEADLINE, Study, export_study, load_study
from rerank_scaling.rundir import output_folder

FIGURES = "figures"
_HEADING = re.compile(r"^## \d+\. (.*)$")


def _out_path(study_dir: Path, out: Path | str | None) -> Path:
    if out is None:
        return study_dir / "REPORT.md"
    out = Path(out)
    if out.is_dir() or str(out).endswith(os.sep):
        return out / "REPORT.md"
    return out


def _make_figures(study: Study, analysis, folder: Path) -> dict[str, dict]:
    """Write every PNG into ``folder``; returns, per kind, {key: relative path}."""
    out: dict[str, dict] = {"size": {}, "exposure": {}, "metrics": {}, "distilled": {}, "data": {}, "chains": {}}
    if analysis.chains is not None and F.frontier_figure(analysis.chains, folder / "chains_frontier.png"):
        out["chains"]["frontier"] = f"{FIGURES}/chains_frontier.png"
    if HEADLINE in study.metrics:
        for es in study.eval_sets:
            if study.finals.filter((study.finals["eval_set"] == es.name) & (study.finals["metric"] == HEADLINE)).height:
                name = f"size_{F.slug(HEADLINE)}_{F.slug(es.name)}.png"
                F.size_figure(study, analysis, es.name, HEADLINE, folder / name)
                out["size"][es.name] = f"{FIGURES}/{name}"
        for name_es in study.in_domain_sets or [study.eval_sets[0].name]:
            name = f"exposure_{F.slug(HEADLINE)}_{F.slug(name_es)}.png"
            if F.exposure_figure(study, name_es, HEADLINE, folder / name):
                out["exposure"][name_es] = f"{FIGURES}/{name}"
    # the side-by-side metrics figure: one per eval set, and per family when there are several (each family
    # its own ladder, cut and forecasts); keyed by (eval set, family or None)
    views = ([(f, study.only_family(f), analysis.for_family(f)) for f in study.families] if len(study.families) > 1
             else [(None, study, analysis)])
    for family, sub, sub_analysis in views:
        for es in sub.eval_sets if len(sub.param_sizes) >= 2 else []:
            name = f"metrics_{F.slug(family) + '_' if family else ''}{F.slug(es.name)}.png"
            if F.metrics_figure(sub, sub_analysis, es.name, folder / name):
                out["metrics"][(es.name, family)] = f"{FIGURES}/{name}"
    for es in study.eval_sets:
        drawn = figure_points(study, es.name)
        if drawn is not None:
            name = f"retained_latency_{F.slug(es.name)}.png"
            F.retained_latency_figure(study, es.name, *drawn, folder / name)
            out["distilled"][es.name] = f"{FIGURES}/{name}"
        if analysis.data is not None:
            name = f"data_{F.slug(analysis.data.metric)}_{F.slug(es.name)}.png"
            if F.data_figure(study, analysis.data.metric, es.name, folder / name):
                out["data"][es.name] = f"{FIGURES}/{name}"
    return out


def number_sections(lines: list[str]) -> list[str]:
    """Number the ``## N. Title`` headings in order (sections shown only for some studies write
    ``## 0.``) and point the header's caveats link at the caveats' number."""
    out, n, anchor = [], 0, S.CAVEATS_ANCHOR
    for line in lines:
        m = _HEADING.match(line)
        if m:
            n += 1
            line = f"## {n}. {m.group(1)}"
            if m.group(1) == "Caveats":
                anchor = f"{n}-caveats"
        out.append(line)
    link = f"](#{S.CAVEATS_ANCHOR})"
    return [line.replace(link, f"](#{anchor})") for line in out]


def render(study: Study, analysis, figure_paths: dict[str, dict]) -> str:
    found = caveats(study, analysis)
    lines = [
        *S.header(study, analysis, found),
        *S.study_section(study, analysis),
        *S.baselines_section(study),
        *first_stage_section(study),
        *robustness_section(study),
        *pipeline_section(analysis.chains, figure_paths["chains"].get("frontier")),
        *scalingnote_section(study, analysis, figure_paths["distilled"]),
        *S.size_section(study, analysis, figure_paths["size"]),
        *data_section(study, analysis, figure_paths["data"]),
        *S.verdict_section(study, analysis, figure_paths["metrics"]),
        *S.exposure_section(study, figure_paths["exposure"]),
        *S.caveats_section(found),
        *S.appendix(study, analysis, data_appendix(study, analysis)),
    ]
    lines = number_sections(lines)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def build_report(study_dir: Path | str, out: Path | str | None = None, fit_max_params: float | None = None,
                 n_boot: int = 300) -> Path:
    """Write the report of ``study_dir`` (``DIR/REPORT.md`` unless ``out``); returns its path.

    ``fit_max_params``: fit laws on runs with N at most this (default: the
    second-largest size, so the largest is held out). ``n_boot``: bootstrap
    resamples for every interval (seeded; 0 = no intervals).
    """
    study_dir = Path(study_dir)
    if n_boot < 0:
        raise UserError(f"--bootstrap must be >= 0, got {n_boot}")
    if fit_max_params is not None and not fit_max_params > 0:
        raise UserError(f"--fit-max-params must be positive, got {fit_max_params:g}")
    study = load_study(study_dir)
    out = _out_path(study_dir, out)
    output_folder(out.parent, "--out")  # before the analysis: a bad --out fails at once
    out.parent.mkdir(parents=True, exist_ok=True)
    if export_study(study, out.parent):  # a report written elsewhere: its folder becomes the study it is read
        # from (table, per-query values, experiment file, cells digest, paths relative to it), so the report is
        # the one `rerank-scaling report <that folder>` regenerates
        study = dataclasses.replace(load_study(out.parent), collected=study.collected)
    analysis = dataclasses.replace(analyse(study, fit_max_params, n_boot), chains=chain_analysis(study, n_boot))
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out.parent))
    try:
        paths = _make_figures(study, analysis, tmp / FIGURES)
        (tmp / out.name).write_text(render(study, analysis, paths), encoding="utf-8")
        published = out.parent / FIGURES
        published.mkdir(exist_ok=True)
        made = sorted((tmp / FIGURES).iterdir()) if (tmp / FIGURES).is_dir() else []
        for png in made:
            os.replace(png, published / png.name)
        for stale in sorted(published.glob("*.png")):  # a figure an earlier report drew and this one does not
            if stale.name not in {p.name for p in made}:
                stale.unlink()
        os.replace(tmp / out.name, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
