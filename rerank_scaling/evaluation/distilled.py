"""A distilled query tower's own rows: the quality it retains of its teacher's, and its latency.

A ``query-distill`` student (:mod:`rerank_scaling.models.query_distill`)
searches its teacher's document index. Beside its usual first-stage rows
(:mod:`rerank_scaling.evaluation.retrieval`) it gets:

* ``retained-<metric>``: the student's value over the teacher's on the same
  eval set (``retained-ndcg@10`` = student ndcg@10 / teacher ndcg@10), for each
  rank metric of ``[train] metrics`` (not the contrastive entropies). The
  teacher is evaluated once per run (:func:`teacher_reference`) exactly as a
  student: its own query tower over the same cached index, the same metrics.
* ``query-ms-<device>`` (final checkpoint only): the median milliseconds to
  encode one query (batch 1) on the device the run evaluates on (``cpu`` or
  ``cuda``), over ``latency_queries`` queries of the first eval set (sorted
  ids, cycled if there are fewer) after :data:`WARMUP` untimed ones. A query's
  encoding is the tower's forward pass, the projection and the normalisation,
  and the copy of the embedding to the CPU (what an online search then reads);
  its tokenisation is cached beforehand (the same WordPiece for every student),
  so it is not counted. CPU timings use the process's threads (``[hardware]
  threads_per_worker``) and depend on what else runs on the machine.

The two families of names are declared here (:data:`METRICS`) for the analysis
side, which imports this module without torch: torch and the evaluation of a
checkpoint are imported by the functions that use them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rerank_scaling.evaluation.registry import MetricInfo

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from rerank_scaling.evaluation.rerank import EvalSet

RETAINED, LATENCY_PREFIX = "retained-", "query-ms-"
METRICS = (
    MetricInfo(RETAINED, "quality", 1, (0.0, None), "prefix", doc="retained-<metric>: student / teacher",
               usual=(0.0, 1.0)),
    MetricInfo(LATENCY_PREFIX, "cost", -1, (0.0, None), "prefix",
               doc="query-ms-<device>: median ms to encode one query (batch 1)"),
)
WARMUP = 10


def latency_metric(device: torch.device | str) -> str:
    """``query-ms-<device type>`` (``cpu``, ``cuda``) of a device or its name (``cuda:0``)."""
    return LATENCY_PREFIX + (getattr(device, "type", None) or str(device).partition(":")[0])


def latency_texts(evalsets: Sequence[EvalSet], n: int) -> list[str]:
    """The ``n`` queries timed: the first eval set's, by sorted id, cycled to ``n``."""
    queries = evalsets[0].collection.queries
    texts = [queries[q] for q in sorted(queries)]
    return [texts[i % len(texts)] for i in range(n)]


def query_latency_ms(encoder, texts: Sequence[str], warmup: int = WARMUP) -> float:
    """Median ms of ``encoder.encode([text], "query", batch_size=1)`` over ``texts`` after
    ``warmup`` untimed calls (tokenisation warmed first, so not timed)."""
    import torch

    warm = getattr(encoder, "warm", None)
    if warm is not None:
        warm(list(dict.fromkeys(texts)), ())
    times = []
    was_training = encoder.training
    encoder.eval()  # as served: no dropout, no mode switch inside the timed calls
    try:
        with torch.inference_mode():
            for i, text in enumerate([*texts[:warmup], *texts]):
                start = time.perf_counter()
                encoder.encode([text], "query", batch_size=1).cpu()
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        encoder.train(was_training)
    return 1000.0 * statistics.median(times)


def teacher_reference(student, evalsets: list[EvalSet], metrics: tuple[str, ...], batch_size: int, depth: int,
                      latency_queries: int, chunk: int | None = None, dtype: str = "float32") -> dict:
    """The teacher measured as its students are: ``values`` (eval set -> metric -> value) over the same
    cached index (searched in the same chunks), ``query_ms`` on the same device, its query tower's parameters."""
    from rerank_scaling.evaluation.checkpoint import evaluate_checkpoint

    from rerank_scaling.evaluation.retrieval import CHUNK_DOCS

    retriever = student.teacher_retriever()
    rows, _, _ = evaluate_checkpoint(retriever, evalsets, metrics, {}, batch_size, depth=depth,
                                     chunk=chunk or CHUNK_DOCS, dtype=dtype)
    values: dict[str, dict[str, float]] = {}
    for r in rows:
        values.setdefault(r["eval_set"], {})[r["metric"]] = r["value"]
    device = next(student.parameters()).device
    non_embedding, total = student.teacher_counts()
    return {"source": str(student.teacher_source), "params": non_embedding, "total_params": total,
            "values": values, "latency_metric": latency_metric(device),
            "query_ms": query_latency_ms(student.teacher, latency_texts(evalsets, latency_queries))}


def distilled_rows(student, rows: list[dict], reference: dict, evalsets: list[EvalSet], metrics: tuple[str, ...],
                   latency_queries: int | None = None) -> list[dict]:
    """``retained-<metric>`` rows for each of ``rows`` (a checkpoint's) whose metric is one of ``metrics``,
    and with ``latency_queries`` the student's latency row (on the first eval set, as timed)."""
    out = []
    for r in rows:
        teacher = reference["values"].get(r["eval_set"], {}).get(r["metric"])
        if r["metric"] in metrics and teacher:
            out.append({**r, "metric": RETAINED + r["metric"], "value": r["value"] / teacher})
    if latency_queries:
        first = next(r for r in rows if r["eval_set"] == evalsets[0].name)
        device = next(student.parameters()).device
        ms = query_latency_ms(student, latency_texts(evalsets, latency_queries))
        out.append({**first, "metric": latency_metric(device), "value": ms})
    return out
