"""Texts stored once on disk and memory-mapped by every process: a collection at MS MARCO scale.

A :class:`TextStore` is a read-only ``Mapping[str, str]`` (id -> text) over
three files in a folder: ``ids.npy`` (the ids, sorted, as fixed-width UTF-8
bytes), ``spans.npy`` (each id's ``[start, end)`` byte span) and ``texts.bin``
(the UTF-8 texts). Opening one reads nothing; a lookup is a binary search and
a slice of the mapped file, so 8.8M passages cost every process that reads
them only the pages it touches (the kernel shares them between processes),
instead of a Python dict of strings (~500 bytes a passage) in each.
``store.ids`` is the ids in sorted order as a sequence (the order every
component numbers documents in: :func:`rerank_scaling.data.types.sorted_ids`);
``restrict(keys)`` is a view of some ids (a collection's subset) that copies
nothing but their row numbers.

:func:`stored_collection` is :func:`~rerank_scaling.data.loaders.load_collection`
through such stores: the first call loads the collection and writes its
documents, titles, queries and qrels (JSON per query) into
```<cache>/collections/<name>-<key>/`` (its documents and titles once per
distinct corpus, in ``<cache>/texts/<fingerprint>/``; each folder written to a
temporary folder, then renamed: never half-written); every later call, in any
process, opens them.
The key is the spec and the identity of its source files (a BEIR folder's
files' sizes and modification times; an ir_datasets id and the data root).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rerank_scaling.data.types import Collection
from rerank_scaling.data.util import atomic_write_bytes, default_cache_dir, stable_key

STORE_FORMAT = 1
COLLECTION_FORMAT = 1


def mapped(path: Path) -> np.ndarray:
    """A saved array memory-mapped read-only, as a plain ndarray view (fast to index)."""
    return np.asarray(np.load(path, mmap_mode="r"))


class IdList(Sequence):
    """The ids of a store (or of a view of it) in sorted order, read from the mapped array."""

    def __init__(self, ids: np.ndarray, rows: np.ndarray | None):
        self._ids, self._rows = ids, rows

    def __len__(self) -> int:
        return len(self._ids) if self._rows is None else len(self._rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = i if self._rows is None else self._rows[i]
        return self._ids[row].decode("utf-8")

    def take(self, positions) -> list[str]:
        """The ids at ``positions`` (an int array), decoded in one call."""
        rows = positions if self._rows is None else self._rows[positions]
        return [b.decode("utf-8") for b in self._ids[rows].tolist()]

    def __iter__(self) -> Iterator[str]:
        rows = range(len(self._ids)) if self._rows is None else self._rows
        for start in range(0, len(rows), 65536):  # decode a block at a time
            yield from (b.decode("utf-8") for b in self._ids[rows[start:start + 65536]])

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(a == b for a, b in zip(self, other))


class TextStore(Mapping):
    """``id -> text`` over a store folder (the module docstring); ``decode`` turns a stored text into the
    value (``json.loads`` for a store of JSON values). ``rows``: a view of those rows (sorted) only."""

    def __init__(self, folder: Path | str, decode: Callable[[str], Any] | None = None,
                 rows: np.ndarray | None = None):
        self.folder = Path(folder)
        # plain ndarray views of the mapped files (np.memmap's own indexing is slow per element)
        self._ids = mapped(self.folder / "ids.npy")
        self._spans = mapped(self.folder / "spans.npy")
        size = (self.folder / "texts.bin").stat().st_size
        self._texts = (np.asarray(np.memmap(self.folder / "texts.bin", dtype=np.uint8, mode="r")) if size
                       else np.zeros(0, np.uint8))
        self._decode = decode
        self._rows = rows
        self.meta = json.loads((self.folder / "store.json").read_text())

    def __reduce__(self):
        return (TextStore, (self.folder, self._decode, self._rows))

    # --- positions ---

    def row(self, key: str) -> int:
        """The row of ``key`` in the whole store (its position among the sorted ids), or -1."""
        if not isinstance(key, str):
            return -1
        raw = key.encode("utf-8")
        if len(raw) > self._ids.dtype.itemsize or not len(self._ids) or raw.endswith(b"\x00"):
            return -1
        i = int(np.searchsorted(self._ids, raw))
        if i >= len(self._ids) or self._ids[i] != raw:
            return -1
        if self._rows is not None:
            j = int(np.searchsorted(self._rows, i))
            if j >= len(self._rows) or self._rows[j] != i:
                return -1
        return i

    def rows_of(self, keys: Iterable[str]) -> np.ndarray:
        """Rows (in the whole store) of ``keys``, -1 for an unknown key."""
        return np.fromiter((self.row(k) for k in keys), dtype=np.int64)

    @property
    def ids(self) -> IdList:
        """The ids in sorted order (a view's ids only)."""
        return IdList(self._ids, self._rows)

    def text(self, row: int) -> str:
        start, end = self._spans[row]
        return bytes(self._texts[start:end]).decode("utf-8")

    def value(self, row: int):
        text = self.text(row)
        return self._decode(text) if self._decode is not None else text

    def restrict(self, keys: Iterable[str]) -> "TextStore":
        """A view of the ids of ``keys`` that are in this store (copies nothing but their rows)."""
        rows = self.rows_of(keys)
        return TextStore(self.folder, self._decode, np.unique(rows[rows >= 0]))

    @property
    def fingerprint(self) -> str | None:
        """sha256 over the sorted (id, text) pairs of the whole store, as ``candidates.bm25`` computes it
        for a dict (None for a view, whose texts are a part)."""
        return self.meta.get("fingerprint") if self._rows is None else None

    # --- the Mapping protocol ---

    def __getitem__(self, key: str):
        row = self.row(key)
        if row < 0:
            raise KeyError(key)
        return self.value(row)

    def __contains__(self, key) -> bool:
        return self.row(key) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self._ids) if self._rows is None else len(self._rows)

    def items(self):
        rows = range(len(self._ids)) if self._rows is None else self._rows
        return ((self._ids[r].decode("utf-8"), self.value(int(r))) for r in rows)

    def values(self):
        return (v for _, v in self.items())

    def __repr__(self) -> str:
        return f"TextStore({str(self.folder)!r}, {len(self)} ids)"


