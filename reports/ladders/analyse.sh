#!/usr/bin/env bash
# Issue 11's evidence, rebuilt from the committed ladder tables (no training; minutes on 2 cores):
# the backtest of every estimator on every real ladder (with the pre-registered default rule and
# the conformal calibration of each estimator), and the verdicts on our own ladders.
#   bash reports/ladders/analyse.sh            (writes reports/ladders/analysis/)
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p analysis
TABLES=(minilm/results.parquet minilm-cisi/results.parquet published/pythia.csv published/opt-bloom.csv
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
for l in minilm minilm-cisi; do
  # fit 1-4 layers, hold out 6 layers (MiniLM-4L has 7.3M non-embedding parameters, 6L 10.8M)
  rerank-scaling verdicts "$l/results.parquet" --fit-max-params 8e6 > "analysis/verdicts-$l.txt"
  rerank-scaling verdicts "$l/results.parquet" --fit-max-params 8e6 --json > "analysis/verdicts-$l.json"
done
