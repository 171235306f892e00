"""`rerank-scaling report`: the study report built from a collected results table.

The study folder is synthetic but complete: ``results.parquet`` in the exact
schema of :mod:`rerank_scaling.results`, generated from a known law, plus
``experiment.toml`` and ``cells/<run>/{config.json,status.json,data.json}``
(two cells failed with a reason). BM25 is built to lose on the in-domain set
and to win on the out-of-domain set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rerank_scaling.results import frame, write_parquet

# scratch-ladder-like sizes: (size, layers, hidden) -> non-embedding / total params
LADDER = (("L1-H64", 1, 64), ("L2-H128", 2, 128), ("L4-H256", 4, 256), ("L4-H384", 4, 384),
          ("L6-H512", 6, 512), ("L8-H768", 8, 768))
OBJECTIVES = ("listwise", "pointwise")
OBJECTIVE_OFFSET = {"listwise": 0.0, "pointwise": -0.03}
EVALS = (("cranfield-test", "cranfield", "test", True, 45), ("cisi", "beir-folder:/data/beir/cisi", None, False, 30))
# metric: (asymptote, gap at N=1e6, size exponent, gap at D=1e3, exposure exponent), in-domain
TRUTH = {
    "ndcg@10": (0.72, 0.10, -0.3, 0.04, -0.5),
    "map": (0.55, 0.08, -0.3, 0.03, -0.5),
    "mrr@10": (0.85, 0.08, -0.35, 0.03, -0.5),
    "ce@16": (1.00, 0.60, -0.35, 0.20, -0.4),  # lower is better
}
OOD_SHIFT = 0.20  # out-of-domain sets score this much lower (higher for ce)
BM25 = {"cranfield-test": {"ndcg@10": 0.30, "map": 0.25, "mrr@10": 0.45},
        "cisi": {"ndcg@10": 0.90, "map": 0.60, "mrr@10": 0.95}}  # cisi: BM25 wins
BATCH = 8


def params_of(layers: int, hidden: int) -> tuple[int, int]:
    non_embedding = layers * 12 * hidden * hidden + hidden * hidden + hidden + 1
    return non_embedding, non_embedding + (30522 + 512 + 2) * hidden


def true_value(metric: str, objective: str, eval_set: str, n: float, d: float) -> float:
    a, g, c, h, e = TRUTH[metric]
    ood = eval_set != "cranfield-test"
    if metric.startswith("ce"):
        return a + 5 * OBJECTIVE_OFFSET[objective] * -1 + (OOD_SHIFT * 3 if ood else 0) + g * (n / 1e6) ** c \
            + h * (d / 1e3) ** e
    return a + OBJECTIVE_OFFSET[objective] - (OOD_SHIFT if ood else 0) - g * (n / 1e6) ** c - h * (d / 1e3) ** e


def experiment_toml(sizes: list[str], seeds: list[int]) -> str:
    evals = "".join(
        f'\n[[eval]]\nname = "{name}"\ncollection = "{coll}"\n' + (f'split = "{split}"\n' if split else "")
        + f"max_queries = {q}\nin_domain = {'true' if dom else 'false'}\n"
        for name, coll, split, dom, q in EVALS
    )
    return f'''[study]
name = "synthetic-scratch"
description = "Synthetic study with a known law: scratch BERTs on Cranfield, evaluated in and out of domain."

[data]
train_collection = "cranfield"
data_root = "../shared"
{evals}
[candidates]
k = 50
rerank_k = 20

[grid]
ladder = "scratch"
sizes = {json.dumps(sizes)}
budgets = ["all"]
objectives = {json.dumps(list(OBJECTIVES))}
seeds = {json.dumps(seeds)}

[train]
steps = 150
batch_size = {BATCH}
eval_every = 25
ce_negatives = 16

[hardware]
workers = 2
threads_per_worker = 1
'''


def config_of(size: str, objective: str, seed: int, steps: int, eval_every: int) -> dict:
    return {
        "train_collection": "cranfield", "train_split": "train", "supervision": "human", "budget": None,
        "candidates_k": 50, "rerank_k": 20, "candidates_run": None, "ladder": "scratch", "size": size,
        "objective": objective, "n_negatives": 7, "max_length": 128, "steps": steps, "batch_size": BATCH,
        "lr": 2e-4, "seed": seed, "eval_every": eval_every, "ce_negatives": 16, "threads": 1,
        "evals": [{"name": n, "collection": c, "split": s, "max_queries": q, "in_domain": d}
                  for n, c, s, d, q in EVALS],
        "metrics": ["ndcg@10", "map", "mrr@10"],
    }


def make_study(root: Path, n_sizes: int = 5, seeds=(0,), checkpoints: int = 6, noise: float = 0.004,
               failed: bool = True, write_results: bool = True) -> Path:
    """A complete synthetic study folder; the largest ladder rung (beyond n_sizes) failed."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ladder = LADDER[:n_sizes]
    grid_sizes = [s for s, _, _ in LADDER[: n_sizes + (1 if failed else 0)]]
    (root / "experiment.toml").write_text(experiment_toml(grid_sizes, list(seeds)))
    eval_every = 25
    steps = eval_every * checkpoints
    rows, per_run = [], {}
    for size, layers, hidden in ladder:
        n, total = params_of(layers, hidden)
        for objective in OBJECTIVES:
            for seed in seeds:
                run = f"scratch-{size}__{objective}__human__ball__s{seed}"
                offsets = {m: rng.normal(0, noise * (5 if m.startswith("ce") else 1)) for m in TRUTH}
                final = {}
                for step in range(eval_every, steps + 1, eval_every):
                    d = step * BATCH
                    for name, _, _, dom, _ in EVALS:
                        for metric in TRUTH:
                            value = true_value(metric, objective, name, n, d) + offsets[metric]
                            value += rng.normal(0, noise / 2)
                            per_run.setdefault(run, []).append({
                                "run": run, "model": f"scratch-{size}", "ladder": "scratch", "size": size,
                                "params": n, "total_params": total, "objective": objective, "supervision": "human",
                                "budget": 120, "seed": seed, "step": step, "examples_seen": d,
                                "tokens_seen": d * 8 * 100, "flops": 6.0 * n * d * 800, "eval_set": name,
                                "in_domain": dom, "metric": metric, "value": float(value),
                            })
                            if step == steps:
                                final[f"{name}:{metric}"] = float(value)
                cell = root / "cells" / run
                cell.mkdir(parents=True)
                (cell / "config.json").write_text(json.dumps(config_of(size, objective, seed, steps, eval_every)))
                (cell / "status.json").write_text(json.dumps({
                    "state": "done", "seconds": round(30.0 + n / 2e5, 2), "run": run, "params": n,
                    "total_params": total, "final": final, "hardware": {"peak_rss_mb": 900 + n // 10**5}}))
                (cell / "data.json").write_text(json.dumps({
                    "train": {"queries": 120, "instances": 700, "supervision": "human"},
                    "eval": {name: {"queries": q, "queries_without_candidates": 0} for name, _, _, _, q in EVALS}}))
    bm25 = []
    for name, _, _, dom, _ in EVALS:
        for metric, value in BM25[name].items():
            bm25.append({
                "run": "bm25", "model": "bm25", "ladder": "bm25", "size": "", "params": 0, "total_params": 0,
                "objective": "none", "supervision": "none", "budget": 0, "seed": 0, "step": 0,
                "examples_seen": 0, "tokens_seen": 0, "flops": 0.0, "eval_set": name, "in_domain": dom,
                "metric": metric, "value": value,
            })
    if failed:
        size = LADDER[n_sizes][0]
        for objective, reason in (("listwise", "non-finite loss at step 37 (lr too high?)"),
                                  ("pointwise", "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB")):
            run = f"scratch-{size}__{objective}__human__ball__s{seeds[0]}"
            cell = root / "cells" / run
            cell.mkdir(parents=True)
            (cell / "config.json").write_text(json.dumps(config_of(size, objective, seeds[0], steps, eval_every)))
            (cell / "status.json").write_text(json.dumps({"state": "failed", "reason": reason, "seconds": 12.5,
                                                          "run": run}))
    for run, run_rows in per_run.items():  # what a finished cell holds, for `collect`
        write_parquet(frame(run_rows), root / "cells" / run / "metrics.parquet")
        write_parquet(frame(bm25), root / "cells" / run / "baseline.parquet")
        rows += run_rows
    if write_results:
        write_parquet(frame(bm25 + rows), root / "results.parquet")
    return root


# --- tests ----------------------------------------------------------------------------------------

N_BOOT = 60  # small but real bootstrap: keeps the tests fast
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("## 1. The study", "## 2. BM25 against the rerankers", "## 3. Scaling with model size",
            "### Fitted laws", "### Forecasts vs actual (held-out sizes)", "## 4. Which metrics extrapolate",
            "### Size check", "### Exposure check", "## 5. Training exposure", "## 6. Compute allocation",
            "## 7. Caveats")


def section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from rerank_scaling.report import build_report

    study = make_study(tmp_path_factory.mktemp("study") / "study")
    path = build_report(study, n_boot=N_BOOT)
    return study, path, path.read_text()


def test_report_has_every_section_and_the_study_facts(report):
    study, path, text = report
    assert path == study / "REPORT.md"
    assert text.startswith("# Scaling report: synthetic-scratch\n")
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "Synthetic study with a known law" in text
    assert "| cranfield-test | in-domain | cranfield | test | 45 | 45 |" in text
    assert "| cisi | out-of-domain |" in text
    assert "BM25 top-50 candidates per query; the rerankers rescore the top 20" in text
    # ladder with non-embedding and total parameters, the largest size marked as held out
    n, total = params_of(6, 512)
    assert f"| scratch-L6-H512 | L6-H512 | {n:,} | {total:,} | 2 | held out (forecast) |" in text
    assert "the second-largest model size (7.23M non-embedding parameters), so the largest (19.1M) is held out" in text
    # wall time = sum and max of the cells' seconds (10 done cells + 2 failed at 12.5 s)
    seconds = [json.loads(p.read_text())["seconds"] for p in sorted((study / "cells").glob("*/status.json"))]
    assert f"{sum(seconds):,.0f} s summed over {len(seconds)} cells" in text
    assert f"longest cell {max(seconds):,.0f} s" in text
    peak = max(json.loads(p.read_text()).get("hardware", {}).get("peak_rss_mb", 0)
               for p in (study / "cells").glob("*/status.json"))
    assert peak > 900 and f"- **Peak memory**: {peak:,} MB resident" in text
    assert "- **Cells**: 10 done, 2 failed" in text


def test_failed_cells_are_listed_with_their_reasons(report):
    _, _, text = report
    failed = section(text, "Failed cells:", "## 2.")
    assert "`scratch-L8-H768__listwise__human__ball__s0` | non-finite loss at step 37 (lr too high?)" in failed
    assert "`scratch-L8-H768__pointwise__human__ball__s0` | out of memory: CUDA out of memory." in failed
    caveats = section(text, "## 7. Caveats", "\n- **One seed")
    assert "**Failed cells**: 2 cell(s) failed" in caveats


def test_bm25_lines_say_who_wins(report):
    study, _, text = report
    import polars as pl

    table = pl.read_parquet(study / "results.parquet")
    final = table.filter((pl.col("step") == pl.col("step").max()) & (pl.col("metric") == "ndcg@10")
                         & (pl.col("eval_set") == "cranfield-test"))
    best = final.sort("value", descending=True).row(0, named=True)
    delta = best["value"] - BM25["cranfield-test"]["ndcg@10"]
    assert (f"**A reranker beats BM25 on cranfield-test**: 10 of 10 rerankers score above BM25 on ndcg@10; the best, "
            f"`{best['model']}` ({best['objective']}), by {delta:+.4f}") in text
    assert "**No reranker beats BM25 on cisi**" in text
    assert "**No gain over BM25**: on cisi (out-of-domain)" in text
    # the best value per column is bold: BM25 on cisi, a reranker on cranfield-test
    cisi = section(text, "### cisi (out-of-domain", "**No reranker")
    assert "| BM25 | — | — | **0.9000** | **0.6000** | **0.9500** | — |" in cisi
    assert f"**{best['value']:.4f}**" in section(text, "### cranfield-test (in-domain", "**A reranker")


def test_verdict_table_has_a_row_per_metric_objective_and_eval_set(report):
    _, _, text = report
    size = section(text, "### Size check", "### Exposure check")
    exposure = section(text, "### Exposure check", "### Side by side")
    for metric in TRUTH:
        for objective in OBJECTIVES:
            for name, _, _, in_domain, _ in EVALS:
                domain = "in-domain" if in_domain else "out-of-domain"
                row = f"| {metric} | {objective} | {name} | {domain} | "
                for part in (size, exposure):
                    lines = [ln for ln in part.splitlines() if ln.startswith(row)]
                    assert len(lines) == 1, (row, part)
                    assert lines[0].split(" | ")[4] in ("**yes**", "no")
                    assert "mean |rel err|" in lines[0].replace("\\|", "|")  # the analyzer's reason


def test_forecast_table_lists_the_held_out_size_with_its_actual_value(report):
    study, _, text = report
    import polars as pl

    forecasts = section(text, "### Forecasts vs actual", "## 4.")
    table = pl.read_parquet(study / "results.parquet")
    final = table.filter((pl.col("model") == "scratch-L6-H512") & (pl.col("step") == pl.col("step").max()))
    for r in final.iter_rows(named=True):
        domain = "in-domain" if r["in_domain"] else "out-of-domain"
        head = f"| {r['metric']} | {r['eval_set']} | {domain} | {r['objective']} | `scratch-L6-H512` |"
        rows = [ln for ln in forecasts.splitlines() if ln.startswith(head)]
        assert len(rows) == 1
        cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
        assert cells[5] == "19.1M"
        assert cells[8] == f"{r['value']:.4f}"  # actual
        predicted = float(cells[6])
        assert abs(float(cells[9]) - abs(predicted - r["value"])) <= 1.01e-4  # abs error (both rounded)
        assert cells[11] in ("yes", "**no**")
    # no smaller (fitted) size is forecast
    assert "`scratch-L4-H384`" not in forecasts


def test_figures_exist_are_pngs_and_are_referenced(report):
    study, path, text = report
    import re

    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(refs) == sorted({*refs})
    assert {"figures/size_ndcg10_cranfield-test.png", "figures/size_ndcg10_cisi.png",
            "figures/exposure_ndcg10_cranfield-test.png", "figures/metrics_cranfield-test.png",
            "figures/metrics_cisi.png"} == set(refs)
    for ref in refs:
        png = path.parent / ref
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert sorted(p.name for p in (path.parent / "figures").iterdir()) == sorted(Path(r).name for r in refs)
    assert not list(path.parent.glob(".report-*"))  # no temp folder left behind


def test_rerun_gives_identical_markdown_and_figures(report):
    from rerank_scaling.report import build_report

    study, path, text = report
    pngs = {p.name: p.read_bytes() for p in (study / "figures").iterdir()}
    again = build_report(study, n_boot=N_BOOT)
    assert again.read_text() == text
    assert {p.name: p.read_bytes() for p in (study / "figures").iterdir()} == pngs


def test_cli_collects_missing_results_and_honours_options(tmp_path, capsys):
    from rerank_scaling.cli import main

    study = make_study(tmp_path / "study", write_results=False)
    out = tmp_path / "elsewhere" / "appendix.md"
    code = main(["report", str(study), "--out", str(out), "--fit-max-params", "4M", "--bootstrap", "40"])
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert (study / "results.parquet").exists()  # collected from the cells first
    text = out.read_text()
    assert "the table was collected from the cells for this report" in text
    assert "given with --fit-max-params (4M); 2 larger size(s) held out" in text
    forecasts = section(text, "### Forecasts vs actual", "## 4.")
    assert "`scratch-L4-H384`" in forecasts and "`scratch-L6-H512`" in forecasts
    assert (out.parent / "figures" / "size_ndcg10_cisi.png").read_bytes().startswith(PNG_MAGIC)
    assert not (study / "REPORT.md").exists()


def test_three_sizes_degrade_gracefully_with_a_caveat(tmp_path):
    from rerank_scaling.report import build_report

    study = make_study(tmp_path / "study", n_sizes=3, checkpoints=3)
    text = build_report(study, n_boot=N_BOOT).read_text()
    caveats = text[text.index("## 7. Caveats"):]
    assert "**Too few sizes**: only 3 distinct model size(s) (53.3K, 410K, 3.21M), fewer than 4" in caveats
    assert "forecasts rest on very few points" in caveats
    # 3 checkpoints: nothing early enough to fit the exposure law, said in its section
    assert "Not possible: no run has at least 2 checkpoints in the first half" in section(
        text, "### Exposure check", "### Side by side")
    # two sizes below the cut: the log-linear law, forecast of the third, no finite interval
    assert "`loglinear`" in section(text, "### Fitted laws", "### Forecasts vs actual")
    assert "| unbounded |" in section(text, "### Forecasts vs actual", "## 4.")


def test_one_size_says_not_enough_sizes_to_fit(tmp_path):
    from rerank_scaling.report import build_report

    study = make_study(tmp_path / "study", n_sizes=1, checkpoints=3)
    text = build_report(study, n_boot=0).read_text()
    fitted = section(text, "### Fitted laws", "### Forecasts")
    assert "| ndcg@10 | — | — | — | not enough sizes to fit |" in fitted
    assert "No forecast to check: no model is larger than the fit cut." in text
    assert "Not possible: the joint law's size term needs at least 3 model sizes" in text


@pytest.mark.parametrize("setup", ["empty", "missing", "cells-without-results"])
def test_folder_without_results_is_a_one_line_user_error(tmp_path, capsys, setup):
    from rerank_scaling.cli import main

    folder = tmp_path / "study"
    if setup != "missing":
        folder.mkdir()
    if setup == "cells-without-results":  # a cell that never finished: nothing to collect
        (folder / "cells" / "scratch-L1-H64__listwise__human__ball__s0").mkdir(parents=True)
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(folder) in err
    assert not (folder / "REPORT.md").exists()


def test_an_error_midway_leaves_nothing_half_written(tmp_path, monkeypatch):
    from rerank_scaling.report import build_report
    from rerank_scaling.report import figures

    study = make_study(tmp_path / "study", n_sizes=4, checkpoints=3, failed=False)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(figures, "metrics_figure", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(study, n_boot=0)
    assert not (study / "REPORT.md").exists()
    assert not (study / "figures").exists()
    assert not list(study.glob(".report-*"))
