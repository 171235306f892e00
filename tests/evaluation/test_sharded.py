"""Evaluation shared out over two processes (gloo): each scores its share, the rows equal one process's."""

import pickle

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.evaluation.checkpoint import evaluate_checkpoint
from rerank_scaling.evaluation.sharded import ShardedModel, batch_order, share
from rerank_scaling.models import get_family
from rerank_scaling.pipeline.prepare import prepare


def _configs(shared_root, cache):
    common = dict(data_root=str(shared_root), cache_dir=str(cache), ladder="scratch", size="L1-H32", budget=10,
                  candidates_k=20, rerank_k=10, ce_negatives=4, max_length=48, eval_batch_size=7,
                  evals=(EvalSpec("cranfield-test", "cranfield", "test", 12, True),))
    return RunConfig(**common), RunConfig(**common, family="bi-encoder", objective="infonce")


def _rank(rank, folder, configs, evalsets):
    dist.init_process_group("gloo", init_method=f"file://{folder}/group", rank=rank, world_size=2)
    try:
        out = {}
        for config in configs:
            model = get_family(config.family).build(config)
            model.load_state_dict(torch.load(folder / f"{config.family}.pt", weights_only=True))
            scorer = ShardedModel(model, rank, 2)
            rows, rankings, _ = evaluate_checkpoint(scorer, evalsets, config.metrics, {"run": "x"},
                                                    config.eval_batch_size, depth=config.candidates_k)
            out[config.family] = (rows, rankings, scorer.scored)
        (folder / f"rank{rank}.pkl").write_bytes(pickle.dumps(out))
    finally:
        dist.destroy_process_group()


def test_two_processes_each_score_a_share_and_get_one_process_rows(tmp_path, shared_root):
    configs = _configs(shared_root, tmp_path / "cache")
    evalsets = prepare(configs[0]).evalsets
    want = {}
    for config in configs:
        model = get_family(config.family).build(config)
        torch.save(model.state_dict(), tmp_path / f"{config.family}.pt")
        rows, rankings, _ = evaluate_checkpoint(model, evalsets, config.metrics, {"run": "x"},
                                                config.eval_batch_size, depth=config.candidates_k)
        want[config.family] = (rows, rankings)
    mp.spawn(_rank, args=(tmp_path, configs, evalsets), nprocs=2, join=True)
    got = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in (0, 1)]
    pairs = len(evalsets[0].pairs())
    for family, (rows, rankings) in want.items():
        assert len(rows) > 5 and len(rankings["cranfield-test"]) == 12
        for rank in (0, 1):
            got_rows, got_rankings, scored = got[rank][family]
            assert got_rows == rows  # identical, not close: every batch is the one a single process scores
            assert got_rankings == rankings
        shares = [got[r][family][2] for r in (0, 1)]
        if family == "cross-encoder":  # each rank scored about half of the pairs, together every pair once
            assert sum(shares) == pairs and min(shares) >= pairs // 2 - 7
        else:  # a retriever encodes the corpus and the queries in shares
            assert min(shares) > 0 and sum(shares) > pairs // 10


def test_shares_are_whole_batches_of_the_longest_first_order():
    lengths = [3, 9, 9, 1, 5, 7, 2]
    order = batch_order(lengths)
    assert order.tolist() == [1, 2, 5, 4, 0, 6, 3]  # longest first, ties in input order
    assert share(order, 2, 0, 2).tolist() == [1, 2, 0, 6]  # batches 0 and 2
    assert share(order, 2, 1, 2).tolist() == [5, 4, 3]  # batches 1 and 3
    assert share(order, 4, 1, 3).tolist() == [0, 6, 3]  # a rank without a batch gets none
    assert share(order, 4, 2, 3).tolist() == []


def test_a_sharded_model_is_the_model_for_everything_else():
    class Model:
        stage = "retrieval"

        def training_flops(self, tokens):
            return 6 * tokens

    sharded = ShardedModel(Model(), 0, 2, gather=lambda obj: [obj])
    assert sharded.stage == "retrieval" and sharded.training_flops(10) == 60
    with pytest.raises(AttributeError):
        sharded.missing  # noqa: B018
