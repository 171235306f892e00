"""One run end to end on the real shared data with a tiny model, offline."""

import json

import polars as pl
import pytest

from rerank_scaling.candidates import read_trec_run
from rerank_scaling.cli import main
from rerank_scaling.errors import UserError
from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.pipeline.run import train_run
from rerank_scaling.results import SCHEMA

METRICS = ("ndcg@10", "map", "mrr@10", "recall@100", "p@10")


@pytest.fixture(scope="module")
def tiny(shared_root, tmp_path_factory):
    return RunConfig(
        ladder="scratch", size="L1-H64", objective="listwise", steps=6, eval_every=2, batch_size=2,
        n_negatives=3, max_length=64, candidates_k=20, rerank_k=10, ce_negatives=5, lr=1e-3, warmup_steps=1,
        data_root=str(shared_root), cache_dir=str(tmp_path_factory.mktemp("cache")), budget=20,
        evals=(
            EvalSpec("cranfield-test", "cranfield", "test", 5, True),
            EvalSpec("cisi", str(shared_root / "beir" / "cisi"), None, 4, False),
        ),
    )


@pytest.fixture(scope="module")
def finished(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    return train_run(tiny, folder), folder


def test_run_writes_every_output(finished, tiny):
    status, folder = finished
    assert status["state"] == "done"
    assert status["hardware"]["peak_rss_mb"] > 100  # a torch process holds at least this much
    df = pl.read_parquet(folder / "metrics.parquet")
    assert dict(df.schema) == SCHEMA
    # 3 checkpoints x 2 eval sets x (5 metrics + contrastive entropy)
    assert df.height == 3 * 2 * 6
    assert sorted(df["step"].unique().to_list()) == [2, 4, 6]
    assert set(df["metric"]) == {*METRICS, "ce@5"}
    assert (df["examples_seen"] == df["step"] * tiny.batch_size).all()
    assert (df["params"] > 0).all() and (df["tokens_seen"] > 0).all()
    assert set(df["size_axis"]) == {"non-embedding"}  # the default axis
    assert df.filter(pl.col("eval_set") == "cranfield-test")["in_domain"].all()
    base = pl.read_parquet(folder / "baseline.parquet")
    assert set(base["model"]) == {"bm25"} and base.height == 2 * 5
    for name, n in (("cranfield-test", 5), ("cisi", 4)):
        run = read_trec_run(folder / "runs" / f"{name}.trec")
        assert len(run) == n and all(tiny.rerank_k < len(docs) <= tiny.candidates_k for docs in run.values())
    saved = RunConfig.from_dict(json.loads((folder / "config.json").read_text()))
    assert saved == tiny
    assert not (folder / "checkpoints").exists()
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4, 5, 6]


def test_finished_run_is_skipped(finished, tiny):
    status, folder = finished
    before = (folder / "metrics.parquet").stat().st_mtime_ns
    assert train_run(tiny, folder) == status
    assert (folder / "metrics.parquet").stat().st_mtime_ns == before


def test_interrupted_run_resumes_to_the_same_numbers(finished, tiny, tmp_path):
    _, reference = finished

    def crash_after_first_checkpoint(event, details):
        if event == "step" and details["step"] == 3:
            raise RuntimeError("simulated crash")

    # the resumed process must not replay batches when Lightning restarts its epoch
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_run(tiny, tmp_path, progress=crash_after_first_checkpoint)
    assert (tmp_path / "checkpoints" / "last.ckpt").exists() and not (tmp_path / "status.json").exists()
    assert train_run(tiny, tmp_path)["state"] == "done"
    losses = lambda f: [json.loads(x)["loss"] for x in (f / "train_log.jsonl").read_text().splitlines()]  # noqa: E731
    assert losses(tmp_path) == losses(reference)
    cols = ["step", "eval_set", "metric", "value", "tokens_seen"]
    got = pl.read_parquet(tmp_path / "metrics.parquet").select(cols).sort(cols[:3])
    want = pl.read_parquet(reference / "metrics.parquet").select(cols).sort(cols[:3])
    assert got.equals(want)


