"""Bi-encoder training throughput, side by side: our training step vs a ``SentenceTransformer`` with
``MultipleNegativesRankingLoss``, in the same loop.

What is measured: optimizer steps per second (and query groups per second) of
in-batch InfoNCE training on Cranfield (the pipeline's ``prepare``, human +
weak title queries), after one warm-up step, for:

* ours: what a ``family = "bi-encoder"`` run does in each step -- the family's
  ``training_batch`` (cached token ids, distinct documents encoded once),
  ``group_scores`` (packed BERT forward) and the ``infonce`` (or
  ``infonce-hard``) objective;
* peer: ``SentenceTransformer`` (``Transformer`` on the same MiniLM folder with
  ``num_hidden_layers``, mean ``Pooling``) tokenising the same texts with its
  own ``tokenize`` and ``MultipleNegativesRankingLoss`` (cos_sim, scale 20 =
  our temperature 0.05) on (anchor, positive[, negatives]) columns.

Both run the same loop (forward, loss, backward, gradient clipping at 1.0,
fused AdamW step, zero grad) on the same groups in the same order, from the
same initial weights, with the same max lengths, device and torch threads,
dropout on; so the ratio is the model and loss path, not a trainer's
overhead (our Lightning loop adds ~1 ms a step). Rounds alternate which
system goes first; the best round of each is reported. Before timing, one
batch's loss is computed by both with dropout off: it must agree.

    python benchmarks/dense_train_throughput.py                  # MiniLM-2L, 8 groups a step, 4 timed steps
    python benchmarks/dense_train_throughput.py --objective infonce-hard --layers 1 --steps 8
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import _common as C  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(parser)
    parser.add_argument("--objective", default="infonce", choices=("infonce", "infonce-hard"))
    parser.add_argument("--batch-size", type=int, default=8, help="query groups per step")
    parser.add_argument("--negatives", type=int, default=3, help="hard negatives per group (infonce-hard)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.set_defaults(max_length=128)
    return parser.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    C.quiet()
    C.setup_torch(args)
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    from rerank_scaling.models import get_family
    from rerank_scaling.objectives import get_objective
    from rerank_scaling.pipeline.prepare import training_set

    config = C.load_config(args, family="bi-encoder", objective=args.objective, pooling="mean",
                           max_query_length=32, supervision="mixed", n_negatives=args.negatives)
    tset, _ = training_set(config)
    coll = tset.collection
    per_group = 1 + args.negatives if args.objective == "infonce-hard" else 1
    batches = [tset.batch(s, args.batch_size) for s in range(1 + args.steps)]

    ours = get_family("bi-encoder").build(config).to(args.device)
    objective = get_objective(args.objective)
    st = C.st_minilm_encoder(args)
    mnrl = MultipleNegativesRankingLoss(st, scale=20.0)

    def st_features(groups):
        columns = [[coll.queries[g.qid] for g in groups]]
        columns += [[coll.docs[g.doc_ids[k]] for g in groups] for k in range(per_group)]
        out = []
        for k, texts in enumerate(columns):
            st.max_seq_length = config.max_query_length if k == 0 else args.max_length
            out.append({n: (t.to(args.device) if torch.is_tensor(t) else t) for n, t in st.tokenize(texts).items()})
        return out

    def ours_loss(groups):
        batch = ours.training_batch(groups, coll)
        batch = {k: (v.to(args.device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        batch["inputs"] = {k: ({n: t.to(args.device) for n, t in v.items()} if isinstance(v, dict) else v.to(args.device))
                           for k, v in batch["inputs"].items()}
        with C.autocast(args):
            scores = ours.group_scores(batch)
        return objective(scores.float(), batch["labels"], batch["targets"])

    def st_loss(groups):
        with C.autocast(args):
            return mnrl(st_features(groups), None)

    # the same loss on one batch, dropout off
    ours.eval(), st.eval()
    first = (float(ours_loss(batches[0])), float(st_loss(batches[0])))
    ours.zero_grad(), st.zero_grad()

    def trainer(model, loss_fn):
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01, fused=True)

        def run() -> float:
            model.train()
            t0 = None
            for step, groups in enumerate(batches):
                if step == 1:
                    C.sync(args.device)
                    t0 = C.timer()
                if step == 0 and run.done:
                    continue  # warm-up only in the first round
                loss = loss_fn(groups)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
            C.sync(args.device)
            run.done = True
            return C.timer() - t0

        run.done = False
        return run

    systems = {"ours": trainer(ours, ours_loss), "sentence-transformers": trainer(st, st_loss)}
    times: dict[str, list[float]] = {name: [] for name in systems}
    names = list(systems)
    for rnd in range(args.repeats):
        for name in names if rnd % 2 == 0 else names[::-1]:
            gc.collect()
            times[name].append(systems[name]())
            print(f"  round {rnd + 1}: {name:<24} {args.steps / times[name][-1]:6.2f} steps/s", flush=True)

    print()
    print(f"bi-encoder training throughput: minilm-{args.layers}L mean pooling, {args.objective}, "
          f"{args.batch_size} groups a step ({per_group} document(s) each), max_length {args.max_length}")
    print(f"  {C.machine_line(args)}")
    print(f"  {'system':<26} {'steps/s':>8} {'groups/s':>9} {'(median)':>9}")
    best = {}
    for name in systems:
        best[name] = args.steps / min(times[name])
        med = args.steps / statistics.median(times[name])
        print(f"  {name:<26} {best[name]:8.2f} {best[name] * args.batch_size:9.1f} {med * args.batch_size:9.1f}")
    agree = abs(first[0] - first[1]) <= 1e-3 * max(1.0, abs(first[1]))
    print(f"  first-batch loss, dropout off: ours {first[0]:.5f}, sentence-transformers {first[1]:.5f} "
          f"({'equal' if agree else 'DIFFERENT'})")
    ratio = best["ours"] / best["sentence-transformers"]
    print(f"  ours vs sentence-transformers: {best['ours'] * args.batch_size:.1f} vs "
          f"{best['sentence-transformers'] * args.batch_size:.1f} groups/s")
    print(f"ratio vs sentence-transformers: {ratio:.2f}")
    if not agree:
        sys.exit(1)
    return ratio


if __name__ == "__main__":
    main()
