"""Decoder-only (causal LM) backbones for the retriever families: bidirectional attention, last-token
pooling, LoRA.

* **Bidirectional attention** (Zeng et al., 2025; LLM2Vec; ``[train] bidirectional = true``): a
  decoder's causal mask is removed, so every token attends to every real token of its text.
  Transformers builds a decoder's mask in ``masking_utils.create_causal_mask``, which falls back to
  the bidirectional (padding-only) mask when ``config.is_causal`` is False; the attention modules'
  own ``is_causal`` flag (what SDPA / flash attention use when no mask is passed) is cleared too.
  :func:`make_bidirectional` then checks the result on a 3-token probe -- a later token must change
  an earlier token's state -- and refuses a model or transformers version that ignores the switch,
  rather than silently training a causal model.
* **Last-token pooling** (:func:`last_token`): the state of each text's last real token, found from
  the attention mask, so right and left padding both read the right position.
* **LoRA** (``lora_rank``; :func:`with_lora`, via ``peft``): the backbone's weights are frozen and
  low-rank adapters ``W + (alpha / r) B A`` train on the target modules (default: every linear layer
  of the transformer, peft's ``"all-linear"``, which leaves an output head out); parameters no
  checkpoint held (a head drawn new, ``model.new_parameters``) train in full.

Model size N stays the backbone's non-embedding parameters, adapters excluded
(:func:`rerank_scaling.models.backbone.parameter_counts`): the model being scaled, the one that
serves once the adapters are merged; the trainable count is recorded beside it
(``trainable_params``). Training FLOPs keep the ``6 * N * tokens`` convention (frozen weights skip
their weight gradients, so a LoRA step really costs nearer ``4 N`` per token). A model saved with
LoRA has its adapters merged (:func:`merged`): it loads as a plain Hugging Face model.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch

from rerank_scaling.errors import UserError


def is_causal(model: torch.nn.Module) -> bool:
    """Whether any attention module of ``model`` masks the future (a decoder's, not yet bidirectional)."""
    return any(getattr(m, "is_causal", False) is True for m in model.modules())


def _hidden(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    out = model(**batch, output_hidden_states=True)
    return out.hidden_states[-1] if getattr(out, "hidden_states", None) is not None else out.last_hidden_state


def make_bidirectional(model: torch.nn.Module, name: str = "the backbone") -> torch.nn.Module:
    """Remove ``model``'s causal mask in place (the module docstring); :class:`UserError` for a model
    that is not causal, or whose attention stays causal."""
    if not is_causal(model):
        raise UserError(f"bidirectional = true: {name} is not a causal (decoder) model; its attention "
                        "is bidirectional already")
    for config in {id(c): c for c in (model.config, getattr(model.config, "text_config", None)) if c}.values():
        config.is_causal = False
    for module in model.modules():
        if getattr(module, "is_causal", None) is True:
            module.is_causal = False
    ids = torch.tensor([[1, 2, 3], [1, 2, 4]], device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        first = _hidden(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})[:, 0]
    model.train(was_training)
    if torch.allclose(first[0], first[1]):
        import transformers

        raise UserError(f"bidirectional = true: {name}'s attention stayed causal under transformers "
                        f"{transformers.__version__} (its mask ignores config.is_causal = False)")
    return model


def last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``hidden[i, t_i]`` with ``t_i`` the last position of row ``i`` whose ``mask`` is 1, for right and
    left padding alike: ``[n, L, H] -> [n, H]``."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = (mask.long() * positions).argmax(1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def with_lora(model: torch.nn.Module, rank: int, alpha: float | None = None, dropout: float = 0.0,
              targets: Sequence[str] = ()) -> torch.nn.Module:
    """``model`` wrapped by peft with LoRA adapters of ``rank`` (``alpha`` None: ``2 * rank``) on
    ``targets`` (module names; empty: every linear layer but an output head); its base weights frozen
    but for ``model.new_parameters``."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - checked when the config is read
        raise UserError("lora_rank needs peft: pip install 'rerank-scaling[lora]'") from exc
    fresh = set(getattr(model, "new_parameters", ()))
    lora = LoraConfig(r=rank, lora_alpha=2 * rank if alpha is None else alpha, lora_dropout=dropout,
                      target_modules=list(targets) or "all-linear", bias="none")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft asks transformers a deprecated question
            wrapped = get_peft_model(model, lora)
    except ValueError as exc:
        raise UserError(f"lora_targets: {' '.join(str(exc).split())[:200]}") from None
    for name, param in wrapped.get_base_model().named_parameters():
        if name in fresh and "lora_" not in name:
            param.requires_grad_(True)
    return wrapped


def is_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config")


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """A plain copy of ``model`` with its LoRA adapters merged into the weights (``model`` itself
    when it has none), for ``save_pretrained``."""
    return copy.deepcopy(model).merge_and_unload() if is_lora(model) else model
