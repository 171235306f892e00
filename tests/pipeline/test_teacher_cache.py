"""A distillation teacher's cached scores: compact arrays that give back exactly what the teacher scores."""

from __future__ import annotations

import numpy as np

from rerank_scaling.config import EvalSpec, RunConfig
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
