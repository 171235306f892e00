"""A cell's GPU memory, estimated before anything is loaded: from the ladder's shapes, not from weights.

Torch-free and offline, so ``grid run --dry-run`` can print it for a 1B grid
on a laptop, and a cell can compare it with its device before it starts.

**Shapes** (:func:`shape_of`). ``minilm``, ``scratch`` and ``llama`` rungs are
computed from their ladder definitions (:mod:`rerank_scaling.models.ladder`;
MiniLM-L6-H384, 12 heads, feed-forward 1536, WordPiece 30,522). The Ettin
rungs are a table of the hub configs (ModernBERT: GLU feed-forward, no biases,
vocabulary 50,368; layers / hidden / heads / intermediate 7/256/4/384,
10/384/6/576, 19/512/8/768, 22/768/12/1152, 28/1024/16/2624, 28/1792/28/3840),
whose parameter counts land on the names (16.8M .. 1.03B). An ``hf`` model is
read from the local Hugging Face cache when its config is there, else it has no
estimate.

**Estimate** (:func:`estimate`), bytes per device, for AdamW:

* states: fp32 weights (4 B/param; 2 under ``*-true`` half precision), their
  gradients (4 or 2 B) and AdamW's two moments (8 or 4 B); DDP adds a gradient
  bucket copy (4 B); FSDP divides the three by the world size and adds two
  gathered units (the largest layer or the embeddings, in fp32);
* activations kept for the backward pass, per token and layer (the
  attention is a fused SDPA kernel, as on GPUs: no score matrix is kept; on
  CPU, attention dropout takes PyTorch's math path, which keeps the L x L
  probabilities: 1.55x the estimate measured on scratch L4-H256, 1.10x without
  dropout, ``tests/models/test_memory.py``):
  ``a * (8h + f) + 2h`` bytes, ``a`` = 2 under mixed/half precision, 4 in fp32,
  ``f`` = 2 x intermediate (3x for a gated feed-forward), ``2h`` the dropout
  masks (BERT rungs; Ettin and Llama have no dropout unless ``[train] dropout``
  sets one) -- 34 h for BERT-base in 16 bit, as Korthikanti et al. (2022) count;
  with ``gradient_checkpointing`` only each layer's input (``a * h``) plus one
  layer's; over the tokens of one micro-batch at ``max_length``
  (``batch_size / (devices x nodes x grad_accumulation)`` groups of
  ``1 + n_negatives`` pairs for the cross-encoder, at most ``chunk_size`` at a
  time; a query and ``1 + n_negatives`` documents for the retrievers); the
  sparse family adds its vocabulary logits;
* evaluation: under FSDP each rank holds a whole fp32 replica beside its shards;
* 1.5 GB for the CUDA context, kernels' workspace and the allocator's slack.

An upper bound in one way (every sequence padded to ``max_length``; BERT rungs
run packed, without padding) and a plain estimate in the others; the GPU check
(``benchmarks/gpu_check.sh``) prints it beside the measured peak.
"""

from __future__ import annotations

from dataclasses import dataclass

from rerank_scaling.models.ladder import (ETTIN_SIZES, LLAMA_SIZES, MINILM_SIZES, SCRATCH_SIZES, ModelSpec,
                                          llama_intermediate)

GB = 1e9
CONTEXT_BYTES = 1.5 * GB
WORDPIECE = 30_522  # MiniLM's vocabulary (scratch and llama rungs use its tokenizer)


@dataclass(frozen=True)
class Shape:
    """What the memory of a transformer encoder depends on."""

    kind: str  # "bert" (biases, LayerNorm, learned positions), "modernbert" (GLU, no biases), "llama"
    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int
    positions: int = 512  # learned position embeddings (BERT)

    @property
    def glu(self) -> bool:
        return self.kind in ("modernbert", "llama")


# the hub configs of jhu-clsp/ettin-encoder-* (module docstring): (layers, hidden, heads, intermediate)
ETTIN_SHAPES = {"17m": (7, 256, 4, 384), "32m": (10, 384, 6, 576), "68m": (19, 512, 8, 768),
                "150m": (22, 768, 12, 1152), "400m": (28, 1024, 16, 2624), "1b": (28, 1792, 28, 3840)}
