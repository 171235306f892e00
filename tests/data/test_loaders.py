"""Loaders on the real shared collections, plus error paths on small tmp copies."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from rerank_scaling.data import Collection, load_beir_folder, load_collection, model_text
from rerank_scaling.errors import UserError


# --------------------------------------------------------------------------- #
# counts and conventions on the real data
# --------------------------------------------------------------------------- #
def test_cranfield_counts_and_grades(cranfield: Collection):
    assert isinstance(cranfield, Collection)
    assert len(cranfield.docs) == 1400
    assert len(cranfield.queries) == 225
    assert sum(len(v) for v in cranfield.qrels.values()) == 1837
    assert cranfield.info["supervision"] == "human"
    assert cranfield.info["queries_dropped_unjudged"] == 0
    grades = {g for rels in cranfield.qrels.values() for g in rels.values()}
    assert grades == {-1, 1, 2, 3, 4}
    # raw qrels keep -1, positives() drops it
    q, d = next((q, d) for q in cranfield.qrels for d, g in cranfield.qrels[q].items() if g == -1)
    assert d not in cranfield.positives(q)
    assert all(g > 0 for q in cranfield.queries for g in cranfield.positives(q).values())


def test_cranfield_title_not_doubled(cranfield: Collection):
    # Cranfield's text repeats the title: the model text must contain it once
    text = cranfield.docs["1"]
    title = cranfield.titles["1"]
    assert title == "experimental investigation of the aerodynamics of a wing in a slipstream ."
    assert text.startswith(title)
    assert text.count("experimental investigation of the aerodynamics") == 1
    assert "\n" not in text and "  " not in text


def test_vaswani_counts_and_id_repair(vaswani: Collection):
    assert len(vaswani.docs) == 11426
    assert "" not in vaswani.docs
    assert vaswani.docs["1"].startswith("compact memories have flexible capacities")
    assert vaswani.info.get("doc_ids_repaired") == 1
    assert len(vaswani.queries) == 93
    assert sum(len(v) for v in vaswani.qrels.values()) == 2083
    assert {g for rels in vaswani.qrels.values() for g in rels.values()} == {1}
    assert not any(vaswani.titles.values())  # no titles: text only


def test_cisi_counts_and_dropped_queries(cisi: Collection):
    assert len(cisi.docs) == 1460
    assert len(cisi.queries) == 76
    assert cisi.info["queries_total"] == 112
    assert cisi.info["queries_dropped_unjudged"] == 36
    assert sum(len(v) for v in cisi.qrels.values()) == 3114
    assert set(cisi.qrels) == set(cisi.queries)
    assert cisi.name == "cisi"
    assert cisi.docs["1"].startswith("18 Editions of the Dewey Decimal Classifications The present study")


def _snapshot(root: Path) -> dict:
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.stat()
            snap[str(p)] = (st.st_size, st.st_mtime_ns, st.st_mode)
        snap[dirpath] = (0, Path(dirpath).stat().st_mtime_ns, 0)
    for small in ("ir_datasets/cranfield/qrels.txt", "beir/cisi/qrels/test.tsv"):
        snap["sha256:" + small] = hashlib.sha256((root / small).read_bytes()).hexdigest()
    return snap


def test_shared_folder_is_never_written(shared_root: Path, tmp_path: Path):
    before = _snapshot(shared_root)
    cache = tmp_path / "cache"
    col = load_collection("cranfield", data_root=shared_root, cache_dir=cache)
    load_collection(f"beir-folder:{shared_root / 'beir' / 'cisi'}")
    assert len(col.docs) == 1400
    # the files were copied into the cache and ir_datasets pointed there
    assert (cache / "ir_datasets" / "cranfield" / "docs.txt").is_file()
    assert Path(os.environ["IR_DATASETS_HOME"]) == (cache / "ir_datasets").resolve()
    # a second load with the same cache copies nothing again
    mtime = (cache / "ir_datasets" / "cranfield" / "docs.txt").stat().st_mtime_ns
    load_collection("cranfield", data_root=shared_root, cache_dir=cache)
    assert (cache / "ir_datasets" / "cranfield" / "docs.txt").stat().st_mtime_ns == mtime
    assert _snapshot(shared_root) == before


# --------------------------------------------------------------------------- #
# BEIR folder errors (tmp copies)
# --------------------------------------------------------------------------- #
@pytest.fixture
def cisi_copy(shared_root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "cisi"
    shutil.copytree(shared_root / "beir" / "cisi", dst, copy_function=shutil.copyfile)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def _replace_line(path: Path, lineno: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[lineno - 1] = new
    path.write_text("".join(lines), encoding="utf-8")


def test_malformed_qrels_line_names_file_and_line(cisi_copy: Path):
    qrels = cisi_copy / "qrels" / "test.tsv"
    _replace_line(qrels, 17, "1\t28\n")
    with pytest.raises(UserError, match=r"cisi/qrels/test\.tsv:17: expected 3 tab-separated fields, got 2"):
        load_collection(str(cisi_copy))


def test_non_integer_grade(cisi_copy: Path):
    _replace_line(cisi_copy / "qrels" / "test.tsv", 5, "1\t28\thigh\n")
    with pytest.raises(UserError, match=r"test\.tsv:5: score 'high' is not an integer"):
        load_beir_folder(cisi_copy)


def test_malformed_json_line(cisi_copy: Path):
    _replace_line(cisi_copy / "corpus.jsonl", 3, '{"_id": "3", "text": "broken\n')
    with pytest.raises(UserError, match=r"cisi/corpus\.jsonl:3: invalid JSON"):
        load_collection(f"beir-folder:{cisi_copy}")


def test_missing_id_field(cisi_copy: Path):
    _replace_line(cisi_copy / "queries.jsonl", 4, '{"text": "no id here"}\n')
    with pytest.raises(UserError, match=r"cisi/queries\.jsonl:4: missing field '_id'"):
        load_collection(str(cisi_copy))


def test_other_split_and_missing_split(cisi_copy: Path):
    dev = cisi_copy / "qrels" / "dev.tsv"
    dev.write_text("query-id\tcorpus-id\tscore\n1\t28\t1\n2\t5\t0\n999\t1\t1\n", encoding="utf-8")
    col = load_collection(f"beir-folder:{cisi_copy}#dev")
    assert set(col.queries) == {"1", "2"}
    assert col.name == "cisi#dev"
    assert col.info["qrels_unknown_queries_dropped"] == 1
    assert col.info["queries_without_positives"] == 1
    assert load_collection(str(cisi_copy), split="dev").queries == col.queries
    with pytest.raises(UserError, match=r"train\.tsv: missing \(qrels splits available: dev, test\)"):
        load_collection(f"beir-folder:{cisi_copy}#train")


def test_missing_folder_and_unknown_id(tmp_path: Path):
    missing = tmp_path / "nope"
    with pytest.raises(UserError, match="nope' does not exist"):
        load_collection(f"beir-folder:{missing}")
    with pytest.raises(UserError, match=r"unknown dataset id 'xyz' \(not an ir_datasets id nor a folder\)"):
        load_collection("xyz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"corpus\.jsonl: missing"):
        load_collection(str(empty))
    with pytest.raises(UserError, match="data root"):
        load_collection("cranfield", data_root=tmp_path / "no_root", cache_dir=tmp_path)


def test_download_failure_is_a_user_error(monkeypatch, tmp_path: Path):
    """An id that is neither in data_root nor downloadable gives a one-line hint."""
    from rerank_scaling.data import loaders

    ir_datasets = loaders._import_ir_datasets(None)
    real = ir_datasets.load("antique/test")

    class Offline:
        def __getattr__(self, name):
            return getattr(real, name)

        def qrels_iter(self):
            raise ConnectionError("Failed to resolve 'ciir.cs.umass.edu'\nmore lines")

    monkeypatch.setattr(ir_datasets, "load", lambda _id: Offline())
    monkeypatch.setattr(loaders, "_import_ir_datasets", lambda home: ir_datasets)
    (tmp_path / "ir_datasets").mkdir()  # a data root of the right layout, without this collection
    with pytest.raises(UserError) as err:
        load_collection("antique/test", data_root=tmp_path, cache_dir=tmp_path)
    msg = str(err.value)
    assert "'antique/test'" in msg and "--data-root" in msg and "ConnectionError" in msg
    assert f"({tmp_path}/ir_datasets/antique/ is missing)" in msg
    assert "\n" not in msg


def test_model_text_rules():
    assert model_text("A title .", "A  title .\n body") == "A title . body"
    assert model_text("Title", "body text") == "Title body text"
    assert model_text("", "  only\ttext ") == "only text"
    assert model_text("only title", "") == "only title"


def test_reimport_for_a_new_home_keeps_working(shared_root: Path, tmp_path: Path, cranfield: Collection):
    # a second cache dir in the same process (ir_datasets fixes paths at import)
    col = load_collection("vaswani", data_root=shared_root, cache_dir=tmp_path / "other")
    assert len(col.docs) == 11426
    assert "ir_datasets" in sys.modules
    assert (tmp_path / "other" / "ir_datasets" / "vaswani" / "docs.txt").is_file()
