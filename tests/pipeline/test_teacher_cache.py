"""A distillation teacher's cached scores: compact arrays that give back exactly what the teacher scores."""

from __future__ import annotations

import dataclasses

import numpy as np

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.examples import Group
from rerank_scaling.models import get_family
from rerank_scaling.pipeline.prepare import training_set
from rerank_scaling.pipeline.teacher import teacher_scores, training_pairs


def test_cached_scores_are_the_teachers_and_top_ups_are_scored(shared_root, tmp_path):
    config = RunConfig(ladder="scratch", size="L1-H32", max_length=48, budget=8, n_negatives=30, candidates_k=12, rerank_k=12,
                       data_root=str(shared_root), cache_dir=str(tmp_path / "cache"),
                       evals=(EvalSpec("cranfield-test", "cranfield", "test", 4, True),))
    teacher = get_family("cross-encoder").build(config).eval()
    with __import__("torch").no_grad():
        teacher.backbone.classifier.weight.mul_(50.0)  # spread the scores
    teacher.save(tmp_path / "teacher")
    tset, _ = training_set(config)
    table = teacher_scores(str(tmp_path / "teacher"), tset, config.cache_dir, batch_size=16)
    pairs = training_pairs(tset)
    assert len(table.scores) == len(pairs) and table.offsets[-1] == len(pairs)
    coll = tset.collection
    fresh = teacher.score([coll.queries[q] for q, _ in pairs], [coll.docs[d] for _, d in pairs], batch_size=16)
    np.testing.assert_allclose(np.asarray(table.scores), fresh, atol=1e-5, rtol=0)
    # groups of 31 with pools of ~11: most documents are random top-ups outside the table, scored on demand
    groups = tset.batch(0, 4)
    got = table.groups(groups).numpy()
    for g, row in zip(groups, got):
        want = teacher.score([coll.queries[g.qid]] * len(g.doc_ids), [coll.docs[d] for d in g.doc_ids])
        np.testing.assert_allclose(row, want, atol=1e-4, rtol=0)
    assert table.extra and all(table.lookup(q, d) is not None for q, d in pairs[:50])
    # a second call (another cell) maps the same arrays: nothing is scored
    again = teacher_scores(str(tmp_path / "teacher"), tset, config.cache_dir)
    assert not again.scores.flags.writeable and again._model is None
    np.testing.assert_array_equal(np.asarray(again.scores), np.asarray(table.scores))
    assert again.lookup("no-such-query", pairs[0][1]) is None


def test_fused_teacher_mixes_z_scores_per_query_and_floors_documents_bm25_missed(shared_root, tmp_path):
    """teacher_bm25_weight = w: per query, (1 - w) z(teacher) + w z(BM25) over the query's documents; a
    document outside BM25's list gets the list's lowest score; the cached teacher scores stay as they were."""
    from rerank_scaling.pipeline.prepare import candidates_for, load
    from rerank_scaling.pipeline.teacher import distillation_targets, query_docs

    config = RunConfig(ladder="scratch", size="L1-H32", max_length=48, budget=6,
                       n_negatives=3, candidates_k=8, rerank_k=8, data_root=str(shared_root),
                       cache_dir=str(tmp_path / "cache"), evals=(EvalSpec("cranfield-test", "cranfield", "test", 4, True),))
    teacher = get_family("cross-encoder").build(config).eval()
    teacher.save(tmp_path / "teacher")
    tset, _ = training_set(config)
    plain = teacher_scores(str(tmp_path / "teacher"), tset, config.cache_dir)
    cached = np.array(plain.scores)
    w = 0.7
    fused = distillation_targets(dataclasses.replace(config, teacher=str(tmp_path / "teacher"),
                                                     teacher_bm25_weight=w), tset)
    bm25 = candidates_for(config, load(config, "cranfield"), tset.collection.queries)
    outside = 0
    for i, q in enumerate(fused.qids):
        docs = query_docs(tset, q)
        listed = dict(bm25[q])
        b = np.array([listed.get(d, min(listed.values())) for d in docs])
        outside += sum(d not in listed for d in docs)
        t = cached[fused.offsets[i]:fused.offsets[i + 1]].astype(float)
        want = (1 - w) * (t - t.mean()) / t.std() + w * (b - b.mean()) / b.std()
        got = [fused.lookup(q, d) for d in docs]
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert outside > 0  # the positives BM25 ranked below k: the floor was used
    again = teacher_scores(str(tmp_path / "teacher"), tset, config.cache_dir)
    np.testing.assert_array_equal(np.asarray(again.scores), cached)  # the cache holds the teacher's own scores
    # a pair outside the table (a random top-up) is scored and mixed with its query's statistics
    q = fused.qids[0]
    stranger = next(d for d in sorted(tset.collection.docs) if d not in query_docs(tset, q))
    score = float(teacher.score([tset.collection.queries[q]], [tset.collection.docs[stranger]])[0])
    t = cached[fused.offsets[0]:fused.offsets[1]].astype(float)
    b = np.array([dict(bm25[q]).get(d, min(dict(bm25[q]).values())) for d in query_docs(tset, q)])
    want = (1 - w) * (score - t.mean()) / t.std() + w * (min(dict(bm25[q]).values()) - b.mean()) / b.std()
    got = fused.groups([Group(q, (stranger,), (0,))]).numpy()[0, 0]
    np.testing.assert_allclose(got, want, atol=1e-4)
