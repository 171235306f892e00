"""Multi-GPU equivalence: one GPU vs two (DDP, then FSDP) train the same trajectory and evaluate to the same rows.

The ``rerank-scaling train`` command on the CPU tests' tiny cell (MiniLM-1L,
Cranfield, 6 steps, evaluated at 3 and 6, dropout off, fp32 so the
comparison is not bf16 noise), run on 1 GPU, then 2 GPUs with DDP (NCCL),
then 2 GPUs with FSDP; evaluation is shared out over the two processes
(every rank scores its share). Prints the largest relative difference of the
step losses and of the evaluation rows against one GPU, and exits 1 when one
passes 1e-3 (losses) or 1e-2 (rows).

    python benchmarks/ddp_check.py --data-root ../shared     # needs 2 GPUs; ~2 min
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CELL = ["--ladder", "minilm", "--size", "1L", "--objective", "listwise", "--steps", "6", "--eval-every", "3",
        "--batch-size", "8", "--n-negatives", "3", "--max-length", "64", "--candidates-k", "20", "--rerank-k", "10",
        "--ce-negatives", "4", "--lr", "1e-3", "--warmup-steps", "1", "--dropout", "0", "--budget", "40",
        "--precision", "32-true", "--eval", "cranfield-test=cranfield:test"]


def train(out: Path, data_root: str, cache: Path, *extra: str) -> tuple[list[dict], dict]:
    env = {**os.environ, "RERANK_SCALING_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "rerank_scaling", "train", "--out", str(out), "--data-root", data_root,
                           *CELL, *extra], env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise SystemExit(f"{out.name} failed:\n{done.stderr[-3000:]}")
    import polars as pl

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    rows = pl.read_parquet(out / "metrics.parquet")
    status = json.loads((out / "status.json").read_text())
    return log, {"rows": {(r["step"], r["eval_set"], r["metric"]): r["value"] for r in rows.iter_rows(named=True)},
                 "status": status}


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), 1e-6)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=str(REPO.parent / "shared"))
    args = p.parse_args(argv)
    import torch

    if torch.cuda.device_count() < 2:
        print(f"ddp check: {torch.cuda.device_count()} GPU(s); needs 2 -- skipped")
        return 0
    worst = 0
    with tempfile.TemporaryDirectory(prefix="ddp-check-") as tmp:
        tmp = Path(tmp)
        one_log, one = train(tmp / "one", args.data_root, tmp / "cache")
        for name, extra in (("ddp", ("--devices", "2", "--strategy", "ddp")),
                            ("fsdp", ("--devices", "2", "--strategy", "fsdp"))):
            log, two = train(tmp / name, args.data_root, tmp / "cache", *extra)
            loss = max(rel(a["loss"], b["loss"]) for a, b in zip(one_log, log))
            rows = max(rel(v, two["rows"][k]) for k, v in one["rows"].items())
            same = [a["tokens_seen"] for a in one_log] == [b["tokens_seen"] for b in log]
            hw = two["status"]["hardware"]
            print(f"{name}: 2 x {hw['device']}: max relative difference vs 1 GPU: losses {loss:.2e}, "
                  f"evaluation rows {rows:.2e} ({len(one['rows'])} rows); tokens equal: {same}; "
                  f"rank 0 GPU peak {hw.get('gpu_peak_mb')} MB")
            worst = max(worst, int(loss > 1e-3 or rows > 1e-2 or not same))
    print("ddp check:", "FAILED" if worst else "passed")
    return worst


if __name__ == "__main__":
    sys.exit(main())
