"""Experiment files: expansion into typed cells, and one-line errors naming file, key and value."""

import pytest

from rerank_scaling.config import load_experiment
from rerank_scaling.errors import UserError

from tiny_experiment import TINY


def test_experiment_expands_into_validated_cells(write_experiment):
    exp = load_experiment(write_experiment())
    assert len(exp.cells) == 2 * 2
    assert {(c.size, c.objective) for c in exp.cells} == {
        (s, o) for s in ("L1-H64", "L2-H128") for o in ("pointwise", "listwise")
    }
    assert all(c.threads == 1 and c.rerank_k == 8 and c.budget == 10 for c in exp.cells)
    assert len({c.run_id for c in exp.cells}) == 4


@pytest.mark.parametrize(
    "old,new,message",
    [
        ('objectives = ["pointwise", "listwise"]', 'objectives = ["pointwise", "softmax"]',
         "grid.objectives: unknown objective 'softmax'"),
        ('sizes = ["L1-H64", "L2-H128"]', 'sizes = ["L1-H64", "L3-H99"]', "size 'L3-H99' is not in ladder 'scratch'"),
        ("batch_size = 2", "batch_sise = 2", "unknown key 'batch_sise' in [train]"),
        ("[hardware]", "[hardwire]", "unknown section [hardwire]"),
        ("budgets = [10]", 'budgets = [-3]', "a budget must be a positive integer or \"all\", got -3"),
        ("steps = {steps}", 'steps = "many"', "steps must be a positive integer, got 'many'"),
        ('split = "test"', 'split = "test"\nsplit = "dev"', "invalid TOML"),
        ("lr = 1e-3", 'lr = "abc"', "train.lr must be a number > 0, got 'abc'"),
        ("batch_size = 2", "batch_size = true", "train.batch_size must be a positive integer, got True"),
        ("warmup_steps = 1", "warmup_steps = -5", "train.warmup_steps must be a non-negative integer, got -5"),
        ("lr = 1e-3", 'lr = 1e-3\nweight_decay = "lots"', "train.weight_decay must be a number >= 0, got 'lots'"),
        ("lr = 1e-3", 'lr = 1e-3\nprecision = "fp7"', "train.precision: unknown precision 'fp7' (choose from"),
        ("lr = 1e-3", 'lr = 1e-3\npooling = "max"', "train.pooling: unknown pooling 'max' (choose from cls, mean)"),
        ("max_queries = 3", 'max_queries = "ten"', "eval 'cisi': max_queries must be a positive integer or omitted, got 'ten'"),
        ("in_domain = true", 'in_domain = "no"', "eval 'cranfield-test': in_domain must be true or false, got 'no'"),
        ("max_queries = 3", "max_queries = 3\nrelevance_level = 0",
         "eval 'cisi': relevance_level must be a positive integer, got 0"),
        ('ladder = "scratch"', 'ladder = "scratch"\nsize_axis = "total"',
         "grid.size_axis: unknown size axis 'total' (choose from non-embedding, nominal)"),
        ('ladder = "scratch"\nsizes = ["L1-H64", "L2-H128"]', 'ladder = "minilm"\nsize_axis = "nominal"\nsizes = ["1L"]',
         "size_axis 'nominal': model 'minilm-1L' has no nominal size"),
        ("workers = 1", "workers = 0", "hardware.workers must be a positive integer, got 0"),
        ("k = 20", "k = 5", "rerank_k (8) cannot exceed candidates_k (5)"),
        ('seeds = [0]', 'seeds = [0.5]', "grid.seeds: each value must be a seed (an integer in [0, 2^32)), got 0.5"),
    ],
)
def test_malformed_experiments_fail_with_one_line_naming_key_and_value(write_experiment, old, new, message):
    path = write_experiment(TINY.replace(old, new))
    with pytest.raises(UserError) as err:
        load_experiment(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_relative_collection_folders_resolve_against_the_experiment_file(write_experiment, shared_root, tmp_path):
    """A train collection that is a folder resolves like an eval collection: against the file, not the cwd."""
    import os
    from pathlib import Path

    rel = os.path.relpath(Path(shared_root) / "beir" / "cisi", tmp_path)
    path = write_experiment(TINY.replace('train_collection = "cranfield"', f'train_collection = "{rel}"')
                            .replace('collection = "{shared}/beir/cisi"', f'collection = "beir-folder:{rel}"'))
    exp = load_experiment(path)
    cisi = str((Path(shared_root) / "beir" / "cisi").resolve())
    assert {c.train_collection for c in exp.cells} == {cisi}
    assert [e.collection for e in exp.evals if e.name == "cisi"] == [f"beir-folder:{cisi}"]
    assert load_experiment(write_experiment(name="plain.toml")).cells[0].train_collection == "cranfield"


MULTI = """
[data]
train_collection = "cranfield"
[[eval]]
name = "t"
collection = "cranfield"
[grid]
{grid}
ladder = "minilm"
sizes = ["1L", "2L"]
objectives = ["infonce", "infonce-hard"]
[train]
{train}
"""


def test_one_file_holds_several_families_each_key_reaching_its_own(write_experiment):
    text = MULTI.format(grid='families = ["sparse", "bi-encoder"]',
                        train='lambda_q = 0.1\ntemperature = 0.01\npooling = "mean"\ncorpus_negatives = 32')
    exp = load_experiment(write_experiment(text))
    assert len(exp.cells) == 8 and len({c.run_id for c in exp.cells}) == 8
    sparse = [c for c in exp.cells if c.family == "sparse"]
    dense = [c for c in exp.cells if c.family == "bi-encoder"]
    assert len(sparse) == len(dense) == 4
    assert {(c.value("lambda_q"), c.value("corpus_negatives")) for c in sparse} == {(0.1, 32)}
    assert not any(hasattr(c.family_settings, k) for c in sparse for k in ("temperature", "pooling"))
    assert {(c.value("temperature"), c.value("pooling"), c.value("corpus_negatives")) for c in dense} == {
        (0.01, "mean", 32)}
    assert not any(hasattr(c.family_settings, "lambda_q") for c in dense)


def test_a_family_key_no_family_of_the_grid_takes_is_an_error(write_experiment):
    text = MULTI.format(grid='families = ["bi-encoder"]', train="lambda_q = 0.1")
    with pytest.raises(UserError, match=r"train\.lambda_q applies to family 'sparse' only, and the grid has "
                                        r"'bi-encoder'"):
        load_experiment(write_experiment(text))


def test_family_takes_one_value_and_families_a_list_not_both(write_experiment):
    one = load_experiment(write_experiment(MULTI.format(grid='family = "sparse"', train="")))
    assert {c.family for c in one.cells} == {"sparse"}
    with pytest.raises(UserError, match="give family .one value. or families .a list., not both"):
        load_experiment(write_experiment(MULTI.format(grid='family = "sparse"\nfamilies = ["sparse"]', train="")))
    with pytest.raises(UserError, match="unknown model family 'dense'"):
        load_experiment(write_experiment(MULTI.format(grid='families = ["sparse", "dense"]', train="")))