ETTIN_VOCAB = 50_368


def shape_of(spec: ModelSpec) -> Shape | None:
    """The rung's shape, from its ladder's definition (or the Ettin table); None where it is not known offline."""
    if spec.ladder == "minilm":
        return Shape("bert", MINILM_SIZES[spec.size], 384, 12, 1536, WORDPIECE)
    if spec.ladder == "scratch":
        layers, hidden, heads = SCRATCH_SIZES[spec.size]
        return Shape("bert", layers, hidden, heads, 4 * hidden, WORDPIECE)
    if spec.ladder == "llama":
        layers, hidden, heads = LLAMA_SIZES[spec.size]
        return Shape("llama", layers, hidden, heads, llama_intermediate(hidden), WORDPIECE, positions=0)
    if spec.ladder == "ettin" and spec.size in ETTIN_SIZES:
        layers, hidden, heads, intermediate = ETTIN_SHAPES[spec.size]
        return Shape("modernbert", layers, hidden, heads, intermediate, ETTIN_VOCAB, positions=0)
    if spec.ladder == "hf":
        return _cached_hf_shape(spec.size)
    return None


def _cached_hf_shape(name: str) -> Shape | None:
    """A hub model's shape from its config in the local cache (or folder); None when not there (offline)."""
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached, not a model: no estimate
        return None
    kind = {"modernbert": "modernbert", "llama": "llama", "qwen2": "llama", "qwen3": "llama"}.get(
        config.model_type, "bert")
    try:
        return Shape(kind, config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
                     config.intermediate_size, config.vocab_size,
                     getattr(config, "max_position_embeddings", 0) if kind == "bert" else 0)
    except AttributeError:
        return None


def parameters(shape: Shape, scorer: bool = True) -> tuple[int, int]:
    """``(non_embedding, total)`` parameters of a model of this shape: with ``scorer``, a one-logit scorer
    (the cross-encoder's head: a classifier over BERT's pooler, or a linear head on the mean); else a
    retriever's encoder."""
    h, i = shape.hidden, shape.intermediate
    if shape.kind == "bert":
        layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h
        embedding = (shape.vocab + shape.positions + 2) * h  # word, position, token type
        rest = 2 * h + ((h * h + h) if scorer else 0)  # embedding LayerNorm; a scorer's pooler (either pooling)
        head = h + 1
    elif shape.kind == "modernbert":
        layer = 4 * h * h + 3 * h * i + 2 * h  # Wqkv + Wo, GLU Wi (2i) + Wo, two norms (no biases)
        embedding = shape.vocab * h
        rest = 2 * h + (h * h + h)  # embedding and final norms; the classification head's dense + norm
        head = h + 1
    else:  # llama: q, k, v, o; gated feed-forward; two RMSNorms per layer
        layer = 4 * h * h + 3 * h * i + 2 * h
        embedding = shape.vocab * h
        rest = h
        head = h
    non_embedding = shape.layers * layer + rest + (head if scorer else 0)
    return non_embedding, non_embedding + embedding


def _act_bytes(precision: str | None) -> int:
    return 4 if precision in ("32-true", "32", "64-true") else 2  # None: bf16-mixed / 16-mixed on a GPU


def _state_bytes(precision: str | None) -> int:
    return 2 if precision in ("bf16-true", "16-true") else 4


