"""The size axis: the ladders' nominal sizes and the config key that picks the params column."""

import pytest

from rerank_scaling.config import RunConfig
from rerank_scaling.errors import UserError
from rerank_scaling.models.ladder import NOMINAL_SIZES, ModelSpec, nominal_params


def test_ettin_nominal_sizes_are_their_names():
    assert NOMINAL_SIZES["ettin"] == {"17m": 17_000_000, "32m": 32_000_000, "68m": 68_000_000,
                                      "150m": 150_000_000, "400m": 400_000_000, "1b": 1_000_000_000}


def test_scratch_nominal_size_is_kaplan_12_l_h2():
    assert nominal_params(ModelSpec("scratch", "L1-H64")) == 12 * 1 * 64**2 == 49_152
    assert nominal_params(ModelSpec("scratch", "L8-H768")) == 12 * 8 * 768**2 == 56_623_104


@pytest.mark.parametrize("ladder,size", [("minilm", "2L"), ("hf", "org/model")])
def test_no_nominal_size_is_a_one_line_user_error(ladder, size):
    with pytest.raises(UserError, match=r"size_axis 'nominal': model '.*' has no nominal size"):
        nominal_params(ModelSpec(ladder, size))
    with pytest.raises(UserError, match="has no nominal size") as err:
        RunConfig(ladder=ladder, size=size, size_axis="nominal")
    assert "\n" not in str(err.value)


def test_size_axis_defaults_to_non_embedding_and_names_bad_values():
    assert RunConfig().size_axis == "non-embedding"
    assert RunConfig(ladder="ettin", size="17m", size_axis="nominal").size_axis == "nominal"
    with pytest.raises(UserError, match=r"unknown size axis 'total' \(choose from non-embedding, nominal\)"):
        RunConfig(size_axis="total")
