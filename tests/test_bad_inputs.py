"""Bad input, as a new user types it: one line naming the file, key or value; exit 2; no
traceback; nothing written. Each case is (argv, a fragment the message must hold)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rerank_scaling.cli import main

from tiny_experiment import TINY

TRAIN = ["train", "--out", "{tmp}/run", "--data-root", "{shared}", "--ladder", "scratch", "--size", "L1-H64"]
CASES = [
    # train flags
    (TRAIN + ["--threads", "-1"], "threads must be a positive integer or omitted, got -1"),
    (TRAIN + ["--batch-size", "true"], "--batch-size must be a positive integer, got 'true'"),
    (TRAIN + ["--lr", "abc"], "--lr must be a number > 0, got 'abc'"),
    (TRAIN + ["--pooling", "max"], "unknown pooling 'max' (choose from cls, mean, last)"),
    (TRAIN + ["--precision", "fp7"], "unknown precision 'fp7'"),
    (TRAIN + ["--warmup-steps", "-5"], "--warmup-steps must be a non-negative integer, got -5"),
    (TRAIN + ["--weight-decay", "lots"], "--weight-decay must be a number >= 0, got 'lots'"),
    (TRAIN + ["--objective", "softmax"], "unknown objective 'softmax'"),
    (TRAIN + ["--ladder", "gpt"], "unknown ladder 'gpt'"),
    (TRAIN[:-4] + ["--ladder", "minilm", "--size", "5L"], "size '5L' is not in ladder 'minilm'"),
    (TRAIN + ["--supervision", "noisy"], "--supervision must be human, weak, mixed or ict, optionally with -noise<P>"),
    (TRAIN + ["--family", "bi"], "unknown model family 'bi'"),
    (TRAIN + ["--budget", "0"], "budget must be a positive integer or omitted, got 0"),
    (TRAIN + ["--rerank-k", "200"], "rerank_k (200) cannot exceed candidates_k (100)"),
    (TRAIN + ["--eval", "nonsense"], "--eval must be NAME=SPEC[:SPLIT], got 'nonsense'"),
    (TRAIN + ["--eval", "x=/no/such/folder"], "/no/such/folder"),
    (TRAIN + ["--config", "{tmp}/missing.toml"], "config file not found: {tmp}/missing.toml"),
    (TRAIN + ["--config", "{tmp}/broken.toml"], "{tmp}/broken.toml: invalid TOML"),
    (TRAIN + ["--config", "{tmp}/unknown.toml"], "unknown key 'batch_sise'"),
    (["train", "--out", "{tmp}/a-file", "--data-root", "{shared}", "--ladder", "scratch", "--size", "L1-H64"],
     "--out: {tmp}/a-file: {tmp}/a-file exists and is not a folder"),
    (["train", "--out", "{tmp}/a-file/run", "--ladder", "scratch", "--size", "L1-H64"],
     "{tmp}/a-file exists and is not a folder"),
    (["train", "--ladder", "scratch"], "the following arguments are required: --out"),
    # grid
    (["grid", "run", "{tmp}/missing.toml"], "experiment file not found"),
    (["grid", "run", "{tmp}/exp-ten.toml", "--out", "{tmp}/study"],
     "eval 'cisi': max_queries must be a positive integer or omitted, got 'ten'"),
    (["grid", "run", "{tmp}/exp-nodomain.toml", "--out", "{tmp}/study"], "in_domain must be true or false, got 'no'"),
    (["grid", "run", "{tmp}/exp.toml", "--out", "{tmp}/study", "--workers", "0"], "--workers must be a positive integer, got 0"),
    (["grid", "run", "{tmp}/exp.toml", "--out", "{tmp}/a-file"], "exists and is not a folder"),
    (["grid", "run", "{tmp}/exp.toml", "--executor", "kubernetes"], "invalid choice: 'kubernetes'"),
    (["grid", "status", "{tmp}"], "not a study folder (no cells/ inside)"),
    (["grid", "collect", "{tmp}/empty-study"], "no finished cell to collect"),
    (["grid", "frobnicate"], "invalid choice: 'frobnicate'"),
    # analysis on tables
    (["forecast", "{tmp}/missing.csv", "--metric", "ndcg@10", "--fit-max-params", "1e6"], "missing.csv"),
    (["forecast", "{tmp}/bad.csv", "--metric", "ndcg@10", "--fit-max-params", "1e6"], "params"),
    (["forecast", "{tmp}/good.csv", "--metric", "ndcg@11", "--fit-max-params", "2e6"], "ndcg@11"),
    (["forecast", "{tmp}/good.csv", "--metric", "ndcg@10", "--fit-max-params", "lots"], "--fit-max-params must be a number > 0 (400e6, 400M, 1.5B), got 'lots'"),
    (["verdicts", "{tmp}/good.csv", "--level", "1.5"], "--level must be a level in (0, 1), got 1.5"),
    (["allocate", "{tmp}/good.csv", "--metric", "ndcg@10", "--flops", "abc"], "--flops must be a number > 0 (400e6, 400M, 1.5B), got 'abc'"),
    (["backtest", "{tmp}/missing.csv"], "missing.csv"),
    # every value outside its declared range, on any command (a few of the classes tests/test_every_value.py walks)
    (TRAIN + ["--dropout", "1.5"], "--dropout must be a probability in [0, 1) or omitted, got 1.5"),
    (TRAIN + ["--seed", "-1"], "--seed must be a seed (an integer in [0, 2^32)), got -1"),
    (["forecast", "{tmp}/good.csv", "--metric", "ndcg@10", "--fit-max-params", "2e6", "--seed", "-1"],
     "--seed must be a seed (an integer in [0, 2^32)), got -1"),
    (["allocate", "{tmp}/good.csv", "--metric", "ndcg@10", "--flops", "1e15", "--tolerance", "-1"],
     "--tolerance must be a number >= 0, got -1"),
    (["backtest", "{tmp}/good.csv", "--holdouts", "0"], "--holdouts: each value must be a positive integer, got 0"),
    (["verdicts", "{tmp}/good.csv", "--fit-max-params", "2e6", "--min-coverage", "3"],
     "--min-coverage must be a fraction in [0, 1], got 3"),
    # values only the table knows, checked against it before fitting
    (["verdicts", "{tmp}/good.csv", "--fit-max-params", "2e6", "--eval-set", "nope"],
     "--eval-set 'nope' is not in the table (it has: default)"),
    (["backtest", "{tmp}/good.csv", "--metrics", "nope"], "--metrics 'nope' is not in the table (it has: ndcg@10)"),
    # rows of a table, checked as data
    (["forecast", "{tmp}/nan.csv", "--metric", "ndcg@10", "--fit-max-params", "2e6"],
     "nan.csv: column 'value' has nan (row 3); every value must be a finite number"),
    (["fit", "{tmp}/dup.csv", "--metric", "ndcg@10"], "dup.csv: rows 2 and 5 are one measurement"),
    # settings in range that cannot mean anything
    (TRAIN + ["--max-length", "4"], "max_length = 4 leaves no room for document tokens"),
    (TRAIN + ["--family", "query-distill", "--objective", "query-distill", "--teacher", "x", "--mse-weight", "0",
              "--cosine-weight", "0"], "mse_weight and cosine_weight are both 0, so the loss is 0"),
    # messages that say what is wrong
    (TRAIN + ["--eval", "x=cranfield:valid"], "unknown split 'valid' of cranfield (splits: train, dev, test)"),
    (TRAIN + ["--data-root", "{tmp}/empty-study"], "has no ir_datasets/ folder (expected {tmp}/empty-study/ir_datasets/"),
    (TRAIN + ["--cache-dir", "{tmp}/a-file"], "cache_dir {tmp}/a-file: {tmp}/a-file exists and is not a folder"),
    (["grid", "run", "{tmp}/exp-name.toml", "--out", "{tmp}/study"], "eval 'a/b': name must be a name"),
    # report
    (["report", "{tmp}/no-study"], "study folder not found: {tmp}/no-study"),
    (["report", "{tmp}/empty-study"], "no results.parquet and no cells/ to collect it from"),
    (["report", "{tmp}/good-study", "--bootstrap", "-1"], "--bootstrap must be a non-negative integer, got -1"),
    (["report", "{tmp}/good-study", "--out", "{tmp}/a-file/REPORT.md"], "exists and is not a folder"),
]


@pytest.fixture()
def files(tmp_path, shared_root):
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "broken.toml").write_text("steps = [\n")
    (tmp_path / "unknown.toml").write_text("batch_sise = 2\n")
    text = TINY.format(shared=shared_root, cache=tmp_path / "cache", steps=4)
    (tmp_path / "exp.toml").write_text(text)
    (tmp_path / "exp-ten.toml").write_text(text.replace("max_queries = 3", 'max_queries = "ten"'))
    (tmp_path / "exp-nodomain.toml").write_text(text.replace("in_domain = true", 'in_domain = "no"'))
    (tmp_path / "empty-study" / "cells").mkdir(parents=True)
    rows = ["objective,model,params,metric,value"]
    rows += [f"listwise,m{i},{n:.0f},ndcg@10,{0.3 + 0.02 * i}" for i, n in enumerate((1e6, 2e6, 4e6, 8e6))]
    (tmp_path / "good.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "bad.csv").write_text("\n".join(rows[:2] + ["listwise,m9,lots,ndcg@10,0.4"]) + "\n")
    (tmp_path / "nan.csv").write_text("\n".join(rows[:3] + ["listwise,m2,4000000,ndcg@10,nan"]) + "\n")
    (tmp_path / "dup.csv").write_text("\n".join(rows + [rows[2]]) + "\n")
    (tmp_path / "exp-name.toml").write_text(text.replace('name = "cisi"', 'name = "a/b"'))
    study = tmp_path / "good-study"
    study.mkdir()
    import polars as pl

    from benchmarks.synthetic import synthetic_table

    synthetic_table(objectives=("listwise",), checkpoints=2, metrics=("ndcg@10",), seed=1).write_parquet(
        study / "results.parquet")
    return tmp_path, shared_root, pl


@pytest.mark.parametrize("argv,fragment", CASES, ids=[" ".join(a[:2]) + f" #{i}" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(files, argv, fragment, capsys):
    tmp, shared, _ = files
    before = sorted(str(p) for p in tmp.rglob("*"))
    argv = [a.format(tmp=tmp, shared=shared) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (argv, captured.out[-500:], err[-500:])
    assert fragment.format(tmp=tmp) in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    created = sorted(set(str(p) for p in tmp.rglob("*")) - set(before))
    assert all(os.sep + "cache" in p or p.endswith("cache") for p in created), created  # only warmed caches


def test_an_unwritable_out_is_one_line(tmp_path, shared_root, monkeypatch, capsys):
    """As root no folder is unwritable, so the OS refusal is simulated where the run folder is made."""
    from rerank_scaling import rundir

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self.path))

    monkeypatch.setattr(rundir.RunFolder, "create", refuse)
    out = tmp_path / "run"
    code = main(["train", "--out", str(out), "--data-root", str(shared_root), "--ladder", "scratch", "--size",
                 "L1-H64", "--steps", "1", "--warmup-steps", "0", "--eval", "cranfield-test=cranfield:test"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: {out}: Permission denied"
    assert not Path(out).exists()


def test_verdicts_with_a_cut_below_every_size_say_why(files, capsys):
    tmp, _, _ = files
    assert main(["verdicts", str(tmp / "good.csv"), "--fit-max-params", "10", "--no-exposure"]) == 0
    err = capsys.readouterr().err
    assert "--fit-max-params 10 is below every model size (smallest N = 1,000,000)" in err
