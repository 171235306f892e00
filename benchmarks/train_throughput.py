"""Training throughput, side by side: our training loop vs sentence-transformers' ``CrossEncoderTrainer``.

What is measured: training examples (query groups of 1 positive + n BM25 hard
negatives) per second, and peak resident memory, over a fixed number of
optimizer steps after warm-up, for the pointwise (BCE) and ``listwise``
(= ``softmax-ce``, softmax cross-entropy) objectives.

* Ours: what ``rerank-scaling train`` runs -- ``TrainingModule`` +
  ``StepBatches`` driven by ``rerank_scaling.training.fit`` (the Lightning
  loop, with a ``Checkpoints`` callback whose evaluation is a no-op), CLS
  pooling.
* Peer: ``sentence_transformers.cross_encoder.CrossEncoderTrainer`` on a
  ``CrossEncoder`` loaded from a folder we ``save_pretrained`` our initial
  weights into, with its losses: ``BinaryCrossEntropyLoss`` (pointwise; one
  dataset row per (query, doc, 0/1) pair, ``batch size = groups x group size``
  rows) and ``ListNetLoss`` (listwise; one row per group: query, docs, labels).
  ST's ListNet target is ``softmax(labels)`` over the whole list (our
  ``listnet``); ``listwise`` restricts it to the relevant documents, so the ST labels are the grade for
  relevant documents and ``-inf`` for the others -- the same target, and the
  same compute as 1/0 labels. ST's ``ListNetLoss`` is given
  ``mini_batch_size=-1``: the whole batch in one forward, as ours does. (ST's
  default, ``None``, forwards mini-batches of ``#queries`` pairs and
  accumulates the dense embedding gradient after each; on CPU that is slower,
  so timing it would flatter us: ``--st-listnet-mini-batch default`` does.)
* Same groups in the same order (ST gets a sequential batch sampler over rows
  built from our ``TrainingSet.batch(step)``), same backbone and initial
  weights, batch size, max length, learning rate, weight decay, linear
  schedule without warm-up, gradient clipping at 1.0, AdamW (both fused),
  precision, device and torch threads, in one process; dropout on (training).
  Rounds alternate which system goes first; the best round of each is shown.

Before timing, one batch's loss is computed by both with dropout off (the same
weights, so it must agree to float tolerance).

    python benchmarks/train_throughput.py                 # 1 warm-up + 3 timed steps, 2 rounds (~7 min, 2 busy cores)
    python benchmarks/train_throughput.py --steps 20 --repeats 3
    python benchmarks/train_throughput.py --device cuda --bf16 --steps 50
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import _common as C  # noqa: E402

OBJECTIVES = ("pointwise", "listwise")
ABLATION = "ours, HF forward"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="query groups per step (pipeline default 8)")
    parser.add_argument("--n-negatives", type=int, default=10, help="negatives per group (pipeline default 10)")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps first")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--objectives", default=",".join(OBJECTIVES), help="comma-separated: pointwise,listwise")
    parser.add_argument("--ablation", action="store_true",
                        help="also time ours with the Hugging Face forward (fast_path=False)")
    parser.add_argument("--st-listnet-mini-batch", default="-1",
                        help="ST ListNetLoss(mini_batch_size=...): -1 (default) forwards the whole batch at once, "
                             "like ours; 'default' = ST's default (mini-batches of #queries pairs, slower on CPU)")
    return parser.parse_args(argv)


def step_groups(tset, batch_size: int, steps: int):
    return [tset.batch(step, batch_size) for step in range(steps)]


# --------------------------------------------------------------------------- #
# ours
# --------------------------------------------------------------------------- #
def run_ours(config, prepared, args, objective_name: str, total: int, fast_path: bool = True) -> dict:
    from rerank_scaling.models.cross_encoder import load_cross_encoder
    from rerank_scaling.objectives import get_objective
    from rerank_scaling.rundir import RunFolder
    from rerank_scaling.training import Checkpoints, OptimConfig, TrainingModule, fit

    encoder = load_cross_encoder(config.model, config.seed, config.max_length, config.max_query_length, pooling="cls")
    encoder.fast_path = fast_path
    module = TrainingModule(encoder, get_objective(objective_name),
                            OptimConfig(config.lr, config.weight_decay, 0, total), seed=config.seed)
    tset = prepared.train
    stamps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="rerank-bench-ours-") as tmp:
        run = RunFolder(tmp)
        run.create()

        def on_step(step: int) -> None:
            C.sync(args.device)
            stamps.append(C.timer())

        callback = Checkpoints(every=total + 1, total=total, evaluate=lambda m, t, s: None, run=run, on_step=on_step)
        with C.PeakRSS() as rss:
            fit(module, lambda step, rank=0, world=1: encoder.training_batch(tset.batch(step, config.batch_size),
                                                                           tset.collection),
                total, 0, callback, precision="bf16-mixed" if args.bf16 else "32-true",
                accelerator="gpu" if args.device.startswith("cuda") else "cpu")
        losses = [json.loads(line)["loss"] for line in run.log.read_text().splitlines()]
    return {"stamps": stamps, "losses": losses, "rss": rss.mib, "rss0": rss.start_mib}


# --------------------------------------------------------------------------- #
# sentence-transformers
# --------------------------------------------------------------------------- #
def st_dataset(groups_per_step, texts, objective_name: str):
    from datasets import Dataset

    queries, docs = texts
    if objective_name == "pointwise":
        rows = {"query": [], "document": [], "label": []}
        for groups in groups_per_step:
            for g in groups:
                for doc, grade in zip(g.doc_ids, g.labels):
                    rows["query"].append(queries[g.qid])
                    rows["document"].append(docs[doc])
                    rows["label"].append(float(grade > 0))
        return Dataset.from_dict(rows)
    rows = {"query": [], "docs": [], "labels": []}
    for groups in groups_per_step:
        for g in groups:
            rows["query"].append(queries[g.qid])
            rows["docs"].append([docs[d] for d in g.doc_ids])
            rows["labels"].append(listnet_labels(g.labels))
    return Dataset.from_dict(rows)


def listnet_labels(labels) -> list[float]:
    """ST ``ListNetLoss`` labels whose softmax is our ``listwise`` (softmax-ce) target (relevant docs only)."""
    return [float(x) if x > 0 else -math.inf for x in labels]


def st_loss(model, objective_name: str, args):
    from sentence_transformers.cross_encoder import losses

    if objective_name == "pointwise":
        return losses.BinaryCrossEntropyLoss(model)
    mini = None if args.st_listnet_mini_batch == "default" else int(args.st_listnet_mini_batch)
    return losses.ListNetLoss(model, mini_batch_size=mini)


def sequential_batches(dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
    """ST batch sampler over the rows in order (the rows are already our step order)."""
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from torch.utils.data import SequentialSampler

    return DefaultBatchSampler(SequentialSampler(dataset), batch_size=batch_size, drop_last=drop_last,
                               valid_label_columns=valid_label_columns, generator=generator, seed=seed)


def run_st(folder, dataset, rows_per_step: int, config, args, objective_name: str, total: int) -> dict:
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from transformers import PrinterCallback, TrainerCallback

    model = C.load_st(folder, config.max_length, args.device)
    stamps: list[float] = []
    losses: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kw):
            C.sync(args.device)
            stamps.append(C.timer())

        def on_log(self, targs, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    with tempfile.TemporaryDirectory(prefix="rerank-bench-st-") as tmp:
        targs = CrossEncoderTrainingArguments(
            output_dir=tmp,
            max_steps=total,
            per_device_train_batch_size=rows_per_step,
            learning_rate=config.lr,
            weight_decay=config.weight_decay,
            warmup_steps=0,
            lr_scheduler_type="linear",
            max_grad_norm=1.0,
            logging_strategy="steps",
            logging_steps=1,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=not args.device.startswith("cuda"),
            bf16=args.bf16,
            seed=config.seed,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            batch_sampler=sequential_batches,
        )
        trainer = CrossEncoderTrainer(model=model, args=targs, train_dataset=dataset,
                                      loss=st_loss(model, objective_name, args), callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # no per-step log lines on stdout
        with C.PeakRSS() as rss:
            trainer.train()
    return {"stamps": stamps, "losses": losses, "rss": rss.mib, "rss0": rss.start_mib}


# --------------------------------------------------------------------------- #
# the same loss, dropout off
# --------------------------------------------------------------------------- #
def first_batch_losses(config, prepared, folder, args, objective_name: str) -> tuple[float, float]:
    from rerank_scaling.models.cross_encoder import load_cross_encoder
    from rerank_scaling.objectives import get_objective
    from sentence_transformers.cross_encoder.data_collator import CrossEncoderDataCollator

    encoder = load_cross_encoder(config.model, config.seed, config.max_length, config.max_query_length,
                                 pooling="cls").to(args.device).eval()
    item = encoder.training_batch(prepared.train.batch(0, config.batch_size), prepared.train.collection)
    with torch.no_grad(), C.autocast(args):
        inputs = {k: v.to(args.device) for k, v in item["inputs"].items()}
        scores = encoder(inputs).view(item["labels"].shape).float()
        ours = float(get_objective(objective_name)(scores, item["labels"].to(args.device)))
    model = C.load_st(folder, config.max_length, args.device).eval()
    groups = prepared.train.batch(0, config.batch_size)
    ds = st_dataset([groups], (prepared.train.collection.queries, prepared.train.collection.docs), objective_name)
    rows = [ds[i] for i in range(len(ds))]
    collator = CrossEncoderDataCollator(preprocess_fn=model.preprocess)
    batch = collator(rows)
    labels = batch.pop("label")
    features = list(batch.values())
    with torch.no_grad(), C.autocast(args):
        theirs = float(st_loss(model, objective_name, args)(features, labels))
    return ours, theirs


def throughput(stamps: list[float], warmup: int, per_step: int) -> float:
    timed = len(stamps) - warmup
    return timed * per_step / (stamps[-1] - stamps[warmup - 1]) if warmup > 0 else float("nan")


def main(argv=None) -> float:
    args = parse_args(argv)
    if args.warmup < 1:
        raise SystemExit("--warmup must be >= 1 (the timed window starts at the end of a step)")
    C.quiet()
    C.setup_torch(args)
    from rerank_scaling.pipeline.prepare import prepare

    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    total = args.warmup + args.steps
    config = C.load_config(args, batch_size=args.batch_size, n_negatives=args.n_negatives, steps=total,
                           lr=args.lr, warmup_steps=0, objective=objectives[0])
    prepared = prepare(config)
    tset = prepared.train
    group = 1 + config.n_negatives
    groups_per_step = step_groups(tset, config.batch_size, total)
    texts = (tset.collection.queries, tset.collection.docs)

    _ours, _, _ = C.build_models(config, args, with_st=False)
    folder = C.temp_dir("rerank-bench-model-")  # the shared initial weights, for ST
    _ours.backbone.save_pretrained(folder)
    _ours.pairs.tokenizer.save_pretrained(folder)
    lengths = np.array([len(ids) for ids, _ in _ours.pairs.encode(
        [texts[0][g.qid] for gs in groups_per_step for g in gs for _ in g.doc_ids],
        [texts[1][d] for gs in groups_per_step for g in gs for d in g.doc_ids])])
    del _ours
    gc.collect()

    results: dict[str, dict] = {}
    for objective_name in objectives:
        ours_loss, st_loss_value = first_batch_losses(config, prepared, folder, args, objective_name)
        dataset = st_dataset(groups_per_step, texts, objective_name)
        rows_per_step = config.batch_size * group if objective_name == "pointwise" else config.batch_size
        runs: dict[str, list[dict]] = {"ours": [], "sentence-transformers": []}
        if args.ablation:
            runs[ABLATION] = []
        for rnd in range(args.repeats):
            order = list(runs)
            if rnd % 2:
                order.reverse()
            for name in order:
                gc.collect()
                if name == "ours":
                    out = run_ours(config, prepared, args, objective_name, total)
                elif name == ABLATION:
                    out = run_ours(config, prepared, args, objective_name, total, fast_path=False)
                else:
                    out = run_st(folder, dataset, rows_per_step, config, args, objective_name, total)
                out["groups_per_s"] = throughput(out["stamps"], args.warmup, config.batch_size)
                runs[name].append(out)
                print(f"  {objective_name:<9} round {rnd + 1}: {name:<22} {out['groups_per_s']:7.3f} groups/s "
                      f"({out['groups_per_s'] * group:6.1f} pairs/s), peak RSS {out['rss']:7.0f} MiB", flush=True)
        results[objective_name] = {"runs": runs, "loss0": (ours_loss, st_loss_value)}

    print()
    print(f"training throughput: Cranfield train split ({tset.info['queries']} queries, {len(tset)} groups), "
          f"{config.batch_size} groups x {group} docs = {config.batch_size * group} pairs per step")
    print(f"  model: minilm-{args.layers}L as BertForSequenceClassification (CLS pooling, 1 logit); "
          f"max_length {args.max_length}; lr {config.lr}, AdamW (fused) wd {config.weight_decay}, clip 1.0")
    print(f"  pair length (tokens) in these steps: mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, "
          f"{(lengths >= args.max_length).mean():.0%} truncated at {args.max_length}")
    print(f"  {C.machine_line(args)}")
    print(f"  {args.warmup} warm-up + {args.steps} timed optimizer steps per run; {args.repeats} interleaved "
          f"rounds; best (median) shown")
    print("  peak RSS: getrusage ru_maxrss of each run (kernel high-water mark reset at its start), max over rounds;"
          " growth = peak - RSS at its start")
    print()
    print(f"  {'objective':<10} {'system':<24} {'groups/s':>9} {'(median)':>9} {'pairs/s':>8} {'peak RSS':>9}"
          f" {'(growth)':>9} {'mean loss':>10}")
    ratios = {}
    ok = True
    for objective_name, res in results.items():
        best = {}
        for name, runs in res["runs"].items():
            rates = [r["groups_per_s"] for r in runs]
            best[name] = max(rates)
            rss = max(r["rss"] for r in runs)
            grown = max(r["rss"] - r["rss0"] for r in runs)
            mean_loss = statistics.mean(runs[0]["losses"]) if runs[0]["losses"] else float("nan")
            print(f"  {objective_name:<10} {name:<24} {best[name]:9.3f} {statistics.median(rates):9.3f} "
                  f"{best[name] * group:8.1f} {rss:8.0f}M {grown:+8.0f}M {mean_loss:10.4f}")
        ratios[objective_name] = best["ours"] / best["sentence-transformers"]
        if args.ablation:
            print(f"  {objective_name:<10} our fast path vs our HF forward: {best['ours'] / best[ABLATION]:.2f}x")
        a, b = res["loss0"]
        same = abs(a - b) <= (2e-2 if args.bf16 else 1e-4) * max(1.0, abs(b))
        ok &= same
        st_name = "BinaryCrossEntropyLoss" if objective_name == "pointwise" else "ListNetLoss"
        print(f"  {objective_name:<10} step-0 loss, dropout off: ours {a:.6f}, ST {st_name} {b:.6f} "
              f"({'identical' if same else 'DIFFERENT'}, |diff| {abs(a - b):.1e}); "
              f"ratio {ratios[objective_name]:.2f}")
    geo = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
    print(f"  ratio = our best groups/s / ST best groups/s; geometric mean over {', '.join(ratios)}")
    print(f"ratio vs sentence-transformers: {geo:.2f}")
    if not ok:
        sys.exit(1)
    return geo


if __name__ == "__main__":
    main()
