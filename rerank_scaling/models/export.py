"""Saved models in the layouts sentence-transformers loads: trained models other tools can use.

Each family's ``save`` writes its weights as Hugging Face folders and, beside
them, the sentence-transformers files that describe how they are used, so
``sentence_transformers.CrossEncoder(folder)``, ``SentenceTransformer(folder)``
and ``SparseEncoder(folder)`` load the model *as trained* (pooling, projection,
normalisation, score head) -- tested by loading them through
sentence-transformers and comparing scores
(``tests/models/test_export_st.py``). Plain files, written without importing
sentence-transformers (it is not a dependency); module types use the
``sentence_transformers.models.*`` names every version since 2.x resolves.

* **cross-encoder, CLS pooling**: the one-logit sequence classifier at the top
  of the folder (what ``CrossEncoder`` reads), its activation set to the
  identity so ``predict`` returns our scores (logits), its tokenizer's
  ``model_max_length`` our ``max_length``.
* **cross-encoder, mean pooling** (sentence-transformers >= 6, whose
  cross-encoders are modular): the bare encoder, ``1_Pooling`` (mean),
  ``2_Dense`` (the head: hidden -> 1, identity, output ``scores``).
* **bi-encoder**: the query tower's encoder at the top, ``1_Pooling`` (``cls`` /
  ``mean`` / ``lasttoken``), ``2_Dense`` (the projection, identity activation)
  and ``3_Normalize`` for cosine similarity, ``similarity_fn_name`` cosine or
  dot (a score is ``similarity / temperature``: the temperature scales, it does
  not reorder). Separate towers: a ``Router`` with a ``query`` and a
  ``document`` route (sentence-transformers >= 5; ``encode_query`` /
  ``encode_document``), each with its own length limit.
* **sparse encoder**: the masked-LM at the top, ``1_SpladePooling`` (max over
  tokens of ``log(1 + relu(logits))``), ``similarity_fn_name`` dot.

One length limit per sentence-transformers encoder: a shared tower's
``max_seq_length`` is the documents' (``max_length``), so a query longer than
``max_query_length`` tokens is cut later than in training. A decoder made
bidirectional (``bidirectional = true``) is saved as its Hugging Face class,
which is causal again when loaded elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

IDENTITY = "torch.nn.modules.linear.Identity"
_TYPES = {name: f"sentence_transformers.models.{name}" for name in ("Transformer", "Pooling", "Dense", "Normalize",
                                                                     "Router")}
SPARSE_TYPES = {"MLMTransformer": "sentence_transformers.sparse_encoder.models.MLMTransformer",
                "SpladePooling": "sentence_transformers.sparse_encoder.models.SpladePooling"}
POOLING_MODES = {"cls": "cls_token", "mean": "mean_tokens", "last": "lasttoken"}


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _update_json(path: Path, **values) -> None:
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(values)
    _json(path, data)


def save_hf(folder: Path, model: torch.nn.Module, tokenizer, max_length: int) -> None:
    """A Hugging Face model and its tokenizer in ``folder``, the tokenizer's ``model_max_length`` set to
    ``max_length`` (what other tools truncate at)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _update_json(folder / "tokenizer_config.json", model_max_length=max_length)


def _transformer(folder: Path, max_length: int) -> None:
    _json(folder / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})


def _pooling(folder: Path, dim: int, mode: str) -> None:
    config = {"word_embedding_dimension": dim, **{f"pooling_mode_{m}": m == POOLING_MODES[mode]
                                                  for m in ("cls_token", "mean_tokens", "max_tokens",
                                                            "mean_sqrt_len_tokens", "weightedmean_tokens",
                                                            "lasttoken")}, "include_prompt": True}
    _json(folder / "config.json", config)


def _dense(folder: Path, linear: torch.nn.Linear, output: str | None = None) -> None:
    from safetensors.torch import save_file

    config = {"in_features": linear.in_features, "out_features": linear.out_features,
              "bias": linear.bias is not None, "activation_function": IDENTITY}
    if output is not None:
        config["module_output_name"] = output
    _json(folder / "config.json", config)
    tensors = {"linear.weight": linear.weight.detach().cpu().contiguous()}
    if linear.bias is not None:
        tensors["linear.bias"] = linear.bias.detach().cpu().contiguous()
    save_file(tensors, str(folder / "model.safetensors"))


