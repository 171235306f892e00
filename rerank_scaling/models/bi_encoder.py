"""The bi-encoder (dense retriever): ``score(q, d) = sim(E_q(q), E_d(d)) / tau``.

A tower is a transformer backbone, a pooling (``mean`` over the real tokens,
the last layer's ``cls`` state, or the ``last`` real token, for decoders) and
an optional linear ``projection`` to ``d`` dimensions. The query and document
towers are one module by default (``towers = "shared"``, as Fang et al. and
sentence-transformers); ``"separate"`` gives the documents their own copy,
initialised from the same weights. ``sim`` is ``cosine`` (embeddings
L2-normalised, then the dot product) or ``dot``; ``tau`` is the
``temperature`` (default 0.05 for cosine, as sentence-transformers' scale 20,
and 1 for dot). Texts are ``[CLS] text [SEP]`` cut to ``max_query_length``
(queries) and ``max_length`` (documents) tokens, special tokens included; a
decoder's tokenizer that ends a text with no special token gets its EOS token
appended under ``last`` pooling, so the pooled state is the end of the text.

Decoder-only backbones (the ``llama`` ladder, any causal LM through ``hf``;
:mod:`rerank_scaling.models.decoder`): ``bidirectional`` removes their causal
mask, ``last`` pooling (their default) reads the last real token whatever the
padding side, and ``lora_rank`` trains LoRA adapters on the frozen towers
(the projection trains in full); a saved model has its adapters merged.

Model size N (``parameter_counts``): the non-embedding parameters of the
distinct towers -- shared towers count once, separate towers twice -- with
the projection, LoRA adapters excluded; the backbone's ``[CLS]`` pooler is removed (no pooling reads
it). FLOPs: every token passes through one tower, so training costs
``6 * N_tower * tokens`` (``N_tower = N`` for shared towers, ``N / 2`` for
separate ones); the similarity matrix (``B x C x d``) is negligible beside it.

Training batches use the ``"in-batch"`` layout of
:mod:`rerank_scaling.objectives.contrastive`: each query against every
document of the batch -- the groups' positives, their hard negatives when the
objective's ``negatives`` include ``"hard"``, and ``corpus_negatives`` random
corpus documents shared by the batch when they include ``"corpus"`` (drawn by
a seeded hash of the batch's groups, so a resumed run draws the same ones).
Each distinct document is encoded once per batch.

For retrieval (:mod:`rerank_scaling.evaluation.retrieval`) the model exposes
``encode(texts, kind)`` and ``similarity(q, d)``; ``stage = "retrieval"`` tells
evaluation to search the whole corpus instead of reranking candidates.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rerank_scaling.data.util import stable_hash
from rerank_scaling.models.backbone import load_backbone, parameter_counts
from rerank_scaling.models.cross_encoder import PairTokenizer, _BertRunner
from rerank_scaling.models.decoder import is_causal, last_token, make_bidirectional, merged, with_lora
from rerank_scaling.models.ladder import default_pooling

POOLINGS = ("mean", "cls", "last")
SIMILARITIES = ("cosine", "dot")
TOWERS = ("shared", "separate")


def default_temperature(similarity: str) -> float:
    return 0.05 if similarity == "cosine" else 1.0


class TextTokenizer:
    """``[CLS] text [SEP]`` ids per text, cut to the query / document limit (special tokens
    included), cached and collated by a :class:`PairTokenizer` (one text, token type 0)."""

    def __init__(self, tokenizer, max_length: int = 256, max_query_length: int = 64, end_with_eos: bool = False):
        self.pairs = PairTokenizer(tokenizer, max_length=max_length, max_query_length=max_query_length)
        self.tokenizer = tokenizer
        a = tokenizer("a", add_special_tokens=False)["input_ids"]
        ids = list(tokenizer("a")["input_ids"])
        i = next(k for k in range(len(ids)) if ids[k : k + len(a)] == a)
        self._prefix, self._suffix = ids[:i], ids[i + len(a):]
        if end_with_eos and not self._suffix and tokenizer.eos_token_id is not None:
            self._suffix = [tokenizer.eos_token_id]  # a decoder's last-token pooling reads the end of the text
        self.n_special = len(self._prefix) + len(self._suffix)

    @property
    def max_length(self) -> int:
        return self.pairs.max_length

    @property
    def max_query_length(self) -> int:
        return self.pairs.max_query_length

    def encode(self, texts: Sequence[str], is_query: bool) -> list[list[int]]:
        room = max((self.max_query_length if is_query else self.max_length) - self.n_special, 0)
        return [self._prefix + ids[:room] + self._suffix for ids in self.pairs.ids(texts, is_query)]

    def collate(self, encoded: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        return self.pairs.collate([(ids, len(ids)) for ids in encoded])


class Tower(torch.nn.Module):
    """A backbone, its pooling and an optional projection: texts -> embeddings ``[n, d]``. ``lora``:
    the keyword arguments of :func:`~rerank_scaling.models.decoder.with_lora` (``rank``, ...), or None."""

    def __init__(self, backbone: torch.nn.Module, pooling: str, projection: int | None = None,
                 lora: dict | None = None):
        super().__init__()
        if getattr(backbone, "pooler", None) is not None:
            backbone.pooler = None  # no pooling reads it: N does not count it, DDP needs no unused parameter
        self.backbone = with_lora(backbone, **lora) if lora else backbone
        self.pooling = pooling
        hidden = backbone.config.hidden_size
        self.projection = torch.nn.Linear(hidden, projection) if projection else None
        runner_ok = pooling in ("mean", "cls") and _BertRunner.supports(self.backbone, "mean")  # not under LoRA
        self._runner = _BertRunner(pooling) if runner_ok else None
        #: run BERT backbones through the packed (and, for CLS, pruned) forward; False: Hugging Face's
        self.fast_path = True

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]
        if self.fast_path and self._runner is not None and bool(mask[:, 0].all()):
            if self.pooling == "mean":
                pooled = self._runner.mean_hidden(self.backbone, batch)
            else:
                pooled = self._runner.cls_hidden(self.backbone, batch)
        else:
            hidden = self.backbone(**batch).last_hidden_state
            if self.pooling == "mean":
                keep = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * keep).sum(1) / keep.sum(1)
            elif self.pooling == "cls":
                pooled = hidden[:, 0]
            else:  # the last real token (right or left padding)
                pooled = last_token(hidden, mask)
        return self.projection(pooled) if self.projection is not None else pooled


class InBatchBatches:
    """The ``"in-batch"`` training batches of a retriever (the module docstring), shared by the
    dense and the sparse (:mod:`rerank_scaling.models.sparse`) families. Needs ``texts`` (a
    :class:`TextTokenizer`), ``negatives``, ``corpus_negatives`` and ``seed``."""

    _doc_ids: tuple[int, list[str]] | None = None

    def warm(self, queries: Sequence[str] = (), docs: Sequence[str] = ()) -> None:
        self.texts.pairs.warm(queries, docs)

    def _pair_encodings(self, queries: Sequence[str], docs: Sequence[str], batch_size: int):
        """For :meth:`score`: each distinct query and document encoded once (``encode``), and every
        pair's row in each: ``(q, d, query_rows, doc_rows)``."""
        uq, ud = list(dict.fromkeys(queries)), list(dict.fromkeys(docs))
        q, d = self.encode(uq, "query", batch_size), self.encode(ud, "doc", batch_size)
        qpos, dpos = {t: i for i, t in enumerate(uq)}, {t: i for i, t in enumerate(ud)}
        return q, d, [qpos[t] for t in queries], [dpos[t] for t in docs]

    def _corpus_sample(self, groups, collection) -> list[str]:
        """``corpus_negatives`` documents shared by the batch, a pure function of its groups."""
        if not self.corpus_negatives:
            return []
        if self._doc_ids is None or self._doc_ids[0] != id(collection.docs):
            self._doc_ids = (id(collection.docs), sorted(collection.docs))
        doc_ids = self._doc_ids[1]
        key = "|".join(f"{g.qid}:{g.doc_ids[0]}" for g in groups)
        rng = np.random.default_rng([self.seed, 13, stable_hash(key)])
        picks = rng.choice(len(doc_ids), size=min(self.corpus_negatives, len(doc_ids)), replace=False)
        return [doc_ids[i] for i in sorted(picks)]

    def training_batch(self, groups, collection) -> dict:
        """Queries and the batch's distinct documents collated; ``labels[B, C]`` the grade of each
        column for each query, ``targets[B]`` each query's own positive (the ``in-batch`` layout)."""
        per_group = len(groups[0].doc_ids) if "hard" in self.negatives else 1
        columns = [d for g in groups for d in g.doc_ids[:per_group]] + self._corpus_sample(groups, collection)
        distinct = list(dict.fromkeys(columns))
        where = {d: i for i, d in enumerate(distinct)}
        labels = [[max(collection.qrels.get(g.qid, {}).get(d, 0), 0) for d in columns] for g in groups]
        for i, g in enumerate(groups):
            labels[i][i * per_group] = max(g.labels[0], 1)
        q_ids = self.texts.encode([collection.queries[g.qid] for g in groups], True)
        d_ids = self.texts.encode([collection.docs[d] for d in distinct], False)
        return {
            "inputs": {"queries": self.texts.collate(q_ids), "docs": self.texts.collate(d_ids),
                       "columns": torch.tensor([where[d] for d in columns], dtype=torch.long)},
            "labels": torch.tensor(labels, dtype=torch.long),
            "targets": torch.arange(len(groups), dtype=torch.long) * per_group,
            "tokens": sum(map(len, q_ids)) + sum(map(len, d_ids)),
        }


