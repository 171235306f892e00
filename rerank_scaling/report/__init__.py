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


__all__ = ["build_report"]


def __getattr__(name: str):
    # lazy: `rerank-scaling --help` registers the report command without importing matplotlib
    if name == "build_report":
        from rerank_scaling.report.build import build_report

        return build_report
    raise AttributeError(name)
