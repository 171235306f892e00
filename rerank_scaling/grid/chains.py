"""The chain phase of a grid: every first stage x reranker x depth of ``[chain]``, evaluated end to end.

After its cells, ``grid run`` evaluates the experiment's chains
(:class:`~rerank_scaling.config.experiment.ChainSettings`): each first stage
-- ``bm25`` (the study's BM25 index), this grid's retriever cells (``grid``),
or the retriever runs of another study folder (``study:PATH``), those that
saved their model and pass ``first_stage_filter`` -- ranks every eval set once
(cached in ``chains/first-stages/``); each reranker (a cross-encoder cell of
the grid with a saved model, never retrained) reorders its top ``depth`` for
every depth. Depth 0 is the first stage alone. Rows and costs:
:mod:`rerank_scaling.evaluation.chain`, :mod:`rerank_scaling.pipeline.chain`.

Resumable: one rows file per chain (``chains/rows/<chain>.parquet``, written
atomically and last), skipped when present (a model retrained after its chains
ran: remove their files; a first stage's cached ranking is keyed by its model's
fingerprint, so it is measured again); ``results.collect`` adds them to
``results.parquet`` (``stage = "chain"``). Planning (:func:`plan_chains`, what
``grid run --dry-run`` lists) is torch-free and reads no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rerank_scaling.config import Experiment, RunConfig
from rerank_scaling.errors import UserError, warn
from rerank_scaling.rundir import RunFolder, StudyFolder, read_json, write_json

BM25 = "bm25"


@dataclass(frozen=True)
class FirstStage:
    key: str  # file-safe and unique in the study: "bm25", a grid cell's run id, <study folder>.<run id>
    label: str  # the tidy table's first_stage: "bm25" or "<family>/<model>"
    source: str  # "bm25", "grid" or "study:PATH"
    folder: Path | None = None  # the run folder holding model/ (None: BM25)
    family: str | None = None


@dataclass(frozen=True)
class Chain:
    first_stage: FirstStage
    reranker: RunConfig | None  # None: the first stage alone (depth 0)
    depth: int

    @property
    def id(self) -> str:
        return f"{self.first_stage.key}__{self.reranker.run_id if self.reranker else 'none'}__k{self.depth}"

    @property
    def run(self) -> str:
        """Its run name in ``per_query.parquet``."""
        return f"chain:{self.id}"


@dataclass
class ChainPlan:
    first_stages: list[FirstStage]
    rerankers: list[RunConfig]
    depths: tuple[int, ...]
    notes: list[str]  # a study: folder not there yet, ...

    @property
    def chains(self) -> list[Chain]:
        alone = [Chain(fs, None, 0) for fs in self.first_stages]
        return alone + [Chain(fs, rr, k) for fs in self.first_stages for rr in self.rerankers for k in self.depths]


def _label(config: dict | RunConfig) -> str:
    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    return f"{config.family}/{config.model.name}"


def _study_stages(experiment: Experiment, source: str, notes: list[str], strict: bool) -> list[FirstStage]:
    from rerank_scaling.models import FAMILIES

    folder = Path(source.removeprefix("study:"))
    study = StudyFolder(folder)
    if not study.cells_dir.is_dir():
        message = f"chain.first_stages: {source}: not a study folder (no cells/ inside)"
        if strict:
            raise UserError(f"{experiment.path}: {message}")
        notes.append(message + "; read when the chains run")
        return []
    out = []
    for cell in study.cells():
        config = cell.read_config()
        family = config.get("family", "cross-encoder")
        if family not in FAMILIES or FAMILIES[family].stage != "retrieval" or not experiment.chain.matches(config):
            continue
        if not config.get("save_model", True):
            continue
        out.append(FirstStage(f"{folder.name}.{cell.name}", _label(config), source, cell.path, family))
    if not out:
        message = (f"chain.first_stages: {source}: no retriever run with a saved model passes first_stage_filter "
                   f"({dict(experiment.chain.first_stage_filter) or 'none'})")
        if strict:
            raise UserError(f"{experiment.path}: {message}")
        notes.append(message)
    return out


def plan_chains(experiment: Experiment, out: Path | None = None, strict: bool = False) -> ChainPlan | None:
    """The chains of ``experiment`` (None without ``[chain]``). ``out``: the study folder (this grid's retriever
    cells' folders); ``strict``: a ``study:`` folder that is missing or holds no matching run is an error
    (``grid run``), else a note (``--dry-run``). Two first stages of one label are an error."""
    from rerank_scaling.models import FAMILIES

    chain = experiment.chain
    if chain is None:
        return None
    study = StudyFolder(out or Path("runs") / experiment.name)
    stages, notes = [], []
    for source in chain.first_stages:
        if source == BM25:
            stages.append(FirstStage(BM25, BM25, BM25))
        elif source == "grid":
            stages += [FirstStage(c.run_id, _label(c), source, study.cell(c.run_id).path, c.family)
                       for c in experiment.cells if FAMILIES[c.family].stage == "retrieval" and c.save_model
                       and chain.matches(c.to_dict())]
        else:
            stages += _study_stages(experiment, source, notes, strict)
    seen: dict[str, FirstStage] = {}
    for fs in stages:
        if fs.label in seen:
            raise UserError(f"{experiment.path}: chain: first stages {seen[fs.label].key} and {fs.key} are both "
                            f"'{fs.label}': narrow first_stage_filter so that one run of each model remains")
        seen[fs.label] = fs
    return ChainPlan(stages, experiment.rerankers, chain.depths, notes)


def plan_json(plan: ChainPlan) -> dict:
    return {"first_stages": [{"key": f.key, "label": f.label, "source": f.source} for f in plan.first_stages],
            "rerankers": [c.run_id for c in plan.rerankers], "depths": list(plan.depths),
            "chains": [c.id for c in plan.chains], "count": len(plan.chains), "notes": plan.notes}


def plan_table(plan: ChainPlan):
    """A rich table: one row per first stage, with its chains."""
    from rich.table import Table

    n = len(plan.chains)
    title = (f"chains: {len(plan.first_stages)} first stages x {len(plan.rerankers)} rerankers x depths "
             f"{', '.join(map(str, plan.depths))} + each first stage alone = {n} chains")
    out = Table(title=title)
    for col in ("first stage", "source", "rerankers (sizes)", "chains"):
        out.add_column(col)
    sizes = ", ".join(f"{c.ladder} {c.size}" for c in plan.rerankers)
    for fs in plan.first_stages:
        out.add_row(fs.label, fs.source if fs.source != "grid" else f"grid ({fs.key})", sizes,
                    str(1 + len(plan.rerankers) * len(plan.depths)))
    for note in plan.notes:
        out.add_row(f"[yellow]{note}[/]", "", "", "")
    return out


# --------------------------------------------------------------------------- #
# running them (torch from here on, imported inside)
# --------------------------------------------------------------------------- #
def _final_columns(cell: RunFolder) -> dict | None:
    """A reranker cell's columns at its final checkpoint (its run, family, params, step, ...)."""
    from rerank_scaling.results import read_rows

    rows = read_rows(cell.metrics)
    if not rows:
        return None
    last = max(r["step"] for r in rows)
    row = next(r for r in rows if r["step"] == last)
    return {k: v for k, v in row.items() if k not in ("eval_set", "in_domain", "metric", "value")}


ALONE = {"run": "none", "family": None, "model": "none", "ladder": "none", "size": "", "params": 0,
         "total_params": 0, "trainable_params": 0, "size_axis": None, "objective": "none", "supervision": "none",
         "budget": 0, "seed": 0, "step": 0, "examples_seen": 0, "tokens_seen": 0, "flops": 0.0}


def _ready(folder: Path | None) -> bool:
    return folder is None or ((RunFolder(folder).read_status() or {}).get("state") == "done"
                              and (folder / RunFolder.model).is_dir())


def run_chains(experiment: Experiment, out: Path, console=None) -> dict:
    """Evaluate every chain of ``experiment`` not yet in ``out`` (module docstring); returns counts."""
    import platform

    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rerank_scaling.pipeline import chain as measure
    from rerank_scaling.pipeline.prepare import bm25_index_for, evaluation_set, load
    from rerank_scaling.pipeline.teacher import load_teacher
    from rerank_scaling.results import frame, per_query_frame, write_parquet
    from rerank_scaling.runtime import setup_process

    plan = plan_chains(experiment, out, strict=True)
    study = StudyFolder(out)
    settings = experiment.chain
    todo = [c for c in plan.chains if not study.chain_rows(c.id).exists()]
    counts = {"chains": len(plan.chains), "done_before": len(plan.chains) - len(todo), "evaluated": 0, "skipped": 0}
    if not todo:
        return counts
    base = plan.rerankers[0]
    threads = (base.threads or 1) * experiment.hardware.workers
    setup_process(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    meta = {"device": torch.cuda.get_device_name() if device == "cuda" else
            f"cpu ({platform.processor() or platform.machine()})", "threads": torch.get_num_threads(),
            "torch": torch.__version__, "host": platform.node(), "batch_queries": settings.batch_queries,
            "latency_queries": settings.latency_queries, "rerank_batch_size": base.eval_batch_size,
            "list_depth": measure.list_depth(settings.depths),
            "timing": "chain-ms: median over latency_queries queries, one at a time, of first-stage (query encode + "
                      "search of the pre-encoded corpus / BM25 index) + reranking its depth pairs in one forward; "
                      "chain-ms-batched: batch_queries queries encoded and searched together, their pairs reranked "
                      "rerank_batch_size at a time, per query; the models' tokenisation cached before timing (BM25's "
                      "search includes its query tokenisation)"}
    write_json(study.chains_meta, meta)
    evalsets = [evaluation_set(base, spec) for spec in base.evals]
    # BM25 searches the index of the whole collection (the one the cells' candidates came from)
    specs = {spec.name: spec.collection for spec in base.evals}

    def index_of(name: str):
        return bm25_index_for(base, load(base, specs[name]))

    k = measure.list_depth(settings.depths)
    metrics = base.metrics
    finals = {c.run_id: _final_columns(study.cell(c.run_id)) for c in plan.rerankers}
    with Progress(TextColumn("[bold]chains"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task("chains", total=len(plan.chains), completed=counts["done_before"])
        for fs in plan.first_stages:
            mine = [c for c in todo if c.first_stage == fs]
            if not mine:
                continue
            if not _ready(fs.folder):
                warn(f"chains of {fs.label} skipped: its run {fs.folder} is not done with a saved model")
                counts["skipped"] += len(mine)
                bar.advance(task, len(mine))
                continue
            records = _first_stage_records(study, fs, evalsets, k, settings, base, threads, device, index_of)
            columns = {"stage": "chain", "first_stage": fs.label, "first_stage_params": records[0][1]["params"]}
            for chain in mine:
                if chain.reranker is not None:
                    continue
                rows, queries = [], []
                for (es, _, _), (_, record) in zip(evalsets, records):
                    per_query, timed = measure.alone_values(record, es, metrics)
                    more = measure.rows_of(per_query, timed, {**ALONE, **columns, "depth": 0}, es.name, es.in_domain,
                                           chain.run)
                    rows, queries = rows + more[0], queries + more[1]
                _write(study, chain, rows, queries, frame, per_query_frame, write_parquet)
                counts["evaluated"] += 1
                bar.advance(task)
            for rr in plan.rerankers:
                group = [c for c in mine if c.reranker is rr]
                if not group:
                    continue
                cell = study.cell(rr.run_id)
                if not _ready(cell.path) or finals[rr.run_id] is None:
                    warn(f"chains of reranker {rr.run_id} skipped: its cell is not done with a saved model")
                    counts["skipped"] += len(group)
                    bar.advance(task, len(group))
                    continue
                model = load_teacher(str(cell.path), label=rr.run_id).to(device)
                by_depth = {c.depth: ([], []) for c in group}
                for (es, _, _), (_, record) in zip(evalsets, records):
                    results = measure.rerank_pass(model, record, es, sorted(by_depth), metrics, settings.batch_queries,
                                                  rr.eval_batch_size)
                    for depth, (per_query, timed) in results.items():
                        chain = next(c for c in group if c.depth == depth)
                        more = measure.rows_of(per_query, timed, {**finals[rr.run_id], **columns, "depth": depth},
                                               es.name, es.in_domain, chain.run)
                        by_depth[depth][0].extend(more[0])
                        by_depth[depth][1].extend(more[1])
                for chain in group:
                    _write(study, chain, *by_depth[chain.depth], frame, per_query_frame, write_parquet)
                    counts["evaluated"] += 1
                    bar.advance(task)
                del model
    return counts


def _first_stage_records(study: StudyFolder, fs: FirstStage, evalsets: list, k: int, settings, base: RunConfig,
                         threads: int, device: str, index_of) -> list[tuple[str, dict]]:
    """``(eval set, record)`` of each eval set: the saved record when it was made by the same model for the same
    queries and depth, else measured (:mod:`rerank_scaling.pipeline.chain`) and saved (atomically)."""
    from rerank_scaling.models.family import model_fingerprint
    from rerank_scaling.pipeline import chain as measure
    from rerank_scaling.pipeline.teacher import load_teacher

    model, out = None, []
    version = model_fingerprint(str(fs.folder)) if fs.folder is not None else BM25  # a retrained model: measured again
    for es, _, _ in evalsets:
        path = study.first_stage_ranking(fs.key, es.name)
        timed = measure.timed_queries(list(es.collection.queries), settings.latency_queries)
        want = {"source": str(fs.folder or BM25), "model": version, "k": k, "queries": sorted(es.collection.queries),
                "timed": timed}
        record = read_json(path)
        if any(record.get(key) != value for key, value in want.items()):
            if fs.folder is None:
                record = measure.bm25_pass(index_of(es.name), es, k, timed, settings.batch_queries, threads)
            else:
                if model is None:
                    model = load_teacher(str(fs.folder), label=fs.label).to(device)
                record = measure.retriever_pass(model, es, k, timed, settings.batch_queries, base.eval_batch_size,
                                                base.eval_chunk_docs, base.embedding_dtype)
            record.update(want)
            write_json(path, record)
        out.append((es.name, record))
    return out


def _write(study: StudyFolder, chain: Chain, rows, queries, frame, per_query_frame, write_parquet) -> None:
    """A chain's per-query values, then its rows (last: their file says the chain is done)."""
    write_parquet(per_query_frame(queries), study.chain_per_query(chain.id))
    write_parquet(frame(rows), study.chain_rows(chain.id))


def chain_summary(counts: dict) -> str:
    return (f"{counts['chains']} chains: {counts['evaluated']} evaluated, {counts['done_before']} done before"
            + (f", {counts['skipped']} skipped (their run not done)" if counts["skipped"] else ""))

