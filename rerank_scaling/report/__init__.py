"""Study reports: REPORT.md + figures from a collected study, no retraining.

``rerank-scaling report DIR`` / :func:`build_report`.  Modules, one job each:

| module | job |
|---|---|
| `study.py` | read the study folder: table, experiment.toml, cells |
| `analysis.py` | run the scaling analyzer (fits, forecasts, verdicts, allocation), failures become notes |
| `baselines.py` | BM25 against each reranker |
| `caveats.py` | caveats written from the data |
| `figures.py` | the PNG figures (matplotlib Agg) |
| `tables.py` | markdown table and number helpers |
| `sections.py` | the markdown of each section |
| `build.py` | put it together, write atomically |
| `cli.py` | the `report` sub-command |
"""

from rerank_scaling.report.build import build_report

__all__ = ["build_report"]