def fingerprint_items(items: Iterable[tuple[str, str]]) -> str:
    """sha256 over ``(id, text)`` pairs given in sorted id order (``id \\0 text \\1`` each)."""
    h = hashlib.sha256()
    for key, text in items:
        h.update(key.encode("utf-8"))
        h.update(b"\x00")
        h.update(text.encode("utf-8"))
        h.update(b"\x01")
    return h.hexdigest()


def write_store(folder: Path | str, items: Iterable[tuple[str, str]]) -> None:
    """Write ``(id, text)`` pairs (any order, ids unique) as a store in ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keys: list[bytes] = []
    starts: list[int] = []
    offset = 0
    with open(folder / "texts.bin", "wb") as out:
        for key, text in items:
            raw = text.encode("utf-8")
            keys.append(key.encode("utf-8"))
            starts.append(offset)
            out.write(raw)
            offset += len(raw)
    starts.append(offset)
    bounds = np.asarray(starts, dtype=np.int64)
    width = max((len(k) for k in keys), default=1) or 1
    ids = np.array(keys, dtype=f"S{width}") if keys else np.zeros(0, dtype="S1")
    del keys
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if len(ids) > 1 and (ids[1:] == ids[:-1]).any():
        raise ValueError(f"{folder}: duplicate ids")
    spans = np.stack([bounds[:-1][order], bounds[1:][order]], axis=1) if len(order) else np.zeros((0, 2), np.int64)
    np.save(folder / "ids.npy", ids)
    np.save(folder / "spans.npy", spans)
    (folder / "store.json").write_text(json.dumps({"format": STORE_FORMAT, "count": int(len(ids))}))


# --------------------------------------------------------------------------- #
# collections
# --------------------------------------------------------------------------- #
def _source_identity(spec: str, data_root: Path | None) -> dict:
    """What a stored collection depends on besides the spec: a BEIR folder's files (size, mtime), or the
    data root an ir_datasets id is read from."""
    from rerank_scaling.data.loaders import BEIR_PREFIX, _split_fragment

    path, _ = _split_fragment(spec[len(BEIR_PREFIX):] if spec.startswith(BEIR_PREFIX) else spec)
    folder = Path(path).expanduser()
    if folder.is_dir():
        files = {}
        for f in sorted(folder.rglob("*")):
            if f.is_file() and (f.suffix in (".jsonl", ".gz", ".tsv")):
                st = f.stat()
                files[str(f.relative_to(folder))] = [st.st_size, st.st_mtime_ns]
        return {"folder": str(folder.resolve()), "files": files}
    return {"data_root": str(Path(data_root).expanduser().resolve()) if data_root else None,
            "ir_datasets_home": os.environ.get("IR_DATASETS_HOME")}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:50] or "collection"


def collection_folder(spec: str, data_root: Path | None = None, cache_dir: Path | None = None) -> Path:
    """Where :func:`stored_collection` keeps ``spec``'s stores."""
    key = stable_key(json.dumps({"format": COLLECTION_FORMAT, "spec": str(spec).strip(),
                                 "source": _source_identity(str(spec).strip(), data_root)}, sort_keys=True))[:20]
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "collections" / f"{_safe(str(spec).strip().rstrip('/').split('/')[-1])}-{key}"


