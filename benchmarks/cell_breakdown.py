"""Where each cell of a finished study spent its time: set-up, training steps, evaluation + checkpoints.

Read from the cells' own records (``status.json`` seconds, ``train_log.jsonl`` per-step wall clock and
``config.json`` eval_every), so it times a real grid run without instrumenting it:

* training  = the steps' wall time, each step after a checkpoint counted at the median step time;
* evaluation + checkpoint = the rest of those steps' time, plus the time after the last step
  (final evaluation, per-query values, saving);
* set-up = time before the first step beyond one median step (data, candidates, model load).

    python benchmarks/cell_breakdown.py runs/demo [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def breakdown(cell: Path) -> dict | None:
    status = json.loads((cell / "status.json").read_text()) if (cell / "status.json").exists() else {}
    log = cell / "train_log.jsonl"
    if status.get("state") != "done" or not log.exists():
        return None
    steps = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    config = json.loads((cell / "config.json").read_text())
    every = int(config.get("eval_every") or 0)
    times = [s["seconds"] for s in steps]
    deltas = [b - a for a, b in zip(times, times[1:])]
    after_eval = {i for i, s in enumerate(steps[1:]) if every and (s["step"] - 1) % every == 0 and s["step"] > 1}
    median = statistics.median([d for i, d in enumerate(deltas) if i not in after_eval] or deltas or [0.0])
    evaluation = sum(d - median for i, d in enumerate(deltas) if i in after_eval)
    training = sum(deltas) - evaluation + median
    total = float(status["seconds"])
    tail = total - times[-1]
    setup = max(times[0] - median, 0.0)
    return dict(cell=cell.name, total=total, setup=setup, training=training, evaluation=evaluation + tail,
                seconds_per_step=median, steps=len(steps), peak_rss_mb=status.get("hardware", {}).get("peak_rss_mb"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [r for c in sorted((args.study / "cells").iterdir()) if (r := breakdown(c))]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'cell':45} {'total':>7} {'set-up':>7} {'train':>7} {'eval+ckpt':>9} {'s/step':>7} {'RSS MB':>7}")
    for r in rows:
        print(f"{r['cell']:45} {r['total']:7.0f} {r['setup']:7.1f} {r['training']:7.0f} {r['evaluation']:9.0f} "
              f"{r['seconds_per_step']:7.2f} {r['peak_rss_mb'] or 0:7}")
    print(f"{'sum':45} {sum(r['total'] for r in rows):7.0f} {sum(r['setup'] for r in rows):7.1f} "
          f"{sum(r['training'] for r in rows):7.0f} {sum(r['evaluation'] for r in rows):9.0f}")


if __name__ == "__main__":
    main()
