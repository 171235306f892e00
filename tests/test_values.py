"""Value types: one declaration parses, checks, names its range, and hands out values outside it."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from rerank_scaling.config import RunConfig
from rerank_scaling.config.fields import hints, setting, value_of
from rerank_scaling.errors import UserError
from rerank_scaling.values import (AMOUNT, LEVEL, NAME, POSITIVE_INT, PROBABILITY, SEED, Choice, ListOf, Number,
                                   flag_error, help_text)


@pytest.mark.parametrize(
    "value,what",
    [(POSITIVE_INT, "a positive integer"), (SEED, "a seed (an integer in [0, 2^32))"),
     (PROBABILITY, "a probability in [0, 1)"), (LEVEL, "a level in (0, 1)"),
     (Number(float, lo=0, lo_open=True), "a number > 0"), (Number(int, lo=2), "an integer >= 2"),
     (Number(float, lo=-1, hi=1), "a number in [-1, 1]"), (Choice(("a", "b")), "one of a, b")],
)
def test_a_value_names_its_range(value, what):
    assert value.what == what
    assert value.maybe().described() == what + " or omitted" and value.described() == what


@pytest.mark.parametrize("value", [POSITIVE_INT, SEED, PROBABILITY, LEVEL, AMOUNT, Number(float, lo=-1, hi=1),
                                   Choice(("a", "b")), NAME, ListOf(POSITIVE_INT)])
def test_the_values_a_declaration_hands_out_are_refused_and_its_bounds_kept(value):
    for text in value.bad():
        with pytest.raises(UserError):
            value.parse(text, "x")
        with pytest.raises(argparse.ArgumentTypeError):
            value(text)
    for bad in value.bad_values():
        with pytest.raises(UserError):
            value.check(bad, "x")
    if isinstance(value, Number):
        for edge in (value.lo, value.hi):
            if edge is not None:
                assert value.inside(edge) == (not (value.lo_open if edge == value.lo else value.hi_open))


def test_parse_and_check_agree_and_name_the_value_as_typed():
    assert PROBABILITY.parse("0.25", "--p") == 0.25 and PROBABILITY.check(0, "p") == 0.0
    assert AMOUNT.parse("1.5B", "--n") == 1.5e9 and POSITIVE_INT.maybe().parse("none", "--k") is None
    assert ListOf(POSITIVE_INT).parse("1, 2", "--h") == (1, 2)
    with pytest.raises(UserError, match=r"^--p must be a probability in \[0, 1\), got -1$"):
        PROBABILITY.parse("-1", "--p")
    with pytest.raises(UserError, match=r"^--p must be a probability in \[0, 1\), got 'lots'$"):
        PROBABILITY.parse("lots", "--p")
    with pytest.raises(UserError, match=r"^p must be a probability in \[0, 1\), got inf$"):
        PROBABILITY.check(float("inf"), "p")
    with pytest.raises(UserError, match=r"^n must be a positive integer, got True$"):
        POSITIVE_INT.check(True, "n")


def test_flag_errors_and_help_read_like_config_errors():
    assert flag_error("argument --level: must be a level in (0, 1), got 2") == "--level must be a level in (0, 1), got 2"
    assert flag_error("argument --x: invalid choice: 'y'") == "argument --x: invalid choice: 'y'"
    assert help_text("interval level", LEVEL) == "interval level [a level in (0, 1)]"


def test_a_setting_derives_its_value_from_hint_and_bounds():
    @dataclasses.dataclass(frozen=True)
    class Extra:
        share: float = setting(0.5, section="train", min=0, below=1)
        seed: int | None = setting(None, section="grid", value=SEED)

    share, seed = dataclasses.fields(Extra)
    assert value_of(share, float).what == "a number in [0, 1)"
    assert value_of(seed, int | None).described() == "a seed (an integer in [0, 2^32)) or omitted"
    assert value_of(next(f for f in dataclasses.fields(RunConfig) if f.name == "dropout"),
                    hints(RunConfig)["dropout"]).described() == "a probability in [0, 1) or omitted"


@pytest.mark.parametrize(
    "changes,message",
    [(dict(family="query-distill", objective="query-distill", teacher="x", mse_weight=0, cosine_weight=0),
      "mse_weight and cosine_weight are both 0, so the loss is 0"),
     (dict(split_fractions=(("train", 0.6), ("test", 0.6))), "split_fractions must be named fractions in (0, 1] that sum to 1"),
     (dict(split_fractions=(("train", 1.5),)), "split_fractions.train must be a number in (0, 1], got 1.5")],
)
def test_settings_in_range_that_cannot_mean_anything_together_are_refused(changes, message):
    with pytest.raises(UserError) as err:
        RunConfig.from_dict(dict(ladder="scratch", size="L1-H64", **changes))
    assert message in str(err.value)


def test_valid_but_doubtful_settings_are_warned():
    assert RunConfig(ladder="scratch", size="L1-H64", steps=5, warmup_steps=5).warnings() == [
        "warmup_steps = 5 >= steps = 5: the learning rate never reaches lr"]
    assert RunConfig(ladder="scratch", size="L1-H64", ce_variants=("ce-corpus@500",)).warnings() == []
    assert RunConfig(ladder="scratch", size="L1-H64", candidates_k=20, rerank_k=10, ce_variants=("ce@31",)).warnings() \
        == ["ce_negatives: ce@64 draws its 64 negatives from the candidates, but candidates_k = 20: each query gets "
            "at most 20 (raise candidates_k, or use ce-corpus@64)",
            "ce_variants 'ce@31': ce@31 draws its 31 negatives from the candidates, but candidates_k = 20: each query "
            "gets at most 20 (raise candidates_k, or use ce-corpus@31)"]
    assert RunConfig.from_dict({"split_fractions": {"train": 0.5, "test": 0.5}}).fractions() == {"train": 0.5,
                                                                                               "test": 0.5}
