"""The typed configuration of one run (a grid cell): the common settings, declared once here, and the
section of its model family.

Each field says where it sits in an experiment file and how it is checked
(see :mod:`rerank_scaling.config.fields`); the experiment parser, the
``train`` flags and the report's settings table are derived from these
fields. The keys only one family reads (a bi-encoder's ``towers``, a sparse
encoder's ``lambda_q``) are that family's: declared with it in its registry
entry (:data:`rerank_scaling.models.FAMILIES`, ``settings``) and held in
:attr:`RunConfig.family_settings`. Files keep them where they always were (in
``[train]``, and flat in ``config.json``): :meth:`RunConfig.from_dict` hands each
key to its owner. Torch-free: the analysis side reads configs too.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

from rerank_scaling.config.fields import check, check_all, hints, meta, setting, settings
from rerank_scaling.errors import UserError
from rerank_scaling.evaluation.contrastive import parse_variant
from rerank_scaling.evaluation.metrics import DEFAULT_METRICS, ranx_metric_name
from rerank_scaling.values import NAME, PROBABILITY, SEED, ListOf, Number, Text, Value

# weak: title queries; ict: inverse cloze task (a sentence for the rest of its document); mixed: human + titles;
# any of them with "-noise<P>": P% of its (query, positive) labels replaced by random candidates (data.noise)
SUPERVISIONS = ("human", "weak", "mixed", "ict")
def supervision_parts(value: str) -> tuple[str, float]:
    """A ``supervision`` value as (its source, its label-noise fraction): ``"human-noise20"`` ->
    ``("human", 0.2)``, ``"mixed"`` -> ``("mixed", 0.0)`` (the tidy table's column reads the same)."""
    source, _, percent = value.partition("-noise")
    return source, int(percent) / 100 if percent else 0.0


SUPERVISION = Text("human, weak, mixed or ict, optionally with -noise<P> (P% of the positive labels replaced by "
                   "random BM25 candidates, 1-99)", pattern=rf"({'|'.join(SUPERVISIONS)})(-noise[1-9][0-9]?)?",
                   example="human-noise0")  # example: a value it refuses
SizeAxis = Literal["non-embedding", "nominal"]  # models.ladder.SIZE_AXES
Logger = Literal["csv", "tensorboard", "wandb", "none"]
Strategy = Literal["auto", "ddp", "fsdp"]
MallocPin = Literal["on", "off", "auto"]
MemoryCheck = Literal["error", "warn", "off"]
EmbeddingDtype = Literal["float32", "float16"]  # evaluation.retrieval.DTYPES
# what the checkpoints before the last evaluate (the last evaluates every set and metric): everything, the
# in-domain sets, or the in-domain sets' ranking metrics only (no contrastive-entropy pairs to score)
IntermediateEvals = Literal["all", "in-domain", "in-domain-ranking"]
Precision = Literal["32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"]


# value types of keys whose domain only the data knows (checked when it is loaded, before a run starts);
# the example is a value outside it, for the walk over every key (tests/test_every_value.py)
COLLECTION = Text("an ir_datasets id or a BEIR folder", example="no-such-collection")
SPLIT = Text("a split of the collection's judged queries (see split_fractions)", example="valid")
FOLDER = Text("a folder", example="{missing}")
METRIC_NAMES = ListOf(Text("a metric (ndcg@10, map, mrr@10, recall@100, p@10, ...)", example="bleu"))


class SplitFractions(Value):
    """``{train = 0.6, dev = 0.2, test = 0.2}`` (or a list of name, fraction pairs): each fraction in
    (0, 1], together 1; normalised to a tuple of pairs."""

    what = "named fractions in (0, 1] that sum to 1, e.g. {train = 0.6, dev = 0.2, test = 0.2}"
    share = Number(float, lo=0, hi=1, lo_open=True)

    def _check(self, value: Any, name: str) -> Any:
        pairs = list(value.items()) if isinstance(value, dict) else value
        if isinstance(pairs, str) or not isinstance(pairs, (list, tuple)) or not pairs or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) and p[0] for p in pairs):
            raise self._bad(name, value)
        out = tuple((str(k), self.share.check(v, f"{name}.{k}")) for k, v in pairs)
        if len({k for k, _ in out}) != len(out) or abs(sum(v for _, v in out) - 1) > 1e-6:
            raise self._bad(name, value)
        return out

    def bad_values(self) -> list[Any]:
        return [{"train": 0.6, "test": 0.6}, {"train": -1.0, "test": 2.0}, "train"]


