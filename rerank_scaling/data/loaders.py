"""Load test collections into :class:`~rerank_scaling.data.types.Collection`.

Two sources:

* an **ir_datasets id** (``cranfield``, ``vaswani``, ``msmarco-passage/dev/small``,
  ``msmarco-passage/trec-dl-2019/judged``, ``beir/nfcorpus/test``, ...).  With
  ``data_root`` (a folder laid out like ``shared/``: ``data_root/ir_datasets/<name>/``)
  the files are copied once into ``cache_dir/ir_datasets/`` and ir_datasets is
  pointed there (``IR_DATASETS_HOME``), so nothing is downloaded and the data
  root is never written.  Without it ir_datasets uses its normal home and
  downloads what it needs.
* a **local BEIR folder** (``corpus.jsonl``, ``queries.jsonl``,
  ``qrels/<split>.tsv``): a spec that is an existing folder, or
  ``beir-folder:PATH`` / ``beir-folder:PATH#dev`` for another qrels split.

Every loader keeps only queries with at least one judgment (of any grade) and
records what it dropped in ``Collection.info``; ``info["supervision"]`` is
``"human"`` (see :func:`rerank_scaling.data.weak.weak_queries` for ``"weak"``).
Document text is mapped generically: ``title`` field if present, ``text`` (or
``body``, ...) field; the model text is ``title + " " + text`` unless the text
already starts with the title (Cranfield repeats it), whitespace normalised.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator

from rerank_scaling.data.qrels import qrel_lines
from rerank_scaling.data.types import Collection
from rerank_scaling.data.util import default_cache_dir, keep_library_caches_in_cache, normalise_ws
from rerank_scaling.errors import UserError

BEIR_PREFIX = "beir-folder:"

# doc fields tried, in order, for the body text of an ir_datasets document
_TEXT_FIELDS = ("text", "body", "abstract", "passage", "contents", "content")
_QUERY_FIELDS = ("text", "query", "title", "description")


# --------------------------------------------------------------------------- #
# entry point
# --------------------------------------------------------------------------- #
def load_collection(
    spec: str,
    *,
    data_root: Path | None = None,
    cache_dir: Path | None = None,
    split: str | None = None,
    corpus: tuple[Mapping[str, str], Mapping[str, str]] | None = None,
) -> Collection:
    """Load ``spec``: an ir_datasets id or a local BEIR folder.

    ``spec`` forms: ``"cranfield"`` (ir_datasets id), ``"path/to/folder"`` (an
    existing BEIR folder), ``"beir-folder:path/to/folder"`` or
    ``"beir-folder:path/to/folder#dev"`` (qrels split ``dev``).  ``split`` (BEIR
    folders only) overrides the qrels split, default ``"test"``.

    ``corpus`` (BEIR folders only): the folder's documents and titles as already read (another qrels split
    of the same folder), so ``corpus.jsonl`` is not parsed again.

    Raises :class:`UserError` for an unknown id, a missing folder, malformed
    files (naming file and line), or a failed download.
    """
    spec = str(spec).strip()
    if not spec:
        raise UserError("empty dataset spec (give an ir_datasets id or a BEIR folder)")
    beir = _beir_spec(spec)
    if beir is not None:
        folder, frag = beir
        return load_beir_folder(folder, split=split or frag or "test", corpus=corpus)
    if split is not None:
        raise UserError(
            f"split '{split}' applies to BEIR folders only; for ir_datasets pick the subset in the id"
            f" (e.g. 'msmarco-passage/dev/small')"
        )
    return load_ir_dataset(spec, data_root=data_root, cache_dir=cache_dir)


def _beir_spec(spec: str) -> tuple[Path, str] | None:
    """``(folder, qrels split or "")`` when ``spec`` names a BEIR folder, else None (an ir_datasets id)."""
    if spec.startswith(BEIR_PREFIX):
        path, frag = _split_fragment(spec[len(BEIR_PREFIX):])
        if not path:
            raise UserError(f"'{spec}': missing folder after '{BEIR_PREFIX}'")
        return Path(path).expanduser(), frag
    path, frag = _split_fragment(spec)
    folder = Path(path).expanduser()
    if folder.is_dir() and (_beir_file(folder, "corpus") is not None or not _is_ir_datasets_id(spec)):
        return folder, frag
    return None


def beir_corpus_file(spec: str) -> Path | None:
    """The corpus file of a BEIR-folder ``spec`` (None: an ir_datasets id, or no corpus file)."""
    beir = _beir_spec(str(spec).strip())
    return _beir_file(beir[0], "corpus") if beir is not None and beir[0].is_dir() else None


def _split_fragment(spec: str) -> tuple[str, str]:
    """``"path#dev"`` -> ``("path", "dev")``; no ``#`` -> ``(spec, "")``."""
    if "#" in spec:
        head, _, frag = spec.rpartition("#")
        return head, frag.strip()
    return spec, ""


