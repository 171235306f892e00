"""ScalingNote end to end on real Cranfield data: a MiniLM bi-encoder teacher's query tower distilled into a
small scratch tower (projected to the teacher's width) that searches the teacher's cached document index."""

import json

import polars as pl
import pytest
import torch
import torch.nn.functional as F

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.errors import UserError
from rerank_scaling.models import get_family
from rerank_scaling.models.bi_encoder import BiEncoder
from rerank_scaling.models.query_distill import QueryStudent, load_dual_tower
from rerank_scaling.pipeline.prepare import prepare
from rerank_scaling.pipeline.run import train_run


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A saved bi-encoder: MiniLM's first 2 layers, pretrained (a real sentence encoder), cosine / 0.05."""
    folder = tmp_path_factory.mktemp("teacher") / "model"
    config = RunConfig(family="bi-encoder", objective="infonce", ladder="minilm", size="2L", max_length=48,
                       max_query_length=24)
    get_family("bi-encoder").build(config).save(folder)
    return folder


@pytest.fixture(scope="module")
def student_config(shared_root, teacher, tmp_path_factory):
    return RunConfig.from_dict(dict(
        family="query-distill", objective="query-distill", teacher=str(teacher), ladder="scratch", size="L1-H64",
        steps=8, eval_every=4, batch_size=8, n_negatives=1, max_length=48, max_query_length=24, candidates_k=50,
        rerank_k=10, ce_negatives=5, lr=2e-3, warmup_steps=0, budget=40, supervision="mixed", latency_queries=6,
        save_model=True, data_root=str(shared_root), cache_dir=str(tmp_path_factory.mktemp("cache")),
        evals=(EvalSpec("cranfield-test", "cranfield", "test", 8, True),)))


