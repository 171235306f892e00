"""Training tokens/s, MFU and peak GPU memory of a 100M+ cross-encoder, beside the memory estimate.

The model is our ``CrossEncoder`` over a randomly initialised BERT of the
shape given (default L12-H1024, 16 heads, feed-forward 4096: 151M
non-embedding parameters; MiniLM's WordPiece tokenizer), so it runs offline.
Each step scores ``--batch`` query groups of ``--group`` pairs of exactly
``--length`` tokens (random ids, no padding: the packed forward has nothing to
skip, the worst case for memory and the steady state for MFU) with the listwise
loss, backward, AdamW (fused) -- bf16 autocast on the GPU.

    MFU = 6 N tokens/s / peak FLOP/s

with N the non-embedding parameters (the toolkit's FLOPs convention,
``training_flops``) and the peak the GPU's dense bf16 tensor throughput (a
table below; ``--peak-tflops`` for another GPU). Peak memory is
``torch.cuda.max_memory_allocated`` over the timed steps; the estimate is
:func:`rerank_scaling.models.memory` for the same shape and micro-batch (which
assumes every sequence padded to ``max_length``: here they all are).

    python benchmarks/mfu.py                                   # GPU: ~1 min
    python benchmarks/mfu.py --layers 24 --hidden 1024 --batch 8 --gradient-checkpointing
    python benchmarks/mfu.py --device cpu --layers 2 --hidden 128 --steps 2   # smoke test
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

# dense bf16 tensor-core peak, FLOP/s (vendor datasheets, without sparsity)
PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
             "A10": 125e12, "V100": 125e12, "T4": 65e12, "RTX 4090": 165e12, "A6000": 155e12}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--batch", type=int, default=16, help="query groups per step")
    p.add_argument("--group", type=int, default=8, help="pairs per group (1 positive + negatives)")
    p.add_argument("--length", type=int, default=256, help="tokens per pair")
    p.add_argument("--steps", type=int, default=20, help="timed steps (after 3 warm-up steps)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak (default: from a table)")
    return p.parse_args(argv)


def peak_flops(args) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    if not args.device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    for key in sorted(PEAK_BF16, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if key in name:
            return PEAK_BF16[key]
    return None


def main(argv=None) -> dict:
    args = parse_args(argv)
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rerank_scaling.config import RunConfig
    from rerank_scaling.models.backbone import minilm_path
    from rerank_scaling.models.cross_encoder import CrossEncoder
    from rerank_scaling.models.memory import CONTEXT_BYTES, GB, Shape, activation_bytes_per_token, parameters
    from rerank_scaling.objectives import get_objective
    from rerank_scaling.runtime import quiet_libraries
    from rerank_scaling.training import enable_gradient_checkpointing

    quiet_libraries()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=args.hidden, num_hidden_layers=args.layers,
                        num_attention_heads=args.heads, intermediate_size=4 * args.hidden, num_labels=1)
    model = CrossEncoder(BertForSequenceClassification(config), tokenizer, max_length=args.length).to(args.device)
    if args.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    non_embedding, total = model.parameter_counts()
    shape = Shape("bert", args.layers, args.hidden, args.heads, 4 * args.hidden, tokenizer.vocab_size)
    assert parameters(shape) == (non_embedding, total), "the estimate's shape is not the model's"
    loss_fn = get_objective("listwise", RunConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=args.device.startswith("cuda"))
    rows = args.batch * args.group
    batch = {"input_ids": torch.randint(1000, 20000, (rows, args.length), device=args.device),
             "attention_mask": torch.ones(rows, args.length, dtype=torch.long, device=args.device),
             "token_type_ids": torch.zeros(rows, args.length, dtype=torch.long, device=args.device)}
    labels = torch.zeros(args.batch, args.group, dtype=torch.long, device=args.device)
    labels[:, 0] = 1
    cuda = args.device.startswith("cuda")

    def step():
        with torch.autocast(device_type=torch.device(args.device).type, dtype=torch.bfloat16, enabled=cuda):
            scores = model(batch).view(args.batch, args.group)
        loss = loss_fn(scores.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    for _ in range(3):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens_per_s = rows * args.length * args.steps / seconds
    peak = peak_flops(args)
    mfu = 6 * non_embedding * tokens_per_s / peak if peak else None
    measured = torch.cuda.max_memory_allocated() / GB if cuda else None
    precision = "bf16-mixed" if cuda else "32-true"
    states = total * 16  # fp32 weights + gradients + AdamW moments
    estimated = (states + rows * args.length * activation_bytes_per_token(shape, precision, args.gradient_checkpointing)
                 ) / GB
    device = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"device: {device}; torch {torch.__version__}; {precision}; AdamW{' (fused)' if cuda else ''}; "
          f"listwise loss {loss.item():.4f}")
    print(f"model: BERT L{args.layers}-H{args.hidden} cross-encoder, N = {non_embedding / 1e6:.1f}M non-embedding "
          f"({total / 1e6:.1f}M total); step = {args.batch} groups x {args.group} pairs x {args.length} tokens"
          + (", gradient checkpointing" if args.gradient_checkpointing else ""))
    print(f"tokens/s: {tokens_per_s:,.0f}  ({args.steps} steps in {seconds:.2f} s)")
    print(f"MFU: {'n/a (no peak for this device; --peak-tflops)' if mfu is None else f'{100 * mfu:.1f}%'}"
          + (f" of {peak / 1e12:.0f} TFLOP/s bf16" if peak else ""))
    if measured is not None:
        print(f"peak memory: {measured:.2f} GB allocated; estimate {estimated:.2f} GB (+{CONTEXT_BYTES / GB:.1f} GB "
              f"context the estimate adds for a cell), measured / estimate = {measured / estimated:.2f}")
    return {"tokens_per_s": tokens_per_s, "mfu": mfu, "peak_gb": measured, "estimate_gb": estimated}


if __name__ == "__main__":
    main()
