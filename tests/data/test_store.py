"""Collections stored once and memory-mapped: the same data as the loaders' dicts, read by every process."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from rerank_scaling.data import store as store_mod
from rerank_scaling.data.loaders import load_collection
from rerank_scaling.data.store import TextStore, stored_collection, write_store
from rerank_scaling.data.types import sorted_ids


def test_text_store_is_a_mapping(tmp_path: Path):
    items = {"b": "zwei", "a": "eins ünïcödé", "10": "", "2": "drei"}
    write_store(tmp_path / "s", items.items())
    s = TextStore(tmp_path / "s")
    assert dict(s) == items and s == items and len(s) == 4
    assert list(s) == sorted(items) == list(s.ids)  # sorted ids, as sorted() orders strings
    assert "a" in s and "c" not in s and "" not in s and 3 not in s
    with pytest.raises(KeyError):
        s["zz-longer-than-any-id"]
    view = s.restrict(["b", "2", "missing"])
    assert dict(view) == {"2": "drei", "b": "zwei"} and "a" not in view and list(view.ids) == ["2", "b"]
    assert pickle.loads(pickle.dumps(view)) == view
    assert not s._ids.flags.writeable and sorted_ids(s) is not None and list(sorted_ids(s)) == sorted(items)
    write_store(tmp_path / "empty", [])
    assert dict(TextStore(tmp_path / "empty")) == {}


@pytest.mark.parametrize("name", ["cranfield", "cisi"])
def test_stored_collection_equals_the_loaded_one_and_is_read_once(name, shared_root, tmp_path, monkeypatch):
    spec = "cranfield" if name == "cranfield" else str(shared_root / "beir" / "cisi")
    loaded = load_collection(spec, data_root=shared_root, cache_dir=tmp_path)
    stored = stored_collection(spec, data_root=shared_root, cache_dir=tmp_path)
    assert isinstance(stored.docs, TextStore)
    for part in ("docs", "titles", "queries", "qrels"):
        assert dict(getattr(stored, part)) == dict(getattr(loaded, part)), part
    assert (stored.name, stored.source, stored.info) == (loaded.name, loaded.source, loaded.info)
    # a second call (any process) opens the stores without reading the source
    monkeypatch.setattr("rerank_scaling.data.loaders.load_collection",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("read again")))
    again = stored_collection(spec, data_root=shared_root, cache_dir=tmp_path)
    assert again.docs.folder == stored.docs.folder
    sub = again.subset(sorted(again.queries)[:5])
    assert isinstance(sub.queries, TextStore) and len(sub.queries) == 5 == len(sub.qrels)
    assert dict(sub.qrels) == {q: loaded.qrels[q] for q in sorted(loaded.queries)[:5]}


def test_splits_share_one_copy_of_the_documents_and_a_changed_folder_is_read_again(shared_root, tmp_path,
                                                                                    monkeypatch):
    folder = tmp_path / "cisi"
    shutil.copytree(shared_root / "beir" / "cisi", folder)
    qrels = (folder / "qrels" / "test.tsv").read_text().splitlines()
    (folder / "qrels" / "dev.tsv").write_text("\n".join(qrels[:40]) + "\n")
    cache = tmp_path / "cache"
    test = stored_collection(f"beir-folder:{folder}#test", cache_dir=cache)
    with monkeypatch.context() as m:  # the second split opens the stored corpus: corpus.jsonl is not parsed again
        m.setattr("rerank_scaling.data.loaders._read_corpus", lambda *a: (_ for _ in ()).throw(AssertionError()))
        dev = stored_collection(f"beir-folder:{folder}#dev", cache_dir=cache)
    assert test.docs.folder == dev.docs.folder and len(list((cache / "texts").iterdir())) == 1
    assert len(dev.queries) < len(test.queries) and dev.info["judgments"] == 39
    fresh = load_collection(f"beir-folder:{folder}#dev")
    assert (dict(dev.qrels), dict(dev.queries), dev.info) == (fresh.qrels, fresh.queries, fresh.info)
    (folder / "qrels" / "dev.tsv").write_text("\n".join(qrels[:10]) + "\n")
    os.utime(folder / "qrels" / "dev.tsv", ns=(1, 1))  # another size and time: another key
    changed = stored_collection(f"beir-folder:{folder}#dev", cache_dir=cache)
    assert changed.info["judgments"] == 9 and sum(map(len, changed.qrels.values())) == 9
    # an edited corpus file is parsed again (its size and time are the record's key), never the old texts
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    (folder / "corpus.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    edited = stored_collection(f"beir-folder:{folder}#dev", cache_dir=cache)
    assert len(edited.docs) == len(test.docs) - 1 and edited.docs.folder != test.docs.folder


def test_an_interrupted_write_leaves_no_store(tmp_path, cisi, monkeypatch):
    def broken(folder, items):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store_mod, "write_store", broken)
    with pytest.raises(RuntimeError):
        store_mod.write_collection(tmp_path / "collections" / "cisi-x", cisi)
    left = [p for p in tmp_path.rglob("*") if p.is_dir() and p.name not in ("collections", "texts")]
    assert left == []
