"""ScalingNote's stage 2: a small query tower over a large bi-encoder's document index.

Huang et al. (2024, "ScalingNote: Scaling up Retrievers with Large Language
Models for Real-World Dense Retrieval", arXiv:2411.15766) train a large dual
tower (stage 1), then distil only its query tower into a small model (stage 2,
the ``query-distill`` objective, :mod:`rerank_scaling.objectives.distillation`)
and keep the large document tower's index: online latency is the small query
tower's, quality stays close to the large model's.

A :class:`QueryStudent` (family ``query-distill``, objective ``query-distill``)
is one trained query tower (a :class:`~rerank_scaling.models.base.Tower`) whose
documents are the teacher's: ``encode(texts, "doc")`` hands back the *teacher's*
document embeddings, so every retrieval it does searches the teacher's index. The
teacher (``[train] teacher``) is a trained bi-encoder -- a run folder of this
toolkit with ``model/`` (stage 1 run by this toolkit), a saved bi-encoder
folder, or a Hugging Face encoder id or folder (mean pooling, cosine, as
sentence-transformers' usual models) -- held beside the student, not inside it:
it is not trained, not counted in N, not checkpointed, and not moved by the
training strategy (it runs on the GPU when there is one).

Everything the teacher computes is cached by :class:`TeacherCache`: in memory
for the process and on disk in ``<cache>/teacher-embeddings/<key>.pt``, keyed by
the teacher's fingerprint (the sha256 of its files, or its hub id), the kind
(query / doc), the normalisation, its length limits and every text, so the
document index is encoded once per (teacher, corpus) for every student and
checkpoint of a grid, and the training targets once per (teacher, training
queries). The student's similarity and temperature are the teacher's (the
index is searched as the teacher searches it); its width is the teacher's:
a student whose hidden size differs gets a linear ``projection`` to it
(``[train] projection`` may only name that width).

Model size N of a student: its query tower's non-embedding parameters with the
projection (the teacher's towers are not counted: they are the fixed index and
the training targets). Training FLOPs: ``6 * N * query tokens`` (the teacher's
forward passes are cached, not counted).

The teacher is loaded through the registry (``get_family("bi-encoder")``): this
module imports no other family's. A student saved when query-distill was a kind
of bi-encoder (``family.json``: ``"bi-encoder"`` with ``query_distill``) loads as
this family (:func:`rerank_scaling.models.family.saved_family`).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rerank_scaling.data.util import atomic_write_bytes, default_cache_dir
from rerank_scaling.errors import UserError
from rerank_scaling.models import get_family
from rerank_scaling.models.backbone import load_backbone, parameter_counts
from rerank_scaling.models.base import InBatchRetriever, TextTokenizer, Tower, encode_sorted
from rerank_scaling.models.family import (check_hub_source, model_fingerprint, read_family_file, saved_family,
                                          saved_model_folder, write_family_file)
from rerank_scaling.models.ladder import default_pooling
from rerank_scaling.runtime import local_device

log = logging.getLogger(__name__)
CACHE_FOLDER = "teacher-embeddings"


def load_dual_tower(source: str, max_length: int = 256, max_query_length: int = 64):
    """The bi-encoder behind ``source`` (module docstring), in eval mode with frozen weights.
    ``max_length`` / ``max_query_length`` apply to a Hugging Face encoder only (a saved bi-encoder
    keeps its own)."""
    folder = saved_model_folder(source)
    bi_encoders = get_family("bi-encoder")
    if folder is not None:
        family = saved_family(folder)
        if family != "bi-encoder":
            raise UserError(f"teacher = '{source}': a {family} model; query-distill distils a bi-encoder's "
                            "query tower (train the teacher with family = \"bi-encoder\" and save_model = true)")
        model = bi_encoders.load(folder)
    else:
        check_hub_source(source)
        model = bi_encoders.from_encoder(source, max_length, max_query_length)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


class TeacherCache:
    """The teacher's embeddings of text lists, computed once (module docstring). ``encoded`` counts
    the texts the teacher encoded, ``loaded`` the lists read from disk, ``hits`` those served from
    memory: what tests and logs read to see that an index was not recomputed."""

    def __init__(self, teacher, fingerprint: str, cache_dir: str | None = None):  # teacher: a bi-encoder
        self.teacher, self.fingerprint = teacher, fingerprint
        self.folder = Path(cache_dir or default_cache_dir()) / CACHE_FOLDER
        self.memory: dict[str, torch.Tensor] = {}
        self.encoded = self.loaded = self.hits = 0

    def key(self, texts: Sequence[str], kind: str, normalize: bool) -> str:
        t = self.teacher.texts
        digest = hashlib.sha256(f"{self.fingerprint}\n{kind}\n{normalize}\n{t.max_length}\n"
                                f"{t.max_query_length}\n".encode())
        for text in texts:
            digest.update(text.encode())
            digest.update(b"\0")
        return digest.hexdigest()[:32]

    def path(self, texts: Sequence[str], kind: str, normalize: bool = True) -> Path:
        return self._file(self.key(texts, kind, normalize))

    def _file(self, key: str) -> Path:
        return self.folder / f"{key}.pt"

    def get(self, texts: Sequence[str], kind: str, normalize: bool = True, batch_size: int = 64) -> torch.Tensor:
        """``[n, d]`` float32 on the CPU: the teacher's ``encode(texts, kind)`` (``normalize=False``:
        the tower's raw output, the distillation target)."""
        key = self.key(texts, kind, normalize)
        if key in self.memory:
            self.hits += 1
            return self.memory[key]
        path = self._file(key)
        if path.is_file():
            out = torch.load(path, map_location="cpu", weights_only=True)
            self.loaded += 1
            log.info("teacher %s embeddings loaded from %s", kind, path)
        else:
            self.teacher.to(local_device())  # this process's GPU (a multi-device cell's ranks each their own)
            out = self.teacher.encode(list(texts), kind, batch_size=batch_size, normalize=normalize).cpu()
            self.encoded += len(texts)
            buf = io.BytesIO()
            torch.save(out, buf)
            atomic_write_bytes(path, buf.getvalue())
        self.memory[key] = out
        return out