def _ladders() -> tuple[str, ...]:
    from rerank_scaling.models.ladder import LADDERS

    return (*LADDERS, "hf")


def _objectives() -> tuple[str, ...]:
    from rerank_scaling.objectives import OBJECTIVES

    return tuple(OBJECTIVES)


def _families() -> tuple[str, ...]:
    from rerank_scaling.models import FAMILIES

    return tuple(FAMILIES)


@dataclass(frozen=True)
class EvalSpec:
    """An evaluation set: a collection (and split), in-domain or not.

    ``split`` names a split of the collection's judged queries made by
    :func:`rerank_scaling.data.splits.split_queries` (used where a collection
    has one judged set, e.g. Cranfield). ``max_queries`` keeps a deterministic
    subset of the queries, for CPU budgets. ``relevance_level`` is the lowest
    grade that counts as relevant for the binary metrics (MAP, MRR, recall,
    precision), for contrastive-entropy positives and for which queries are
    evaluated; NDCG keeps every grade > 0 as its gain. TREC DL 2019/2020's
    official level is 2; the default 1 means "a grade <= 0 is non-relevant".
    """

    name: str = setting(section="eval", value=NAME, doc="name of the set in tables and file names")
    collection: str = setting(section="eval", value=COLLECTION, doc="ir_datasets id or BEIR folder")
    split: str | None = setting(None, section="eval", value=SPLIT, doc="split of the judged queries (train/dev/test)")
    max_queries: int | None = setting(None, section="eval", min=1, doc="keep a seeded subset of this many")
    in_domain: bool = setting(False, section="eval", doc="the training domain")
    relevance_level: int = setting(1, section="eval", min=1,
                                   doc="grade >= this is relevant for MAP/MRR/recall/P and CE positives (TREC DL: 2)")

    def __post_init__(self) -> None:
        check_all(self)


