"""Settings declared once: the experiment sections, train flags and report rows are derived."""

import dataclasses

import pytest

from rerank_scaling.cli import build_parser, main
from rerank_scaling.config import EvalSpec, RunConfig, train_settings
from rerank_scaling.config.experiment import SECTIONS, Hardware, Slurm, StudyInfo
from rerank_scaling.config.fields import check, hints, meta, parse_text, section_keys, setting, settings
from rerank_scaling.errors import UserError


def _field(name):
    return next(f for f in dataclasses.fields(RunConfig) if f.name == name)


def test_every_setting_has_one_home_in_the_experiment_file():
    owners = {("hardware", "sizes"): "the per-size profiles ([hardware.sizes.<size>])"}
    for cls in (StudyInfo, RunConfig, EvalSpec, Hardware, Slurm):
        for f in settings(cls):
            if meta(f).get("tables"):
                continue
            # a grid axis owns its list (sizes = [...]) and its one-value key (size = "2L")
            for name in dict.fromkeys(filter(None, (meta(f).get("axis"), meta(f).get("key") or f.name))):
                key = (meta(f)["section"], name)
                assert key not in owners, f"{key} declared by {owners.get(key)} and {cls.__name__}.{f.name}"
                owners[key] = f"{cls.__name__}.{f.name}"
    assert {(s, k) for s, keys in SECTIONS.items() for k in keys} == set(owners)
    assert ("candidates", "k") in owners and ("hardware", "threads_per_worker") in owners
    assert ("grid", "sizes") in owners and ("train", "steps") in owners


def test_a_new_field_appears_in_sections_and_flags():
    @dataclasses.dataclass(frozen=True)
    class Extra:
        gamma: float = setting(0.5, section="train", min=0)
        mode: str = setting("a", section="grid", axis="modes")

    assert section_keys(Extra) == {"train": {"gamma"}, "grid": {"modes", "mode"}}
    f = dataclasses.fields(Extra)[0]
    assert parse_text(f, "0.25", float, "--gamma") == 0.25
    with pytest.raises(UserError, match="gamma must be a number >= 0, got -1"):
        check(f, -1, float)


def test_train_flags_are_derived_from_the_config():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = {a.dest for a in train._actions}
    scalar = {f.name for f in settings(RunConfig) if meta(f)["flag"]}
    assert scalar <= flags
    assert {"batch_size", "warmup_steps", "pooling", "precision", "family", "threads"} <= scalar
    assert "evals" not in flags and "split_fractions" not in flags


def test_report_settings_rows_are_the_train_section():
    assert train_settings() == tuple(f.name for f in settings(RunConfig) if meta(f)["section"] == "train")
    assert train_settings()[:3] == ("n_negatives", "max_length", "max_query_length")


@pytest.mark.parametrize(
    "name,value,expected",
    [("lr", 1, 1.0), ("budget", None, None), ("metrics", ["map"], ("map",)), ("pooling", "mean", "mean"),
     ("supervision", "weak", "weak"), ("objective", "pairwise", "pairwise")],
)
def test_check_normalises_good_values(name, value, expected):
    assert check(_field(name), value, hints(RunConfig)[name]) == expected


@pytest.mark.parametrize(
    "name,value,message",
    [("batch_size", True, "batch_size must be a positive integer, got True"),
     ("steps", 0, "steps must be a positive integer, got 0"),
     ("lr", 0.0, "lr must be a number > 0, got 0.0"),
     ("lr", float("nan"), "lr must be a number > 0, got nan"),
     ("objective", "softmax", "unknown objective 'softmax' (choose from pointwise, pairwise, listnet, softmax-ce, lambdarank, infonce, infonce-hard, infonce-corpus, marginmse, kl, cl-kd, query-distill, listwise, lambda)"),
     ("ladder", "gpt", "unknown ladder 'gpt'"),
     ("family", "bi", "unknown model family 'bi' (choose from cross-encoder, bi-encoder, sparse)"),
     ("supervision", "noisy", "unknown supervision 'noisy' (choose from human, weak, mixed, ict)"),
     ("train_collection", 3, "train_collection must be a string, got 3")],
)
def test_check_refuses_bad_values_naming_key_and_value(name, value, message):
    with pytest.raises(UserError) as err:
        check(_field(name), value, hints(RunConfig)[name])
    assert message in str(err.value)


@pytest.mark.parametrize(
    "argv,message",
    [(["--threads", "-1"], "threads must be a positive integer or omitted, got -1"),
     (["--batch-size", "four"], "--batch-size must be a positive integer, got 'four'"),
     (["--lr", "abc"], "--lr must be a number > 0, got 'abc'"),
     (["--pooling", "max"], "unknown pooling 'max' (choose from cls, mean, last)"),
     (["--steps", "0"], "steps must be a positive integer, got 0")],
)
def test_bad_train_flags_are_one_line_and_write_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists()


def test_config_json_round_trips():
    config = RunConfig(ladder="scratch", size="L1-H64", lr=1, metrics=("map",), pooling="mean")
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert RunConfig.from_dict(config.to_dict()) == config
