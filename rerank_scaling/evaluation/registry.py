"""The metric registry: what every metric name of the tidy table means to the analysis side.

Each module that computes metrics declares them beside the code that computes
them, as a module-level ``METRICS`` tuple of :class:`MetricInfo`:

* :mod:`.metrics` -- the rank metrics (``ndcg@k``, ``map``, ``mrr@k``, ``recall@k``, ``p@k``, ...);
* :mod:`.contrastive` -- contrastive entropy (``ce@M``, ``ce-candidates@M``, ``ce-corpus@M``);
* :mod:`.sparsity` -- a sparse retriever's costs (``active-q``, ``active-d``, ``flops``);
* :mod:`.distilled` -- a distilled query tower's ``retained-<metric>`` and ``query-ms-<device>``;
* :mod:`.chain` -- a chain's ``fs-recall``, ``chain-flops``, ``chain-ms``, ``chain-ms-batched``;

and :data:`PUBLISHED` here holds the names of published tables the analyzer
reads (``acc``, ``loss``: reports/ladders/published). A declaration names a
metric (``form = "exact"``), a family of names with a cut-off (``"cutoff"``:
``ndcg`` and ``ndcg@10``; ``"cutoff-required"``: ``p@10`` only) or a prefix
(``"prefix"``: ``query-ms-cpu``), and says:

* ``kind``: ``"quality"`` (how good the model is), ``"cost"`` (what it costs to
  serve: latency, FLOPs, active terms; lower is cheaper) or ``"invariant"``
  (a value the models of a study cannot move: :func:`kind` gives it to a
  set-based metric, ``set_based = True``, at a cut-off at or below which a
  reranker cannot change the list's membership -- recall@100 when the top 20
  of 100 candidates are reranked);
* ``direction``: ``+1`` when larger is better (it rises with scale), ``-1``
  when smaller is;
* ``bounds``: ``(lo, hi)``, ``None`` for an open side;
* ``usual``: where an open-ended metric's values usually stay (``retained-*``: (0, 1)), or ``None``.

Every name is read the same way, without patterns: lower-cased, then the
exact name, the part before ``@`` with a positive integer after it, or the
longest declared prefix. A name the registry does not know gets ``None`` from
:func:`metric_info`: :mod:`rerank_scaling.scaling.metrics` then refuses to
guess its direction (a law fitted the wrong way round is worse than none)
and reports its kind as ``"unknown"`` and its bounds as open. Another
toolkit's metric is declared with :func:`declare`.

Torch-free: the analysis side reads it. The declaring modules are imported
when a name is first looked up, by name (:data:`DECLARING`), so they import
this module and not the other way round.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Literal

Kind = Literal["quality", "cost", "invariant"]
Form = Literal["exact", "cutoff", "cutoff-required", "prefix"]

# the modules whose METRICS declare the toolkit's metrics (beside the code that computes them)
DECLARING = (
    "rerank_scaling.evaluation.metrics",
    "rerank_scaling.evaluation.contrastive",
    "rerank_scaling.evaluation.sparsity",
    "rerank_scaling.evaluation.distilled",
    "rerank_scaling.evaluation.chain",
)


@dataclass(frozen=True)
class MetricInfo:
    name: str  # the metric, or the stem of a family of names (``ndcg``, ``query-ms-``)
    kind: Kind
    direction: int  # +1: larger is better; -1: smaller is
    bounds: tuple[float | None, float | None]
    form: Form = "exact"
    set_based: bool = False  # depends only on which documents are in the top k, not on their order
    doc: str = ""
    # the range its values usually stay in without being bounded there (a retained fraction: (0, 1), a
    # student above its teacher is possible); the analyzer fits on that range's logit while they stay inside
    usual: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.direction not in (1, -1):
            raise ValueError(f"{self.name}: direction must be +1 or -1, got {self.direction!r}")
        if self.kind not in ("quality", "cost", "invariant"):
            raise ValueError(f"{self.name}: kind must be quality, cost or invariant, got {self.kind!r}")

    @property
    def natural_bound(self) -> float | None:
        """The value approached with unlimited scale at best: the upper bound of a metric that rises, the
        lower of one that falls."""
        return self.bounds[1] if self.direction > 0 else self.bounds[0]


@dataclass(frozen=True)
class Parsed:
    """A metric name read against its declaration: the ``info``, the cut-off ``k`` (None: none), and the
    rest of a prefixed name (``cpu`` of ``query-ms-cpu``)."""

    info: MetricInfo
    k: int | None = None
    rest: str = ""


PUBLISHED = (  # metrics of published tables the analyzer reads (reports/ladders/published), computed elsewhere
    MetricInfo("acc", "quality", 1, (0.0, 1.0), doc="accuracy of a language-model benchmark task"),
    MetricInfo("accuracy", "quality", 1, (0.0, 1.0), doc="accuracy"),
    MetricInfo("loss", "quality", -1, (0.0, None), doc="a language model's loss (LAMBADA: ln perplexity)"),
)
_declared: list[MetricInfo] = []


def declare(*infos: MetricInfo) -> None:
    """Declare metrics the toolkit does not compute (another toolkit's table), before reading them."""
    _declared.extend(infos)
    _table.cache_clear()
    try:
        _table()
    except ValueError:
        del _declared[-len(infos):]
        _table.cache_clear()
        raise


@cache
def _table() -> dict[tuple[Form, str], MetricInfo]:
    out: dict[tuple[Form, str], MetricInfo] = {}
    infos = [i for module in DECLARING for i in importlib.import_module(module).METRICS]
    for info in (*infos, *PUBLISHED, *_declared):
        shape = "prefix" if info.form == "prefix" else "exact" if info.form == "exact" else "cutoff"
        key = (shape, info.name)
        if key in out and out[key] != info:
            raise ValueError(f"metric '{info.name}' is declared twice, differently")
        out[key] = info
    return out


def declared() -> list[MetricInfo]:
    """Every declaration, the toolkit's first."""
    return list(_table().values())


def parse(metric: str) -> Parsed | None:
    """``metric`` read against the declarations (module docstring); None when none declares it."""
    name = str(metric).strip().lower()
    table = _table()
    if ("exact", name) in table:
        return Parsed(table[("exact", name)])
    stem, at, k = name.partition("@")
    if ("cutoff", stem) in table:
        info = table[("cutoff", stem)]
        if not at:
            return Parsed(info) if info.form == "cutoff" else None
        if k.isdigit() and k.isascii() and int(k) >= 1:
            return Parsed(info, int(k))
        return None
    prefixes = sorted((p for shape, p in table if shape == "prefix" and name.startswith(p) and len(name) > len(p)),
                      key=len, reverse=True)
    return Parsed(table[("prefix", prefixes[0])], rest=name[len(prefixes[0]):]) if prefixes else None


def metric_info(metric: str) -> MetricInfo | None:
    """The declaration of ``metric`` (None: undeclared)."""
    parsed = parse(metric)
    return parsed.info if parsed else None


def kind(metric: str, rerank_depth: int | None = None) -> str:
    """``"quality"``, ``"cost"``, ``"invariant"`` or ``"unknown"`` (undeclared). With ``rerank_depth`` (a
    reranker reorders the top ``rerank_depth`` of longer lists), a set-based metric at a cut-off at or
    beyond it is ``"invariant"``: the top ``k`` holds the same documents whatever the reranker does."""
    parsed = parse(metric)
    if parsed is None:
        return "unknown"
    if rerank_depth is not None and parsed.info.set_based and parsed.k is not None and parsed.k >= rerank_depth:
        return "invariant"
    return parsed.info.kind