@dataclass(frozen=True)
class RunConfig:
    # data
    train_collection: str = setting("cranfield", section="data", value=COLLECTION)
    train_split: str | None = setting("train", section="data", value=SPLIT, doc="None: every judged query")
    split_fractions: tuple[tuple[str, float], ...] = setting(
        (("train", 0.6), ("dev", 0.2), ("test", 0.2)), section="data", flag=False, value=SplitFractions())
    split_seed: int = setting(0, section="data", value=SEED, doc="fixed across runs so every run sees the same split")
    data_root: str | None = setting(None, section="data", path=True, value=FOLDER,
                                    doc="folder laid out like ../shared (offline data)")
    cache_dir: str | None = setting(None, section="data", path=True, value=Text("a folder", example="{file}"),
                                     doc="where loaders and BM25 keep their caches (default: $RERANK_SCALING_CACHE "
                                         "or ~/.cache/rerank_scaling)")
    # the grid's axes
    family: str = setting("cross-encoder", section="grid", axis="families", choices=_families, label="model family",
                          doc="one family (family = ...) or several (families = [...]): each cell is of one")
    ladder: str = setting("minilm", section="grid", choices=_ladders, label="ladder")
    size: str = setting("2L", section="grid", axis="sizes", value=Text("a size of the ladder", example="9Z"))
    objective: str = setting("listwise", section="grid", axis="objectives", choices=_objectives, label="objective")
    supervision: str = setting("human", section="grid", axis="supervision", label="supervision", value=SUPERVISION)
    budget: int | None = setting(None, section="grid", axis="budgets", min=1, doc="training queries; None: all")
    seed: int = setting(0, section="grid", axis="seeds", value=SEED)
    size_axis: SizeAxis = setting("non-embedding", section="grid", label="size axis",
                                  doc="what the params column holds: non-embedding parameters or the ladder's"
                                      " nominal size (ettin 17m = 17e6)")
    # candidates
    candidates_k: int = setting(100, section="candidates", key="k", min=1,
                                doc="BM25 depth for training negatives and CE negatives")
    candidates_run: str | None = setting(None, section="candidates", key="run", path=True,
                                         value=Text("a TREC run file", example="{missing}"),
                                         doc="a TREC run file to use instead of BM25 (eval sets)")
    rerank_k: int = setting(100, section="candidates", min=1, doc="how many candidates are reranked at evaluation")
    # model + objective
    n_negatives: int = setting(10, section="train", min=1)
    max_length: int = setting(256, section="train", min=1)
    max_query_length: int = setting(64, section="train", min=1)
    chunk_size: int | None = setting(None, section="train", min=1,
                                     doc="cross-encoder: score a step's pairs in chunks of this many, each chunk's "
                                         "activations recomputed in the backward pass (a memory control)")
    dropout: float | None = setting(None, section="train", value=PROBABILITY,
                                    doc="every dropout probability; None: the backbone's own")
    # the family's own keys (models.FAMILIES[family].settings; the report's settings table lists them here)
    family_settings: Any = dataclasses.field(default=None)
    # distillation objectives (marginmse, kl, cl-kd)
    teacher: str | None = setting(None, section="train",
                                  doc="the teacher of distillation objectives (other objectives ignore it): a run "
                                      "folder with model/, a saved model folder, or a Hugging Face cross-encoder "
                                      "id or folder (./x, ../x, /x: against the experiment file's folder); "
                                      "query-distill: a bi-encoder's (a run folder, a saved bi-encoder, or a "
                                      "Hugging Face encoder, mean-pooled, cosine)")
    teacher_bm25_weight: float = setting(0.0, section="train", value=PROBABILITY,
                                         doc="w > 0 fuses the teacher with BM25: per training query, (1 - w) x the "
                                             "teacher's z-scored scores + w x BM25's (pipeline.teacher)")
    # optimisation
    steps: int = setting(100, section="train", min=1, doc="optimizer steps (derived from compute when it is set)")
    compute: float | None = setting(None, section="grid", above=0,
                                    doc="training FLOPs per cell, held fixed across sizes: each cell's steps = "
                                        "compute / its FLOPs per step (Zeng et al.); None: [train] steps")
    batch_size: int = setting(8, section="train", min=1, doc="query groups per step (the global batch)")
    grad_accumulation: int = setting(1, section="train", min=1,
                                     doc="split each step's batch into this many micro-batches per device whose "
                                         "gradients add up (the global batch, and so the trajectory, unchanged); "
                                         "[hardware] batch_per_device derives it")
    gradient_checkpointing: bool = setting(False, section="train",
                                           doc="recompute each transformer layer's activations in the backward "
                                               "pass (Hugging Face backbones): less memory, ~30% more compute")
    lr: float = setting(5e-5, section="train", above=0)
    weight_decay: float = setting(0.01, section="train", min=0)
    warmup_steps: int = setting(10, section="train", min=0)
    precision: Precision | None = setting(None, section="train", label="precision",
                                          doc="None: bf16-mixed on GPU, 32-true on CPU")
    logger: Logger = setting("csv", section="train", label="logger",
                             doc="training logs a user can watch: csv, tensorboard, wandb (extras) or none")
    wandb_project: str = setting("rerank-scaling", section="train",
                                 doc="logger = wandb: the W&B project (each cell is one W&B run, resumed on restart)")
    save_model: bool = setting(True, section="train",
                               doc="write the final model to model/ in the run folder, in a layout "
                                   "sentence-transformers loads (and the family's load); false: keep no weights")
    # evaluation
    evals: tuple[EvalSpec, ...] = setting((EvalSpec("cranfield-test", "cranfield", "test", None, True),),
                                          section="eval", flag=False, tables=True)
    eval_every: int = setting(25, section="train", min=1)
    intermediate_evals: IntermediateEvals = setting(
        "all", section="train", label="intermediate evals",
        doc="what the checkpoints before the last evaluate: all; in-domain (the in-domain sets only); or "
            "in-domain-ranking (their ranking metrics only, no contrastive entropy): learning curves at a "
            "fraction of the cost. The last checkpoint evaluates every set and metric")
    metrics: tuple[str, ...] = setting(DEFAULT_METRICS, section="train", value=METRIC_NAMES)
    ce_negatives: int = setting(64, section="train", min=1)
    ce_variants: tuple[str, ...] = setting((), section="train", value=ListOf(Text(
                                               "a contrastive entropy (ce@M, ce-corpus@M)", example="ce@x")),
                                           doc="more contrastive entropies, e.g. ce@31, ce-corpus@256 (comma-separated)")
    eval_batch_size: int = setting(64, section="train", min=1)
    eval_chunk_docs: int = setting(65536, section="train", min=1,
                                   doc="retrievers: documents encoded and searched at a time (running top-k; "
                                       "memory holds one chunk's embeddings, not the corpus's)")
    embedding_dtype: EmbeddingDtype = setting("float32", section="train",
                                              label="embedding_dtype",
                                              doc="retrievers: float16 halves the corpus chunk's embeddings and "
                                                  "the queries' for the search's dot products (GPUs)")
    threads: int | None = setting(None, section="hardware", key="threads_per_worker", min=1)
    devices: int = setting(1, section="hardware", min=1, doc="devices (processes) one cell trains on, per node")
    nodes: int = setting(1, section="hardware", min=1,
                         doc="nodes one cell spans (SLURM; devices are per node): multi-node DDP/FSDP cells")
    malloc_pin: MallocPin = setting("auto", section="hardware", label="malloc_pin",
                                    doc="pin glibc's mmap threshold (lower peak RSS, slower steps): on, off, "
                                        "or auto (only for models of 50M+ non-embedding parameters)")
    strategy: Strategy = setting("auto", section="hardware", label="strategy",
                                 doc="auto (one device), ddp (data parallel over `devices`: a whole model per "
                                     "device) or fsdp (parameters, gradients and optimizer state sharded over "
                                     "`devices`)")
    process_group_timeout_min: float = setting(30.0, section="hardware", above=0,
                                               doc="minutes a multi-device cell's processes wait for each other at "
                                                   "a collective (NCCL/gloo) before the cell fails")
    checkpoint_every_min: float | None = setting(None, section="hardware", above=0,
                                                 doc="also save a resumable checkpoint when this many minutes passed "
                                                     "since the last one (a requeue then loses at most that); None: "
                                                     "at evaluation steps only")
    memory_check: MemoryCheck = setting("error", section="hardware", label="memory_check",
                                        doc="before a GPU cell starts, compare its memory estimate with the "
                                            "device's memory: error (the cell fails with suggestions), warn, off")

    def __post_init__(self) -> None:
        from rerank_scaling.models import family_info

        own = family_info(self.family).settings if isinstance(self.family, str) else None
        if self.family_settings is None and own is not None:
            object.__setattr__(self, "family_settings", own())
        elif own is not None and type(self.family_settings) is not own:
            raise UserError(f"family_settings: a {type(self.family_settings).__name__}, but family "
                            f"'{self.family}' takes a {own.__name__}")
        self.validate()

    def value(self, key: str) -> Any:
        """A setting by its name, common or the family's own."""
        own = {f.name for f in dataclasses.fields(self.family_settings)}
        return getattr(self.family_settings if key in own else self, key)

    @property
    def model(self):
        from rerank_scaling.models.ladder import ModelSpec

        return ModelSpec(self.ladder, self.size)

    @property
    def supervision_source(self) -> str:
        """Where the training labels come from: ``supervision`` without its ``-noise<P>`` part."""
        return supervision_parts(self.supervision)[0]

    @property
    def label_noise(self) -> float:
        """The fraction of training labels replaced by random candidates (``-noise<P>``: P / 100; else 0)."""
        return supervision_parts(self.supervision)[1]

    @property
    def world_size(self) -> int:
        """Processes one cell trains on: ``devices`` per node times ``nodes``."""
        return self.devices * self.nodes

    @property
    def micro_batch(self) -> int:
        """Query groups one device processes at a time (the global batch over devices and accumulation)."""
        return self.batch_size // (self.world_size * self.grad_accumulation)

    def result_settings(self) -> dict[str, Any]:
        """The settings that decide the cell's numbers: every field but :data:`EXECUTION`'s."""
        return {k: v for k, v in self.to_dict().items() if k not in EXECUTION}

    @property
    def run_id(self) -> str:
        budget = "all" if self.budget is None else str(self.budget)
        family = "" if self.family == "cross-encoder" else f"{self.family}__"  # cross-encoder ids predate families
        return f"{family}{self.model.name}__{self.objective}__{self.supervision}__b{budget}__s{self.seed}".replace("/", "_")

    def validate(self) -> "RunConfig":
        """Every value's type and range, then the rules between values (also run on construction)."""
        check_all(self)
        self.model.validate()
        if self.size_axis == "nominal":
            from rerank_scaling.models.ladder import nominal_params

            nominal_params(self.model)
        self._check_family()
        if self.rerank_k > self.candidates_k:
            raise UserError(f"rerank_k ({self.rerank_k}) cannot exceed candidates_k ({self.candidates_k})")
        if not self.evals:
            raise UserError("at least one evaluation set is needed")
        for name in self.metrics:
            ranx_metric_name(name)  # an unknown rank metric fails here, not at the first evaluation
        for name in self.ce_variants:  # beside the base ce@<ce_negatives> (evaluation.contrastive)
            try:
                parse_variant(name)
            except ValueError:
                raise UserError(f"ce_variants: '{name}' is not a contrastive-entropy name "
                                "(ce@M: M negatives from the candidates; ce-corpus@M: from the corpus)") from None
            if name in (f"ce@{self.ce_negatives}", f"ce-candidates@{self.ce_negatives}"):
                raise UserError(f"ce_variants: '{name}' is the base contrastive entropy already (ce_negatives)")
        parts = self.world_size * self.grad_accumulation
        if self.batch_size % parts:
            split = (f"devices ({self.devices})" if parts == self.devices else
                     f"devices x nodes x grad_accumulation ({self.devices} x {self.nodes} x {self.grad_accumulation})")
            raise UserError(f"batch_size ({self.batch_size}) must be a multiple of {split}: "
                            "it is the global batch, split evenly over the devices and micro-batches")
        if self.world_size > 1 and self.strategy == "auto":
            raise UserError(f"devices = {self.devices}" + (f" on {self.nodes} nodes" if self.nodes > 1 else "")
                            + " needs strategy = \"ddp\" or \"fsdp\"")
        if self.world_size == 1 and self.strategy == "fsdp":
            raise UserError("strategy = \"fsdp\" shards the model over devices and needs devices > 1 "
                            "(one device: strategy = \"auto\")")
        needs = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}.get(self.logger, ())
        if needs and not any(importlib.util.find_spec(m) for m in needs):
            raise UserError(f"logger '{self.logger}' needs its package: pip install 'rerank-scaling[{self.logger}]'")
        if self.intermediate_evals != "all" and not any(e.in_domain for e in self.evals):
            raise UserError(f"intermediate_evals = \"{self.intermediate_evals}\" needs an evaluation set with "
                            "in_domain = true")
        names = [e.name for e in self.evals]
        if len(set(names)) != len(names):
            raise UserError(f"evaluation set names must be unique, got {names}")
        return self

    def warnings(self) -> list[str]:
        """Settings that are valid and can mean something but probably are not what was meant (one line
        each); the pipeline shows them before training."""
        out = []
        for name in (f"ce@{self.ce_negatives}", *self.ce_variants):
            source, m = parse_variant(name)
            if source != "corpus" and m > self.candidates_k:
                key = "ce_negatives" if name == f"ce@{self.ce_negatives}" else f"ce_variants '{name}'"
                out.append(f"{key}: {name} draws its {m} negatives from the candidates, but candidates_k = "
                           f"{self.candidates_k}: each query gets at most {self.candidates_k} (raise candidates_k, "
                           f"or use ce-corpus@{m})")
        steps = self.steps if self.compute is None else None
        if steps is not None and self.warmup_steps >= steps:
            out.append(f"warmup_steps = {self.warmup_steps} >= steps = {steps}: the learning rate never reaches lr")
        return out

    def _check_family(self) -> None:
        """The family trains the objective's kind; the family's own keys are checked by its settings."""
        from rerank_scaling.models import FAMILIES
        from rerank_scaling.objectives import OBJECTIVES

        family, info = FAMILIES[self.family], OBJECTIVES[self.objective]
        if info.kind not in family.objectives:
            fits = ", ".join(n for n, o in OBJECTIVES.items() if o.kind in family.objectives)
            takers = [n for n, f in FAMILIES.items() if info.kind in f.objectives]
            raise UserError(f"objective '{self.objective}' does not train family '{self.family}' (choose from {fits})"
                            + (f"; it trains family {' / '.join(map(repr, takers))}" if takers else ""))
        self.family_settings.validate()
        if info.distils and not self.teacher:
            raise UserError(f"objective '{self.objective}' distils a teacher: set teacher (a run folder with model/,"
                            " a saved model or a cross-encoder id)")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, flat: the family's own keys where ``family_settings`` sits (as ``config.json`` has them)."""
        out: dict[str, Any] = {}
        for name, value in dataclasses.asdict(self).items():
            if name == "family_settings":
                out.update(value)
            else:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> "RunConfig":
        """A checked config from flat plain values (config.json, TOML, flags); errors start with ``where``.

        Each key of a family goes to the family's section; a key of other families only is refused unless it
        has an owner's default (a ``config.json`` written before families owned their keys holds every key)."""
        from rerank_scaling.models import family_info, owners

        data = dict(data)
        common = {f.name for f in dataclasses.fields(cls)} - {"family_settings"}
        unknown = sorted(k for k in set(data) - common if not owners(k))
        if unknown:
            raise UserError(f"{where}: unknown key '{unknown[0]}'")
        try:
            family = data.get("family", cls.family)
            check(next(f for f in settings(cls) if f.name == "family"), family, str)
            own_class = family_info(family).settings
            own = {f.name: f for f in dataclasses.fields(own_class)}
            mine = {k: data.pop(k) for k in list(data) if k in own}
            for key in [k for k in data if k not in common]:
                value, takers = data.pop(key), owners(key)
                if not any(_is_default(owner, key, value) for owner in takers):
                    raise UserError(f"{key} = {value!r} applies to family {' / '.join(repr(x) for x in takers)} only")
            data["family_settings"] = own_class(**mine)
            if "evals" in data:
                if not isinstance(data["evals"], (list, tuple)):
                    raise UserError(f"evals must be a list of tables, got {data['evals']!r}")
                data["evals"] = tuple(eval_spec(e) for e in data["evals"])
            return cls(**data)
        except UserError as exc:
            message = str(exc)
            raise (exc if message.startswith(where) else UserError(f"{where}: {message}")) from None

    def fractions(self) -> dict[str, float]:
        return dict(self.split_fractions)

    def steps_for_compute(self, flops_per_step: float) -> int:
        """The steps that spend ``compute`` FLOPs at ``flops_per_step`` (``[grid] compute``); ``steps``
        when compute is not set. :class:`UserError` when the budget is less than one step."""
        if self.compute is None:
            return self.steps
        if not flops_per_step > 0:
            raise ValueError(f"FLOPs per step must be positive, got {flops_per_step!r}")
        steps = round(self.compute / flops_per_step)
        if steps < 1:
            raise UserError(f"compute = {self.compute:g} FLOPs is less than one training step of {self.model.name} "
                            f"({flops_per_step:.3g} FLOPs per step): raise compute or lower batch_size")
        return steps