def test_nan_loss_is_recorded_as_a_failure(tiny, tmp_path, monkeypatch):
    import torch

    from rerank_scaling.objectives.reranking import SoftmaxCE

    monkeypatch.setattr(SoftmaxCE, "__call__", lambda self, s, l: s.sum() * torch.tensor(float("nan")))
    status = train_run(tiny, tmp_path)
    assert status["state"] == "failed" and "non-finite loss" in status["reason"]
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "failed"


def test_budget_larger_than_training_queries_is_a_user_error(tiny, tmp_path):
    from dataclasses import replace

    with pytest.raises(UserError, match="budget 5000 is larger than the 1\\d\\d training queries"):
        train_run(replace(tiny, budget=5000), tmp_path)


def test_cli_bad_objective_is_one_line_and_writes_nothing(tmp_path, capsys, shared_root):
    out = tmp_path / "run"
    code = main(["train", "--out", str(out), "--objective", "softmax", "--data-root", str(shared_root)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "unknown objective 'softmax'" in err
    assert not out.exists()


def test_cli_unknown_dataset_is_one_line(tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path / "r"), "--train-collection", "no-such-dataset",
                 "--steps", "1", "--ladder", "scratch", "--size", "L1-H64"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "no-such-dataset" in err
    assert not (tmp_path / "r").exists()


def test_mixed_supervision_is_human_train_queries_plus_weak_titles(tiny):
    from dataclasses import replace

    from rerank_scaling.pipeline.prepare import training_set

    human, _ = training_set(replace(tiny, supervision="human", budget=None))
    weak, _ = training_set(replace(tiny, supervision="weak", budget=None))
    mixed, info = training_set(replace(tiny, supervision="mixed", budget=None))
    assert set(mixed.collection.queries) == set(human.collection.queries) | set(weak.collection.queries)
    assert all(q.startswith("title:") for q in weak.collection.queries)
    assert not any(q.startswith("title:") for q in human.collection.queries)
    assert info["supervision"] == "mixed"


def test_noisy_supervision_replaces_the_stated_share_of_positives_with_candidates_nested(tiny):
    """human-noise20 / -noise50: about that share of the (query, positive) labels of the same training
    queries replaced by non-relevant BM25 candidates; the labels corrupted at 20% are corrupted at 50%
    too (nested), with the same query set, and evaluation qrels are untouched."""
    from dataclasses import replace

    from rerank_scaling.pipeline.prepare import candidates_for, load, training_set

    clean, _ = training_set(replace(tiny, supervision="human", budget=None))
    noisy = {p: training_set(replace(tiny, supervision=f"human-noise{p}", budget=None)) for p in (20, 50)}
    coll = load(tiny, tiny.train_collection)
    pairs = {(q, d) for q in clean.collection.queries for d in clean.collection.positives(q)}
    kept = {}
    for p, (tset, info) in noisy.items():
        assert set(tset.collection.queries) == set(clean.collection.queries) and info["supervision"] == f"human-noise{p}"
        now = {(q, d) for q in tset.collection.queries for d in tset.collection.positives(q)}
        kept[p] = pairs & now
        replaced = len(pairs) - len(kept[p])
        assert info["labels"] == len(pairs) and info["labels_replaced"] == replaced and info["label_noise"] == p / 100
        assert abs(replaced / len(pairs) - p / 100) < 0.06  # ~p% of ~700 labels
        cands = candidates_for(tiny, coll, tset.collection.queries)
        for q, d in now - pairs:  # each replacement: a candidate of its query that the qrels call non-relevant
            assert d in {doc for doc, _ in cands[q]} and coll.qrels[q].get(d, 0) <= 0
    assert kept[50] <= kept[20]
    assert training_set(replace(tiny, supervision="human-noise20", budget=None))[0].collection.qrels == \
        noisy[20][0].collection.qrels  # deterministic
    with pytest.raises(UserError, match="supervision"):
        replace(tiny, supervision="human-noise0").validate()


def test_a_truncated_checkpoint_restarts_the_run_to_the_same_numbers(finished, tiny, tmp_path):
    _, reference = finished

    def crash(event, details):
        if event == "step" and details["step"] == 3:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        train_run(tiny, tmp_path, progress=crash)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # a kill during the save
    with open(tmp_path / "train_log.jsonl", "a") as fh:
        fh.write('{"step": 4, "lo')  # and a kill while appending the log
    assert train_run(tiny, tmp_path)["state"] == "done"
    cols = ["step", "eval_set", "metric", "value", "tokens_seen"]
    got = pl.read_parquet(tmp_path / "metrics.parquet").select(cols).sort(cols[:3])
    want = pl.read_parquet(reference / "metrics.parquet").select(cols).sort(cols[:3])
    assert got.equals(want)
    assert [json.loads(x)["step"] for x in (tmp_path / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_checkpoints_are_staged_in_the_run_folder_only(tiny, tmp_path, monkeypatch):
    staging = tmp_path / "tmpdir"
    staging.mkdir()
    monkeypatch.setenv("TMPDIR", str(staging))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR

    def look(event, details):
        if event == "step" and details["step"] == 3:
            assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
            assert list(staging.iterdir()) == []

    assert train_run(tiny, tmp_path / "run", progress=look)["state"] == "done"
    assert list(staging.iterdir()) == []


def test_relevance_level_reaches_queries_metrics_and_contrastive_positives(tiny, cranfield):
    from rerank_scaling.evaluation.metrics import mean_values
    from rerank_scaling.evaluation.rerank import rerank_per_query
    from rerank_scaling.pipeline.prepare import evaluation_set

    sets = {}
    for level in (1, 2):
        spec = EvalSpec(f"cran-l{level}", "cranfield", "test", None, True, relevance_level=level)
        sets[level] = evaluation_set(tiny, spec)
    (one, base1, info1), (two, base2, info2) = sets[1], sets[2]
    assert two.relevance_level == 2 and one.relevance_level == 1
    qrels = cranfield.qrels
    assert all(any(g >= 2 for g in qrels[q].values()) for q in info2["qids"])
    assert set(info2["qids"]) < set(info1["qids"])  # queries with only grade-1 documents drop out
    for qid, cs in two.contrastive.items():
        assert cs.positives and all(qrels[qid][d] >= 2 for d in cs.positives)
        assert not {d for d in cs.negatives if qrels[qid].get(d, 0) >= 2}
    assert any(qrels[q].get(d, 0) == 1 for q, cs in two.contrastive.items() for d in cs.negatives)  # grade 1: a negative
    # the same scores reranked: binary metrics read the level, the BM25 baseline too
    scores = {q: {d: float(s) for d, s in docs} for q, docs in two.candidates.items()}
    for q, cs in two.contrastive.items():
        for d in (*cs.positives, *cs.negatives):
            scores[q].setdefault(d, 0.0)
    values = mean_values(rerank_per_query(scores, two, ("map", "ndcg@10"))[1])
    base1, base2 = mean_values(base1), mean_values(base2)
    assert values["map"] == pytest.approx(base2["map"]) and base2["map"] != pytest.approx(base1["map"])


def test_relevance_level_is_checked_with_the_key_and_value():
    with pytest.raises(UserError, match="relevance_level must be a positive integer, got 0"):
        EvalSpec("x", "cranfield", relevance_level=0)


def test_nominal_size_axis_puts_the_nominal_size_in_params(tiny, tmp_path):
    import dataclasses

    config = dataclasses.replace(tiny, size_axis="nominal", steps=2, eval_every=2, evals=tiny.evals[:1])
    assert train_run(config, tmp_path)["state"] == "done"
    df = pl.read_parquet(tmp_path / "metrics.parquet")
    assert set(df["params"]) == {12 * 1 * 64**2} and set(df["size_axis"]) == {"nominal"}
    assert (df["total_params"] > df["params"]).all()  # total parameters stay the real count
    base = pl.read_parquet(tmp_path / "baseline.parquet")
    assert base["size_axis"].null_count() == base.height


def test_the_csv_log_has_every_step_and_every_evaluation(finished, tiny):
    import csv

    _, folder = finished
    with open(folder / "logs" / "from-step-0" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    losses = {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    assert losses == {e["step"]: pytest.approx(e["loss"]) for e in log}
    evals = {int(r["step"]) for r in rows if r.get("eval/cranfield-test/ndcg@10")}
    assert evals == {2, 4, 6}
    assert all(float(r["train/tokens_per_s"]) > 0 for r in rows if r.get("train/tokens_per_s"))


def test_a_logger_without_its_package_is_refused(tiny):
    import importlib.util

    import dataclasses

    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        pytest.skip("tensorboard is installed here")
    with pytest.raises(UserError, match=r"logger 'tensorboard' needs its package: pip install 'rerank-scaling\[tensorboard\]'"):
        dataclasses.replace(tiny, logger="tensorboard")


def test_contrastive_entropy_variants_are_rows_of_their_own(tiny, tmp_path):
    import dataclasses

    from rerank_scaling.scaling.metrics import lower_is_better

    config = dataclasses.replace(tiny, steps=2, eval_every=2, ce_variants=("ce@9", "ce-corpus@8"))
    assert train_run(config, tmp_path)["state"] == "done"
    df = pl.read_parquet(tmp_path / "metrics.parquet")
    assert {"ce@5", "ce@9", "ce-corpus@8"} <= set(df["metric"])
    values = {m: df.filter(pl.col("metric") == m)["value"].to_list() for m in ("ce@5", "ce@9", "ce-corpus@8")}
    assert len(set(map(tuple, values.values()))) == 3  # three estimators, three sets of values
    assert all(lower_is_better(m) for m in values)
    with pytest.raises(UserError, match="'ce@5' is the base contrastive entropy already"):
        dataclasses.replace(tiny, ce_variants=("ce@5",))
    with pytest.raises(UserError, match="'ce#9' is not a contrastive-entropy name"):
        dataclasses.replace(tiny, ce_variants=("ce#9",))


@pytest.fixture(scope="module")
def evaluated_fully(tiny, tmp_path_factory):
    """Every checkpoint of a 4-step run evaluated on every set and metric: the reference of a cheaper one."""
    import dataclasses

    folder = tmp_path_factory.mktemp("full")
    assert train_run(dataclasses.replace(tiny, steps=4, eval_every=2), folder)["state"] == "done"
    return pl.read_parquet(folder / "metrics.parquet")


@pytest.mark.parametrize("mode", ["in-domain", "in-domain-ranking"])
def test_intermediate_checkpoints_evaluate_less_and_the_last_everything(tiny, tmp_path, mode, evaluated_fully):
    """``intermediate_evals``: the checkpoints before the last evaluate the in-domain set (without contrastive
    entropy for in-domain-ranking), the last every set and metric -- the same values a full evaluation gives."""
    import dataclasses

    config = dataclasses.replace(tiny, steps=4, eval_every=2, intermediate_evals=mode)
    assert train_run(config, tmp_path / "run")["state"] == "done"
    df = pl.read_parquet(tmp_path / "run" / "metrics.parquet")
    early, last = df.filter(pl.col("step") == 2), df.filter(pl.col("step") == 4)
    assert set(early["eval_set"]) == {"cranfield-test"}
    assert set(early["metric"]) == (set(METRICS) if mode == "in-domain-ranking" else {*METRICS, "ce@5"})
    assert set(last["eval_set"]) == {"cranfield-test", "cisi"} and set(last["metric"]) == {*METRICS, "ce@5"}
    ref = evaluated_fully  # same seed, same batches: the same model at every step
    key = ["step", "eval_set", "metric"]
    joined = df.select(*key, "value").join(ref.select(*key, "value"), on=key, suffix="_full")
    assert joined.height == df.height and (joined["value"] - joined["value_full"]).abs().max() < 1e-6


def test_intermediate_evals_need_an_in_domain_set(tiny):
    import dataclasses

    with pytest.raises(UserError, match="intermediate_evals .*in_domain = true"):
        dataclasses.replace(tiny, intermediate_evals="in-domain", evals=tiny.evals[1:])