@pytest.fixture(scope="module")
def run(student_config, tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    status = train_run(student_config, folder)
    assert status["state"] == "done", status
    return folder, status


def _training_queries(config) -> list[str]:
    tset = prepare(config).train
    return [tset.collection.queries[q] for q in sorted(tset.collection.queries)]


def test_the_student_moves_toward_the_teachers_query_embeddings(student_config, run):
    folder, _ = run
    losses = [json.loads(line)["loss"] for line in (folder / "train_log.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]
    texts = _training_queries(student_config)
    target = load_dual_tower(str(student_config.teacher)).encode(texts, "query", normalize=False)
    before = get_family("query-distill").build(student_config).encode(texts, "query", normalize=False)  # step 0
    after = get_family("query-distill").load(folder / "model").encode(texts, "query", normalize=False)
    assert F.cosine_similarity(after, target).mean() > F.cosine_similarity(before, target).mean() + 0.05
    assert F.mse_loss(after, target) < F.mse_loss(before, target)


def test_rows_hold_retained_quality_latency_and_the_query_towers_size(student_config, run):
    folder, status = run
    df = pl.read_parquet(folder / "metrics.parquet")
    final = {r["metric"]: r["value"] for r in df.filter(pl.col("step") == student_config.steps).to_dicts()}
    teacher = status["teacher"]["values"]["cranfield-test"]
    for m in ("ndcg@10", "map", "mrr@10", "recall@100"):
        assert final[f"retained-{m}"] == pytest.approx(final[m] / teacher[m])
    assert "retained-ce@5" not in final  # ratios of rank metrics only
    # latency: measured once, at the final checkpoint, positive, beside the teacher's on the same device
    latency = df.filter(pl.col("metric") == "query-ms-cpu")
    assert latency.height == 1 and latency["step"][0] == student_config.steps and latency["value"][0] > 0
    assert status["teacher"]["latency_metric"] == "query-ms-cpu" and status["teacher"]["query_ms"] > 0
    # N: the student's query tower and its projection to the teacher's 384 dimensions, not the teacher's towers
    student = get_family("query-distill").build(student_config)
    assert student.query_tower.projection.out_features == 384 and not hasattr(student, "towers")
    assert set(df["params"]) == {student.parameter_counts()[0]}
    assert student.parameter_counts()[0] < status["teacher"]["params"]


def test_the_student_searches_the_teachers_cached_index(student_config, run, shared_root, monkeypatch):
    folder, _ = run
    docs = prepare(student_config).evalsets[0].collection.docs
    texts = [docs[d] for d in sorted(docs)]
    index = load_dual_tower(str(student_config.teacher)).encode(texts, "doc")
    student = get_family("query-distill").load(folder / "model")
    assert isinstance(student, QueryStudent)
    student.cache.folder = get_family("query-distill").build(student_config).cache.folder  # the run's cache folder
    assert torch.equal(student.encode(texts, "doc"), index)  # the teacher's embeddings, bit for bit
    assert (student.cache.loaded, student.cache.encoded) == (1, 0)  # read from the run's cache, not encoded
    student.encode(texts, "doc")
    assert student.cache.hits == 1

    # another student of the same teacher: neither the index nor the training targets are encoded again
    real = BiEncoder.encode

    def teacher_encode(self, texts, kind, batch_size=64, normalize=True):
        if not isinstance(self, QueryStudent) and (kind == "doc" or not normalize):
            pytest.fail(f"the teacher encoded {len(texts)} {kind} texts again")
        return real(self, texts, kind, batch_size, normalize)

    monkeypatch.setattr(BiEncoder, "encode", teacher_encode)
    other = RunConfig.from_dict({**student_config.to_dict(), "size": "L1-H32", "save_model": False, "steps": 2,
                                 "eval_every": 2})
    assert train_run(other, folder.parent / "other")["state"] == "done"
    assert len(list(student.cache.folder.glob("*.pt"))) == 2  # the index and the training targets


def test_a_student_saved_when_it_was_a_kind_of_bi_encoder_loads_as_its_own_family(run, tmp_path):
    import shutil

    from rerank_scaling.models.family import saved_family

    folder, _ = run
    old = tmp_path / "old"
    shutil.copytree(folder / "model", old)
    info = json.loads((old / "family.json").read_text())
    assert info["family"] == "query-distill"
    info.update(family="bi-encoder", similarity="cosine", temperature=0.05, towers="shared", bidirectional=False,
                max_length=48)  # family.json as BiEncoder.save wrote it for a student
    (old / "family.json").write_text(json.dumps(info))
    assert saved_family(old) == "query-distill"
    texts = ["lift of a swept wing", "boundary layer"]
    loaded = get_family(saved_family(old)).load(old)
    assert torch.equal(loaded.encode(texts, "query"), get_family("query-distill").load(folder / "model").encode(
        texts, "query"))
    with pytest.raises(ValueError, match="not a bi-encoder"):
        get_family("bi-encoder").load(old)  # the bi-encoder no longer switches to a student


def test_a_teacher_that_is_not_a_bi_encoder_is_a_one_line_error(tmp_path):
    (tmp_path / "reranker").mkdir()
    (tmp_path / "reranker" / "family.json").write_text(json.dumps({"family": "cross-encoder"}))
    with pytest.raises(UserError, match="a cross-encoder model; query-distill distils a bi-encoder"):
        load_dual_tower(str(tmp_path / "reranker"))
    with pytest.raises(UserError, match="no such folder"):
        load_dual_tower(str(tmp_path / "missing"))


def test_a_projection_or_temperature_other_than_the_teachers_is_refused(student_config):
    with pytest.raises(UserError, match="projects to its teacher's width \\(384\\)"):
        get_family("query-distill").build(RunConfig.from_dict({**student_config.to_dict(), "projection": 128}))
    with pytest.raises(UserError, match="teacher's temperature"):
        get_family("query-distill").build(RunConfig.from_dict({**student_config.to_dict(), "temperature": 0.5}))


def test_the_report_shows_each_student_against_its_teacher(run, tmp_path):
    import shutil

    from rerank_scaling.report import build_report

    folder, status = run
    shutil.copytree(folder, tmp_path / "study" / "cells" / status["run"], ignore=shutil.ignore_patterns("model"))
    out = build_report(tmp_path / "study", tmp_path / "report" / "REPORT.md", n_boot=0)
    text = out.read_text()
    section = text[text.index("Query-tower distillation (ScalingNote)"):]
    teacher = status["teacher"]["values"]["cranfield-test"]
    final = status["final"]
    row = next(line for line in section.splitlines() if line.startswith("| teacher"))
    assert f"{teacher['ndcg@10']:.4f}" in row and f"{status['teacher']['query_ms']:.2f}" in row
    student = next(line for line in section.splitlines() if line.startswith("| `scratch-L1-H64`"))
    assert f"{final['cranfield-test:ndcg@10']:.4f}" in student
    assert f"{final['cranfield-test:retained-ndcg@10']:.1%}" in student
    assert f"{final['cranfield-test:query-ms-cpu']:.2f}" in student
    assert "figures/retained_latency_cranfield-test.png" in section
    assert (tmp_path / "report" / "figures" / "retained_latency_cranfield-test.png").stat().st_size > 0


def test_grid_checks_fill_the_teachers_caches_before_any_cell(student_config, tmp_path):
    from rerank_scaling.config import Experiment, Hardware, StudyInfo
    from rerank_scaling.grid.checks import check_data

    config = RunConfig.from_dict({**student_config.to_dict(), "cache_dir": str(tmp_path / "cache")})
    check_data(Experiment("q", tmp_path / "q.toml", "", [config], Hardware(), config.evals, StudyInfo()))
    student = get_family("query-distill").build(config)
    texts = _training_queries(config)
    docs = prepare(config).evalsets[0].collection.docs
    assert student.cache.path(texts, "query", normalize=False).is_file()
    assert student.cache.path([docs[d] for d in sorted(docs)], "doc").is_file()
