"""Check a grid's data before any cell starts: every collection loads, every budget fits, the
lengths leave room for text; what is valid but doubtful is warned about once, with counts.

Also warms the on-disk caches (collections, BM25 candidates, a query-distill
teacher's training targets and document index) so that cells running in
parallel find them ready.
"""

from __future__ import annotations

from rerank_scaling.config import Experiment, RunConfig
from rerank_scaling.errors import UserError, warn


def _fail(experiment: Experiment, message: str) -> UserError:
    return UserError(f"{experiment.path}: {message}")


def check_data(experiment: Experiment, cells: list[RunConfig] | None = None) -> dict[str, int]:
    """Load every collection and count training queries; fail on any bad budget or set."""
    from rerank_scaling.pipeline.prepare import (evaluation_key, evaluation_set, held_out, text_room, training_key,
                                                 training_set)
    from rerank_scaling.pipeline.teacher import embeds_teacher_queries, warm_query_teacher

    available: dict[str, int] = {}
    seen_train, seen_eval, seen_teacher, seen_room = set(), set(), set(), set()
    warnings: list[str] = []
    sets: dict[tuple, object] = {}  # training / eval key -> its training set / eval set
    for cell in experiment.cells if cells is None else cells:
        warnings += cell.warnings()
        key = training_key(cell)
        if key not in seen_train:
            seen_train.add(key)
            try:
                tset, info = training_set(cell)
            except UserError as exc:
                raise _fail(experiment, str(exc)) from None
            available[cell.run_id] = len(tset.collection.queries)
            sets[key] = tset
            warnings += info["warnings"]
        corpora = {}
        for spec in cell.evals:
            ekey = evaluation_key(cell, spec)
            if ekey not in seen_eval:
                seen_eval.add(ekey)
                try:
                    evalset, _, info = evaluation_set(cell, spec)
                except UserError as exc:
                    raise _fail(experiment, f"eval '{spec.name}': {exc}") from None
                corpora[id(evalset.collection.docs)] = evalset.collection.docs
                sets[ekey] = evalset
                warnings += info["warnings"]
        room = (cell.family, cell.model, cell.max_length, cell.max_query_length, key,
                *(evaluation_key(cell, s) for s in cell.evals))
        if room not in seen_room:
            seen_room.add(room)
            evalsets = [sets[evaluation_key(cell, s)] for s in cell.evals]
            texts = [q for part in (sets[key], *evalsets) for q in part.collection.queries.values()]
            warnings += held_out(sets[key], evalsets)
            try:
                warnings += text_room(cell, texts)
            except UserError as exc:
                raise _fail(experiment, str(exc)) from None
        teacher = (cell.teacher, cell.cache_dir, cell.max_length, cell.max_query_length, key)
        if embeds_teacher_queries(cell) and teacher not in seen_teacher:
            seen_teacher.add(teacher)
            warm_query_teacher(cell, training_set(cell)[0], list(corpora.values()))
    for message in dict.fromkeys(warnings):
        warn(message)
    return available
