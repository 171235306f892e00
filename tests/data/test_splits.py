"""Query splits, nested budgets and weak (title) supervision."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from rerank_scaling.data import Collection, nested_budget, split_queries, weak_queries
from rerank_scaling.errors import UserError

QIDS = [str(i) for i in range(1, 226)]


def test_split_deterministic_disjoint_covering():
    a = split_queries(QIDS, seed=0)
    shuffled = QIDS[:]
    random.Random(7).shuffle(shuffled)
    assert split_queries(shuffled, seed=0) == a
    assert list(a) == ["train", "dev", "test"]
    assert [len(a[k]) for k in a] == [135, 45, 45]
    parts = [set(v) for v in a.values()]
    assert set().union(*parts) == set(QIDS)
    assert sum(len(p) for p in parts) == len(QIDS)
    assert split_queries(QIDS, seed=1) != a


def test_split_independent_of_hash_seed():
    code = (
        "import json; from rerank_scaling.data.splits import split_queries;"
        "print(json.dumps(split_queries([str(i) for i in range(50)], seed=3)))"
    )
    root = Path(__file__).resolve().parents[2]
    outs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            ).stdout
        )
        for seed in ("1", "2")
    ]
    assert outs[0] == outs[1] == split_queries([str(i) for i in range(50)], seed=3)


def test_split_stable_when_adding_a_query():
    a = split_queries(QIDS, seed=0)
    b = split_queries(QIDS + ["new"], seed=0)
    moved = sum(1 for k in a for q in a[k] if q not in b[k])
    assert moved <= 2  # at most one query crosses each boundary


def test_split_fraction_errors():
    with pytest.raises(UserError, match="sum to 1"):
        split_queries(QIDS, {"train": 0.5, "test": 0.4})
    with pytest.raises(UserError, match="must be > 0"):
        split_queries(QIDS, {"train": 1.0, "test": 0.0})
    assert split_queries(QIDS, {"train": 0.8, "test": 0.2})["test"].__len__() == 45


def test_nested_budget():
    b10 = nested_budget(QIDS, 10, seed=0)
    b50 = nested_budget(QIDS, 50, seed=0)
    assert len(b10) == 10 and len(set(b50)) == 50
    assert b50[:10] == b10  # nested
    assert nested_budget(list(reversed(QIDS)), 50, seed=0) == b50
    assert nested_budget(QIDS, 50, seed=1) != b50
    assert nested_budget(QIDS, 0, seed=0) == []
    assert sorted(nested_budget(QIDS, 225, seed=0)) == sorted(QIDS)
    with pytest.raises(UserError, match="budget 300 exceeds the 225 available queries"):
        nested_budget(QIDS, 300, seed=0)


def test_weak_queries_on_cranfield(cranfield: Collection):
    weak = weak_queries(cranfield)
    info = weak.info
    assert info["supervision"] == "weak"
    assert weak.name == "cranfield-weak"
    # every titled doc either becomes a query or is counted as skipped
    skipped = info["titles_skipped_empty"] + info["titles_skipped_short"] + info["titles_skipped_duplicate"]
    assert len(weak.queries) + skipped == len(cranfield.docs)
    assert len(weak.queries) == 1342
    assert info["titles_skipped_empty"] == 2  # docs 471 and 995 are empty
    assert weak.queries["title:1"] == cranfield.titles["1"]
    assert weak.qrels["title:1"] == {"1": 1}
    assert all(len(rels) == 1 and list(rels.values()) == [1] for rels in weak.qrels.values())
    assert all(q.startswith("title:") and q[len("title:"):] in weak.qrels[q] for q in weak.queries)
    assert weak.docs is cranfield.docs
    titles = [t.lower() for t in weak.queries.values()]
    assert len(titles) == len(set(titles))
    assert all(len(t.split()) >= 3 for t in titles)
    assert cranfield.info["supervision"] == "human"


def test_weak_queries_needs_titles(vaswani: Collection):
    with pytest.raises(UserError, match="no usable document titles"):
        weak_queries(vaswani)
