"""Study reports: REPORT.md + figures from a collected study, no retraining.

``rerank-scaling report DIR`` / :func:`build_report`.  Modules, one job each:

| module | job |
|---|---|
| `study.py` | read the study folder: table, experiment.toml, cells (or their digest); export one beside a report |
| `analysis.py` | the one adapter to the scaling analyzer: the default estimator's forecasts (in range), verdicts (not testable without measured noise), trust line, appendix laws; failures become notes |
| `kinds.py` | quality / cost / invariant metrics and their ranges, read from the metric registry |
| `summary.py` | the first screen: what was trained, the answer table, the next-size forecast, findings, confounds |
| `wording.py` | what the models are called (reranker, bi-encoder, ...) and whether they are a first stage |
| `baselines.py` | BM25 against each trained model |
| `first_stage.py` | first-stage studies: recall@100 of each retrieved list vs BM25's |
| `data_scaling.py` | studies with 2+ budgets: size, data and joint laws per supervision, annotation quality |
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
