"""What a model family is: the contract training, evaluation and the grid talk to.

A family is one module that provides a :class:`ModelFamily`, built on what
families share (:mod:`rerank_scaling.models.base`), plus its entry in
:data:`rerank_scaling.models.FAMILIES` (its stage, score layout, the objective
kinds it trains, the settings it owns). Nothing outside that module knows how
it tokenises or pools, and no family module imports another's. Torch-free: the
protocol names tensors (and ``RunConfig``) only in annotations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rerank_scaling.data.util import stable_key
from rerank_scaling.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from rerank_scaling.data.types import Collection
    from rerank_scaling.examples import Group


class Model(Protocol):
    """A trainable scorer (a ``torch.nn.Module``) of one family.

    ``stage`` (optional, default ``"rerank"``; its registry entry's): a reranker is evaluated
    on each set's candidate lists through :meth:`score`; a ``"retrieval"`` model (the
    bi-encoder) also has ``encode(texts, kind, batch_size)`` (``kind`` ``"query"`` or
    ``"doc"``; a tensor ``[n, d]``, or what its ``similarity`` reads) and
    ``similarity(q, d) -> [nq, nd]``, and is evaluated by searching the whole corpus
    (:mod:`rerank_scaling.evaluation.retrieval`).

    Optional too: ``penalty(step)``, a regulariser the training step adds to the loss
    (the sparse family's); ``teacher_retriever()``, for a model that searches a teacher's
    document index (query-distill): evaluation then adds its retained-quality and latency
    rows (:mod:`rerank_scaling.evaluation.distilled`).
    """

    def warm(self, queries: Sequence[str], docs: Sequence[str]) -> None:
        """Tokenise texts it will see, in a few batched calls (a cache; optional speed-up)."""

    def training_batch(self, groups: Sequence[Group], collection: Collection) -> dict[str, Any]:
        """Collated inputs of ``groups`` (``"inputs"``), their graded ``"labels"`` ``[B, G]``,
        and the number of ``"tokens"`` processed (for FLOPs)."""

    def group_scores(self, batch: dict[str, Any]) -> torch.Tensor:
        """Scores in the layout the family's objectives expect (``[B, G]`` for query groups)."""

    def score(self, queries: Sequence[str], docs: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Scores of (query, doc) pairs, in input order (evaluation; no gradients)."""

    def parameter_counts(self) -> tuple[int, int]:
        """``(non_embedding, total)`` parameters (N is the first)."""

    def training_flops(self, tokens: int) -> float:
        """Training FLOPs for ``tokens`` processed (``6 * N * tokens`` for one transformer)."""

    def save(self, folder: Path) -> None:
        """Write the model so that its family's ``load`` gives the same scores back."""


class ModelFamily(Protocol):
    name: str  # its key in models.FAMILIES (which declares its layout, stage, objectives, settings)

    def build(self, config: RunConfig) -> Model:
        """The config's ladder rung, new heads drawn from ``config.seed``; the family's own keys are
        ``config.family_settings``."""

    def load(self, folder: Path) -> Model:
        """A model written by :meth:`Model.save`."""


FAMILY_FILE = "family.json"  # beside a saved model's weights: its family and the settings its load needs


def write_family_file(folder: Path, family: str, settings: dict) -> None:
    """``family.json`` of a model saved into ``folder``: ``{"family": family, **settings}``."""
    (Path(folder) / FAMILY_FILE).write_text(json.dumps({"family": family, **settings}, indent=2) + "\n")


def read_family_file(folder: Path, family: str) -> dict:
    """The settings a ``family`` model saved into ``folder`` (``ValueError`` when it is another family's)."""
    info = json.loads((Path(folder) / FAMILY_FILE).read_text())
    if _family_of(info) != family:
        raise ValueError(f"{folder}: not a {family} ({FAMILY_FILE} says {_family_of(info)!r})")
    return info


def _family_of(info: dict) -> str | None:
    """The family a ``family.json`` names; a query-distill student saved while it was a kind of bi-encoder
    (``"family": "bi-encoder"`` with a ``query_distill`` entry) is a ``query-distill`` model."""
    return "query-distill" if "query_distill" in info else info.get("family")


def saved_model_folder(source: str) -> Path | None:
    """The folder a family's ``save`` wrote (:data:`FAMILY_FILE` beside the weights) behind ``source``: a
    run folder (its ``model/``) or that folder itself; None for a hub id or a plain Hugging Face folder."""
    path = Path(source)
    for folder in (path / "model", path):
        if (folder / FAMILY_FILE).is_file():
            return folder
    return None


def check_hub_source(source: str, label: str = "teacher") -> None:
    """``source`` has no saved model of this toolkit: it must be a hub id or a Hugging Face folder -- a one-line
    error (``label``: what the user named it, e.g. ``teacher``) for a run folder trained without
    ``save_model`` and for a local path that does not exist."""
    if Path(source).is_dir() and not (Path(source) / "config.json").is_file():
        raise UserError(f"{label} = '{source}': a folder without a saved model (run folder: was it trained"
                        " with save_model = false?)")
    if source.startswith((".", "/")) and not Path(source).exists():
        raise UserError(f"{label} = '{source}': no such folder")


def saved_family(folder: Path) -> str | None:
    """The family a saved model folder names."""
    return _family_of(json.loads((Path(folder) / FAMILY_FILE).read_text()))


def model_fingerprint(source: str) -> str:
    """sha256 over a model's files (names and bytes), the key of everything cached from it (a
    distillation teacher's scores and embeddings); a hub id stands for itself."""
    folder = saved_model_folder(source) or (Path(source) if Path(source).is_dir() else None)
    if folder is None:
        return stable_key(f"hub:{source}")
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(folder)).encode())
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()