def model_text(title: str, text: str) -> str:
    """``title + " " + text`` (whitespace normalised) unless the text already starts with the title."""
    t, x = normalise_ws(title), normalise_ws(text)
    if not t:
        return x
    if not x:
        return t
    if x.startswith(t):
        return x
    return f"{t} {x}"


# --------------------------------------------------------------------------- #
# ir_datasets
# --------------------------------------------------------------------------- #
# The IR_DATASETS_HOME the imported ir_datasets module resolved its dataset
# folders against (None: not imported by us, unknown).
_IRDS_HOME: Path | None = None


def _import_ir_datasets(home: Path | None):
    """Import ir_datasets so that it reads its data under ``home`` (if given).

    ir_datasets fixes every dataset's folder when the package is imported (its
    registry is built at import time from ``IR_DATASETS_HOME``), so pointing it
    at another home later needs a fresh import: the ``ir_datasets`` modules are
    dropped from ``sys.modules`` and imported again.
    """
    global _IRDS_HOME
    keep_library_caches_in_cache()  # an unknown id must not create ~/.ir_datasets
    if home is not None:
        home = home.resolve()
        os.environ["IR_DATASETS_HOME"] = str(home)
        if "ir_datasets" in sys.modules and _IRDS_HOME != home:
            for name in list(sys.modules):
                if name == "ir_datasets" or name.startswith("ir_datasets."):
                    del sys.modules[name]
        import ir_datasets

        _IRDS_HOME = home
        return ir_datasets
    fresh = "ir_datasets" not in sys.modules
    import ir_datasets

    if fresh:
        _IRDS_HOME = Path(os.environ.get("IR_DATASETS_HOME", Path.home() / ".ir_datasets")).resolve()
    return ir_datasets


def _is_ir_datasets_id(spec: str) -> bool:
    try:
        ir_datasets = _import_ir_datasets(None)
        ir_datasets.load(spec)
    except KeyError:
        return False
    except Exception:  # pragma: no cover - registry quirks: treat as an id, fail later
        return True
    return True


def _copy_missing(src: Path, dst: Path) -> int:
    """Copy files of ``src`` missing (or of another size) in ``dst``; return how many.

    Plain ``copyfile`` (no permission bits): the source may be read-only and
    ir_datasets must be able to write its index files next to the copies.
    Each file is copied to a temporary name first, so an interrupted copy never
    looks complete.
    """
    copied = 0
    for root, _dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for fname in files:
            s, d = Path(root) / fname, dst / rel / fname
            if d.exists() and d.stat().st_size == s.stat().st_size:
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".tmp", dir=d.parent)
            os.close(fd)
            try:
                shutil.copyfile(s, tmp)
                os.replace(tmp, d)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            copied += 1
    return copied


