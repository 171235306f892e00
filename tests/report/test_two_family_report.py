"""A sparse + dense study's report (Zeng et al.'s grid: two retriever families x CL / KD / CL+KD x sizes):
every table and verdict names the family, the sparse retrievers' sparsity stands beside their quality, and
the distillation teacher (a reranker run folder of this toolkit) is named with its own ndcg@10 vs BM25's.

The study folder is what a grid writes (cells with config/status/metrics, the collected table); its
values follow known size laws per family and objective, so each group's fit is checked against them."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from rerank_scaling.report import build_report
from rerank_scaling.report.study import load_study
from rerank_scaling.results import frame, write_parquet
from synthetic_study import section, write_cell

SIZES = (("1L", 1_780_000), ("2L", 3_560_000), ("3L", 5_330_000), ("4L", 7_110_000))
SPARSE_HEAD = 178_000  # the MLM head's transform + bias: a sparse model of a size has more non-embedding N
OBJECTIVES = ("infonce-hard", "marginmse", "cl-kd")
# (family, objective) -> ndcg@10 = top - (A / N)^alpha: sparse higher, CL scaling fastest
TOP = {"sparse": 0.40, "bi-encoder": 0.30}
ALPHA = {"infonce-hard": 0.5, "marginmse": 0.1, "cl-kd": 0.3}
BM25 = {"ndcg@10": 0.31, "recall@100": 0.74}
TEACHER_NDCG, TEACHER_BM25 = 0.3567, 0.3123


def ndcg(family: str, objective: str, n: float) -> float:
    return TOP[family] - 0.2 * (1e6 / n) ** ALPHA[objective]


def cell_config(family: str, size: str, objective: str, teacher) -> dict:
    return {"family": family, "ladder": "minilm", "size": size, "objective": objective, "supervision": "human",
            "budget": "all", "train_collection": "cranfield", "train_split": "train", "candidates_k": 30,
            "rerank_k": 20, "steps": 16, "batch_size": 8, "seed": 0, "teacher": str(teacher),
            "evals": [{"name": "cranfield-test", "collection": "cranfield", "split": "test", "in_domain": True}]}


def make_teacher(root):
    """A cross-encoder run folder as `rerank-scaling train --save-model true` leaves it (metrics, baseline)."""
    run = root / "teacher"
    (run / "model").mkdir(parents=True)
    (run / "model" / "family.json").write_text(json.dumps({"family": "cross-encoder"}))
    (run / "config.json").write_text(json.dumps({"family": "cross-encoder", "ladder": "minilm", "size": "2L",
                                                 "objective": "listwise", "steps": 60}))
    common = dict(ladder="minilm", objective="listwise", seed=0, eval_set="cranfield-test", in_domain=True,
                  supervision="human", budget=135, size_axis="non-embedding", family="cross-encoder")
    rows = [dict(common, run="teacher", model="minilm-2L", size="2L", params=3_550_000, total_params=15e6, step=s,
                 examples_seen=8 * s, tokens_seen=1000 * s, flops=1.0, metric="ndcg@10", value=v)
            for s, v in ((30, 0.30), (60, TEACHER_NDCG))]
    write_parquet(frame(rows), run / "metrics.parquet")
    write_parquet(frame([dict(common, run="bm25", model="bm25", ladder="bm25", size="", params=0, total_params=0,
                              objective="none", supervision="none", step=0, examples_seen=0, tokens_seen=0, flops=0.0,
                              size_axis=None, family=None, metric="ndcg@10", value=TEACHER_BM25)]),
                  run / "baseline.parquet")
    return run


def make_study(root):
    teacher = make_teacher(root)
    study = root / "study"
    rng = np.random.default_rng(0)
    common = dict(ladder="minilm", seed=0, eval_set="cranfield-test", in_domain=True, size_axis="non-embedding",
                  supervision="human", budget=135)
    bm25 = [dict(common, run="bm25", model="bm25", ladder="bm25", size="", params=0, total_params=0, objective="none",
                 supervision="none", step=0, examples_seen=0, tokens_seen=0, flops=0.0, size_axis=None, family=None,
                 metric=m, value=v) for m, v in BM25.items()]
    rows = []
    for family in TOP:
        for size, n in SIZES:
            n = n + (SPARSE_HEAD if family == "sparse" else 0)
            for objective in OBJECTIVES:
                run = f"{family}__minilm-{size}__{objective}__human__s0"
                y = ndcg(family, objective, n) + rng.normal(0, 0.001)
                values = {"ndcg@10": y, "recall@100": 0.3 + y, "ce@7": 2.0 - y}
                if family == "sparse":  # the costs: fewer active terms as the model grows
                    values.update({"active-q": 40.0 - int(size[0]), "active-d": 300.0 - 10 * int(size[0]),
                                   "flops": 1.5 + 0.1 * int(size[0])})
                run_rows = [dict(common, run=run, family=family, model=f"minilm-{size}", size=size, params=n,
                                 total_params=n + 11_700_000, objective=objective, step=16, examples_seen=128,
                                 tokens_seen=128 * 300, flops=6.0 * n * 128 * 300, metric=m, value=float(v))
                            for m, v in values.items()]
                write_cell(study, run, cell_config(family, size, objective, teacher), run_rows, bm25, 60.0)
                rows += run_rows
    write_parquet(frame(bm25 + rows), study / "results.parquet")
    return study


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("two-family"))


@pytest.fixture(scope="module")
def text(study_dir):
    return build_report(study_dir, n_boot=40).read_text()


def test_teacher_is_named_with_its_own_quality(text, study_dir):
    [teacher] = load_study(study_dir).teachers()
    assert teacher.objectives == ("cl-kd", "marginmse")  # infonce-hard cells ignore the teacher
    assert teacher.source == "../teacher"  # relative to the study folder
    line = next(line for line in text.splitlines() if line.startswith("- **Distillation teacher**"))
    assert "`../teacher` (taught cl-kd, marginmse): cross-encoder `minilm-2L`, listwise, 60 steps" in line
    assert f"ndcg@10 {TEACHER_NDCG:.4f} vs BM25's {TEACHER_BM25:.4f} on cranfield-test" in line  # the last step's
    # the settings table names it the same way, not by the absolute path the cells recorded
    assert "| teacher | ../teacher |" in text and str(study_dir.parent) not in text


def test_first_stage_rows_name_family_and_objective_with_sparsity(text):
    first = section(text, "First stage: recall of the retrieved lists", "## 4.")
    assert "The lists are 30 deep (`[candidates] k`), so recall@100 here is recall@30" in first
    header = next(line for line in first.splitlines() if line.startswith("| list |"))
    assert header.split(" | ")[:4] == ["| list", "objective", "N", "family"]
    assert header.rstrip(" |").endswith("active-q | active-d | flops")
    rows = [line.split(" | ") for line in first.splitlines() if line.startswith("| `minilm-")]
    assert len(rows) == 2 * len(SIZES) * len(OBJECTIVES)
    assert len({(r[0], r[1], r[3]) for r in rows}) == len(rows)  # every row tells which cell it is
    sparse = next(r for r in rows if r[0] == "| `minilm-3L`" and r[1] == "cl-kd" and r[3] == "sparse")
    dense = next(r for r in rows if r[0] == "| `minilm-3L`" and r[1] == "cl-kd" and r[3] == "bi-encoder")
    assert [c.strip(" |") for c in sparse[-3:]] == ["37", "270", "1.8"]
    assert [c.strip(" |") for c in dense[-3:]] == ["—"] * 3
    best = next(line for line in first.splitlines() if line.startswith("**Best recall@100"))
    assert "`minilm-4L` (infonce-hard, family sparse)" in best


def test_verdicts_and_fits_are_per_family_and_objective(text):
    verdicts = section(text, "### Size check", "### Exposure check")
    header = next(line for line in verdicts.splitlines() if line.startswith("| metric |"))
    assert header.startswith("| metric | family | objective |")
    rows = [line.split(" | ") for line in verdicts.splitlines() if line.startswith("| ndcg@10 |")]
    assert sorted((r[1], r[2]) for r in rows) == sorted((f, o) for f in TOP for o in OBJECTIVES)
    fits = section(text, "### A. Size laws", "### C.")
    for family in TOP:
        for objective in OBJECTIVES:
            assert re.search(rf"\| ndcg@10 \| {family} \| cranfield-test \| {objective} \|", fits)


def test_significance_labels_and_bm25_line_name_the_family(text):
    assert re.search(r"the best, `minilm-4L` \(sparse, infonce-hard\)", text)
    tests = [line for line in text.splitlines() if line.startswith("- `minilm-") and " vs BM25:" in line]
    assert tests == []  # no per_query.parquet in this folder: nothing to test, and the report says so
    assert "Significance not tested" in text
