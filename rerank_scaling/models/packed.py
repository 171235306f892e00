"""Our forward of Hugging Face BERT backbones: packed (no work on padding) and, for CLS pooling, pruned.

Shared by every family with a BERT backbone (the cross-encoder's pair
classifier, the dense towers of :mod:`rerank_scaling.models.base`): the same
weights and the same math as the Hugging Face forward, with two savings
(:class:`BertRunner`). A family keeps a ``fast_path`` switch to fall back to
the Hugging Face forward (as training under FSDP does, whose wrapped layers
hold only shards outside their own forward).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F


class BertRunner:
    """Our forward of a Hugging Face BERT backbone: packed, and CLS-pruned for CLS pooling.

    It runs the backbone's own modules and parameters (nothing is copied:
    training, ``state_dict`` and ``save_pretrained`` are unaffected) and keeps
    ``BertModel``'s math -- embeddings; per layer ``a = LN(x + drop(O attn(Q, K, V)))``
    and ``LN(a + drop(W2 act(W1 a)))``; then the pooler ``tanh(W h_cls)``,
    dropout and the classifier -- with two savings:

    * packing: when a batch has enough padding, the position-wise work (Q/K/V,
      output projection, feed-forward, LayerNorm) runs on the ``T`` real tokens
      (``[T, H]``) instead of ``B * L`` padded slots; only the attention product
      sees the padded layout;
    * CLS pruning (``cls`` pooling): only the ``[CLS]`` state of the last layer
      reaches the pooler, so that layer's query, attention row, output
      projection and feed-forward are computed for that one position per pair
      (its keys and values still come from every token). Exact: the logits are
      those of the full forward up to float rounding.

    Q/K/V (and the last layer's K/V) are one GEMM on stacked weights. Dropout
    (training) is applied where BERT applies it, so the loss has the same
    distribution; the random masks differ from the Hugging Face forward's.
    :meth:`supports` says which backbones qualify; others use the HF forward.
    """

    #: pack the tokens when more than this fraction of the padded batch is padding
    pack_threshold = 0.08

    def __init__(self, pooling: str):
        self.pooling = pooling
        self._frozen: dict | None = None

    @staticmethod
    def supports(backbone: torch.nn.Module, pooling: str) -> bool:
        config = getattr(backbone, "config", None)
        if config is None or getattr(config, "model_type", None) != "bert":
            return False
        if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
            return False
        if getattr(config, "position_embedding_type", "absolute") != "absolute":
            return False
        if pooling == "cls":
            if type(backbone).__name__ != "BertForSequenceClassification":
                return False
            bert = backbone.bert
            if bert.pooler is None or getattr(backbone.classifier, "out_features", None) != 1:
                return False
        else:
            if type(backbone).__name__ != "BertModel":
                return False
            bert = backbone
        layers = bert.encoder.layer
        return len(layers) > 0 and all(type(layer).__name__ == "BertLayer" for layer in layers)

    def logits(self, backbone: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``cls`` pooling: the classifier's logits, ``[B]``."""
        h_cls = self._encode(backbone.bert, batch, cls_only=True)[0]
        pooler = backbone.bert.pooler
        return backbone.classifier(backbone.dropout(pooler.activation(pooler.dense(h_cls)))).view(-1)

    def cls_hidden(self, bert: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last layer's ``[CLS]`` states of a bare encoder, ``[B, H]`` (CLS-pruned, no pooler)."""
        return self._encode(bert, batch, cls_only=True)[0]

    def mean_hidden(self, bert: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``mean`` pooling: mask-averaged last hidden states, ``[B, H]``."""
        x, idx, lengths = self._encode(bert, batch, cls_only=False)
        b, width = batch["input_ids"].shape
        if idx is None:
            keep = batch["attention_mask"].unsqueeze(-1).to(x.dtype)
            return (x.view(b, width, -1) * keep).sum(1) / lengths.unsqueeze(1).to(x.dtype)
        rows = torch.div(idx, width, rounding_mode="floor")
        return x.new_zeros(b, x.shape[-1]).index_add(0, rows, x) / lengths.unsqueeze(1).to(x.dtype)

    def _encode(self, bert: torch.nn.Module, batch: dict[str, torch.Tensor], cls_only: bool):
        """Last hidden states: ``[B, H]`` of ``[CLS]`` (``cls_only``), else ``[T or B*L, H]``."""
        input_ids, attention = batch["input_ids"], batch["attention_mask"]
        b, width = input_ids.shape
        x = bert.embeddings(input_ids=input_ids, token_type_ids=batch.get("token_type_ids"))
        hidden = x.shape[-1]
        lengths = attention.sum(1)
        real = int(lengths.sum())
        mask = attention.bool()[:, None, None, :] if real < b * width else None  # True = attend
        if real < (1.0 - self.pack_threshold) * b * width:  # pack
            idx = attention.reshape(-1).nonzero().squeeze(1)  # flat positions of the real tokens
            x = x.reshape(-1, hidden).index_select(0, idx)  # [T, H]
            starts = torch.cumsum(lengths, 0) - lengths  # packed row of each [CLS]
        else:
            idx = None
            x = x.reshape(-1, hidden)
            starts = torch.arange(b, device=x.device) * width

        def padded(t: torch.Tensor, parts: int, heads: int) -> torch.Tensor:  # [T, parts*H] -> parts x [B, h, L, d]
            if idx is not None:
                t = t.new_zeros(b * width, t.shape[1]).index_copy(0, idx, t)
            return t.view(b, width, parts, heads, -1).permute(2, 0, 3, 1, 4)

        training = bert.training
        layers = bert.encoder.layer
        for i, layer in enumerate(layers):
            sa = layer.attention.self
            heads = sa.num_attention_heads
            p = sa.dropout.p if training else 0.0
            if cls_only and i == len(layers) - 1:
                x_cls = x.index_select(0, starts)  # [B, H]
                q = sa.query(x_cls).view(b, heads, 1, -1)
                k, v = padded(F.linear(x, *self._stacked_params(sa.key, sa.value)), 2, heads)
                att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, scale=sa.scaling)
                att = layer.attention.output(att.reshape(b, -1), x_cls)
                return layer.output(layer.intermediate(att), att), None, lengths  # [B, H]
            q, k, v = padded(F.linear(x, *self._stacked_params(sa.query, sa.key, sa.value)), 3, heads)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, scale=sa.scaling)
            att = att.transpose(1, 2).reshape(b * width, hidden)
            if idx is not None:
                att = att.index_select(0, idx)
            att = layer.attention.output(att, x)
            x = layer.output(layer.intermediate(att), att)
        return x, idx, lengths

    def _stacked_params(self, *linears: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights and biases of several linear layers stacked, for one GEMM instead of several.

        Stacked afresh at each call (gradients flow back to each layer), except
        inside :meth:`frozen` (a ``score`` call), where they are stacked once. No
        cache outlives that: keyed on tensor versions it would go stale, since
        fused optimizers update parameters without bumping version counters.
        """
        if self._frozen is not None:
            key = tuple(id(m) for m in linears)
            if key not in self._frozen:
                self._frozen[key] = (torch.cat([m.weight for m in linears]), torch.cat([m.bias for m in linears]))
            return self._frozen[key]
        return torch.cat([m.weight for m in linears]), torch.cat([m.bias for m in linears])

    @contextmanager
    def frozen(self):
        """Parameters do not change inside: stacked weights are computed once and reused."""
        self._frozen = {}
        try:
            yield
        finally:
            self._frozen = None