def load_ir_dataset(
    dataset_id: str, *, data_root: Path | None = None, cache_dir: Path | None = None
) -> Collection:
    """Load an ir_datasets id (see module docstring for ``data_root`` / ``cache_dir``)."""
    top = dataset_id.split("/")[0]
    home: Path | None = None
    info: dict[str, Any] = {"supervision": "human"}
    if data_root is not None:
        data_root = Path(data_root).expanduser()
        if not data_root.is_dir():
            raise UserError(f"data root '{data_root}' does not exist or is not a folder")
        if not (data_root / "ir_datasets").is_dir():
            raise UserError(f"data root '{data_root}' has no ir_datasets/ folder (expected "
                            f"{data_root / 'ir_datasets' / top}/, laid out like ../shared)")
        src = data_root / "ir_datasets" / top
        if src.is_dir():
            home = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
            home = home / "ir_datasets"
            _copy_missing(src, home / top)
            info["data_root"] = str(data_root)
    ir_datasets = _import_ir_datasets(home)
    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError:
        raise UserError(f"unknown dataset id '{dataset_id}' (not an ir_datasets id nor a folder)") from None
    if not (ds.has_docs() and ds.has_queries() and ds.has_qrels()):
        raise UserError(
            f"ir_datasets id '{dataset_id}' lacks documents, queries or qrels;"
            f" pick a judged subset (e.g. 'msmarco-passage/dev/small')"
        )
    try:
        raw_qrels = [(str(q.query_id), str(q.doc_id), int(q.relevance)) for q in ds.qrels_iter()]
        raw_queries = [(str(q.query_id), _query_text(q)) for q in ds.queries_iter()]
        titles: dict[str, str] = {}
        docs: dict[str, str] = {}
        _read_ir_docs(ds.docs_iter(), docs, titles, info)
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        hint = f"without internet pass --data-root with a folder holding ir_datasets/{top}/" + (
            f" ({data_root / 'ir_datasets' / top}/ is missing)" if data_root is not None else "")
        raise UserError(f"could not load ir_datasets id '{dataset_id}' ({type(exc).__name__}: {first}); "
                        f"{hint}") from None
    if home is None:
        info["ir_datasets_home"] = str(_IRDS_HOME) if _IRDS_HOME else ""
    return _assemble(dataset_id, dataset_id, docs, titles, raw_queries, raw_qrels, info)


def _query_text(q) -> str:
    for f in _QUERY_FIELDS:
        if f in q._fields and isinstance(getattr(q, f), str) and getattr(q, f).strip():
            return normalise_ws(getattr(q, f))
    return normalise_ws(" ".join(v for k, v in zip(q._fields, q) if k != "query_id" and isinstance(v, str)))


def _read_ir_docs(it: Iterator, docs: dict[str, str], titles: dict[str, str], info: dict) -> None:
    has_title = False
    title_in_text = duplicates = empty_ids = 0
    for doc in it:
        fields = doc._fields
        doc_id = str(doc.doc_id)
        title = getattr(doc, "title", "") if "title" in fields else ""
        title = title if isinstance(title, str) else ""
        for f in _TEXT_FIELDS:
            if f in fields:
                text = getattr(doc, f)
                text = text if isinstance(text, str) else ""
                break
        else:
            text = " ".join(
                v for k, v in zip(fields, doc) if k not in ("doc_id", "title") and isinstance(v, str)
            )
        if doc_id == "":
            # Data quirk: ir_datasets' vaswani parser yields the first document
            # with doc_id '' and text "1\n<text>" because the docs file starts
            # with a blank line.  Repair generically: an empty id whose text
            # starts with a number on its own line takes that number as its id.
            first, _, rest = text.lstrip().partition("\n")
            if first.strip().isdigit():
                doc_id, text = first.strip(), rest
                info["doc_ids_repaired"] = info.get("doc_ids_repaired", 0) + 1
            else:
                empty_ids += 1
                continue
        if doc_id in docs:
            duplicates += 1
            continue
        t = normalise_ws(title)
        has_title = has_title or bool(t)
        if t and normalise_ws(text).startswith(t):
            title_in_text += 1
        titles[doc_id] = t
        docs[doc_id] = model_text(t, text)
    if has_title:
        info["docs_text_starting_with_title"] = title_in_text
    if duplicates:
        info["duplicate_doc_ids_dropped"] = duplicates
    if empty_ids:
        info["empty_doc_ids_dropped"] = empty_ids


def _assemble(
    name: str,
    source: str,
    docs: dict[str, str],
    titles: dict[str, str],
    raw_queries: list[tuple[str, str]],
    raw_qrels: list[tuple[str, str, int]],
    info: dict,
) -> Collection:
    """Join docs, queries and qrels; keep judged queries only, record what was dropped."""
    queries_all: dict[str, str] = {}
    for qid, text in raw_queries:
        queries_all.setdefault(qid, text)
    qrels: dict[str, dict[str, int]] = {}
    unknown_docs = unknown_queries = 0
    for qid, did, grade in raw_qrels:
        if qid not in queries_all:
            unknown_queries += 1
            continue
        if did not in docs:
            unknown_docs += 1
            continue
        qrels.setdefault(qid, {})[did] = grade
    queries = {q: t for q, t in queries_all.items() if q in qrels}
    info.update(
        queries_total=len(queries_all),
        queries_dropped_unjudged=len(queries_all) - len(queries),
        queries_without_positives=sum(1 for q in qrels if not any(g > 0 for g in qrels[q].values())),
        judgments=sum(len(v) for v in qrels.values()),
    )
    if unknown_docs:
        info["qrels_unknown_docs_dropped"] = unknown_docs
    if unknown_queries:
        info["qrels_unknown_queries_dropped"] = unknown_queries
    return Collection(
        name=name,
        docs=docs,
        titles=titles,
        queries=queries,
        qrels={q: qrels[q] for q in queries},
        source=source,
        info=info,
    )