class QueryStudent(InBatchRetriever, torch.nn.Module):
    """A query tower distilled from ``teacher`` (a bi-encoder), retrieving from the teacher's document index."""

    stage = "retrieval"

    def __init__(self, backbone: torch.nn.Module, tokenizer, *, teacher, teacher_source: str, fingerprint: str,
                 cache_dir: str | None = None, pooling: str = "mean", projection: int | None = None,
                 max_query_length: int = 64):
        super().__init__()
        self.query_tower = Tower(backbone, pooling, projection)
        self.pooling, self.projection_dim = pooling, projection
        self.similarity_name, self.temperature = teacher.similarity_name, teacher.temperature
        self.texts = TextTokenizer(tokenizer, max_length=teacher.texts.max_length, max_query_length=max_query_length,
                                   end_with_eos=pooling == "last")
        self.negatives, self.corpus_negatives, self.seed = (), 0, 0  # no documents in its batches
        # beside the module, not a submodule: never trained, counted, checkpointed or moved by the trainer
        object.__setattr__(self, "teacher", teacher)
        self.teacher_source, self.fingerprint = teacher_source, fingerprint
        self.cache = TeacherCache(teacher, fingerprint, cache_dir)

    @staticmethod
    def saved_teacher(info: dict) -> dict:
        """The teacher arguments of a saved student (``family.json``'s ``query_distill``)."""
        source = info["teacher"]
        if model_fingerprint(source) != info["fingerprint"]:
            raise UserError(f"teacher '{source}' is not the model this student was distilled from (its files "
                            "changed): its document index would not be the one the student learned")
        return {"teacher": load_dual_tower(source, info["max_length"], info["max_query_length"]),
                "teacher_source": source, "fingerprint": info["fingerprint"]}

    # --- retrieval: queries by the student, documents by the teacher's cached index ---

    def embed(self, batch: dict[str, torch.Tensor], normalize: bool = True) -> torch.Tensor:
        """Query embeddings of a collated batch, normalised for a cosine teacher (``normalize=False``: the
        tower's output, what ``query-distill`` compares with the teacher's)."""
        out = self.query_tower(batch)
        return F.normalize(out, dim=-1) if normalize and self.similarity_name == "cosine" else out

    def encode(self, texts: Sequence[str], kind: str, batch_size: int = 64, normalize: bool = True) -> torch.Tensor:
        """Queries: the student's embeddings; documents: the teacher's, from its cache (``[n, d]``, float32)."""
        if kind == "query":
            return encode_sorted(self, self.texts, texts, True, batch_size, lambda b: self.embed(b, normalize),
                                 self.query_tower.width, self.query_tower._runner)
        device = next(self.parameters()).device
        return self.cache.get(texts, "doc", normalize, batch_size).to(device)

    def similarity(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        """Scores ``[nq, nd]`` as the teacher scores its index: ``q . d / tau``."""
        return self.teacher.similarity(queries, docs)

    def pair_scores(self, q: torch.Tensor, d: torch.Tensor, qrows: list[int], drows: list[int]) -> np.ndarray:
        qi, di = torch.as_tensor(qrows, device=q.device), torch.as_tensor(drows, device=d.device)
        return ((q[qi] * d[di]).sum(1) / self.temperature).float().cpu().numpy()

    def teacher_retriever(self) -> "TeacherRetriever":
        return TeacherRetriever(self)

    def teacher_counts(self) -> tuple[int, int]:
        """``(non_embedding, total)`` parameters of the teacher's query tower (the model a student replaces)."""
        return parameter_counts(self.teacher.tower("query"))

    # --- training: queries only; the targets are the teacher's embeddings of the same queries ---

    def warm(self, queries: Sequence[str] = (), docs: Sequence[str] = ()) -> None:
        self.texts.pairs.warm(queries, ())  # the documents are the teacher's

    def training_batch(self, groups, collection) -> dict:
        """The groups' queries collated; ``labels`` zeros (the loss reads teacher embeddings only)."""
        ids = self.texts.encode([collection.queries[g.qid] for g in groups], True)
        return {"inputs": {"queries": self.texts.collate(ids)},
                "labels": torch.zeros(len(groups), dtype=torch.long), "tokens": sum(map(len, ids))}

    def group_scores(self, batch: dict) -> torch.Tensor:
        """The student's query embeddings ``[B, d]`` (unnormalised): what ``query-distill`` compares."""
        return self.query_tower(batch["inputs"]["queries"])

    def parameter_counts(self) -> tuple[int, int]:
        return parameter_counts(self)

    def training_flops(self, tokens: int) -> float:
        return 6.0 * parameter_counts(self)[0] * tokens

    def save(self, folder: Path) -> None:
        """``query/`` in Hugging Face format with the tokenizer, ``projection-query.pt`` with a projection,
        ``family.json`` with the settings and the teacher (``query_distill``: source, fingerprint, limits)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.query_tower.backbone.save_pretrained(folder / "query")
        self.texts.tokenizer.save_pretrained(folder / "query")
        if self.query_tower.projection is not None:
            torch.save(self.query_tower.projection.state_dict(), folder / "projection-query.pt")
        write_family_file(folder, QueryDistillFamily.name, {
            "pooling": self.pooling, "projection": self.projection_dim, "max_query_length": self.texts.max_query_length,
            "query_distill": {"teacher": self.teacher_source, "fingerprint": self.fingerprint,
                              "max_length": self.teacher.texts.max_length,
                              "max_query_length": self.teacher.texts.max_query_length}})


class TeacherRetriever:
    """The teacher as a retriever over the same cached index its students search (their reference)."""

    stage = "retrieval"

    def __init__(self, student: QueryStudent):
        self.student, self.teacher = student, student.teacher

    def encode(self, texts: Sequence[str], kind: str, batch_size: int = 64) -> torch.Tensor:
        if kind == "doc":
            return self.student.encode(texts, "doc", batch_size)
        self.teacher.to(next(self.student.parameters()).device)
        return self.teacher.encode(texts, "query", batch_size)

    def similarity(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        return self.teacher.similarity(queries, docs)


class QueryDistillFamily:
    """ScalingNote's query towers: a small query encoder trained on a bi-encoder teacher's query embeddings,
    searching the teacher's document index."""

    name = "query-distill"

    def build(self, config) -> QueryStudent:
        """The config's ladder rung as a query tower for ``config.teacher``, projected to its width if needed."""
        own = config.family_settings
        teacher = load_dual_tower(config.teacher, config.max_length, config.max_query_length)
        if own.projection is not None and own.projection != teacher.width:
            raise UserError(f"projection = {own.projection}: a query-distill student projects to its teacher's "
                            f"width ({teacher.width})")
        if own.temperature is not None and own.temperature != teacher.temperature:
            raise UserError(f"temperature = {own.temperature}: a query-distill student scores with its teacher's "
                            f"temperature ({teacher.temperature})")
        backbone, tokenizer = load_backbone(config.model, seed=config.seed, pooling="mean", dropout=config.dropout)
        projection = own.projection or (teacher.width if backbone.config.hidden_size != teacher.width else None)
        torch.manual_seed(config.seed)  # the projection's initial weights
        return QueryStudent(backbone, tokenizer, teacher=teacher, teacher_source=config.teacher,
                            fingerprint=model_fingerprint(config.teacher), cache_dir=config.cache_dir,
                            pooling=own.pooling or default_pooling(config.ladder), projection=projection,
                            max_query_length=config.max_query_length)

    def load(self, folder: Path) -> QueryStudent:
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder)
        info = read_family_file(folder, self.name)
        model = QueryStudent(AutoModel.from_pretrained(folder / "query"),
                             AutoTokenizer.from_pretrained(folder / "query"), pooling=info["pooling"],
                             projection=info["projection"], max_query_length=info["max_query_length"],
                             **QueryStudent.saved_teacher(info["query_distill"]))
        if model.query_tower.projection is not None:
            model.query_tower.projection.load_state_dict(
                torch.load(folder / "projection-query.pt", map_location="cpu", weights_only=True))
        return model
