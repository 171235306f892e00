"""The typed configuration of one run (a grid cell): every key declared once, here.

Each field says where it sits in an experiment file and how it is checked
(see :mod:`rerank_scaling.config.fields`); the experiment parser, the
``train`` flags and the report's settings table are derived from these
fields. Torch-free: the analysis side reads configs too.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from dataclasses import dataclass
from typing import Any, Literal

from rerank_scaling.config.fields import check_all, hints, setting, settings
from rerank_scaling.errors import UserError

DEFAULT_METRICS = ("ndcg@10", "map", "mrr@10", "recall@100", "p@10")
# contrastive-entropy variants beside the base ce@<ce_negatives>: negatives from the candidate list
# (``ce@31``, as the reranking study) or from the whole corpus (``ce-corpus@256``, as Fang et al.)
CE_VARIANT = re.compile(r"^ce(?:-(candidates|corpus))?@([1-9]\d*)$")
# a query-distill student's rows (evaluation.distilled): retained-<metric> = student / teacher, and
# query-ms-<device> = its median query-encoding latency
RETAINED_PREFIX, LATENCY_PREFIX = "retained-", "query-ms-"

# weak: title queries; ict: inverse cloze task (a sentence for the rest of its document); mixed: human + titles
Supervision = Literal["human", "weak", "mixed", "ict"]
Pooling = Literal["cls", "mean", "last"]  # last: the last real token (bi-encoders of decoders)
Towers = Literal["shared", "separate"]
Similarity = Literal["cosine", "dot"]
Regularizer = Literal["flops", "l1"]  # objectives.regularizers.REGULARIZERS
BI = ("bi-encoder",)  # keys of the bi-encoder family only (setting(families=...))
SPARSE = ("sparse",)
RETRIEVERS = ("bi-encoder", "sparse")
POOLED = ("cross-encoder", "bi-encoder")  # families whose pooling is a choice (sparse always max-pools)
SizeAxis = Literal["non-embedding", "nominal"]  # models.ladder.SIZE_AXES
Logger = Literal["csv", "tensorboard", "wandb", "none"]
Strategy = Literal["auto", "ddp", "fsdp"]
MallocPin = Literal["on", "off", "auto"]
# what the checkpoints before the last evaluate (the last evaluates every set and metric): everything, the
# in-domain sets, or the in-domain sets' ranking metrics only (no contrastive-entropy pairs to score)
IntermediateEvals = Literal["all", "in-domain", "in-domain-ranking"]
Precision = Literal["32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"]


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

    name: str = setting(section="eval", doc="name of the set in tables")
    collection: str = setting(section="eval", doc="ir_datasets id or BEIR folder")
    split: str | None = setting(None, section="eval", doc="split of the judged queries (train/dev/test)")
    max_queries: int | None = setting(None, section="eval", min=1, doc="keep a seeded subset of this many")
    in_domain: bool = setting(False, section="eval", doc="the training domain")
    relevance_level: int = setting(1, section="eval", min=1,
                                   doc="grade >= this is relevant for MAP/MRR/recall/P and CE positives (TREC DL: 2)")

    def __post_init__(self) -> None:
        check_all(self)


@dataclass(frozen=True)
class RunConfig:
    # data
    train_collection: str = setting("cranfield", section="data")
    train_split: str | None = setting("train", section="data", doc="None: every judged query")
    split_fractions: tuple[tuple[str, float], ...] = setting(
        (("train", 0.6), ("dev", 0.2), ("test", 0.2)), section="data", flag=False)
    split_seed: int = setting(0, section="data", doc="fixed across runs so every run sees the same split")
    data_root: str | None = setting(None, section="data", path=True, doc="folder laid out like ../shared (offline data)")
    cache_dir: str | None = setting(None, section="data", path=True)
    # the grid's axes
    family: str = setting("cross-encoder", section="grid", axis="families", choices=_families, label="model family",
                          doc="one family (family = ...) or several (families = [...]): each cell is of one")
    ladder: str = setting("minilm", section="grid", choices=_ladders, label="ladder")
    size: str = setting("2L", section="grid", axis="sizes")
    objective: str = setting("listwise", section="grid", axis="objectives", choices=_objectives, label="objective")
    supervision: Supervision = setting("human", section="grid", axis="supervision", label="supervision")
    budget: int | None = setting(None, section="grid", axis="budgets", min=1, doc="training queries; None: all")
    seed: int = setting(0, section="grid", axis="seeds")
    size_axis: SizeAxis = setting("non-embedding", section="grid", label="size axis",
                                  doc="what the params column holds: non-embedding parameters or the ladder's"
                                      " nominal size (ettin 17m = 17e6)")
    # candidates
    candidates_k: int = setting(100, section="candidates", key="k", min=1,
                                doc="BM25 depth for training negatives and CE negatives")
    candidates_run: str | None = setting(None, section="candidates", key="run", path=True,
                                         doc="a TREC run file to use instead of BM25 (eval sets)")
    rerank_k: int = setting(100, section="candidates", min=1, doc="how many candidates are reranked at evaluation")
    # model + objective
    n_negatives: int = setting(10, section="train", min=1)
    max_length: int = setting(256, section="train", min=1)
    max_query_length: int = setting(64, section="train", min=1)
    chunk_size: int | None = setting(None, section="train", min=1)
    dropout: float | None = setting(None, section="train", min=0, doc="every dropout probability; None: the backbone's own")
    pooling: Pooling | None = setting(None, section="train", families=POOLED, label="pooling",
                                      doc="None: the ladder's default (mean for minilm, last for decoders, cls "
                                          "otherwise); last: bi-encoder only")
    # bi-encoder (family = "bi-encoder"): towers, projection, similarity; max_length is the document's length
    towers: Towers = setting("shared", section="train", families=BI, label="towers",
                             doc="bi-encoder: one tower for queries and documents, or a separate document tower")
    projection: int | None = setting(None, section="train", families=BI, min=1,
                                     doc="bi-encoder: a linear projection to this many dimensions; None: none")
    similarity: Similarity = setting("cosine", section="train", families=BI, label="similarity",
                                     doc="bi-encoder score: cosine or dot, divided by the temperature")
    temperature: float | None = setting(None, section="train", families=BI, above=0,
                                        doc="bi-encoder: scores are sim / temperature; None: 0.05 (cosine), 1 (dot)")
    corpus_negatives: int = setting(256, section="train", families=RETRIEVERS, min=1,
                                    doc="infonce-corpus: random corpus documents shared by each batch (Fang et al.: 256)")
    # sparse encoder (family = "sparse"): the sparsity regulariser added to the loss
    regularizer: Regularizer = setting("flops", section="train", families=SPARSE, label="regularizer",
                                       doc="sparse: flops (sum_j mean_i |w_ij| squared) or l1, on queries and docs")
    lambda_q: float = setting(0.05, section="train", families=SPARSE, min=0,
                              doc="sparse: weight of the query regulariser (Zeng et al.: 0.05)")
    lambda_d: float = setting(0.04, section="train", families=SPARSE, min=0,
                              doc="sparse: weight of the document regulariser (Zeng et al.: 0.04)")
    regularizer_warmup: float = setting(1 / 3, section="train", families=SPARSE, min=0,
                                        doc="sparse: fraction of the steps over which the lambdas ramp up "
                                            "quadratically from 0 (Zeng et al.: 1/3; 0: none)")
    # decoder backbones and LoRA (retrievers; models.decoder)
    bidirectional: bool = setting(False, section="train", families=RETRIEVERS,
                                  doc="decoder backbones: remove the causal mask (Zeng et al., LLM2Vec)")
    lora_rank: int | None = setting(None, section="train", families=RETRIEVERS, min=1,
                                    doc="train LoRA adapters of this rank on a frozen backbone (peft); None: "
                                        "full fine-tuning")
    lora_alpha: float | None = setting(None, section="train", families=RETRIEVERS, above=0,
                                       doc="LoRA scale alpha (updates are alpha / rank x B A); None: 2 x lora_rank")
    lora_dropout: float = setting(0.0, section="train", families=RETRIEVERS, min=0,
                                  doc="dropout on the LoRA adapters' input")
    lora_targets: tuple[str, ...] = setting((), section="train", families=RETRIEVERS,
                                            doc="modules that get adapters (e.g. q_proj, v_proj); empty: every "
                                                "linear layer of the transformer")
    # distillation objectives (marginmse, kl, cl-kd)
    teacher: str | None = setting(None, section="train",
                                  doc="the teacher of distillation objectives (other objectives ignore it): a run "
                                      "folder with model/, a saved model folder, or a Hugging Face cross-encoder "
                                      "id or folder (./x, ../x, /x: against the experiment file's folder); "
                                      "query-distill: a bi-encoder's (a run folder, a saved bi-encoder, or a "
                                      "Hugging Face encoder, mean-pooled, cosine)")
    # query-distill (ScalingNote): a small query tower learns the teacher's query embeddings
    mse_weight: float = setting(1.0, section="train", families=BI, min=0,
                                doc="query-distill: weight of the MSE between student and teacher query embeddings")
    cosine_weight: float = setting(1.0, section="train", families=BI, min=0,
                                   doc="query-distill: weight of 1 - cosine(student, teacher) query embeddings")
    latency_queries: int = setting(100, section="train", families=BI, min=1,
                                   doc="query-distill: queries timed one at a time (batch 1) for the median "
                                       "query-encoding latency, after 10 untimed ones")
    # optimisation
    steps: int = setting(100, section="train", min=1, doc="optimizer steps (derived from compute when it is set)")
    compute: float | None = setting(None, section="grid", above=0,
                                    doc="training FLOPs per cell, held fixed across sizes: each cell's steps = "
                                        "compute / its FLOPs per step (Zeng et al.); None: [train] steps")
    batch_size: int = setting(8, section="train", min=1, doc="query groups per step")
    lr: float = setting(5e-5, section="train", above=0)
    weight_decay: float = setting(0.01, section="train", min=0)
    warmup_steps: int = setting(10, section="train", min=0)
    precision: Precision | None = setting(None, section="train", label="precision",
                                          doc="None: bf16-mixed on GPU, 32-true on CPU")
    logger: Logger = setting("csv", section="train", label="logger",
                             doc="training logs a user can watch: csv, tensorboard, wandb (extras) or none")
    save_model: bool = setting(False, section="train",
                               doc="write the final model to model/ in the run folder (its family's load reads it)")
    # evaluation
    evals: tuple[EvalSpec, ...] = setting((EvalSpec("cranfield-test", "cranfield", "test", None, True),),
                                          section="eval", flag=False, tables=True)
    eval_every: int = setting(25, section="train", min=1)
    intermediate_evals: IntermediateEvals = setting(
        "all", section="train", label="intermediate evals",
        doc="what the checkpoints before the last evaluate: all; in-domain (the in-domain sets only); or "
            "in-domain-ranking (their ranking metrics only, no contrastive entropy): learning curves at a "
            "fraction of the cost. The last checkpoint evaluates every set and metric")
    metrics: tuple[str, ...] = setting(DEFAULT_METRICS, section="train")
    ce_negatives: int = setting(64, section="train", min=1)
    ce_variants: tuple[str, ...] = setting((), section="train",
                                           doc="more contrastive entropies, e.g. ce@31, ce-corpus@256 (comma-separated)")
    eval_batch_size: int = setting(64, section="train", min=1)
    threads: int | None = setting(None, section="hardware", key="threads_per_worker", min=1)
    devices: int = setting(1, section="hardware", min=1, doc="devices (processes) one cell trains on")
    malloc_pin: MallocPin = setting("auto", section="hardware", label="malloc_pin",
                                    doc="pin glibc's mmap threshold (lower peak RSS, slower steps): on, off, "
                                        "or auto (only for models of 50M+ non-embedding parameters)")
    strategy: Strategy = setting("auto", section="hardware", label="strategy",
                                 doc="auto (one device), ddp (data parallel over `devices`: a whole model per "
                                     "device) or fsdp (parameters, gradients and optimizer state sharded over "
                                     "`devices`)")

    def __post_init__(self) -> None:
        self.validate()

    @property
    def model(self):
        from rerank_scaling.models.ladder import ModelSpec

        return ModelSpec(self.ladder, self.size)

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
        for name in self.ce_variants:
            if not CE_VARIANT.match(name):
                raise UserError(f"ce_variants: '{name}' is not a contrastive-entropy name "
                                "(ce@M: M negatives from the candidates; ce-corpus@M: from the corpus)")
            if name in (f"ce@{self.ce_negatives}", f"ce-candidates@{self.ce_negatives}"):
                raise UserError(f"ce_variants: '{name}' is the base contrastive entropy already (ce_negatives)")
        if self.batch_size % self.devices:
            raise UserError(f"batch_size ({self.batch_size}) must be a multiple of devices ({self.devices}): "
                            "it is the global batch, split evenly over the devices")
        if self.devices > 1 and self.strategy == "auto":
            raise UserError(f"devices = {self.devices} needs strategy = \"ddp\" or \"fsdp\"")
        if self.devices == 1 and self.strategy == "fsdp":
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

    def _check_family(self) -> None:
        """The objective reads the family's score layout; bi-encoder keys need the bi-encoder."""
        from rerank_scaling.models import LAYOUTS
        from rerank_scaling.objectives import OBJECTIVES

        layout = LAYOUTS[self.family]
        if OBJECTIVES[self.objective].layout != layout:
            fits = ", ".join(n for n, o in OBJECTIVES.items() if o.layout == layout)
            raise UserError(f"objective '{self.objective}' does not train family '{self.family}' (choose from {fits})")
        for f in settings(RunConfig):
            families = f.metadata.get("families")
            if families and self.family not in families and getattr(self, f.name) != f.default:
                raise UserError(f"{f.name} = {getattr(self, f.name)!r} applies to family "
                                f"{' / '.join(repr(x) for x in families)} only")
        if self.family != "bi-encoder" and self.pooling == "last":
            raise UserError("pooling = 'last' applies to family 'bi-encoder' only")
        if self.lora_rank is None and (self.lora_alpha is not None or self.lora_dropout or self.lora_targets):
            raise UserError("lora_alpha, lora_dropout and lora_targets need lora_rank (LoRA is off without it)")
        if self.lora_dropout >= 1:
            raise UserError(f"lora_dropout = {self.lora_dropout!r} is a probability (0 <= p < 1)")
        if self.lora_rank is not None and importlib.util.find_spec("peft") is None:
            raise UserError("lora_rank needs peft: pip install 'rerank-scaling[lora]'")
        if self.regularizer_warmup > 1:
            raise UserError(f"regularizer_warmup = {self.regularizer_warmup!r} is a fraction of the steps (0..1)")
        info = OBJECTIVES[self.objective]
        if info.families and self.family not in info.families:
            raise UserError(f"objective '{self.objective}' trains family {' / '.join(map(repr, info.families))} "
                            f"only, not '{self.family}'")
        if distils(self.objective) and not self.teacher:
            raise UserError(f"objective '{self.objective}' distils a teacher: set teacher (a run folder with model/,"
                            " a saved model or a cross-encoder id)")
        if distils_query_tower(self.objective) and self.towers != "shared":
            raise UserError(f"objective '{self.objective}' trains a query tower only (the documents are the "
                            "teacher's): towers must stay 'shared'")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> "RunConfig":
        """A checked config from plain values (config.json, TOML, flags); errors start with ``where``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"{where}: unknown key '{unknown[0]}'")
        data = dict(data)
        try:
            if "evals" in data:
                if not isinstance(data["evals"], (list, tuple)):
                    raise UserError(f"evals must be a list of tables, got {data['evals']!r}")
                data["evals"] = tuple(eval_spec(e) for e in data["evals"])
            if isinstance(data.get("split_fractions"), dict):
                data["split_fractions"] = tuple(data["split_fractions"].items())
            elif "split_fractions" in data:
                data["split_fractions"] = tuple(tuple(x) for x in data["split_fractions"])
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


def distils(objective: str) -> bool:
    """Whether ``objective`` learns from a teacher (its ``requires`` names ``teacher_scores`` -- MarginMSE, KL,
    CL+KD -- or ``teacher_embeddings`` -- ScalingNote's query-distill): the cells that read ``[train] teacher``;
    an unknown name does not."""
    from rerank_scaling.objectives import OBJECTIVES

    info = OBJECTIVES.get(objective)
    return info is not None and bool({"teacher_scores", "teacher_embeddings"} & set(info.requires))


def distils_query_tower(objective: str) -> bool:
    """Whether ``objective`` learns a teacher's query embeddings (``requires`` ``teacher_embeddings``:
    ScalingNote's query-distill), so its model is a query tower over the teacher's document index."""
    from rerank_scaling.objectives import OBJECTIVES

    info = OBJECTIVES.get(objective)
    return info is not None and "teacher_embeddings" in info.requires


def train_settings(family: str | None = None) -> tuple[str, ...]:
    """The [train] keys, in declaration order (the report's settings table); with ``family``, only
    the keys that apply to it."""
    return tuple(f.name for f in settings(RunConfig) if f.metadata["section"] == "train"
                 and (family is None or not f.metadata.get("families") or family in f.metadata["families"]))


def run_field_hint(name: str):
    return hints(RunConfig)[name]
