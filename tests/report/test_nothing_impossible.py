"""Nothing impossible in a report, by construction: forecasts and intervals inside the metric's range, costs and
invariant metrics shown but never fitted or judged, no verdict without measured noise, R² and parameter
intervals n/a where a law has no more points than parameters -- on a study made to produce each of them."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from report_scan import problems
from synthetic_study import params_of, section, write_cell

SIZES = (("L1-H64", 1, 64), ("L2-H128", 2, 128), ("L4-H256", 4, 256), ("L4-H384", 4, 384), ("L6-H512", 6, 512))
# mrr@10 climbs to 1 with size: a forecast of the largest size from the others runs past 1
MRR = (0.55, 0.75, 0.88, 0.96, 0.99)
BM25 = {"ndcg@10": 0.30, "mrr@10": 0.50, "recall@100": 0.70}


def make_study(root, checkpoints: int):
    rng = np.random.default_rng(0)
    bm25 = [dict(run="bm25", model="bm25", ladder="bm25", size="", params=0, total_params=0, objective="none",
                 supervision="none", budget=0, seed=0, step=0, examples_seen=0, tokens_seen=0, flops=0.0,
                 eval_set="cranfield-test", in_domain=True, metric=m, value=v) for m, v in BM25.items()]
    rows = []
    for k, (size, layers, hidden) in enumerate(SIZES):
        n, total = params_of(layers, hidden)
        run = f"bi-encoder__scratch-{size}__query-distill__human__ball__s0"
        run_rows = []
        for c in range(1, checkpoints + 1):
            late = c / checkpoints
            values = {"ndcg@10": 0.35 + 0.05 * k * late + rng.normal(0, 0.002),
                      "mrr@10": min(MRR[k] * (0.9 + 0.1 * late) + rng.normal(0, 0.0005), 1.0),
                      "recall@100": 0.70,  # every model keeps BM25's top 100: invariant
                      "active-d": 300.0 - 20 * k, "query-ms-cpu": 1.0 + 0.8 * layers}  # costs
            run_rows += [dict(run=run, family="bi-encoder", model=f"scratch-{size}", ladder="scratch", size=size,
                              params=n, total_params=total, objective="query-distill", supervision="human",
                              budget=100, seed=0, step=10 * c, examples_seen=80 * c, tokens_seen=8000 * c,
                              flops=6.0 * n * 8000 * c, eval_set="cranfield-test", in_domain=True, metric=m,
                              value=float(v)) for m, v in values.items()]
        config = {"family": "bi-encoder", "ladder": "scratch", "size": size, "objective": "query-distill",
                  "steps": 10 * checkpoints, "batch_size": 8, "seed": 0, "train_collection": "cranfield",
                  "evals": [{"name": "cranfield-test", "collection": "cranfield", "split": "test", "in_domain": True}]}
        write_cell(root, run, config, run_rows, bm25, data={"train": {"queries": 100, "instances": 100}})
        rows += run_rows
    from rerank_scaling.results import frame, write_parquet

    write_parquet(frame(bm25 + rows), root / "results.parquet")
    return root


@pytest.fixture(scope="module", params=[1, 6], ids=["one-checkpoint", "six-checkpoints"])
def built(request, tmp_path_factory):
    from rerank_scaling.report import build_report

    root = make_study(tmp_path_factory.mktemp("impossible") / "study", request.param)
    return request.param, root, build_report(root, n_boot=60).read_text()


def test_bounded_forecasts_stay_in_range(built):
    """The default estimator's interval of the largest size's mrr@10 reaches past 1; the report cuts it at 1 and
    says so."""
    from rerank_scaling.report.analysis import default_estimator
    from rerank_scaling.report.study import load_study
    from rerank_scaling.scaling.estimate import estimator_forecasts

    checkpoints, root, text = built
    study = load_study(root)
    cut = study.param_sizes[-2]
    name, rule, _ = default_estimator(study, cut)
    raw = estimator_forecasts(study.table, "mrr@10", cut, name, n_boot=60, width_rule=rule)
    past = max(r["upper"] for r in raw) > 1  # the engine's intervals stay in [0, 1] on their own; others may not
    table = section(text, "### Forecasts of the held-out sizes", "\n## ")
    row = next(line for line in table.splitlines() if line.startswith("| mrr@10 |"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    lo, hi = (float(v) for v in cells[7].strip("[]").split(", "))
    assert 0.0 <= lo <= float(cells[6]) <= hi <= 1.0  # the report's never leave it
    assert ("were cut at its bound" in table) == past


def test_costs_and_invariants_are_shown_not_fitted(built):
    _, _, text = built
    verdicts = section(text, "### Size check", "### Costs and constants")
    assert "| ndcg@10 |" in verdicts and "| mrr@10 |" in verdicts
    for metric in ("recall@100", "active-d", "query-ms-cpu"):
        assert f"| {metric} |" not in verdicts  # neither judged ...
        assert f"| {metric} |" not in section(text, "### Forecasts of the held-out sizes", "\n## ")  # ... nor forecast
        assert f"| {metric} |" not in section(text, "### A. Size laws", "### C.")  # ... nor fitted
    costs = section(text, "### Costs and constants", "\n## ")
    assert "| recall@100 | constant | cranfield-test | 0.7 in every run (= BM25's) |" in costs
    assert "| active-d | cost | cranfield-test | `scratch-L1-H64` 300; `scratch-L2-H128` 280;" in costs
    assert "| query-ms-cpu | cost |" in costs


def test_no_verdict_without_measured_noise(built):
    checkpoints, _, text = built
    statuses = [line.split(" | ")[4] for line in section(text, "### Size check", "### Exposure check").splitlines()
                if line.startswith(("| ndcg@10 |", "| mrr@10 |"))]
    assert len(statuses) == 2
    if checkpoints == 1:  # one seed, one checkpoint: the noise is not measured, nothing is judged
        assert statuses == ["not testable"] * 2
        assert "noise not measured" in section(text, "### Size check", "### Exposure check")
    else:  # six checkpoints: three past half of every run measure it
        assert "not testable" not in statuses


def test_the_report_passes_the_scan(built):
    _, _, text = built
    assert problems(text) == []


def test_two_point_laws_have_no_r2_or_parameter_intervals(tmp_path):
    """A law through as many points as it has parameters interpolates: its R² (1.000) and its zero-width
    parameter intervals are artefacts, shown as n/a."""
    from rerank_scaling.report.analysis import fit_metric
    from rerank_scaling.report.sections import param, r2_text
    from rerank_scaling.report.study import load_study

    root = make_study(tmp_path / "study", 1)
    study = load_study(root)
    fits = fit_metric(study, "ndcg@10", study.param_sizes[1], n_boot=40)  # two sizes: the log-linear law
    (g,) = fits.groups
    assert g.fit.n_distinct == 2 == g.fit.law.n_params
    assert r2_text(g.fit) == "n/a" and all(param(g.fit, p, v).endswith("[n/a]") for p, v in g.fit.params.items())
    (g,) = fit_metric(study, "ndcg@10", study.param_sizes[-1], n_boot=40).groups  # all five sizes
    assert g.fit.n_distinct > g.fit.law.n_params and r2_text(g.fit) != "n/a"


def test_parameters_the_resamples_do_not_pin_down_are_not_printed_as_numbers():
    """The dense demo's appendix printed B = 8.354e+174 [-5.56e+152, 9.34e+174], A = 6.799e-168 and
    alpha = 0.3749 [3, 3]: a value at the optimiser's bound is degenerate, an interval with no width or
    off its own estimate is not identified; an ordinary interval is kept."""
    from types import SimpleNamespace

    from rerank_scaling.report.sections import param

    law = SimpleNamespace(n_params=3)
    fit = SimpleNamespace(n_distinct=5, law=law, param_intervals={
        "B": (-5.56e152, 9.34e174), "A": (1e-170, 1e-160), "alpha": (3.0, 3.0), "beta": (0.151, 0.188),
        "delta": (0.0, 0.327), "gamma": (1.0, 2.0)})
    assert param(fit, "B", 8.354e174) == "B → ∞ [degenerate: the fit ran to its bound]"
    assert param(fit, "A", 6.799e-168).startswith("A → 0 [degenerate")
    assert param(fit, "alpha", 0.3749) == "alpha = 0.3749 [not identified]"  # zero width, off its estimate
    assert param(fit, "gamma", 9.0) == "gamma = 9 [not identified]"  # far outside [1, 2]
    assert param(fit, "beta", 0.1612) == "beta = 0.1612 [0.151, 0.188]"
    assert param(fit, "delta", 7.061e-14) == "delta = 7.061e-14 [0, 0.327]"  # tiny but not at a bound
    assert param(SimpleNamespace(n_distinct=3, law=law, param_intervals=fit.param_intervals), "beta", 0.16) == \
        "beta = 0.16 [n/a]"


def test_metric_kinds_and_ranges():
    from rerank_scaling.report.kinds import COST, INVARIANT, QUALITY, metric_kind, metric_range

    finals = pl.DataFrame({"run": ["a", "b", "a", "b"], "eval_set": ["t"] * 4, "metric": ["recall@100"] * 2 +
                           ["ndcg@10"] * 2, "value": [0.7, 0.7, 0.3, 0.4]})
    assert metric_kind("recall@100", finals) == INVARIANT and metric_kind("ndcg@10", finals) == QUALITY
    assert metric_kind("recall@100") == QUALITY  # without values nothing says it cannot move
    for cost in ("active-q", "active-d", "flops", "query-ms-cpu", "query-ms-cuda"):
        assert metric_kind(cost, finals) == COST
    assert metric_range("ndcg@10") == (0.0, 1.0) and metric_range("p@10") == (0.0, 1.0)
    assert metric_range("ce@7") == (0.0, math.inf) and metric_range("ce-corpus@64") == (0.0, math.inf)
    assert metric_range("retained-ndcg@10") == (0.0, math.inf) and metric_range("query-ms-cpu") == (0.0, math.inf)
    assert metric_range("score") == (-math.inf, math.inf)
