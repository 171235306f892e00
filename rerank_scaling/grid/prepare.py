"""The prepare step: build everything a study's cells read, once, as its own job.

``grid prepare EXPERIMENT`` (and ``grid run`` before its cells start) runs
:func:`prepare_study`: for the cells given (default: all) it loads each
collection into the cache's memory-mapped stores, builds the BM25 index of each
corpus and the candidate arrays of every training and evaluation query set,
and fills the teacher caches (a distillation teacher's scores of every training
pair; a query-distill teacher's training targets and document index). All of
it lands in the cells' ``cache_dir`` (default: the toolkit's cache), keyed by
content, so the cells -- local workers or SLURM jobs -- only read it; run
again, it finds everything and returns quickly.

On a cluster the step belongs on a compute node, not in the driver:
:func:`prepare_job` is a plain module-level function of picklable arguments
(the experiment file's path and the cells' run ids) that a submitter (submitit,
a SLURM script: ``rerank-scaling grid prepare EXPERIMENT``) runs as one job
before the cells; the cache folder must be on storage the cells share.
"""

from __future__ import annotations

import time
from pathlib import Path

from rerank_scaling.config import Experiment, RunConfig, load_experiment


def prepare_study(experiment: Experiment, cells: list[RunConfig] | None = None) -> dict:
    """Build the caches the ``cells`` (default: every cell of ``experiment``) read (module docstring);
    returns a summary (counts and seconds). Raises :class:`UserError` naming the experiment file for bad
    data (a budget larger than the training set, an empty evaluation set, ...)."""
    from rerank_scaling.grid.checks import check_data
    from rerank_scaling.pipeline.prepare import training_key, training_set
    from rerank_scaling.pipeline.teacher import scores_training_pairs, teacher_scores

    started = time.perf_counter()
    cells = experiment.cells if cells is None else cells
    available = check_data(experiment, cells)  # collections, indexes, candidates, query-distill teachers
    teachers = set()
    for cell in cells:
        if scores_training_pairs(cell):
            key = (cell.teacher, training_key(cell), cell.eval_batch_size)
            if key not in teachers:
                teachers.add(key)
                teacher_scores(cell.teacher, training_set(cell)[0], cell.cache_dir, cell.eval_batch_size)
    return {"cells": len(cells), "training_sets": len(available), "teachers": len(teachers),
            "seconds": round(time.perf_counter() - started, 1)}


def prepare_job(experiment_path: str, run_ids: list[str] | None = None) -> dict:
    """:func:`prepare_study` for the cells ``run_ids`` (default: all) of the experiment file at
    ``experiment_path``: the function a cluster submitter runs as the study's prepare job."""
    experiment = load_experiment(Path(experiment_path))
    cells = None if run_ids is None else [c for c in experiment.cells if c.run_id in set(run_ids)]
    return prepare_study(experiment, cells)
