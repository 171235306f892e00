"""Decoder-only backbones on the offline ``llama`` ladder: bidirectional attention, last-token pooling
under padding, LoRA (frozen base, trained adapters, N without adapters), save/load, both retriever families."""

import pytest
import torch

from rerank_scaling.config import RunConfig
from rerank_scaling.errors import UserError
from rerank_scaling.models import get_family
from rerank_scaling.models.backbone import load_backbone, parameter_counts, trainable_parameters
from rerank_scaling.models.decoder import is_causal, last_token, make_bidirectional
from rerank_scaling.models.ladder import ModelSpec

LLAMA = ModelSpec("llama", "L2-H64")


def _first_token_states(model, last_ids):
    ids = torch.tensor([[101, 2054, 2003, i] for i in last_ids])
    with torch.inference_mode():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[:, 0]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_later_token_changes_an_earlier_state_only_when_bidirectional(attention):
    model, _ = load_backbone(LLAMA, seed=0, pooling="mean")
    model.config._attn_implementation = attention
    model.eval()
    assert is_causal(model)
    causal = _first_token_states(model, [2158, 3899])
    assert torch.allclose(causal[0], causal[1])  # causal: the first token cannot see the last
    make_bidirectional(model)
    assert not is_causal(model)
    both = _first_token_states(model, [2158, 3899])
    assert not torch.allclose(both[0], both[1], atol=1e-4)


def test_an_encoder_is_not_made_bidirectional():
    model, _ = load_backbone(ModelSpec("scratch", "L1-H32"), pooling="mean")
    with pytest.raises(UserError, match="not a causal"):
        make_bidirectional(model, "scratch-L1-H32")


@pytest.mark.parametrize("side", ["right", "left"])
def test_last_token_pooling_reads_the_last_real_token(side):
    hidden = torch.randn(3, 5, 4)
    lengths = [5, 2, 1]
    mask = torch.zeros(3, 5, dtype=torch.long)
    for i, n in enumerate(lengths):
        if side == "right":
            mask[i, :n] = 1
        else:
            mask[i, 5 - n:] = 1
    want = torch.stack([hidden[i, n - 1 if side == "right" else 4] for i, n in enumerate(lengths)])
    assert torch.equal(last_token(hidden, mask), want)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_padded_text_embeds_as_it_does_alone(bidirectional):
    config = RunConfig.from_dict(dict(family="bi-encoder", objective="infonce", ladder="llama", size="L2-H64",
                                      bidirectional=bidirectional, similarity="dot"))
    model = get_family("bi-encoder").build(config)
    assert model.pooling == "last"  # a decoder's default
    short, long = "wing flutter", "the boundary layer of a swept wing at supersonic speed in a wind tunnel"
    together = model.encode([short, long], "doc")
    alone = model.encode([short], "doc")
    assert torch.allclose(together[0], alone[0], atol=1e-5)


def _lora_step(model, collection):
    from rerank_scaling.examples import Group

    qid = next(iter(collection.qrels))
    docs = list(collection.docs)[:3]
    groups = [Group(qid, (docs[0], docs[1]), (1, 0)), Group(qid, (docs[2], docs[1]), (1, 0))]
    batch = model.training_batch(groups, collection)
    torch.nn.functional.cross_entropy(model.group_scores(batch), batch["targets"]).backward()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    opt.step()


@pytest.mark.parametrize("family", ["bi-encoder", "sparse"])
def test_lora_trains_the_adapters_on_a_frozen_backbone(family, cranfield, tmp_path):
    plain = get_family(family).build(RunConfig(family=family, objective="infonce", ladder="llama", size="L2-H64"))
    model = get_family(family).build(RunConfig.from_dict(dict(family=family, objective="infonce", ladder="llama",
                                                              size="L2-H64", lora_rank=4, bidirectional=True)))
    assert model.parameter_counts() == plain.parameter_counts()  # N: the backbone, adapters not counted
    adapters = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    assert adapters and trainable_parameters(model) == sum(p.numel() for p in adapters.values())
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    _lora_step(model, cranfield)
    now = dict(model.named_parameters())
    assert all(torch.equal(now[n], v) for n, v in base.items())
    assert any(not torch.equal(now[n], v) for n, v in adapters.items())
    texts = ["flow over a flat plate", "heat transfer at hypersonic speeds"]
    before = model.score(texts, texts[::-1])
    model.save(tmp_path / "m")
    loaded = get_family(family).load(tmp_path / "m")  # adapters merged, attention bidirectional again
    assert not is_causal(loaded.towers[0].backbone if family == "bi-encoder" else loaded.mlm)
    assert parameter_counts(loaded) == plain.parameter_counts()
    assert torch.allclose(torch.as_tensor(loaded.score(texts, texts[::-1])), torch.as_tensor(before), atol=1e-4)


def test_the_sparse_family_reads_a_causal_lm_head():
    model = get_family("sparse").build(RunConfig(family="sparse", objective="infonce", ladder="llama",
                                                 size="L2-H64"))
    assert type(model.mlm).__name__ == "LlamaForCausalLM"
    assert model.vocab_size == 30522  # MiniLM's vocabulary, the head tied to the word embeddings
    weights = model.encode(["lift and drag of a wing"], "query")
    assert weights.shape == (1, 30522) and weights.nnz > 0


def test_lora_keys_need_a_rank_and_the_decoder_keys_a_retriever():
    with pytest.raises(UserError, match="need lora_rank"):
        RunConfig.from_dict(dict(family="bi-encoder", objective="infonce", lora_alpha=8))
    with pytest.raises(UserError, match="applies to family"):
        RunConfig.from_dict(dict(family="cross-encoder", bidirectional=True))
    with pytest.raises(UserError, match="lora_dropout"):
        RunConfig.from_dict(dict(family="sparse", objective="infonce", lora_rank=2, lora_dropout=1.5))
