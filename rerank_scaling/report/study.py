"""Gather the facts of a study folder: its table, its experiment file, its cells.

Reads only what the grid wrote, through :class:`rerank_scaling.rundir.StudyFolder`
(the tidy table, collected first when missing but cells exist; the experiment
file, optional: the report says what it lacks; every cell's config, status
and data files, optional). Everything is sorted, so two reads of the same
folder give the same facts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from rerank_scaling.config import Experiment, load_experiment
from rerank_scaling.errors import UserError
from rerank_scaling.objectives import OBJECTIVES
from rerank_scaling.results import read_table
from rerank_scaling.report.wording import Wording, wording
from rerank_scaling.rundir import CellState, RunFolder, StudyFolder, read_json
from rerank_scaling.scaling import lower_is_better, run_values
from rerank_scaling.scaling.table import load_results

HEADLINE = "ndcg@10"
PER_QUERY_MAX_BYTES = 5_000_000  # a study's per-query table is exported beside its report up to this size
# the order metrics are shown in; others follow alphabetically, losses last
METRIC_ORDER = ("ndcg@10", "map", "mrr@10")


def metric_order(metrics) -> list[str]:
    def key(m: str):
        return (lower_is_better(m), METRIC_ORDER.index(m) if m in METRIC_ORDER else len(METRIC_ORDER), m)

    return sorted(set(metrics), key=key)


@dataclass(frozen=True)
class EvalSetInfo:
    name: str
    in_domain: bool | None
    collection: str | None = None
    split: str | None = None
    max_queries: int | None = None
    queries: int | None = None  # judged queries evaluated (data.json of a cell)

    @property
    def domain(self) -> str:
        return {True: "in-domain", False: "out-of-domain"}.get(self.in_domain, "unknown")


@dataclass(frozen=True)
class Teacher:
    """The teacher of a study's distillation cells, as far as its folder tells (a hub id tells nothing)."""

    source: str  # as the cells recorded it; a local folder relative to the study folder
    objectives: tuple[str, ...]  # the distillation objectives it taught
    model: str | None = None  # from its run folder, when it is one of this toolkit
    family: str | None = None
    objective: str | None = None
    steps: int | None = None
    values: dict = field(default_factory=dict)  # eval set -> its final HEADLINE
    bm25: dict = field(default_factory=dict)  # eval set -> BM25's HEADLINE in its own run


def shown_path(value, folder: Path):
    """A path as a report may print it: an absolute one relative to ``folder`` (the study folder), anything
    else as it was given. Non-strings pass through."""
    if isinstance(value, str) and len(value) > 1 and os.path.isabs(value):
        return os.path.relpath(value, Path(folder).resolve())
    return value


def _relative(value, folder: Path):
    """``value`` (a config or record: dicts, lists, strings) with every absolute path relative to ``folder``."""
    if isinstance(value, dict):
        return {k: _relative(v, folder) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relative(v, folder) for v in value]
    return shown_path(value, folder)


def _teacher(source: str, objectives: tuple[str, ...], study_folder: Path) -> Teacher:
    run = RunFolder(source)
    shown = shown_path(source, study_folder)
    if not (run.exists() and run.metrics.exists() and run.config.exists()):
        return Teacher(shown, objectives)
    config = read_json(run.config)
    metrics = read_table(run.metrics)
    head = metrics.filter(pl.col("metric") == HEADLINE)
    values = {r["eval_set"]: float(r["value"]) for r in
              head.sort("step").group_by("eval_set", maintain_order=True).agg(pl.col("value").last()).to_dicts()}
    bm25 = {}
    if run.baseline.exists():
        base = read_table(run.baseline).filter(pl.col("metric") == HEADLINE)
        bm25 = {r["eval_set"]: float(r["value"]) for r in base.to_dicts()}
    model = metrics["model"][0] if "model" in metrics.columns and metrics.height else None
    steps = int(metrics["step"].max()) if "step" in metrics.columns and metrics.height else config.get("steps")
    return Teacher(shown, objectives, model, config.get("family"), config.get("objective"), steps,
                   dict(sorted(values.items())), bm25)


