"""Settings declared once: the experiment sections, train flags and report rows are derived."""

import dataclasses

import pytest

from rerank_scaling.cli import build_parser, main
from rerank_scaling.config import EvalSpec, RunConfig, train_settings
from rerank_scaling.config.experiment import ChainSettings, Hardware, Slurm, StudyInfo, sections
from rerank_scaling.config.fields import check, hints, meta, parse_text, section_keys, setting, settings
from rerank_scaling.errors import UserError
from rerank_scaling.models import FAMILIES
from rerank_scaling.pipeline.cli import flag_fields


def _field(name):
    return next(f for f in dataclasses.fields(RunConfig) if f.name == name)


def test_every_setting_has_one_home_in_the_experiment_file():
    owners = {("hardware", "sizes"): "the per-size profiles ([hardware.sizes.<size>])"}
    families = {info.settings for info in FAMILIES.values()}
    for cls in (StudyInfo, RunConfig, EvalSpec, Hardware, Slurm, ChainSettings, *families):
        for f in settings(cls):
            if meta(f).get("tables"):
                continue
            # a grid axis owns its list (sizes = [...]) and its one-value key (size = "2L")
            for name in dict.fromkeys(filter(None, (meta(f).get("axis"), meta(f).get("key") or f.name))):
                key = (meta(f)["section"], name)
                # one key several families own (pooling) is one home; a family's key is never a common one
                shared = cls in families and owners.get(key, "").split(".")[0] in {c.__name__ for c in families}
                assert key not in owners or shared, f"{key} declared by {owners.get(key)} and {cls.__name__}.{f.name}"
                owners[key] = f"{cls.__name__}.{f.name}"
    assert {(s, k) for s, keys in sections().items() for k in keys} == set(owners)
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
    scalar = {f.name for f in flag_fields()}
    assert scalar <= flags
    assert {"batch_size", "warmup_steps", "precision", "family", "threads"} <= {f.name for f in settings(RunConfig)}
    assert {"pooling", "towers", "lambda_q", "lora_rank"} <= scalar  # the families' own keys
    assert "evals" not in flags and "split_fractions" not in flags


def test_report_settings_rows_are_the_train_section():
    common = tuple(f.name for f in settings(RunConfig) if meta(f)["section"] == "train")
    assert tuple(k for k in train_settings() if k in common) == common
    families = {f.name for info in FAMILIES.values() for f in settings(info.settings) if meta(f)["section"] == "train"}
    assert set(train_settings()) == set(common) | families
    assert train_settings()[:3] == ("n_negatives", "max_length", "max_query_length")


@pytest.mark.parametrize(
    "name,value,expected",
    [("lr", 1, 1.0), ("budget", None, None), ("metrics", ["map"], ("map",)),
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
     ("family", "bi", f"unknown model family 'bi' (choose from {', '.join(FAMILIES)})"),
     ("supervision", "noisy", "supervision must be human, weak, mixed or ict, optionally with -noise<P>"),
     ("supervision", "human-noise100", "got 'human-noise100'"),
     ("train_collection", 3, "train_collection must be an ir_datasets id or a BEIR folder, got 3")],
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
     (["--pooling", "max"], "unknown pooling 'max' (choose from cls, mean, last)"),  # every owner's choices
     (["--family", "bi-encoder", "--objective", "infonce", "--pooling", "max"],
      "unknown pooling 'max' (choose from cls, mean, last)"),  # a flag is read before the family is known
     (["--lambda-q", "0.1"], "lambda_q = 0.1 applies to family 'sparse' only"),
     (["--metrics", "ndgc@10,map"], "unknown metric 'ndgc@10' (valid: ndcg, ndcg@k"),  # before any training
     (["--ce-variants", "ce-bm25@8"], "ce_variants: 'ce-bm25@8' is not a contrastive-entropy name"),
     (["--steps", "0"], "steps must be a positive integer, got 0")],
)
def test_bad_train_flags_are_one_line_and_write_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists()


def test_config_json_round_trips():
    config = RunConfig.from_dict(dict(ladder="scratch", size="L1-H64", lr=1, metrics=("map",), pooling="mean"))
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert RunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("family,objective,own", [
    ("cross-encoder", "listwise", {"pooling": "mean"}),
    ("bi-encoder", "infonce-corpus", {"towers": "separate", "projection": 32, "corpus_negatives": 16}),
    ("sparse", "infonce", {"lambda_q": 0.1, "regularizer": "l1"}),
])
def test_a_family_owns_its_keys_in_its_own_section(family, objective, own):
    config = RunConfig.from_dict({"family": family, "objective": objective, "steps": 7, **own})
    assert type(config.family_settings) is FAMILIES[family].settings
    assert {k: getattr(config.family_settings, k) for k in own} == own
    assert all(config.value(k) == v for k, v in own.items()) and config.value("steps") == 7
    flat = config.to_dict()  # config.json: flat, the family's keys only
    assert {k: flat[k] for k in own} == own and "family_settings" not in flat
    assert set(flat) - {f.name for f in dataclasses.fields(RunConfig)} == {
        f.name for f in dataclasses.fields(FAMILIES[family].settings)}
    assert RunConfig.from_dict(flat) == config
    other = next(k for info in FAMILIES.values() for k in (f.name for f in dataclasses.fields(info.settings))
                 if k not in flat)
    with pytest.raises(UserError, match=f"{other} = .* applies to family"):
        RunConfig.from_dict({**flat, other: "surely-not-its-default"})


def test_a_config_json_written_when_every_key_was_common_still_loads():
    """Run folders written before families owned their keys hold every family's key at its default."""
    old = RunConfig().to_dict()
    for info in FAMILIES.values():
        old.update({f.name: f.default for f in dataclasses.fields(info.settings) if f.name not in old})
    old["lora_targets"] = []  # as JSON gives it back
    assert RunConfig.from_dict(old) == RunConfig()


def test_the_report_lists_a_family_s_keys_where_the_model_keys_were():
    ce = train_settings("cross-encoder")
    assert ce[:7] == ("n_negatives", "max_length", "max_query_length", "chunk_size", "dropout", "pooling", "teacher")
    assert "towers" not in ce and "towers" in train_settings("bi-encoder") and "lambda_q" in train_settings()
