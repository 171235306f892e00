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
for l in minilm minilm-cisi; do
  # fit 1-4 layers, hold out 6 layers (MiniLM-4L has 7.3M non-embedding parameters, 6L 10.8M)
  rerank-scaling verdicts "$l/results.parquet" --fit-max-params 8e6 > "analysis/verdicts-$l.txt"
  rerank-scaling verdicts "$l/results.parquet" --fit-max-params 8e6 --json > "analysis/verdicts-$l.json"
done
