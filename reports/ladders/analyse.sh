#!/usr/bin/env bash
# The analyzer's evidence, rebuilt from the committed ladder tables (no training; about a minute on 2 cores):
# the backtest of every estimator on the published scaling ladders with our CPU ladders as negative controls
# (widths fitted one scaling ladder out, the default chosen inside that loop), the calibration the analyzer
# reads, and the verdicts on our own ladders.
#   bash reports/ladders/analyse.sh            (writes reports/ladders/analysis/, rerank_scaling/scaling/calibration.json)
#   ALL=1 bash reports/ladders/analyse.sh      (also the earlier defaults auto, averaged, pooled-objectives: minutes)
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p analysis
SCALING=(published/*.csv)
CONTROLS=(minilm/results.parquet minilm-cisi/results.parquet scratch/results.parquet)
ESTIMATORS=loglinear-scaled,mixture,mixture-pooled,mixture-shared,curve-fit,carry-forward,loglinear
if [ -n "${ALL:-}" ]; then ESTIMATORS=$ESTIMATORS,auto,averaged,pooled-objectives; fi
export COLUMNS=200
rerank-scaling backtest "${SCALING[@]}" --controls "${CONTROLS[@]}" --estimators "$ESTIMATORS" --exposure \
  --cases analysis/backtest-cases.csv --write-calibration ../../rerank_scaling/scaling/calibration.json \
  > analysis/backtest.txt
python3 -c "import json; c = json.load(open('../../rerank_scaling/scaling/calibration.json')); \
print('default estimator:', c['default'], 'kappa', c['rules']['size'][c['default']]['factor'])"
# fit every size but the largest, hold the largest out: MiniLM 1-4 layers (4L has 7.3M non-embedding
# parameters, 6L 10.8M); scratch L1-H32..L4-H256 (3.2M), L4-H384 (7.1M) held out
for l in minilm:8e6 minilm-cisi:8e6 scratch:5e6; do
  name=${l%%:*} cut=${l##*:}
  rerank-scaling verdicts "$name/results.parquet" --fit-max-params "$cut" > "analysis/verdicts-$name.txt"
  rerank-scaling verdicts "$name/results.parquet" --fit-max-params "$cut" --json > "analysis/verdicts-$name.json"
done
# one table of the verdicts above: per ladder and metric, groups that extrapolate / are not informative /
# not testable / all, in-domain (the experiment file's `in_domain = true` eval set) and out-of-domain
python3 - <<'PY'
import json, tomllib
from collections import Counter
lines = ["# Size verdicts on our ladders (fit all but the largest size, forecast it)", "",
         "Written by `bash reports/ladders/analyse.sh` from `verdicts-*.json`. Cell: groups (objective x eval set)",
         "where the metric extrapolates / is not informative / does not extrapolate / all.", "",
         "| ladder | metric | in-domain: yes / not inf. / no / all | out-of-domain: yes / not inf. / no / all |",
         "|---|---|---|---|"]
for ladder in ("minilm", "minilm-cisi", "scratch"):
    exp = tomllib.load(open(f"{ladder}/experiment.toml", "rb"))
    home = {e["name"] for e in exp["eval"] if e.get("in_domain")}
    vs = [v for v in json.load(open(f"analysis/verdicts-{ladder}.json")) if v["kind"] == "size"]
    for metric in sorted({v["metric"] for v in vs}):
        cells = []
        for inside in (True, False):
            group = [v for v in vs if v["metric"] == metric and (v["eval_set"] in home) == inside]
            n = Counter(v["status"] for v in group)
            cells.append(f"{n['extrapolates']} / {n['not informative']} / {n['does not extrapolate']} / {len(group)}")
        lines.append(f"| {ladder} | {metric} | {cells[0]} | {cells[1]} |")
open("analysis/verdicts-summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