# --------------------------------------------------------------------------- #
# BEIR folders
# --------------------------------------------------------------------------- #
def _read_corpus(corpus_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A BEIR ``corpus.jsonl``'s model texts and titles by document id."""
    docs: dict[str, str] = {}
    titles: dict[str, str] = {}
    for lineno, obj in _read_jsonl(corpus_path, ("_id",)):
        did = _str_field(corpus_path, lineno, obj, "_id", required=True).strip()
        if did in docs:
            raise UserError(f"{corpus_path}:{lineno}: duplicate _id '{did}'")
        title = normalise_ws(_str_field(corpus_path, lineno, obj, "title", required=False))
        text = _str_field(corpus_path, lineno, obj, "text", required=False)
        titles[did] = title
        docs[did] = model_text(title, text)
    if not docs:
        raise UserError(f"{corpus_path}: no documents")
    return docs, titles


def _beir_file(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _read_jsonl(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)``; malformed lines raise ``UserError`` naming ``path:line``."""
    lineno = 0
    try:
        with _open_text(path) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
                if not isinstance(obj, dict):
                    raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                for field in required:
                    if field not in obj:
                        raise UserError(f"{path}:{lineno}: missing field '{field}'")
                yield lineno, obj
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}:{lineno + 1}: not valid UTF-8 ({exc.reason})") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None


def _str_field(path: Path, lineno: int, obj: dict, field: str, *, required: bool) -> str:
    value = obj.get(field)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise UserError(f"{path}:{lineno}: field '{field}' must be a string, got {type(value).__name__}")
    value = str(value)
    if required and not value.strip():
        raise UserError(f"{path}:{lineno}: field '{field}' is empty")
    return value


def load_beir_folder(folder: Path | str, split: str = "test",
                     corpus: tuple[Mapping[str, str], Mapping[str, str]] | None = None) -> Collection:
    """Load a BEIR-format folder with the qrels of ``split`` (``qrels/<split>.tsv``).

    Queries without a judgment in that split are dropped
    (``info["queries_dropped_unjudged"]``); qrels naming unknown queries or
    documents are dropped and counted too. ``corpus``: the folder's (documents, titles) as already read
    (:func:`load_collection`).
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise UserError(f"BEIR folder '{folder}' does not exist")
    if not folder.is_dir():
        raise UserError(f"'{folder}' is not a folder (expected a BEIR folder with corpus.jsonl)")
    corpus_path = _beir_file(folder, "corpus")
    queries_path = _beir_file(folder, "queries")
    if corpus_path is None:
        raise UserError(f"{folder / 'corpus.jsonl'}: missing (not a BEIR folder?)")
    if queries_path is None:
        raise UserError(f"{folder / 'queries.jsonl'}: missing (not a BEIR folder?)")
    split = split or "test"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        avail = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        raise UserError(
            f"{qrels_path}: missing (qrels splits available: {', '.join(avail) or 'none'})"
        )

    docs, titles = corpus if corpus is not None else _read_corpus(corpus_path)

    raw_queries: list[tuple[str, str]] = []
    seen: set[str] = set()
    for lineno, obj in _read_jsonl(queries_path, ("_id", "text")):
        qid = _str_field(queries_path, lineno, obj, "_id", required=True).strip()
        if qid in seen:
            raise UserError(f"{queries_path}:{lineno}: duplicate _id '{qid}'")
        seen.add(qid)
        raw_queries.append((qid, normalise_ws(_str_field(queries_path, lineno, obj, "text", required=False))))

    raw_qrels = qrel_lines(qrels_path)
    base = folder.resolve().name
    name = base if split == "test" else f"{base}#{split}"
    info: dict[str, Any] = {"supervision": "human", "split": split}
    col = _assemble(name, f"{BEIR_PREFIX}{folder.resolve()}#{split}", docs, titles, raw_queries, raw_qrels, info)
    if not col.queries:
        raise UserError(f"{qrels_path}: no judgment matches a query in {queries_path.name} and a document in {corpus_path.name}")
    return col