def open_collection(folder: Path) -> Collection:
    """The collection stored in ``folder`` (memory-mapped; its documents in the shared texts folder)."""
    meta = json.loads((folder / "collection.json").read_text())
    texts = folder.parent.parent / "texts" / meta["docs"]
    return Collection(name=meta["name"], docs=TextStore(texts / "docs"), titles=TextStore(texts / "titles"),
                      queries=TextStore(folder / "queries"), qrels=TextStore(folder / "qrels", decode=json.loads),
                      source=meta["source"], info=meta["info"])


def atomic_folder(folder: Path, fill: Callable[[Path], None], marker: str | None = None) -> None:
    """Fill a temporary folder beside ``folder``, then rename it to ``folder``; when another process
    got there first, keep theirs (the same content) -- when ``marker`` is given, only if it holds that
    file (the one written last)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        fill(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / marker).is_file() if marker else not folder.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_collection(folder: Path, collection: Collection) -> str:
    """Write ``collection`` as stores: its documents and titles once per distinct corpus
    (``<cache>/texts/<fingerprint>/``, shared by every spec over the same passages: MS MARCO's train,
    dev and TREC DL ids), its queries and qrels into ``folder``; each folder written atomically.
    Returns the name of the documents' folder under ``<cache>/texts/``."""
    docs = collection.docs
    fp = getattr(docs, "fingerprint", None) or fingerprint_items((d, docs[d]) for d in sorted(docs))
    texts = folder.parent.parent / "texts" / fp[:24]
    if not (texts / "titles" / "store.json").is_file():
        def fill_texts(tmp: Path) -> None:
            write_store(tmp / "docs", docs.items())
            meta = json.loads((tmp / "docs" / "store.json").read_text())
            (tmp / "docs" / "store.json").write_text(json.dumps({**meta, "fingerprint": fp}))
            write_store(tmp / "titles", ((d, collection.titles.get(d, "")) for d in docs))
        atomic_folder(texts, fill_texts)

    def fill(tmp: Path) -> None:
        write_store(tmp / "queries", collection.queries.items())
        write_store(tmp / "qrels", ((q, json.dumps(g, separators=(",", ":"))) for q, g in collection.qrels.items()))
        meta = {"format": COLLECTION_FORMAT, "name": collection.name, "source": collection.source,
                "info": collection.info, "docs": fp[:24]}
        (tmp / "collection.json").write_text(json.dumps(meta, indent=1))
    atomic_folder(folder, fill)
    return fp[:24]


def stored_collection(spec: str, *, data_root: Path | None = None, cache_dir: Path | None = None,
                      split: str | None = None) -> Collection:
    """:func:`~rerank_scaling.data.loaders.load_collection`, stored once and memory-mapped (module docstring)."""
    from rerank_scaling.data.loaders import load_collection

    if split is not None:
        from rerank_scaling.data.loaders import BEIR_PREFIX, _split_fragment

        path, _ = _split_fragment(spec[len(BEIR_PREFIX):] if spec.startswith(BEIR_PREFIX) else spec)
        spec = f"{BEIR_PREFIX}{path}#{split}"
    folder = collection_folder(spec, data_root, cache_dir)
    if not (folder / "collection.json").is_file():
        seen = _corpus_record(spec, folder.parent.parent)
        corpus = _stored_corpus(seen)
        collection = load_collection(spec, data_root=data_root, cache_dir=cache_dir, corpus=corpus)
        texts = write_collection(folder, collection)
        if seen is not None and corpus is None:
            atomic_write_bytes(seen, json.dumps({"texts": texts}).encode())
        del collection
    return open_collection(folder)


# A BEIR folder's qrels splits (``corpus#train``, ``corpus#dev``) share one corpus file: the first one loaded
# records which stored texts that file became, so the others open them instead of parsing the corpus again
# (MS MARCO: 8.8M passages parsed once, not once per split).
def _corpus_record(spec: str, root: Path) -> Path | None:
    """Where the stored texts of ``spec``'s corpus file are recorded (None: not a BEIR folder)."""
    from rerank_scaling.data.loaders import beir_corpus_file

    corpus = beir_corpus_file(spec)
    if corpus is None:
        return None
    st = corpus.stat()
    key = stable_key(json.dumps([str(corpus.resolve()), st.st_size, st.st_mtime_ns]))[:20]
    return root / "corpus-files" / f"{key}.json"


def _stored_corpus(record: Path | None) -> tuple[Mapping, Mapping] | None:
    """The (docs, titles) stores a corpus file became, when recorded and whole."""
    if record is None or not record.is_file():
        return None
    try:
        texts = record.parent.parent / "texts" / json.loads(record.read_text())["texts"]
        if not (texts / "titles" / "store.json").is_file():
            return None
        return TextStore(texts / "docs"), TextStore(texts / "titles")
    except (OSError, ValueError, KeyError):
        return None