@dataclass
class Study:
    folder: Path
    results_path: Path
    collected: bool  # results.parquet was written by this report (it was missing)
    name: str
    description: str
    experiment: Experiment | None
    experiment_note: str
    table: pl.DataFrame  # normalised by the analyzer (exposure, run, baseline columns added)
    cells: tuple[CellState, ...]
    eval_sets: tuple[EvalSetInfo, ...]
    per_query: pl.DataFrame | None = None  # run, eval_set, metric, qid, value (final checkpoints), when recorded
    stored_teachers: tuple[Teacher, ...] | None = None  # from the cells digest of a report folder (no cells/)
    finals: pl.DataFrame = field(init=False)  # one row per trained run x eval set x metric: final value

    def __post_init__(self) -> None:
        self.finals = run_values(self.trained)

    @property
    def trained(self) -> pl.DataFrame:
        """The rows of every trained model (every run but the BM25 baseline's), whatever its family."""
        return self.table.filter(~pl.col("baseline"))

    @property
    def baseline(self) -> pl.DataFrame:
        return self.table.filter(pl.col("baseline"))

    @property
    def metrics(self) -> list[str]:
        return metric_order(self.trained["metric"].unique().to_list())

    @property
    def objectives(self) -> list[str]:
        return sorted(self.trained["objective"].unique().to_list())

    @property
    def param_sizes(self) -> list[float]:
        return sorted(float(p) for p in self.trained["params"].unique().to_list())

    def column_values(self, column: str) -> list:
        if column not in self.trained.columns:
            return []
        return sorted(v for v in self.trained[column].unique().to_list() if v is not None)

    def models(self) -> list[dict]:
        """One row per model (of each family): model, family, ladder, size, params, total_params,
        trainable_params, runs (sorted by params)."""
        cols = [c for c in ("ladder", "size", "total_params", "trainable_params") if c in self.trained.columns]
        agg = [pl.col(c).first() for c in cols] + [pl.col("run").n_unique().alias("runs")]
        by = ["model", "params", *(["family"] if "family" in self.trained.columns else [])]
        out = self.trained.group_by(*by).agg(*agg).sort("params", "model", *by[2:])
        return out.to_dicts()

    def eval_set(self, name: str) -> EvalSetInfo:
        return next(e for e in self.eval_sets if e.name == name)

    @property
    def in_domain_sets(self) -> list[str]:
        return [e.name for e in self.eval_sets if e.in_domain]

    @property
    def config(self) -> dict:
        """config.json of the first finished cell (else of any cell; ``{}`` without cells)."""
        for state in ("done", "failed", "running", "pending"):
            for cell in self.cells:
                if cell.state == state and cell.config:
                    return cell.config
        return {}

    @property
    def families(self) -> list[str]:
        """The study's model families: the table's ``family`` column (filled from the cells' config by
        :func:`load_study` for tables written before it), else the experiment's cells."""
        families = self.column_values("family")
        if not families and self.experiment and self.experiment.cells:
            families = sorted({c.family for c in self.experiment.cells})
        return families

    @property
    def words(self) -> Wording:
        """The families' words (reranker, bi-encoder, retrievers, ...) and whether they are a first stage."""
        return wording(tuple(self.families) or None)

    def configs(self) -> list[dict]:
        return [c.config for c in self.cells if c.config]

    def only_family(self, family: str) -> Study:
        """This study restricted to one family's models (BM25's rows kept; cells of the family only)."""
        keep = pl.col("baseline") | (pl.col("family") == family)
        per_query = None if self.per_query is None else self.per_query.filter(
            pl.col("run").is_in(self.table.filter(keep)["run"].unique().to_list()))
        return dataclasses.replace(self, table=self.table.filter(keep), per_query=per_query,
                                   cells=tuple(c for c in self.cells if c.config.get("family", family) == family))

    def teachers(self) -> list[Teacher]:
        """The teacher(s) of the distillation cells (``[train] teacher`` of cells whose objective distils), each
        with what its run folder says about it (model, objective, steps, its own final ndcg@10 and BM25's)."""
        if self.stored_teachers is not None:
            return list(self.stored_teachers)
        taught: dict[str, set[str]] = {}
        for c in self.configs():
            objective = OBJECTIVES.get(str(c.get("objective")))
            if c.get("teacher") and objective is not None and objective.distils:
                taught.setdefault(str(c["teacher"]), set()).add(str(c["objective"]))
        return [_teacher(src, tuple(sorted(objs)), self.folder) for src, objs in sorted(taught.items())]

    def cells_in(self, state: str) -> list[CellState]:
        return [c for c in self.cells if c.state == state]


