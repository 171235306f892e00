"""Choose a distillation teacher's BM25 fusion weight on held-out DEVELOPMENT queries (never the test ones).

    python experiments/teacher_weight.py runs/teacher-6L [--collection cranfield --split dev --k 30]
    python experiments/teacher_weight.py runs/teacher-6L --split test --weight 0.7    # then, once: the test

Scores BM25's top-k of the split's queries with the teacher once, then for w = 0, 0.1, ..., 1 reranks
them by ``(1 - w) z(teacher) + w z(BM25)`` (per query; ``pipeline.teacher.fused_scores``, the mix the
training targets use) and prints ndcg@10 per w, BM25's own, and the w with the highest (the smallest
such w on ties). Put that w in the experiment file's ``teacher_bm25_weight``; the study's report then
tests the fused teacher against BM25 on the evaluation (test) queries.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.evaluation.rerank import rerank_per_query, score_pairs
from rerank_scaling.pipeline.prepare import evaluation_set
from rerank_scaling.pipeline.teacher import fused_scores, load_teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher")
    parser.add_argument("--collection", default="cranfield")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--data-root", default="../shared")
    parser.add_argument("--weight", type=float, default=None,
                        help="no sweep: this w only, with the paired randomization test against BM25")
    args = parser.parse_args()
    config = RunConfig(family="cross-encoder", ladder="minilm", size="1L", candidates_k=args.k, rerank_k=args.k,
                       data_root=args.data_root, teacher=args.teacher,
                       evals=(EvalSpec(f"{args.collection}-{args.split}", args.collection, args.split, None, True),))
    evalset, bm25_values, _ = evaluation_set(config, config.evals[0])
    model = load_teacher(args.teacher)
    with torch.inference_mode():
        scores = score_pairs(lambda q, d: model.score(q, d, batch_size=64), evalset)
    bm25 = {q: [*evalset.candidates.get(q, ()), *evalset.tail.get(q, ())] for q in evalset.collection.queries}
    print(f"{evalset.name}: {len(evalset.collection.queries)} queries; BM25 ndcg@10 "
          f"{np.mean(list(bm25_values['ndcg@10'].values())):.4f}")
    if args.weight is not None:
        from rerank_scaling.report.significance import randomization_p

        per_query = rerank_per_query(fused_scores(scores, bm25, args.weight), evalset, ("ndcg@10",))[1]["ndcg@10"]
        qids = sorted(per_query)
        a, b = np.array([per_query[q] for q in qids]), np.array([bm25_values["ndcg@10"][q] for q in qids])
        print(f"  w = {args.weight:g}: ndcg@10 {a.mean():.4f} ({a.mean() - b.mean():+.4f} vs BM25, paired "
              f"randomization p = {randomization_p(a, b):.3g})")
        return
    sweep = {}
    for w in np.round(np.linspace(0, 1, 11), 2):
        per_query = rerank_per_query(fused_scores(scores, bm25, float(w)), evalset, ("ndcg@10",))[1]
        sweep[float(w)] = float(np.mean(list(per_query["ndcg@10"].values())))
        print(f"  w = {w:.1f}: ndcg@10 {sweep[float(w)]:.4f}")
    best = max(sweep.values())
    print(f"chosen w = {min(w for w, v in sweep.items() if v == best):.1f}")


if __name__ == "__main__":
    main()