class BiEncoder(InBatchBatches, torch.nn.Module):
    """Query and document towers with a similarity; the model-family contract for dense retrieval."""

    stage = "retrieval"

    def __init__(self, query_backbone: torch.nn.Module, tokenizer, doc_backbone: torch.nn.Module | None = None,
                 pooling: str = "mean", projection: int | None = None, similarity: str = "cosine",
                 temperature: float | None = None, max_length: int = 256, max_query_length: int = 64,
                 negatives: Sequence[str] = ("in-batch",), corpus_negatives: int = 0, seed: int = 0,
                 lora: dict | None = None, bidirectional: bool = False):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        towers = [Tower(query_backbone, pooling, projection, lora)]
        if doc_backbone is not None:
            towers.append(Tower(doc_backbone, pooling, projection, lora))
        self.towers = torch.nn.ModuleList(towers)
        self.pooling, self.projection_dim, self.similarity_name = pooling, projection, similarity
        self.bidirectional = bidirectional  # recorded for save(): the backbones were made bidirectional
        self.temperature = float(temperature if temperature is not None else default_temperature(similarity))
        self.texts = TextTokenizer(tokenizer, max_length=max_length, max_query_length=max_query_length,
                                   end_with_eos=pooling == "last")
        self.negatives = tuple(negatives)
        self.corpus_negatives = corpus_negatives if "corpus" in self.negatives else 0
        self.seed = seed

    @property
    def shared(self) -> bool:
        return len(self.towers) == 1

    def tower(self, kind: str) -> Tower:
        return self.towers[0] if kind == "query" or self.shared else self.towers[1]

    # --- embeddings and scores ---

    def embed(self, batch: dict[str, torch.Tensor], kind: str, normalize: bool = True) -> torch.Tensor:
        """Embeddings of a collated batch of queries or docs (``kind``), normalised for cosine
        (``normalize=False``: the tower's output as it is)."""
        out = self.tower(kind)(batch)
        return F.normalize(out, dim=-1) if normalize and self.similarity_name == "cosine" else out

    def similarity(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        """Scores ``[nq, nd]`` of embedded queries against embedded docs: ``q . d / tau``."""
        return queries @ docs.T / self.temperature

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], kind: str, batch_size: int = 64, normalize: bool = True) -> torch.Tensor:
        """Embeddings ``[n, d]`` (float32, on the model's device) in input order; longest texts
        first in batches of ``batch_size`` (dynamic padding), no gradients; ``normalize`` as :meth:`embed`."""
        was_training = self.training
        if was_training:  # (a walk over every module: skipped when already in eval mode, as timed queries are)
            self.eval()
        encoded = self.texts.encode(texts, kind == "query")
        device = next(self.parameters()).device
        order = np.argsort([-len(ids) for ids in encoded], kind="stable")
        out = None
        tower = self.tower(kind)
        runner = tower._runner
        with runner.frozen() if runner is not None else nullcontext():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = {k: v.to(device) for k, v in self.texts.collate([encoded[i] for i in idx]).items()}
                emb = self.embed(batch, kind, normalize).float()
                if out is None:
                    out = emb.new_empty(len(encoded), emb.shape[1])
                out[torch.as_tensor(idx, device=device)] = emb
        if was_training:
            self.train()
        if out is None:
            dim = self.projection_dim or self.towers[0].backbone.config.hidden_size
            return torch.zeros(0, dim, device=device)
        return out

    # --- the model-family contract (rerank_scaling.models.family.Model) ---

    def group_scores(self, batch: dict) -> torch.Tensor:
        inputs = batch["inputs"]
        scores = self.similarity(self.embed(inputs["queries"], "query"), self.embed(inputs["docs"], "doc"))
        return scores[:, inputs["columns"]]

    @torch.inference_mode()
    def score(self, queries: Sequence[str], docs: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Scores of (query, doc) pairs in input order; each distinct text is encoded once."""
        if len(queries) != len(docs):
            raise ValueError("queries and docs differ in length")
        if not queries:
            return np.zeros(0, dtype=np.float32)
        q, d, qrows, drows = self._pair_encodings(queries, docs, batch_size)
        qi, di = torch.as_tensor(qrows, device=q.device), torch.as_tensor(drows, device=d.device)
        return ((q[qi] * d[di]).sum(1) / self.temperature).float().cpu().numpy()

    def parameter_counts(self) -> tuple[int, int]:
        return parameter_counts(self)

    def training_flops(self, tokens: int) -> float:
        return 6.0 * parameter_counts(self.towers[0])[0] * tokens

    def save(self, folder: Path) -> None:
        """The towers' encoders (Hugging Face format, tokenizer included; LoRA merged) in a layout
        sentence-transformers' ``SentenceTransformer`` loads as trained, pooling, projection and
        normalisation included (:mod:`~rerank_scaling.models.export`): a shared tower at the top of
        ``folder``, separate towers in ``query_0_Transformer/`` and ``document_0_Transformer/``;
        ``family.json`` with the settings."""
        from rerank_scaling.models.export import bi_encoder_layout, save_hf

        folder = Path(folder)
        limits = (self.texts.max_length,) if self.shared else (self.texts.max_query_length, self.texts.max_length)
        for sub, tower, limit in zip(TOWER_FOLDERS[self.shared], self.towers, limits):
            save_hf(folder / sub, merged(tower.backbone), self.texts.tokenizer, limit)
        bi_encoder_layout(folder, self)
        (folder / "family.json").write_text(json.dumps({
            "family": BiEncoderFamily.name, "pooling": self.pooling, "projection": self.projection_dim,
            "similarity": self.similarity_name, "temperature": self.temperature, "bidirectional": self.bidirectional,
            "towers": "shared" if self.shared else "separate", "max_length": self.texts.max_length,
            "max_query_length": self.texts.max_query_length}, indent=2) + "\n")


# where save() puts the towers' encoders: shared -> the folder itself; separate -> the Router's routes
TOWER_FOLDERS = {True: ("",), False: ("query_0_Transformer", "document_0_Transformer")}


def lora_settings(config) -> dict | None:
    """The config's LoRA keys as :func:`~rerank_scaling.models.decoder.with_lora` arguments (None: off)."""
    if config.lora_rank is None:
        return None
    return {"rank": config.lora_rank, "alpha": config.lora_alpha, "dropout": config.lora_dropout,
            "targets": config.lora_targets}


class BiEncoderFamily:
    """Dense retrieval: ``sim(E_q(q), E_d(d)) / tau`` trained with in-batch (contrastive) objectives."""

    name = "bi-encoder"
    layout = "in-batch"

    def build(self, config) -> BiEncoder:
        from rerank_scaling.config.run import distils_query_tower
        from rerank_scaling.objectives import OBJECTIVES

        if distils_query_tower(config.objective):  # ScalingNote: a query tower only
            from rerank_scaling.models.query_distill import build_student

            return build_student(config)
        backbone, tokenizer = load_backbone(config.model, seed=config.seed, pooling="mean", dropout=config.dropout)
        # a decoder reads its last token by default (under causal attention the only one that sees the text)
        pooling = config.pooling or ("last" if is_causal(backbone) else default_pooling(config.ladder))
        if config.bidirectional:
            make_bidirectional(backbone, config.model.name)
        doc = copy.deepcopy(backbone) if config.towers == "separate" else None
        torch.manual_seed(config.seed)  # the projection's (and LoRA adapters') initial weights
        return BiEncoder(backbone, tokenizer, doc, pooling=pooling, projection=config.projection,
                         similarity=config.similarity, temperature=config.temperature,
                         max_length=config.max_length, max_query_length=config.max_query_length,
                         negatives=OBJECTIVES[config.objective].negatives,
                         corpus_negatives=config.corpus_negatives, seed=config.seed,
                         lora=lora_settings(config), bidirectional=config.bidirectional)

    def load(self, folder: Path) -> BiEncoder:
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder)
        info = json.loads((folder / "family.json").read_text())
        if info.get("family") != self.name:
            raise ValueError(f"{folder}: not a {self.name} (family.json says {info.get('family')!r})")
        cls, extra = BiEncoder, {}
        if "query_distill" in info:  # a distilled query tower over its teacher's documents
            from rerank_scaling.models.query_distill import QueryStudent

            cls, extra = QueryStudent, QueryStudent.saved_teacher(info["query_distill"])
        separate = info["towers"] == "separate"
        old = (folder / "query").is_dir()  # the layout before sentence-transformers': query/, doc/, projection-*.pt
        subs = ("query", "doc") if old else TOWER_FOLDERS[not separate]
        query = AutoModel.from_pretrained(folder / subs[0])
        doc = AutoModel.from_pretrained(folder / subs[1]) if separate else None
        for backbone in (query, doc) if info.get("bidirectional") else ():
            if backbone is not None:
                make_bidirectional(backbone, str(folder))
        model = cls(query, AutoTokenizer.from_pretrained(folder / subs[0]), doc, pooling=info["pooling"],
                    projection=info["projection"], similarity=info["similarity"],
                    temperature=info["temperature"], max_length=info["max_length"],
                    max_query_length=info["max_query_length"], bidirectional=bool(info.get("bidirectional")),
                    **extra)
        prefixes = ("query_", "document_") if separate else ("",)  # where export wrote each tower's Dense
        for name, prefix, tower in zip(("query", "doc"), prefixes, model.towers):
            if tower.projection is None:
                continue
            if old:
                tower.projection.load_state_dict(
                    torch.load(folder / f"projection-{name}.pt", map_location="cpu", weights_only=True))
            else:
                from rerank_scaling.models.export import read_dense

                read_dense(folder / f"{prefix}2_Dense", tower.projection)
        return model