def _experiment(folder: StudyFolder) -> tuple[Experiment | None, str]:
    if not folder.experiment.exists():
        return None, "no experiment.toml in the study folder"
    try:
        return load_experiment(folder.experiment), ""
    except UserError as exc:
        return None, f"experiment.toml could not be read ({exc})"


def _eval_sets(table: pl.DataFrame, experiment: Experiment | None, cells: tuple[CellState, ...],
               folder: Path) -> tuple[EvalSetInfo, ...]:
    specs: dict[str, dict] = {}
    for spec in experiment.evals if experiment else ():  # the experiment file's own words first: its paths as
        # the user wrote them (a cell's config.json holds them resolved, absolute)
        specs.setdefault(spec.name, dataclasses.asdict(spec))
    for cell in cells:  # the cells fill in sets the file does not name
        for spec in cell.config.get("evals", []) or []:
            if isinstance(spec, dict) and "name" in spec:
                specs.setdefault(str(spec["name"]), spec)
    queries: dict[str, int] = {}
    for state in ("done", "failed"):
        for cell in cells:
            if cell.state != state:
                continue
            for name, info in (cell.data.get("eval") or {}).items():
                if isinstance(info, dict) and isinstance(info.get("queries"), int):
                    queries.setdefault(name, info["queries"])
    domain: dict[str, bool] = {}
    if "in_domain" in table.columns:
        for name, flag in table.group_by("eval_set").agg(pl.col("in_domain").any()).iter_rows():
            if flag is not None:
                domain[name] = bool(flag)
    out = []
    for name in sorted(table["eval_set"].unique().to_list()):
        spec = specs.get(name, {})
        flag = domain.get(name, spec.get("in_domain") if isinstance(spec.get("in_domain"), bool) else None)
        out.append(EvalSetInfo(name, flag, shown_path(spec.get("collection"), folder), spec.get("split"),
                               spec.get("max_queries"), queries.get(name)))
    return tuple(sorted(out, key=lambda e: (e.in_domain is not True, e.name)))


