"""A first-stage study's report: bi-encoder wording, the recall section, and Fang et al.'s laws over the
data budget per supervision, on a study folder made from known joint laws (one per supervision)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rerank_scaling.report import build_report
from rerank_scaling.results import frame, per_query_frame, write_parquet
from synthetic_study import write_cell

SIZES = (("1L", 1_770_000), ("2L", 3_550_000), ("3L", 5_320_000), ("4L", 7_100_000))
BUDGETS = (30, 60, 120, 240)
# supervision -> joint-fang (A, alpha, B, beta, delta) of ce-corpus@64; human has the lowest floor
LAWS = {"human": (1e6, 0.5, 20.0, 0.6, 1.0), "weak": (1e6, 0.5, 20.0, 0.6, 1.4), "ict": (1e6, 0.5, 40.0, 0.6, 1.6)}
BM25 = {"ndcg@10": 0.30, "recall@100": 0.70}
QUERIES = 40


def ce(sup: str, n: float, d: float) -> float:
    A, alpha, B, beta, delta = LAWS[sup]
    return ((A / n) ** (alpha / beta) + B / d) ** beta + delta


def config(size: str, sup: str, budget: int) -> dict:
    return {"family": "bi-encoder", "ladder": "minilm", "size": size, "objective": "infonce", "supervision": sup,
            "budget": budget, "train_collection": "cranfield", "train_split": "train", "candidates_k": 100,
            "rerank_k": 20, "steps": 20, "batch_size": 16, "seed": 0,
            "evals": [{"name": "cranfield-test", "collection": "cranfield", "split": "test", "in_domain": True}]}


def make_dense_study(root):
    rng = np.random.default_rng(0)
    common = dict(ladder="minilm", objective="infonce", seed=0, eval_set="cranfield-test", in_domain=True,
                  size_axis="non-embedding")
    bm25 = [dict(common, run="bm25", model="bm25", ladder="bm25", size="", params=0, total_params=0, objective="none",
                 supervision="none", budget=0, step=0, examples_seen=0, tokens_seen=0, flops=0.0, size_axis=None,
                 metric=m, value=v) for m, v in BM25.items()]
    rows = []
    # per-query values: each run's mean plus a query effect shared by every list (BM25 included) and the
    # run's own zero-mean noise, so the paired test sees each list's gap to BM25 through 40 queries of noise
    noise = np.random.default_rng(1)  # its own stream: the laws' noise stays as it was
    shared = noise.normal(0, 0.1, QUERIES)
    queries = [dict(run="bm25", eval_set="cranfield-test", metric=m, qid=f"q{i:02d}", value=float(v + shared[i]))
               for m, v in BM25.items() for i in range(QUERIES)]
    for size, n in SIZES:
        for sup in LAWS:
            for b in BUDGETS:
                run = f"bi-encoder__minilm-{size}__infonce__{sup}__b{b}__s0"
                y = ce(sup, n, b) + rng.normal(0, 0.003)
                values = {"ce-corpus@64": y, "ndcg@10": 0.9 - 0.3 * y, "recall@100": 1.2 - 0.3 * y}
                run_rows = [dict(common, run=run, model=f"minilm-{size}", size=size, params=n, total_params=n + 12_000_000,
                                 supervision=sup, budget=b, step=20, examples_seen=320, tokens_seen=320 * 96,
                                 flops=6.0 * n * 320 * 96, metric=m, value=float(v)) for m, v in values.items()]
                write_cell(root, run, config(size, sup, b), run_rows, bm25,
                           data={"train": {"queries": b, "instances": b}})
                rows += run_rows
                for m in BM25:
                    own = noise.normal(0, 0.03, QUERIES)
                    own -= own.mean()
                    queries += [dict(run=run, eval_set="cranfield-test", metric=m, qid=f"q{i:02d}",
                                     value=float(values[m] + shared[i] + own[i])) for i in range(QUERIES)]
    write_parquet(frame(bm25 + rows), root / "results.parquet")
    write_parquet(per_query_frame(queries), root / "per_query.parquet")
    return root


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    root = make_dense_study(tmp_path_factory.mktemp("dense") / "study")
    return build_report(root, n_boot=60).read_text()


def section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def test_wording_follows_the_family(text):
    assert "## 2. BM25 against the bi-encoders" in text and "48 bi-encoder runs + BM25" in text
    assert "reranker runs" not in text and "A reranker beats" not in text and "No reranker" not in text
    headings = re.findall(r"^## (\d+)\. (.*)$", text, flags=re.M)
    assert [int(n) for n, _ in headings] == list(range(1, len(headings) + 1))  # numbered in order
    caveats = next(n for n, title in headings if title == "Caveats")
    assert f"](#{caveats}-caveats)" in text


def test_first_stage_section_compares_recall_with_bm25(text):
    first = section(text, "First stage: recall of the retrieved lists", "## 4.")
    assert "| BM25 |" in first and "0.7000" in first
    line = next(line for line in first.splitlines() if line.startswith("**Best recall@100"))
    assert "`minilm-4L` (infonce, supervision human, budget 240)" in line and "vs BM25's 0.7000" in line
    best = float(re.search(r"budget 240\), ([0-9.]+) vs", line).group(1))
    assert best == pytest.approx(1.2 - 0.3 * ce("human", 7_100_000, 240), abs=0.01)
    rows = [line for line in first.splitlines() if line.startswith("| `minilm-")]
    assert len(rows) == 48 and rows[0].startswith("| `minilm-1L` | infonce | 1.77M | human | 30 |")
    above = sum(1.2 - 0.3 * ce(s, n, b) > 0.70 for s in LAWS for _, n in SIZES for b in BUDGETS)
    assert f"{above} of 48 bi-encoder lists have a higher recall@100" in line


def test_first_stage_section_tests_each_list_against_bm25(text):
    first = section(text, "First stage: recall of the retrieved lists", "## 4.")
    header = next(line for line in first.splitlines() if line.startswith("| list |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[-4:] == ["recall@100 - BM25", "p (recall@100, Holm)", "ndcg@10 - BM25", "p (ndcg@10, Holm)"]
    assert f"Paired randomization test over the {QUERIES} queries" in first
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in first.splitlines()
            if line.startswith("| `minilm-")]
    for metric, gap_col in (("recall@100", -4), ("ndcg@10", -2)):
        gaps = [float(r[gap_col]) for r in rows]
        bold = [r[gap_col + 1].startswith("**") for r in rows]
        ps = [float(r[gap_col + 1].strip("*")) for r in rows]
        # a gap 5 noise standard errors away is found after Holm over 48 lists; a gap under one is not
        assert all(b for g, b in zip(gaps, bold) if abs(g) > 5 * 0.03 / QUERIES ** 0.5 * 4)
        assert not any(b for g, b in zip(gaps, bold) if abs(g) < 0.03 / QUERIES ** 0.5)
        assert all((p < 0.05) == b for p, b in zip(ps, bold))
        above = sum(b and g > 0 for g, b in zip(gaps, bold))
        below = sum(b and g < 0 for g, b in zip(gaps, bold))
        assert 0 < above < 48 and below > 0
        assert (f"- {metric}: {above} of 48 bi-encoder lists significantly above BM25's, {below} significantly "
                f"below, {48 - above - below} not told apart from it") in first


def test_data_section_shows_the_measured_axis_and_its_figure(text):
    data = section(text, "Scaling with data and annotation quality", "## 6.")
    assert "![ce-corpus@64 vs data budget, cranfield-test](figures/data_ce-corpus64_cranfield-test.png)" in data
    rows = [line for line in data.splitlines() if line.startswith("| human |")]
    assert len(rows) == len(SIZES)  # final ce-corpus@64 of each size, one column per budget
    assert "| D = 30 | D = 60 | D = 120 | D = 240 |" in data
    assert "`joint-fang`" not in data  # the laws are in the appendix


def test_data_appendix_recovers_each_supervisions_joint_law(text):
    data = section(text, "### B. Laws over data", "### C. Compute allocation")
    assert "`ce-corpus@64`" in data and "D = 240" in data
    assert "The size law has 4 size(s) per budget and the data law 4 budget(s) per model" in data
    joint = section(data, "#### Joint law per supervision", "#### Annotation quality")
    for sup, (_, alpha, _, beta, delta) in LAWS.items():
        row = next(line for line in joint.splitlines() if f"| {sup} |" in line)
        fitted = {k: float(v) for k, v in re.findall(r"(\w+) = ([-0-9.e+]+)", row)}
        assert fitted["delta"] == pytest.approx(delta, abs=0.08)
        assert fitted["beta"] == pytest.approx(beta, abs=0.15)
        assert fitted["alpha"] == pytest.approx(alpha, abs=0.15)
    comparison = data[data.index("#### Annotation quality"):]
    assert re.search(r"Lower is better: human [0-9.]+ < weak [0-9.]+ < ict [0-9.]+\.", comparison)
    assert "the ranking holds beyond run-to-run noise" in comparison  # floors 0.4 apart, noise 0.003


def test_data_laws_per_model_and_budget(text):
    data = section(text, "### B. Laws over data", "### C. Compute allocation")
    size = section(data, "#### Size law per budget", "#### Data law per model")
    rows = [line for line in size.splitlines() if line.startswith("| cranfield-test |")]
    assert len(rows) == 3 * 4
    assert [r.split(" | ")[2] for r in rows[:4]] == [str(b) for b in BUDGETS]  # budgets in numeric order
    per_model = section(data, "#### Data law per model", "#### Joint law")
    assert len([line for line in per_model.splitlines() if line.startswith("| cranfield-test |")]) == 3 * 4
