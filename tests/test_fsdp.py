"""Fully sharded data parallel on CPU: two processes (gloo), each holding half of the parameters,
train the same trajectory as one process with the same global batch; rank 0 evaluates and saves
the whole model, and an FSDP run killed after a checkpoint resumes to the same numbers."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import polars as pl
import pytest
import torch

from rerank_scaling.candidates import read_trec_run
from rerank_scaling.config import RunConfig
from rerank_scaling.errors import UserError
from rerank_scaling.models import get_family
from test_ddp import ROOT, _train, train_command

FSDP = ("--devices", "2", "--strategy", "fsdp")
COLS = ["step", "eval_set", "metric", "value"]


def _rows(folder):
    return pl.read_parquet(folder / "metrics.parquet").select(COLS).sort(COLS[:3])


def _same_rows(got, want) -> None:
    assert got.select(COLS[:3]).equals(want.select(COLS[:3]))
    for x, y in zip(want["value"], got["value"]):
        assert y == pytest.approx(x, rel=1e-3, abs=1e-4)


def _same_losses(got: list[dict], want: list[dict]) -> None:
    assert [e["step"] for e in got] == [e["step"] for e in want] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(want, got):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5)
        assert b["tokens_seen"] == a["tokens_seen"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_root):
    tmp = tmp_path_factory.mktemp("fsdp")
    one = _train(tmp / "one", shared_root, tmp / "cache", "--save-model", "true")
    two = _train(tmp / "two", shared_root, tmp / "cache", *FSDP, "--save-model", "true")
    return tmp, one, two


def test_two_process_fsdp_matches_one_process_with_the_same_global_batch(runs):
    tmp, one, two = runs
    assert one[0]["loss"] - one[-1]["loss"] > 0.01  # the trajectory moves, so a wrong update would show
    _same_losses(two, one)  # one log: rank 0 writes it; the losses and tokens are both processes'
    _same_rows(_rows(tmp / "two"), _rows(tmp / "one"))  # rank 0 evaluated the whole model at steps 3 and 6
    assert json.loads((tmp / "two" / "status.json").read_text())["state"] == "done"
    assert not (tmp / "two" / "checkpoints").exists()


def test_fsdp_saved_model_reloads_to_the_scores_of_its_final_evaluation(runs, cranfield):
    tmp, _, _ = runs
    loaded = {name: get_family("cross-encoder").load(tmp / name / "model") for name in ("one", "two")}
    ranking = read_trec_run(tmp / "two" / "runs" / "cranfield-test.trec")
    head = [(qid, doc, score) for qid, docs in ranking.items() for doc, score in docs[:10]]  # rerank_k: the model's
    queries, docs = [cranfield.queries[q] for q, _, _ in head], [cranfield.docs[d] for _, d, _ in head]
    scores = loaded["two"].score(queries, docs)
    assert scores.tolist() == pytest.approx([s for _, _, s in head], rel=1e-5, abs=1e-6)
    # and the one-process model's, up to a shift per query: the listwise loss cannot see one, so parameters
    # that only shift the scores (the head's bias, the keys' biases) get no gradient but float noise, which
    # AdamW normalises into steps of ~lr that differ between the runs
    qids = np.array([q for q, _, _ in head])

    def centred(values: np.ndarray) -> np.ndarray:
        return values - np.array([values[qids == q].mean() for q in qids])

    np.testing.assert_allclose(centred(scores), centred(loaded["one"].score(queries, docs)), atol=1e-5)
    assert loaded["two"].parameter_counts() == loaded["one"].parameter_counts()


def test_fsdp_run_killed_after_a_checkpoint_resumes_to_the_same_numbers(runs, shared_root):
    tmp, one, two = runs
    out = tmp / "killed"
    command, env = train_command(out, shared_root, tmp / "cache", *FSDP)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group: the launcher's second rank too
    checkpoint = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "status.json").exists(), "the run finished before it could be killed"
    # Lightning's FSDP checkpoint: one file with the full state dict (rank 0 wrote it), whole tensors
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["global_step"] == 3
    whole = get_family("cross-encoder").load(tmp / "one" / "model").state_dict()
    assert {k.removeprefix("model."): tuple(v.shape) for k, v in state["state_dict"].items()} == \
        {k: tuple(v.shape) for k, v in whole.items()}
    resumed = _train(out, shared_root, tmp / "cache", *FSDP)
    _same_losses(resumed, two)
    _same_losses(resumed, one)
    _same_rows(_rows(out), _rows(tmp / "two"))
    assert json.loads((out / "status.json").read_text())["state"] == "done"


def test_fsdp_needs_more_than_one_device():
    base = {"batch_size": 4}
    assert RunConfig.from_dict({**base, "devices": 2, "strategy": "fsdp"}).strategy == "fsdp"
    with pytest.raises(UserError, match=r'strategy = "fsdp" shards the model over devices and needs devices > 1'):
        RunConfig.from_dict({**base, "devices": 1, "strategy": "fsdp"})
    with pytest.raises(UserError, match=r'devices = 2 needs strategy = "ddp" or "fsdp"'):
        RunConfig.from_dict({**base, "devices": 2})
