"""Settings that are each in range but meaningless together, and doubtful inputs, on the real data:
refused before anything is written where the run cannot mean anything, warned with counts where it can."""

from __future__ import annotations

import dataclasses

import pytest

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.errors import UserError
from rerank_scaling.models import FAMILIES
from rerank_scaling.pipeline.prepare import evaluation_set, prepare, text_room, training_set


@pytest.fixture(scope="module")
def base(shared_root, tmp_path_factory):
    return RunConfig(ladder="scratch", size="L1-H64", steps=2, warmup_steps=0, candidates_k=20, rerank_k=10,
                     ce_negatives=5, n_negatives=3, budget=20, data_root=str(shared_root),
                     cache_dir=str(tmp_path_factory.mktemp("cache")),
                     evals=(EvalSpec("cranfield-test", "cranfield", "test", 8, True),))


def _queries(config):
    tset, _ = training_set(config)
    return list(tset.collection.queries.values())


def test_a_max_length_that_leaves_no_document_token_is_refused(base):
    """[CLS] query [SEP] document [SEP]: with max_length 4 even a one-token query leaves the document none."""
    with pytest.raises(UserError, match=r"max_length = 4 leaves no room for document tokens: 3 special tokens"):
        text_room(dataclasses.replace(base, max_length=4), _queries(base))


def test_a_max_length_that_cuts_some_documents_to_nothing_is_counted(base):
    queries = _queries(base)
    from rerank_scaling.models.backbone import load_tokenizer

    lengths = [len(x) for x in load_tokenizer(base.model)(queries, add_special_tokens=False)["input_ids"]]
    cut = sorted(lengths)[len(lengths) // 2]  # half the queries fill max_length = cut + 3 on their own
    (message,) = text_room(dataclasses.replace(base, max_length=cut + 3), queries)
    expected = sum(n >= cut for n in lengths)
    assert message.startswith(f"max_length = {cut + 3} leaves no document token for {expected} of {len(queries)}")
    assert 0 < expected < len(queries)
    assert text_room(base, queries) == []  # the default 256 leaves every pair room


def test_a_retriever_length_below_its_special_tokens_is_refused(base):
    config = dataclasses.replace(base, family="bi-encoder", objective="infonce", max_query_length=2,
                                 family_settings=FAMILIES["bi-encoder"].settings())
    with pytest.raises(UserError, match="max_query_length = 2 leaves no room for text: the 2 special tokens"):
        text_room(config, ["a query"])


def test_doubtful_data_is_warned_with_counts(base):
    config = dataclasses.replace(base, n_negatives=30, evals=(EvalSpec("cran", "cranfield", "test", 500, True),))
    prepared = prepare(config)
    warnings = prepared.info["warnings"]
    n_test = prepared.info["eval"]["cran"]["queries"]
    assert f"eval 'cran': max_queries = 500 but only {n_test} queries have a relevant document (grade >= 1); " \
           f"all {n_test} are used" in warnings
    assert any(w.startswith("training set: 20 of 20 queries have fewer than n_negatives = 30 non-relevant "
                            "candidates in their BM25 top 20") for w in warnings), warnings


def test_a_rerank_depth_beyond_the_candidates_is_counted_and_a_foreign_run_file_refused(base, tmp_path):
    cands, _, info = evaluation_set(base, base.evals[0])
    qids = sorted(cands.collection.queries)
    doc = sorted(cands.collection.docs)[0]
    run = tmp_path / "run.trec"
    lines = [f"{q} Q0 {doc} 1 1.0 x" for q in qids[:-1]] + [f"{qids[0]} Q0 no-such-doc 2 0.5 x"]
    run.write_text("\n".join(lines) + "\n")
    _, _, info = evaluation_set(dataclasses.replace(base, candidates_run=str(run)), base.evals[0])
    assert f"{run}: 1 candidates of eval 'cranfield-test' are not documents of its corpus; dropped" in info["warnings"]
    assert f"{run}: 1 of {len(qids)} queries of eval 'cranfield-test' have no candidate; they score 0" in info["warnings"]
    assert any(w.startswith(f"eval 'cranfield-test': {len(qids)} of {len(qids)} queries have fewer than rerank_k = 10 "
                            "candidates (fewest 0)") for w in info["warnings"])
    run.write_text("\n".join(f"other-{q} Q0 {doc} 1 1.0 x" for q in qids) + "\n")
    with pytest.raises(UserError, match=f"names none of the {len(qids)} queries of eval 'cranfield-test'"):
        evaluation_set(dataclasses.replace(base, candidates_run=str(run)), base.evals[0])


def test_judgments_naming_unknown_documents_are_counted(tmp_path, shared_root):
    """A BEIR folder whose qrels name documents its corpus lacks: loaded, and the drop is said with its count."""
    import shutil

    from rerank_scaling.data import load_collection
    from rerank_scaling.pipeline.prepare import dropped

    folder = tmp_path / "cisi"
    shutil.copytree(shared_root / "beir" / "cisi", folder)
    qrels = folder / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text() + "1\tno-such-doc\t1\n2\tno-such-doc-either\t1\n")
    assert dropped(load_collection(str(folder))) == ["cisi: 2 judgments name a document not in the corpus; dropped"]


def test_a_data_root_without_the_layout_names_what_is_missing(tmp_path, shared_root):
    from rerank_scaling.data import load_collection

    with pytest.raises(UserError, match=f"data root '{tmp_path}' has no ir_datasets/ folder "
                                        f"\\(expected {tmp_path}/ir_datasets/cranfield/"):
        load_collection("cranfield", data_root=tmp_path, cache_dir=tmp_path / "cache")


def test_an_eval_set_that_shares_training_queries_is_named(base):
    prepared = prepare(dataclasses.replace(base, train_split=None, budget=None))
    n = prepared.info["eval"]["cranfield-test"]["queries"]
    assert f"eval 'cranfield-test' shares {n} of its {n} queries with the training set: its scores are not held " \
           "out (see train_split)" in prepared.info["warnings"]
    assert not any("shares" in w for w in prepare(base).info["warnings"])  # the train split is held apart


def test_an_out_folder_holding_another_run_is_refused_before_anything(base, tmp_path):
    import json

    from rerank_scaling.pipeline.run import other_run, train_run
    from rerank_scaling.rundir import RunFolder

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    saved = json.loads(json.dumps(base.to_dict()))
    saved.pop("malloc_pin")  # a key this config.json predates: its default is what the run had
    run.config.write_text(json.dumps(saved))
    other_run(base, run)  # the same settings resume
    before = sorted(p.name for p in run.path.iterdir())
    with pytest.raises(UserError, match=f"{run.path} holds a run with lr = 5e-05, not 0.1: resume it with the same"):
        train_run(dataclasses.replace(base, lr=0.1), run)
    with pytest.raises(UserError, match="holds a run with malloc_pin = 'auto', not 'on'"):
        other_run(dataclasses.replace(base, malloc_pin="on"), run)
    assert sorted(p.name for p in run.path.iterdir()) == before
