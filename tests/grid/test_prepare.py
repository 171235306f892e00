"""The prepare step: `grid prepare` builds what the cells read; the cells then only read it."""

from __future__ import annotations

import pytest

from rerank_scaling.cli import main
from rerank_scaling.config import load_experiment
from rerank_scaling.grid.prepare import prepare_job
from rerank_scaling.rundir import StudyFolder


def test_prepare_then_cells_only_read(write_experiment, tmp_path, capsys, monkeypatch):
    path = write_experiment(steps=2)
    assert main(["grid", "prepare", str(path)]) == 0
    assert "prepared 1 training sets" in capsys.readouterr().out
    cache = tmp_path / "cache"
    assert len(list((cache / "bm25").iterdir())) == 2  # one index per corpus: Cranfield, CISI
    assert len(list((cache / "collections").iterdir())) == 2
    candidate_sets = sorted(p.name for p in (cache / "candidates").iterdir())
    assert len(candidate_sets) == 3  # the training queries, and each evaluation set's

    def nothing_to_build(*args, **kwargs):
        raise AssertionError("a cell built what the prepare step should have")

    monkeypatch.setattr("rerank_scaling.candidates.index.build_index", nothing_to_build)
    monkeypatch.setattr("rerank_scaling.candidates.index.BM25Index.search", nothing_to_build)
    monkeypatch.setattr("rerank_scaling.data.loaders.load_collection", nothing_to_build)
    out = tmp_path / "study"
    assert main(["grid", "run", str(path), "--out", str(out), "--workers", "1"]) == 0  # cells in this process
    assert [s.state for s in StudyFolder(out).states()] == ["done"] * 4
    assert sorted(p.name for p in (cache / "candidates").iterdir()) == candidate_sets


def test_prepare_job_takes_an_experiment_path_and_run_ids(write_experiment):
    path = write_experiment(steps=2)
    cells = load_experiment(path).cells
    summary = prepare_job(str(path), [cells[0].run_id])
    assert summary["cells"] == 1 and summary["training_sets"] == 1 and summary["seconds"] >= 0


def test_prepare_reports_bad_data_as_one_line(write_experiment, capsys):
    from tiny_experiment import TINY

    path = write_experiment(TINY.replace("budgets = [10]", "budgets = [900]"))
    assert main(["grid", "prepare", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "budget 900 is larger" in err and "\n" not in err


@pytest.mark.parametrize("depth", [None, 5])
def test_rerank_command_reranks_a_trec_run(depth, cranfield, shared_root, tmp_path, capsys):
    """A saved cross-encoder reranks a BM25 run: the head by the model's scores, the tail in the run's order."""
    from rerank_scaling.candidates import bm25_candidates, read_trec_run, write_trec_run
    from rerank_scaling.config import RunConfig
    from rerank_scaling.models import get_family

    model = get_family("cross-encoder").build(RunConfig(ladder="scratch", size="L1-H32", max_length=64))
    model.save(tmp_path / "run" / "model")
    qids = sorted(cranfield.queries)[:4]
    bm25 = bm25_candidates(cranfield, {q: cranfield.queries[q] for q in qids}, k=12, cache_dir=tmp_path / "c")
    run = {**{q: bm25[q] for q in qids}, "not-a-query": bm25[qids[0]][:3]}
    write_trec_run(tmp_path / "bm25.run", run, tag="bm25")
    argv = ["rerank", str(tmp_path / "run"), "--run", str(tmp_path / "bm25.run"), "--collection", "cranfield",
            "--data-root", str(shared_root), "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "out.run")]
    assert main(argv + (["--depth", str(depth)] if depth else [])) == 0
    assert "1 queries not in the collection left out" in capsys.readouterr().out
    out = read_trec_run(tmp_path / "out.run")
    assert set(out) == set(qids)
    assert (tmp_path / "out.run").read_text().split("\n")[0].split()[-1] == "run"  # the run folder's name as tag
    for q in qids:
        head = [d for d, _ in bm25[q][:depth]]
        expected = model.score([cranfield.queries[q]] * len(head), [cranfield.docs[d] for d in head])
        ranked = sorted(zip(head, expected.tolist()), key=lambda kv: (-kv[1], kv[0]))
        assert [d for d, _ in out[q][:len(head)]] == [d for d, _ in ranked]
        assert [s for _, s in out[q][:len(head)]] == pytest.approx([s for _, s in ranked], abs=1e-5)
        assert [d for d, _ in out[q][len(head):]] == [d for d, _ in bm25[q][len(head):]]  # the tail, as it was


def test_rerank_command_bad_inputs_are_one_line(cranfield, shared_root, tmp_path, capsys):
    from rerank_scaling.candidates import write_trec_run

    q = sorted(cranfield.queries)[0]
    write_trec_run(tmp_path / "bad.run", {q: [("no-such-doc", 1.0)]}, tag="x")
    base = ["rerank", "cross-encoder/none", "--collection", "cranfield", "--data-root", str(shared_root),
            "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "out.run")]
    for extra, message in ((["--run", str(tmp_path / "missing.run")], "file not found"),
                           (["--run", str(tmp_path / "bad.run"), "--depth", "0"], "--depth must be a positive integer, got 0"),
                           (["--run", str(tmp_path / "bad.run")], "document 'no-such-doc' of the run is not in the collection")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and __import__("re").search(message, err), err
    assert not (tmp_path / "out.run").exists()
