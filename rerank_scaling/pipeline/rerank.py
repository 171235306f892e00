"""`rerank-scaling rerank MODEL --run RUNFILE --collection C --out RUN`: rerank an existing TREC run with a model.

``MODEL`` is a run folder of this toolkit (its ``model/``), a saved model folder
(any family: a retriever scores pairs too), or a Hugging Face cross-encoder id
or folder. Each query's first ``--depth`` documents of ``RUNFILE`` (default:
all) are scored with the query's and the document's text from the collection
and ordered by score (ties by doc_id); the rest of the list follows in the
run's order below them -- the convention evaluation uses
(:func:`rerank_scaling.evaluation.rerank.head_and_tail`). Pairs are scored in
blocks with a progress bar; the output is written atomically. A query of the
run that the collection does not hold (the loaders keep judged queries) is
left out and counted; a document the collection lacks is an error.
"""

from __future__ import annotations

from pathlib import Path

from rerank_scaling.errors import UserError
from rerank_scaling.values import OUTPUT_FILE, OUTPUT_FOLDER, POSITIVE_INT, PathValue, Text

BLOCK = 1 << 15  # pairs scored per call (bounded memory; the progress bar advances per block)


def register(sub) -> None:
    p = sub.add_parser("rerank", help="rerank an existing TREC run file with a saved model")
    p.add_argument("model", type=Text("a run folder, a saved model folder or a Hugging Face cross-encoder id"),
                   help="a run folder (model/), a saved model folder, or a Hugging Face cross-encoder")
    p.add_argument("--run", required=True, type=PathValue("file", "TREC run file"), help="the TREC run file to rerank")
    p.add_argument("--collection", required=True, type=Text("an ir_datasets id or a BEIR folder"),
                   help="the collection the run is over: an ir_datasets id or a BEIR folder (its texts)")
    p.add_argument("--out", required=True, type=OUTPUT_FILE, help="the reranked TREC run to write")
    p.add_argument("--depth", type=POSITIVE_INT, default=None,
                   help="rerank each query's first DEPTH documents (default: all)")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=64, help="pairs per forward pass")
    p.add_argument("--tag", type=Text("a run tag"), default=None,
                   help="the run tag of the output (default: the model folder's name)")
    p.add_argument("--data-root", type=PathValue("folder", "data root"), default=None,
                   help="a folder laid out like ../shared (offline data)")
    p.add_argument("--cache-dir", type=OUTPUT_FOLDER, default=None, help="the toolkit's cache (stored collections)")
    p.set_defaults(func=run_command)


def pairs_to_score(run: dict, queries, docs, depth: int | None) -> dict:
    """The run's lists of the queries the collection holds; :class:`UserError` for a document it lacks."""
    kept = {q: lst for q, lst in run.items() if q in queries}
    missing = next((d for lst in kept.values() for d, _ in lst[:depth] if d not in docs), None)
    if missing is not None:
        raise UserError(f"document '{missing}' of the run is not in the collection")
    return kept


def rerank_run(model, run: dict, queries, docs, depth: int | None = None, batch_size: int = 64,
               progress=None) -> tuple[dict, int]:
    """``run`` reranked by ``model`` (module docstring): ``(ranking, queries left out)``."""
    import torch

    from rerank_scaling.evaluation.rerank import head_and_tail

    kept = pairs_to_score(run, queries, docs, depth)
    pairs = [(q, d) for q, lst in kept.items() for d, _ in lst[:depth]]
    scores: dict[str, dict[str, float]] = {q: {} for q in kept}
    with torch.inference_mode():
        for start in range(0, len(pairs), BLOCK):
            block = pairs[start:start + BLOCK]
            values = model.score([queries[q] for q, _ in block], [docs[d] for _, d in block], batch_size=batch_size)
            for (q, d), v in zip(block, values):
                scores[q][d] = float(v)
            if progress:
                progress(len(block))
    ranking = {q: head_and_tail(scores[q], lst[depth:] if depth else ()) for q, lst in kept.items()}
    return ranking, len(run) - len(kept)


def run_command(args) -> int:
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rerank_scaling.candidates.trec import read_trec_run, write_trec_run
    from rerank_scaling.data.store import stored_collection
    from rerank_scaling.models.family import saved_model_folder
    from rerank_scaling.pipeline.teacher import load_teacher

    run = read_trec_run(args.run)
    if not run:
        raise UserError(f"{args.run}: no lines")
    collection = stored_collection(args.collection, data_root=args.data_root, cache_dir=args.cache_dir)
    if not any(q in collection.queries for q in run):
        raise UserError(f"no query of {args.run} is a (judged) query of {args.collection}")
    pairs_to_score(run, collection.queries, collection.docs, args.depth)  # bad input before the model loads
    model = load_teacher(args.model, label="MODEL")
    if torch.cuda.is_available():
        model.to("cuda")
    folder = saved_model_folder(args.model)
    tag = args.tag or ((folder.parent.name if folder.name == "model" else folder.name) if folder else
                       Path(args.model).name or "reranked").replace(" ", "_")
    total = sum(min(len(lst), args.depth or len(lst)) for q, lst in run.items() if q in collection.queries)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]rerank"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console) as bar:
        task = bar.add_task("pairs", total=total)
        ranking, left_out = rerank_run(model, run, collection.queries, collection.docs, args.depth,
                                       args.batch_size, progress=lambda n: bar.advance(task, n))
    write_trec_run(args.out, ranking, tag=tag)
    note = f" ({left_out} queries not in the collection left out)" if left_out else ""
    print(f"{args.out}: {len(ranking)} queries, {total} pairs reranked by {args.model}{note}")
    return 0