def activation_bytes_per_token(shape: Shape, precision: str | None, checkpointing: bool = False,
                               dropout: bool = True) -> float:
    """Bytes kept for the backward pass per token of one sequence, over all layers (module docstring)."""
    a, h = _act_bytes(precision), shape.hidden
    feed_forward = (3 if shape.glu else 2) * shape.intermediate
    layer = a * (8 * h + feed_forward) + (2 * h if dropout else 0)
    if checkpointing:
        return shape.layers * a * h + layer
    return shape.layers * layer + 2 * a * h  # + the embeddings' output


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per device of one cell (module docstring); ``total`` is the peak of training and evaluation."""

    non_embedding: int
    params: int
    states: float  # weights, gradients, optimizer (this device's share)
    activations: float
    evaluation: float  # what evaluation holds beside the states (FSDP's replica)
    tokens: int  # tokens of one micro-batch (at max_length)
    overhead: float = CONTEXT_BYTES

    @property
    def total(self) -> float:
        return self.states + max(self.activations, self.evaluation) + self.overhead

    def gb(self) -> float:
        return self.total / GB

    def describe(self) -> str:
        return (f"{self.gb():.1f} GB per device (states {self.states / GB:.1f}, activations "
                f"{self.activations / GB:.1f} for {self.tokens:,} tokens, evaluation {self.evaluation / GB:.1f}, "
                f"context {self.overhead / GB:.1f})")


def sequences_per_micro_batch(config) -> tuple[int, int]:
    """``(sequences, tokens per sequence)`` of one device's micro-batch at ``max_length``."""
    groups = config.micro_batch
    if config.family == "cross-encoder":
        pairs = groups * (1 + config.n_negatives)
        return (min(pairs, config.chunk_size) if config.chunk_size else pairs), config.max_length
    # retrievers: every query and its documents, each at most max_length (queries shorter)
    return groups * (2 + config.n_negatives), config.max_length


def estimate(config) -> MemoryEstimate | None:
    """The memory one device needs for this cell (a :class:`~rerank_scaling.config.RunConfig`); None when
    the model's shape is not known offline."""
    shape = shape_of(config.model)
    if shape is None:
        return None
    non_embedding, total = parameters(shape, scorer=config.family == "cross-encoder")
    if config.family == "bi-encoder" and config.family_settings.towers == "separate":
        non_embedding, total = 2 * non_embedding, 2 * total
    state = _state_bytes(config.precision)
    lora = getattr(config.family_settings, "lora_rank", None)  # the retrievers' key
    trainable = total if lora is None else 0  # LoRA: adapters only (small), frozen weights below
    states = total * state + trainable * (state + 2 * state)  # weights + gradients + AdamW moments
    world = config.world_size
    if config.strategy == "fsdp" and world > 1:
        per_layer = non_embedding // max(shape.layers, 1)
        states = states / world + 2 * 4 * max(per_layer, shape.vocab * shape.hidden)
    elif world > 1:
        states += 4 * trainable  # DDP's gradient buckets
    sequences, length = sequences_per_micro_batch(config)
    tokens = sequences * length
    # dropout masks: BERT checkpoints keep 0.1 by default; ModernBERT (Ettin) and Llama train without dropout
    dropout = config.dropout > 0 if config.dropout is not None else shape.kind == "bert"
    activations = tokens * activation_bytes_per_token(shape, config.precision, config.gradient_checkpointing,
                                                      dropout)
    if config.family == "sparse":
        activations += tokens * shape.vocab * (_act_bytes(config.precision) + 4)  # MLM logits, their fp32 pooling
    evaluation = 4.0 * total if config.strategy == "fsdp" and world > 1 else 0.0
    evaluation += config.eval_batch_size * config.max_length * shape.hidden * 4 * 4  # inference activations
    return MemoryEstimate(non_embedding, total, states, activations, evaluation, tokens)


def suggestions(config) -> list[str]:
    """What lowers a cell's memory, most effective first, for an error message."""
    out = []
    if not config.gradient_checkpointing:
        out.append("[train] gradient_checkpointing = true")
    if config.micro_batch > 1:
        out.append(f"a smaller [hardware] batch_per_device (now {config.micro_batch}; gradient accumulation keeps "
                   f"the global batch of {config.batch_size})")
    if config.family == "cross-encoder" and not config.chunk_size:
        out.append(f"[train] chunk_size (e.g. {max(1, (1 + config.n_negatives) * max(config.micro_batch // 2, 1))})")
    if config.world_size > 1 and config.strategy != "fsdp":
        out.append('strategy = "fsdp" (shards weights, gradients and optimizer state)')
    out.append("more devices per cell ([hardware.sizes.<size>] devices)")
    return out


def flops_per_step(config, non_embedding: int) -> float:
    """Training FLOPs of one step at ``max_length`` (6 N per token, the toolkit's convention; an upper bound,
    batches are padded only to their longest pair)."""
    sequences = config.batch_size * ((1 + config.n_negatives) if config.family == "cross-encoder"
                                     else (2 + config.n_negatives))
    return 6.0 * non_embedding * sequences * config.max_length
