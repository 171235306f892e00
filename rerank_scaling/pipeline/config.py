"""Typed configuration of one training run (a grid cell)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from rerank_scaling.errors import UserError
from rerank_scaling.models.ladder import ModelSpec
from rerank_scaling.objectives import OBJECTIVES

SUPERVISION = ("human", "weak", "mixed")  # mixed: human train queries + weak title queries
DEFAULT_METRICS = ("ndcg@10", "map", "mrr@10", "recall@100", "p@10")


@dataclass(frozen=True)
class EvalSpec:
    """An evaluation set: a collection (and split), in-domain or not.

    ``split`` names a split of the collection's judged queries made by
    :func:`rerank_scaling.data.splits.split_queries` (used where a collection
    has one judged set, e.g. Cranfield). ``max_queries`` keeps a deterministic
    subset of the queries, for CPU budgets.
    """

    name: str
    collection: str
    split: str | None = None
    max_queries: int | None = None
    in_domain: bool = False


@dataclass(frozen=True)
class RunConfig:
    # data
    train_collection: str = "cranfield"
    train_split: str | None = "train"  # None: every judged query
    split_fractions: tuple[tuple[str, float], ...] = (("train", 0.6), ("dev", 0.2), ("test", 0.2))
    split_seed: int = 0  # fixed across runs so every run sees the same split
    supervision: str = "human"  # human qrels, weak (title -> own document), or mixed (both)
    budget: int | None = None  # number of training queries; None: all
    data_root: str | None = None  # folder laid out like ../shared (offline data)
    cache_dir: str | None = None
    # candidates
    candidates_k: int = 100  # BM25 depth for training negatives and CE negatives
    candidates_run: str | None = None  # a TREC run file to use instead of BM25 (eval sets)
    rerank_k: int = 100  # how many candidates are reranked at evaluation
    # model + objective
    ladder: str = "minilm"
    size: str = "2L"
    objective: str = "listwise"
    n_negatives: int = 10
    max_length: int = 256
    max_query_length: int = 64
    chunk_size: int | None = None
    pooling: str | None = None  # None: the ladder's default (mean for minilm, cls otherwise)
    # optimisation
    steps: int = 100
    batch_size: int = 8  # query groups per step
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 10
    seed: int = 0
    precision: str | None = None  # None: bf16-mixed on GPU, 32-true on CPU
    # evaluation
    evals: tuple[EvalSpec, ...] = (EvalSpec("cranfield-test", "cranfield", "test", None, True),)
    eval_every: int = 25
    metrics: tuple[str, ...] = DEFAULT_METRICS
    ce_negatives: int = 64
    eval_batch_size: int = 64
    threads: int | None = None

    @property
    def model(self) -> ModelSpec:
        return ModelSpec(self.ladder, self.size)

    @property
    def run_id(self) -> str:
        budget = "all" if self.budget is None else str(self.budget)
        return f"{self.model.name}__{self.objective}__{self.supervision}__b{budget}__s{self.seed}".replace("/", "_")

    def validate(self) -> "RunConfig":
        self.model.validate()
        if self.objective not in OBJECTIVES:
            raise UserError(f"unknown objective '{self.objective}' (choose from {', '.join(OBJECTIVES)})")
        if self.supervision not in SUPERVISION:
            raise UserError(f"unknown supervision '{self.supervision}' (choose from {', '.join(SUPERVISION)})")
        positive = {
            "steps": self.steps, "batch_size": self.batch_size, "eval_every": self.eval_every,
            "candidates_k": self.candidates_k, "rerank_k": self.rerank_k, "n_negatives": self.n_negatives,
            "max_length": self.max_length, "ce_negatives": self.ce_negatives,
        }
        for key, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{key} must be a positive integer, got {value!r}")
        if self.budget is not None and (not isinstance(self.budget, int) or self.budget < 1):
            raise UserError(f"budget must be a positive integer or omitted, got {self.budget!r}")
        if not self.lr > 0:
            raise UserError(f"lr must be > 0, got {self.lr!r}")
        if self.rerank_k > self.candidates_k:
            raise UserError(f"rerank_k ({self.rerank_k}) cannot exceed candidates_k ({self.candidates_k})")
        if not self.evals:
            raise UserError("at least one evaluation set is needed")
        names = [e.name for e in self.evals]
        if len(set(names)) != len(names):
            raise UserError(f"evaluation set names must be unique, got {names}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"{where}: unknown key '{unknown[0]}'")
        data = dict(data)
        if "evals" in data:
            data["evals"] = tuple(_eval_spec(e, where) for e in data["evals"])
        if "split_fractions" in data and isinstance(data["split_fractions"], dict):
            data["split_fractions"] = tuple(data["split_fractions"].items())
        else:
            data["split_fractions"] = tuple(tuple(x) for x in data.get("split_fractions", cls.split_fractions))
        if "metrics" in data:
            data["metrics"] = tuple(data["metrics"])
        return cls(**data).validate()


def _eval_spec(raw: Any, where: str) -> EvalSpec:
    if isinstance(raw, EvalSpec):
        return raw
    if not isinstance(raw, dict):
        raise UserError(f"{where}: each evaluation set must be a table, got {raw!r}")
    known = {f.name for f in fields(EvalSpec)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}' in evaluation set {raw.get('name', '?')!r}")
    for key in ("name", "collection"):
        if key not in raw:
            raise UserError(f"{where}: evaluation set {raw!r} lacks '{key}'")
    return EvalSpec(**raw)


def fractions(config: RunConfig) -> dict[str, float]:
    return dict(config.split_fractions)

