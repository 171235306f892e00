#!/usr/bin/env bash
# Issue 11's evidence, rebuilt from the committed ladder tables (no training; minutes on 2 cores):
# the backtest of every estimator on every real ladder (with the pre-registered default rule and
# the conformal calibration of each estimator), and the verdicts on our own ladders.
#   bash reports/ladders/analyse.sh            (writes reports/ladders/analysis/)
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p analysis
TABLES=(minilm/results.parquet minilm-cisi/results.parquet scratch/results.parquet published/pythia.csv published/opt-bloom.csv
        published/mteb-scale.csv)
CANDIDATES=auto,size-raw,cv,late-k,averaged,pooled,pooled-objectives,average,joint
export COLUMNS=200
rerank-scaling backtest "${TABLES[@]}" --calibrate "$CANDIDATES" --cases analysis/backtest-cases.csv \
  > analysis/backtest.txt
rerank-scaling backtest "${TABLES[@]}" --calibrate "$CANDIDATES" --json > analysis/backtest.json
# the default estimator (first eligible row of the pre-registered rule) and every estimator's
# 90% conformal width factor, for `forecast` (rerank_scaling/scaling/calibration.json)
python3 - <<'PY'
import json, subprocess
bt = json.load(open("analysis/backtest.json"))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
default = next(r["estimator"] for r in bt["default_rule"] if r["eligible"])
rules = {c["estimator"]: {"level": c["level"], "factor": c["factor"], "n": c["n"],
                          "coverage_raw": c["coverage_raw"], "coverage_left_out": c["coverage_calibrated"],
                          "median_width_raw": c["median_width_raw"], "median_width_left_out": c["median_width_calibrated"]}
         for c in bt["calibration"]}
out = {"default": default, "rules": rules,
       "source": f"reports/ladders/analyse.sh at {commit}: backtest of " + ", ".join(bt["ladders"])}
json.dump(out, open("../../rerank_scaling/scaling/calibration.json", "w"), indent=2)
print("default estimator:", default, "factor", rules.get(default, {}).get("factor"))
PY
# fit every size but the largest, hold the largest out: MiniLM 1-4 layers (4L has 7.3M non-embedding
# parameters, 6L 10.8M); scratch L1-H32..L4-H256 (3.2M), L4-H384 (7.1M) held out
for l in minilm:8e6 minilm-cisi:8e6 scratch:5e6; do
  name=${l%%:*} cut=${l##*:}
  rerank-scaling verdicts "$name/results.parquet" --fit-max-params "$cut" > "analysis/verdicts-$name.txt"
  rerank-scaling verdicts "$name/results.parquet" --fit-max-params "$cut" --json > "analysis/verdicts-$name.json"
done
# one table of the verdicts above: per ladder and metric, groups that extrapolate / are not
# informative / all, in-domain (the experiment file's `in_domain = true` eval set) and out-of-domain
python3 - <<'PY'
import json, tomllib
from collections import Counter
lines = ["# Size verdicts on our ladders (fit all but the largest size, forecast it)", "",
         "Written by `bash reports/ladders/analyse.sh` from `verdicts-*.json`. Cell: groups (objective x eval set)",
         "where the metric extrapolates / is not informative / all.", "",
         "| ladder | metric | in-domain: yes / not inf. / all | out-of-domain: yes / not inf. / all |", "|---|---|---|---|"]
for ladder in ("minilm", "minilm-cisi", "scratch"):
    exp = tomllib.load(open(f"{ladder}/experiment.toml", "rb"))
    home = {e["name"] for e in exp["eval"] if e.get("in_domain")}
    vs = [v for v in json.load(open(f"analysis/verdicts-{ladder}.json")) if v["kind"] == "size"]
    for metric in sorted({v["metric"] for v in vs}):
        cells = []
        for inside in (True, False):
            group = [v for v in vs if v["metric"] == metric and (v["eval_set"] in home) == inside]
            n = Counter(v["status"] for v in group)
            cells.append(f"{sum(v['extrapolates'] for v in group)} / {n['not informative']} / {len(group)}")
        lines.append(f"| {ladder} | {metric} | {cells[0]} | {cells[1]} |")
open("analysis/verdicts-summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
