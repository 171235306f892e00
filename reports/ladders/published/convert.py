#!/usr/bin/env python3
"""Turn published evaluation result files into tidy ladder CSVs for ``rerank-scaling backtest``.

Standalone (standard library only), no network.  It reads two git snapshots that
were fetched beforehand (see README.md in this folder for provenance):

* EleutherAI/pythia  (commit a19eecb807ec2c79a39ebf18108816e6ffffc1d5), files
  ``evals/pythia-v1/<model>/zero-shot/*.json``, ``evals/opt/*.json``, ``evals/bloom/*.json``
* embeddings-benchmark/mtebpaper (commit faa7d121c6fbfec517a26b973ddcc09c7ab8395e,
  the last commit before the per-model results were removed), files
  ``results/<model>/<Task>.json``

Usage::

    python convert.py [--pythia-git DIR] [--mteb-git DIR] [--out DIR] [--min-step 1000]

Writes ``pythia.csv``, ``opt-bloom.csv`` and ``mteb-scale.csv`` into ``--out``
(default: this script's folder).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import subprocess
from pathlib import Path

PYTHIA_COMMIT = "a19eecb807ec2c79a39ebf18108816e6ffffc1d5"
MTEB_COMMIT = "faa7d121c6fbfec517a26b973ddcc09c7ab8395e"

# The 8 standard zero-shot tasks present in every result file used; metric = accuracy.
TASKS = ("arc_challenge", "arc_easy", "lambada_openai", "logiqa", "piqa", "sciq", "winogrande", "wsc")

# Pythia non-embedding parameter counts (Pythia paper, Table 1 / model cards, "Non-Embedding Params").
PYTHIA_PARAMS = {
    "70m": 18_915_328,
    "160m": 85_056_000,
    "410m": 302_311_424,
    "1b": 805_736_448,
    "1.4b": 1_208_602_624,
    "2.8b": 2_517_652_480,
    "6.9b": 6_444_163_072,
    "12b": 11_327_027_200,
}
# Every Pythia v1 model uses 1024 sequences x 2048 tokens per step.
TOKENS_PER_STEP = 2_097_152

# Nominal total parameter counts, as the model names / papers state them.
OPT_PARAMS = {"125m": 125e6, "350m": 350e6, "1.3b": 1.3e9, "2.7b": 2.7e9, "6.7b": 6.7e9,
              "13b": 13e9, "30b": 30e9, "66b": 66e9}
BLOOM_PARAMS = {"560m": 560e6, "1b1": 1.1e9, "1b7": 1.7e9, "3b": 3e9, "7b1": 7.1e9}

# MTEB paper (Muennighoff et al., EACL 2023) scale figure: families and parameter counts in
# millions exactly as listed in plotstables/results_to_scale.py of the mtebpaper repository.
MTEB_FAMILIES = {
    "gtr": [("gtr-t5-base", 110), ("gtr-t5-large", 335), ("gtr-t5-xl", 1240), ("gtr-t5-xxl", 4800)],
    "sentence-t5": [("sentence-t5-base", 110), ("sentence-t5-large", 335), ("sentence-t5-xl", 1240),
                    ("sentence-t5-xxl", 4800)],
    "sgpt-msmarco": [("SGPT-125M-weightedmean-msmarco-specb-bitfit", 125),
                     ("SGPT-1.3B-weightedmean-msmarco-specb-bitfit", 1300),
                     ("SGPT-2.7B-weightedmean-msmarco-specb-bitfit", 2700),
                     ("SGPT-5.8B-weightedmean-msmarco-specb-bitfit", 5800)],
}
# MTEB English retrieval tasks (BEIR; main score nDCG@10) and reranking tasks (main score MAP).
RETRIEVAL = ("ArguAna", "ClimateFEVER", "CQADupstackRetrieval", "DBPedia", "FEVER", "FiQA2018", "HotpotQA",
             "MSMARCO", "NFCorpus", "NQ", "QuoraRetrieval", "SCIDOCS", "SciFact", "Touche2020", "TRECCOVID")
RERANKING = ("AskUbuntuDupQuestions", "MindSmallReranking", "SciDocsRR", "StackOverflowDupQuestions")

COLUMNS = ("objective", "model", "params", "metric", "value", "eval_set", "step", "tokens_seen")


def git_ls(repo: Path, commit: str, prefix: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", commit, prefix],
                         check=True, capture_output=True, text=True).stdout
    return out.split()


def git_text(repo: Path, commit: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def git_json(repo: Path, commit: str, path: str) -> dict:
    return json.loads(git_text(repo, commit, path))


def lm_rows(results: dict) -> list[tuple[str, str, float]]:
    """(eval_set, metric, value): accuracy per task plus LAMBADA loss = ln(perplexity)."""
    rows = [(t, "acc", float(results[t]["acc"])) for t in TASKS]
    rows.append(("lambada_openai", "loss", math.log(float(results["lambada_openai"]["ppl"]))))
    return rows


def pythia(repo: Path, min_step: int) -> list[dict]:
    rows = []
    for path in git_ls(repo, PYTHIA_COMMIT, "evals/pythia-v1"):
        m = re.fullmatch(r"evals/pythia-v1/pythia-([0-9.]+[mb])(-deduped|-bf16)?/zero-shot/[^/]+\.json", path)
        if not m:
            continue
        size, variant = m.group(1), m.group(2) or ""
        d = git_json(repo, PYTHIA_COMMIT, path)
        cfg = d["config"]
        rev = re.search(r"pretrained=([^,]+),revision=step(\d+)", cfg["model_args"])
        if cfg.get("num_fewshot") != 0 or rev is None:
            raise SystemExit(f"{path}: not a zero-shot checkpoint evaluation")
        step = int(rev.group(2))
        if step < min_step:
            continue
        # pythia-1b-bf16 is the standard (non-deduplicated) 1B model: README, "Models" section.
        objective = "lm-pile-deduped" if variant == "-deduped" else "lm-pile"
        for eval_set, metric, value in lm_rows(d["results"]):
            rows.append(dict(objective=objective, model=f"pythia-{size}{'-deduped' if variant == '-deduped' else ''}",
                             params=PYTHIA_PARAMS[size], metric=metric, value=value, eval_set=eval_set,
                             step=step, tokens_seen=step * TOKENS_PER_STEP))
    rows.sort(key=lambda r: (r["objective"], r["params"], r["step"], r["eval_set"], r["metric"]))
    return rows


def opt_bloom(repo: Path) -> list[dict]:
    rows = []
    for family, table in (("opt", OPT_PARAMS), ("bloom", BLOOM_PARAMS)):
        for size, params in table.items():
            path = f"evals/{family}/{family}-{size}.json"
            d = git_json(repo, PYTHIA_COMMIT, path)
            if d["config"].get("num_fewshot") != 0:
                raise SystemExit(f"{path}: not zero-shot")
            for eval_set, metric, value in lm_rows(d["results"]):
                rows.append(dict(objective=f"lm-{family}", model=f"{family}-{size}", params=int(params),
                                 metric=metric, value=value, eval_set=eval_set, step="", tokens_seen=""))
    return rows


def mteb(repo: Path) -> list[dict]:
    rows = []
    for family, models in MTEB_FAMILIES.items():
        for model, millions in models:
            for task in RETRIEVAL + RERANKING:
                d = git_json(repo, MTEB_COMMIT, f"results/{model}/{task}.json")
                # MSMARCO is scored on its dev split, stored as "dev" or "validation" (MTEB 0.0.2).
                split = next(k for k in (("dev", "validation") if task == "MSMARCO" else ("test",)) if k in d)
                if task in RETRIEVAL:
                    metric, value = "ndcg@10", d[split]["ndcg_at_10"]
                else:
                    metric, value = "map", d[split]["map"]
                rows.append(dict(objective=family, model=model, params=int(millions * 1e6), metric=metric,
                                 value=float(value), eval_set=task, step="", tokens_seen=""))
    return rows


def write(path: Path, rows: list[dict], columns=COLUMNS) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    print(f"{path}: {len(rows)} rows")


def main() -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pythia-git", type=Path, default=Path("/work/.mirror/EleutherAI+pythia/repo"))
    ap.add_argument("--mteb-git", type=Path, default=Path("/work/.mirror/embeddings-benchmark+mtebpaper/repo"))
    ap.add_argument("--out", type=Path, default=here)
    ap.add_argument("--min-step", type=int, default=1000,
                    help="drop Pythia checkpoints before this step (default 1000: init + LR-warmup log-spaced ones)")
    args = ap.parse_args()
    write(args.out / "pythia.csv", pythia(args.pythia_git, args.min_step))
    write(args.out / "opt-bloom.csv", opt_bloom(args.pythia_git), COLUMNS[:6])
    write(args.out / "mteb-scale.csv", mteb(args.mteb_git), COLUMNS[:6])


if __name__ == "__main__":
    main()