def load_study(folder: Path | str) -> Study:
    """Read a study folder (collecting ``results.parquet`` first if only cells exist)."""
    study = StudyFolder(folder)
    if not study.path.is_dir():
        raise UserError(f"{study.path}: no such study folder")
    results = study.results
    collected = False
    if not results.exists():
        if not study.cells():
            raise UserError(f"{study.path}: no results.parquet and no cells/ to collect it from "
                            "(run `rerank-scaling grid run` first)")
        from rerank_scaling.results import collect

        collect(study.path)
        collected = True
    table = load_results(results)
    if table.filter(~pl.col("baseline")).height == 0:
        raise UserError(f"{results}: no model rows (only the BM25 baseline), nothing to report")
    experiment, note = _experiment(study)
    cells = tuple(cell.state() for cell in study.cells())
    stored = None
    if not cells and study.cells_digest.exists():  # a report folder: the cells' facts, exported beside it
        cells, stored = read_digest(study.cells_digest)
    # a table (or rows) written before the family column held one family: the cells' own, else a reranker's
    family = next((c.config["family"] for c in cells if c.config.get("family")), None)
    if family is None and experiment and experiment.cells:
        family = experiment.cells[0].family
    known = pl.col("family") if "family" in table.columns else pl.lit(None, dtype=pl.Utf8)
    table = table.with_columns(family=pl.when(pl.col("baseline")).then(None)
                               .otherwise(pl.coalesce(known, pl.lit(family or "cross-encoder"))).cast(pl.Utf8))
    per_query = read_table(study.per_query) if study.per_query.exists() else None
    return Study(
        folder=study.path, results_path=results, collected=collected,
        name=(experiment.study.name if experiment else None) or study.path.resolve().name,
        description=experiment.description if experiment else "",
        experiment=experiment, experiment_note=note, table=table, cells=cells,
        eval_sets=_eval_sets(table, experiment, cells, study.path), per_query=per_query, stored_teachers=stored,
    )


def read_digest(path: Path) -> tuple[tuple[CellState, ...], tuple[Teacher, ...]]:
    """The cells and teachers :func:`export_study` wrote."""
    try:
        data = json.loads(Path(path).read_text())
        cells = tuple(CellState(**c) for c in data["cells"])
        teachers = tuple(Teacher(**{**t, "objectives": tuple(t["objectives"])}) for t in data.get("teachers", []))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a cells digest this toolkit wrote ({exc})") from None
    return cells, teachers


DIGEST_MAX_LIST = 50  # longer lists in a cell's data.json (the ids of its training queries) stay out of the digest


def _digested(cell: CellState) -> CellState:
    """A cell as the digest keeps it: its data.json without id lists no report reads."""
    def short(v):
        if isinstance(v, dict):
            return {k: short(x) for k, x in v.items() if not (isinstance(x, list) and len(x) > DIGEST_MAX_LIST)}
        return v

    return dataclasses.replace(cell, data=short(cell.data))


def export_study(study: Study, dest: Path) -> list[Path]:
    """Make ``dest`` (a report's folder) a study folder a report can be regenerated from without retraining:
    ``results.parquet``, ``per_query.parquet`` (up to :data:`PER_QUERY_MAX_BYTES`), ``experiment.toml`` and
    ``cells.json`` (each cell's config, status, data and hardware records, and the distillation teachers, every
    absolute path made relative to ``dest``). Nothing is written when ``dest`` is the study folder itself.
    Returns the files written."""
    dest = Path(dest)
    if dest.resolve() == study.folder.resolve():
        return []
    out = StudyFolder(dest)
    written = []
    pairs = [(study.results_path, out.results), (StudyFolder(study.folder).experiment, out.experiment)]
    source_pq = StudyFolder(study.folder).per_query
    if source_pq.exists() and source_pq.stat().st_size <= PER_QUERY_MAX_BYTES:
        pairs.append((source_pq, out.per_query))
    elif out.per_query.exists():
        out.per_query.unlink()  # a stale one would pair with the wrong runs
    for src, dst in pairs:
        if src.exists():
            tmp = dst.with_name(f".{dst.name}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
            written.append(dst)
    cells = [_relative(dataclasses.asdict(_digested(c)), dest) for c in study.cells]
    teachers = []
    for t in study.teachers():  # a local teacher folder, named relative to dest instead of the study folder
        local = Path(t.source) if os.path.isabs(t.source) else study.folder / t.source
        source = shown_path(str(local.resolve()), dest) if local.exists() else t.source
        teachers.append({**dataclasses.asdict(t), "source": source})
    tmp = out.cells_digest.with_name(f".{out.cells_digest.name}.tmp")
    tmp.write_text(json.dumps({"cells": cells, "teachers": teachers}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, out.cells_digest)
    return [*written, out.cells_digest]