def read_dense(folder: Path, linear: torch.nn.Linear) -> None:
    """Load a ``Dense`` module's weights written by :func:`_dense` into ``linear``."""
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    linear.load_state_dict({k.removeprefix("linear."): v for k, v in tensors.items()})


def _modules(folder: Path, entries: list[tuple[str, str]]) -> None:
    _json(folder / "modules.json", [{"idx": i, "name": str(i), "path": path, "type": kind}
                                     for i, (path, kind) in enumerate(entries)])


def _st_config(folder: Path, model_type: str, **extra) -> None:
    _json(folder / "config_sentence_transformers.json", {"model_type": model_type, "prompts": {},
                                                         "default_prompt_name": None, **extra})


def cross_encoder_layout(folder: Path, pooling: str, head: torch.nn.Linear | None, max_length: int) -> None:
    """The sentence-transformers files of a cross-encoder whose backbone is saved at ``folder``."""
    _st_config(folder, "CrossEncoder", activation_fn=IDENTITY)
    if pooling == "cls":  # the classifier itself; older versions read the activation from config.json
        _update_json(folder / "config.json", sentence_transformers={"activation_fn": IDENTITY})
        return
    _transformer(folder, max_length)
    _pooling(folder / "1_Pooling", head.in_features, "mean")
    _dense(folder / "2_Dense", head, output="scores")
    _modules(folder, [("", _TYPES["Transformer"]), ("1_Pooling", _TYPES["Pooling"]), ("2_Dense", _TYPES["Dense"])])


def _tower_modules(folder: Path, prefix: str, tower, pooling: str, normalize: bool, max_length: int,
                   dim: int) -> list[tuple[str, str]]:
    """A tower's modules below ``folder`` (its encoder saved at ``folder / prefix + '0_Transformer'`` or
    at ``folder`` itself for ``prefix=''``): (path, type) entries."""
    entries = [("" if not prefix else f"{prefix}0_Transformer", _TYPES["Transformer"])]
    _transformer(folder / entries[0][0], max_length)
    _pooling(folder / f"{prefix}1_Pooling", dim, pooling)
    entries.append((f"{prefix}1_Pooling", _TYPES["Pooling"]))
    i = 2
    if tower.projection is not None:
        _dense(folder / f"{prefix}{i}_Dense", tower.projection)
        entries.append((f"{prefix}{i}_Dense", _TYPES["Dense"]))
        i += 1
    if normalize:
        _json(folder / f"{prefix}{i}_Normalize" / "config.json", {})
        entries.append((f"{prefix}{i}_Normalize", _TYPES["Normalize"]))
    return entries


def bi_encoder_layout(folder: Path, model, doc_folder: str | None = None) -> None:
    """The sentence-transformers files of a bi-encoder whose query tower's encoder is saved at ``folder``
    (and, for separate towers, the document tower's at ``folder / doc_folder``)."""
    normalize = model.similarity_name == "cosine"
    dim = model.towers[0].backbone.config.hidden_size
    _st_config(folder, "SentenceTransformer", similarity_fn_name=model.similarity_name,
               temperature=model.temperature)
    if model.shared:
        _modules(folder, _tower_modules(folder, "", model.towers[0], model.pooling, normalize,
                                        model.texts.max_length, dim))
        return
    routes = {"query": (model.towers[0], model.texts.max_query_length, "query_"),
              "document": (model.towers[1], model.texts.max_length, "document_")}
    types, structure = {}, {}
    for route, (tower, limit, prefix) in routes.items():
        entries = _tower_modules(folder, prefix, tower, model.pooling, normalize, limit, dim)
        structure[route] = [path for path, _ in entries]
        types.update({path: kind for path, kind in entries})
    _json(folder / "router_config.json", {"types": types, "structure": structure,
                                           "parameters": {"default_route": "document", "allow_empty_key": True,
                                                          "route_mappings": {}}})
    _modules(folder, [("", _TYPES["Router"])])


def sparse_layout(folder: Path, vocab_size: int, max_length: int) -> None:
    """The sentence-transformers files of a SPLADE model whose masked-LM is saved at ``folder``."""
    _st_config(folder, "SparseEncoder", similarity_fn_name="dot")
    _transformer(folder, max_length)
    _json(folder / "1_SpladePooling" / "config.json", {"pooling_strategy": "max", "activation_function": "relu",
                                                       "word_embedding_dimension": vocab_size})
    _modules(folder, [("", SPARSE_TYPES["MLMTransformer"]), ("1_SpladePooling", SPARSE_TYPES["SpladePooling"])])
