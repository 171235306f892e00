"""Reranking throughput, side by side: our ``CrossEncoder.score`` vs sentence-transformers' ``CrossEncoder.predict``.

What is measured: query-document pairs scored per second when reranking the
BM25 top-100 of the Cranfield test queries (the pipeline's ``prepare``, eval
set ``cranfield:test``, ``rerank_k`` 100), both systems on the same model
(MiniLM truncated to ``--layers``, one-logit ``BertForSequenceClassification``
head, the architecture ST's CrossEncoder uses), the same weights (ST loads a
folder we ``save_pretrained`` ours into), the same pairs in the same input
order, the same ``--batch-size``, ``--max-length``, precision, device and torch
threads, in one process. Rounds alternate which system goes first; the best
round of each is reported (the machine may be shared). Each of our rounds
starts with an empty token cache, so tokenisation is timed on both sides.

Both systems sort the pairs by length before batching: ST's ``predict`` sorts
by character length internally, ours by exact token length. Ours adds (see
``rerank_scaling/models/cross_encoder.py``): token ids cached per distinct
text (each query is tokenised once, not once per pair), a packed forward that
skips padding, and -- exact for a CLS-pooled classifier -- a last layer
computed only for the ``[CLS]`` position. Scores are logits (ST's sigmoid
activation is replaced by the identity) and must agree to float tolerance.

Also printed: the time to build BM25 candidates (bm25s index + top-100
retrieval, no cache) for all Cranfield queries, scaled to 1,000 queries.

    python benchmarks/rerank_throughput.py                  # 15 of the 45 test queries (1,500 pairs)
    python benchmarks/rerank_throughput.py --queries 45     # all 4,500 pairs (~4 min a round, 2 busy cores)
    python benchmarks/rerank_throughput.py --device cuda --bf16 --queries 45 --repeats 3

The default is a deterministic subset of 15 test queries (the pipeline's
``EvalSpec.max_queries``, a seeded nested sample) so that a run takes a few
minutes on a 2-core CPU; ``--queries 45`` scores all of them.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import _common as C  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(parser)
    parser.add_argument("--queries", type=int, default=15,
                        help="number of Cranfield test queries (seeded subset); 45 = all (default 15)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--ablation", action="store_true",
                        help="also time ours with the Hugging Face forward (fast_path=False)")
    return parser.parse_args(argv)


def candidate_generation_seconds_per_1k(config, repeats: int) -> tuple[float, int, int]:
    """Best wall time of BM25 top-100 (index + retrieval, fresh cache) for all queries, per 1k queries."""
    from rerank_scaling.candidates.bm25 import bm25_candidates
    from rerank_scaling.pipeline.prepare import load

    coll = load(config, "cranfield")
    times = []
    for _ in range(max(1, repeats)):
        with tempfile.TemporaryDirectory(prefix="rerank-bench-bm25-") as fresh:
            t0 = C.timer()
            ranking = bm25_candidates(coll, coll.queries, k=config.candidates_k, cache_dir=Path(fresh))
            times.append(C.timer() - t0)
    n = len(coll.queries)
    assert len(ranking) == n
    return min(times) / n * 1000.0, n, len(coll.docs)


def main(argv=None) -> float:
    args = parse_args(argv)
    C.quiet()
    C.setup_torch(args)
    from rerank_scaling.config import EvalSpec
    from rerank_scaling.pipeline.prepare import prepare

    config = C.load_config(
        args, evals=(EvalSpec("cranfield-test", "cranfield", "test", args.queries, True),),
        eval_batch_size=args.batch_size,
    )
    t0 = C.timer()
    prepared = prepare(config)
    prep_s = C.timer() - t0
    es = prepared.evalsets[0]
    qids = sorted(es.candidates)
    pairs = [(qid, doc) for qid in qids for doc, _ in es.candidates[qid]]
    queries = [es.collection.queries[q] for q, _ in pairs]
    docs = [es.collection.docs[d] for _, d in pairs]
    st_pairs = list(zip(queries, docs))

    bm25_per_1k, n_all, n_docs = candidate_generation_seconds_per_1k(config, args.repeats)

    ours, st, _folder = C.build_models(config, args)
    ours.eval()
    lengths = np.array([len(ids) for ids, _ in ours.pairs.encode(queries, docs)])
    identity = torch.nn.Identity()

    def run_ours() -> np.ndarray:
        ours.pairs._cache.clear()  # cold token cache: tokenisation is part of the timed work
        with C.autocast(args):
            out = ours.score(queries, docs, batch_size=args.batch_size)
        C.sync(args.device)
        return out

    def run_st() -> np.ndarray:
        with C.autocast(args):
            out = st.predict(st_pairs, batch_size=args.batch_size, activation_fn=identity,
                             show_progress_bar=False, convert_to_numpy=True)
        C.sync(args.device)
        return np.asarray(out, dtype=np.float32)

    def run_ours_hf() -> np.ndarray:
        ours.fast_path = False
        try:
            return run_ours()
        finally:
            ours.fast_path = True

    systems = {"ours": run_ours, "sentence-transformers": run_st}
    if args.ablation:
        systems["ours, HF forward (ablation)"] = run_ours_hf
    # warm-up: one-time kernel/initialisation costs are not throughput
    warm = slice(0, min(len(queries), args.batch_size))
    ours.score(queries[warm], docs[warm], batch_size=args.batch_size)
    st.predict(st_pairs[warm], batch_size=args.batch_size, activation_fn=identity, show_progress_bar=False)

    times: dict[str, list[float]] = {name: [] for name in systems}
    scores: dict[str, np.ndarray] = {}
    names = list(systems)
    for rnd in range(args.repeats):
        order = names if rnd % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            t0 = C.timer()
            scores[name] = systems[name]()
            times[name].append(C.timer() - t0)
            print(f"  round {rnd + 1}: {name:<30} {len(pairs) / times[name][-1]:8.1f} pairs/s", flush=True)

    diff = float(np.abs(scores["ours"] - scores["sentence-transformers"]).max())
    tol = 2e-2 if args.bf16 else 1e-4
    n = len(pairs)
    print()
    print(f"rerank throughput: Cranfield test, BM25 top-{config.rerank_k}, {len(qids)} queries, {n} pairs")
    print(f"  model: minilm-{args.layers}L as BertForSequenceClassification (CLS pooling, 1 logit); "
          f"max_length {args.max_length}; batch size {args.batch_size}")
    print(f"  pair length (tokens): mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, "
          f"{(lengths >= args.max_length).mean():.0%} truncated at {args.max_length}")
    print(f"  {C.machine_line(args)}")
    print(f"  rounds: {args.repeats}, interleaved; best (median) shown; prepare() took {prep_s:.1f}s")
    print()
    print(f"  {'system':<32} {'pairs/s':>9} {'(median)':>10} {'seconds':>9}")
    best = {}
    for name in systems:
        best[name] = n / min(times[name])
        med = n / statistics.median(times[name])
        print(f"  {name:<32} {best[name]:9.1f} {med:10.1f} {min(times[name]):9.2f}")
    print()
    agree = "yes" if diff <= tol else "NO"
    print(f"  scores identical to sentence-transformers (max |diff| <= {tol:g}): {agree} (max |diff| {diff:.2e})")
    same_top10 = 0
    for i in range(len(qids)):
        sl = slice(i * config.rerank_k, (i + 1) * config.rerank_k)
        mine, ref = scores["ours"][sl], scores["sentence-transformers"][sl]
        a = np.argsort(-mine, kind="stable")[:10]
        b = np.argsort(-ref, kind="stable")[:10]
        # the same top 10, or one that differs only in the order of (near-)tied scores
        same_top10 += bool((a == b).all() or np.allclose(ref[a], ref[b], atol=tol, rtol=0))
    print(f"  identical reranked top-10 (up to tied scores): {same_top10}/{len(qids)} queries")
    print(f"  candidate generation (BM25 top-{config.candidates_k}, bm25s, no cache; index of {n_docs} docs + "
          f"{n_all} queries): {bm25_per_1k:.2f} s per 1k queries")
    if args.ablation:
        print(f"  our fast path vs our HF forward: {best['ours'] / best['ours, HF forward (ablation)']:.2f}x")
    ratio = best["ours"] / best["sentence-transformers"]
    print(f"  ours vs sentence-transformers: {best['ours']:.1f} vs {best['sentence-transformers']:.1f} pairs/s")
    print(f"ratio vs sentence-transformers: {ratio:.2f}")
    if diff > tol:
        sys.exit(1)
    return ratio


if __name__ == "__main__":
    main()