# Settings that change how a cell runs, not what it computes (the same math: numbers equal up to float
# rounding): an existing study accepts edits of these, and [hardware.sizes.<size>] profiles may set them.
EXECUTION = frozenset({
    "threads", "devices", "nodes", "strategy", "malloc_pin", "process_group_timeout_min", "checkpoint_every_min",
    "memory_check", "grad_accumulation", "gradient_checkpointing", "chunk_size", "eval_batch_size", "logger",
    "wandb_project", "cache_dir", "eval_chunk_docs",
})


def eval_spec(raw: Any) -> EvalSpec:
    """An :class:`EvalSpec` from a table (unknown and missing keys named)."""
    if isinstance(raw, EvalSpec):
        return raw
    if not isinstance(raw, dict):
        raise UserError(f"each evaluation set must be a table, got {raw!r}")
    known = {f.name for f in dataclasses.fields(EvalSpec)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"unknown key '{unknown[0]}' in evaluation set {raw.get('name', '?')!r}")
    for key in ("name", "collection"):
        if key not in raw:
            raise UserError(f"evaluation set {raw!r} lacks '{key}'")
    return EvalSpec(**raw)


def _is_default(family: str, key: str, value: Any) -> bool:
    """``value`` (a plain one: a list for a tuple) is ``family``'s default of its own ``key``."""
    from rerank_scaling.models import FAMILIES

    own = FAMILIES[family].settings
    f = next(f for f in dataclasses.fields(own) if f.name == key)
    try:
        return check(f, value, hints(own)[key]) == f.default
    except UserError:
        return False


def family_fields(family: str | None = None) -> list[dataclasses.Field]:
    """The settings of ``family``'s own section (None: of every family, each name once)."""
    from rerank_scaling.models import FAMILIES

    out: dict[str, dataclasses.Field] = {}
    for name, info in FAMILIES.items():
        if family in (None, name):
            for f in settings(info.settings):
                out.setdefault(f.name, f)
    return list(out.values())


def train_settings(family: str | None = None) -> tuple[str, ...]:
    """The [train] keys in declaration order (the report's settings table), the family's own where
    ``family_settings`` sits; with ``family``, only the keys that apply to it (None: every family's)."""
    out = []
    for f in dataclasses.fields(RunConfig):
        if f.name == "family_settings":
            out += [g.name for g in family_fields(family) if meta(g)["section"] == "train"]
        elif meta(f).get("section") == "train":
            out.append(f.name)
    return tuple(out)
