"""The robustness section on a sparse + dense study trained on clean and on 50%-noisy labels: per model the
change, the slope per 10 points of noise and the paired test; per (model, objective) which family loses less."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rerank_scaling.report.robustness import family_contrasts, robustness_section, slope, systems
from rerank_scaling.report.study import load_study
from rerank_scaling.results import frame, write_parquet
from synthetic_study import write_cell

QIDS = [f"q{i:02d}" for i in range(30)]
SIZES = (("1L", 1_800_000), ("2L", 3_600_000))
# drop from clean to 50% noise (mean, spread over queries): dense loses 0.10 on every query; sparse 1L 0.01 on
# every query, sparse 2L 0.095 on average but spread widely over the queries
DROP = {("bi-encoder", "1L"): (0.10, 0.002), ("bi-encoder", "2L"): (0.10, 0.002), ("sparse", "1L"): (0.01, 0.002),
        ("sparse", "2L"): (0.095, 0.05)}


def make_study(root):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, len(QIDS))
    common = dict(ladder="minilm", seed=0, eval_set="cranfield-test", in_domain=True, size_axis="non-embedding",
                  budget=135, objective="infonce-hard", step=30, examples_seen=240, tokens_seen=1e4, flops=1.0)
    bm25 = [dict(common, run="bm25", model="bm25", ladder="bm25", size="", params=0, total_params=0, objective="none",
                 supervision="none", step=0, family=None, size_axis=None, metric="ndcg@10", value=0.3)]
    rows, per_query = [], []
    for (family, size), (drop, spread) in DROP.items():
        n = dict(SIZES)[size]
        for supervision, noisy in (("human", False), ("human-noise50", True)):
            values = base + 0.05 * (family == "sparse") - (drop + rng.normal(0, spread, len(QIDS))) * noisy
            run = f"{family}__minilm-{size}__infonce-hard__{supervision}__s0"
            run_rows = [dict(common, run=run, family=family, model=f"minilm-{size}", size=size, params=n,
                             total_params=n * 5, supervision=supervision, metric="ndcg@10", value=float(values.mean()))]
            config = {"family": family, "ladder": "minilm", "size": size, "objective": "infonce-hard",
                      "supervision": supervision, "budget": "all", "seed": 0, "steps": 30,
                      "evals": [{"name": "cranfield-test", "collection": "cranfield", "split": "test", "in_domain": True}]}
            write_cell(root, run, config, run_rows, bm25)
            rows += run_rows
            per_query += [{"run": run, "eval_set": "cranfield-test", "metric": "ndcg@10", "qid": q, "value": float(v)}
                          for q, v in zip(QIDS, values)]
    write_parquet(frame(bm25 + rows), root / "results.parquet")
    write_parquet(pl.DataFrame(per_query), root / "per_query.parquet")
    return load_study(root)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("noisy"))


def test_slope_is_per_ten_points_of_noise():
    assert slope([0.0, 0.5], [0.40, 0.30]) == pytest.approx(-0.02)
    assert slope([0.0, 0.2, 0.5], [0.4, 0.36, 0.30]) == pytest.approx(np.polyfit([0, .2, .5], [.4, .36, .3], 1)[0] / 10)
    assert np.isnan(slope([0.2, 0.2], [0.3, 0.4]))


def test_each_model_gets_its_change_and_slope(study):
    records = {(r["key"]["family"], r["key"]["model"]): r for r in systems(study, "cranfield-test", "ndcg@10")}
    assert set(records) == {(f, f"minilm-{s}") for f, s in DROP}
    for (family, size), (drop, spread) in DROP.items():
        r = records[(family, f"minilm-{size}")]
        assert r["key"]["source"] == "human" and set(r["levels"]) == {0.0, 0.5}
        assert r["change"] == pytest.approx(-drop, abs=3 * spread / np.sqrt(len(QIDS)))
        assert r["slope"] == pytest.approx(r["change"] / 5)


def test_family_contrast_finds_where_sparse_loses_less(study):
    contrasts = {c["model"]: c for c in family_contrasts(systems(study, "cranfield-test", "ndcg@10"))}
    assert contrasts["minilm-1L"]["families"] == ("bi-encoder", "sparse")
    a, b = contrasts["minilm-1L"]["pair"]  # per-query changes: dense's, sparse's
    assert (a - b).mean() == pytest.approx(-0.09, abs=0.002)
    text = "\n".join(robustness_section(study))
    assert "Robustness to noisy supervision" in text and "noise 50%" in text
    assert "Noise lowers ndcg@10 significantly in 4 of 4 models" in text
    # 1L: sparse loses 0.09 less, on every query (significant); 2L: 0.005 less, within the noise between queries
    assert "bi-encoder fares better under noise than sparse in 0 of 2 pairs; differences significant: 1 of 2 (`minilm-1L`" in text
    assert "| family | model | objective | N | labels | clean | noise 50% |" in text and "|---|---|---|---|---|---:|" in text


def test_a_study_without_noise_has_no_section(tmp_path):
    study = make_study(tmp_path)
    clean = study.finals.filter(pl.col("supervision") == "human")
    study.finals = clean
    assert systems(study, "cranfield-test", "ndcg@10") == [] and robustness_section(study) == []

