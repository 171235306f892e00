"""Cost of each ladder rung on this machine: one training step and 1k reranked pairs.

The figures a user needs to size a CPU grid: for every size of the ``minilm``
and ``scratch`` ladders, the wall time of one optimizer step (``--groups``
query groups of 1 positive + ``--negatives`` BM25 negatives from Cranfield,
the pipeline's own TrainingModule step) and of scoring 1,000 real Cranfield
(query, candidate) pairs with ``CrossEncoder.score``. Best of ``--repeats``.

    python benchmarks/ladder_timing.py [--ladders minilm,scratch] [--max-length 128]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from rerank_scaling.models.cross_encoder import load_cross_encoder
from rerank_scaling.models.ladder import LADDERS, ModelSpec
from rerank_scaling.objectives import get_objective
from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.pipeline.prepare import prepare
from rerank_scaling.training import OptimConfig, TrainingModule

REPO = Path(__file__).resolve().parents[1]


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=str(REPO.parent / "shared"))
    ap.add_argument("--ladders", default="minilm,scratch")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--negatives", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = RunConfig(data_root=args.data_root, n_negatives=args.negatives, rerank_k=100,
                    evals=(EvalSpec("cranfield-test", "cranfield", "test", None, True),))
    prepared = prepare(cfg)
    es = prepared.evalsets[0]
    pairs = [(q, d) for q, docs in sorted(es.candidates.items()) for d, _ in docs][:1000]
    queries = [es.collection.queries[q] for q, _ in pairs]
    docs = [es.collection.docs[d] for _, d in pairs]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, max_length {args.max_length}, "
          f"train step = {args.groups} groups x {1 + args.negatives} docs, scoring = 1,000 Cranfield BM25 pairs")
    print(f"{'model':<20}{'non-emb params':>16}{'s / train step':>16}{'s / 1k pairs':>14}{'pairs / s':>11}")
    for ladder in args.ladders.split(","):
        for size in LADDERS[ladder]:
            enc = load_cross_encoder(ModelSpec(ladder, size), max_length=args.max_length)
            n, _ = enc.parameter_counts()
            enc.pairs.warm(queries, docs)
            module = TrainingModule(enc, get_objective("listwise"), OptimConfig(total_steps=100))
            opt = module.configure_optimizers()["optimizer"]
            step_counter = iter(range(10_000))

            def train_step():
                batch = enc.training_batch(prepared.train.batch(next(step_counter), args.groups), prepared.train.collection)
                enc.train()
                labels = batch["labels"]
                loss = module.objective(enc(batch["inputs"]).view(labels.shape), labels)
                loss.backward()
                opt.step()
                opt.zero_grad()

            train_step()  # warm-up
            t_step = best(train_step, args.repeats)
            enc.score(queries[:64], docs[:64])  # warm-up
            t_score = best(lambda: enc.score(queries, docs, batch_size=64), args.repeats)
            print(f"{ladder + '-' + size:<20}{n:>16,}{t_step:>16.2f}{t_score:>14.2f}{1000 / t_score:>11.0f}")


if __name__ == "__main__":
    main()
