"""Experiment files: a study described in TOML, expanded into typed grid cells.

Sections and keys are derived from the typed configuration
(:class:`~rerank_scaling.config.run.RunConfig`, :class:`EvalSpec`,
:class:`Hardware`, :class:`StudyInfo`): each field's ``section`` says where
it sits. Grid axes are lists (``families``, ``sizes``, ``budgets``, ``objectives``,
``supervision``, ``seeds``) whose product is the set of cells; an axis of one value
may be given under the field's own key instead (``family = "sparse"``). A key
a family owns (its registry entry's ``settings``, :data:`rerank_scaling.models.FAMILIES`)
sits in its section like any other and goes to the cells of the families that own it:
in a file of several families it does not reach the others' cells, and it is an
error only when no family of the file takes it. ``[grid] compute``
derives each cell's steps, so it excludes ``[train] steps``. The file is
validated whole before any data is read; every error names the file, the key
and the value.

Relative paths (``data_root``, ``cache_dir``, ``[candidates] run``, train and
eval collections that are folders) are resolved against the experiment file's
folder. A budget of ``"all"`` means every training query.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from rerank_scaling.config.fields import check, check_all, file_key, hints, meta, section_keys, setting, settings
from rerank_scaling.config.run import EvalSpec, RunConfig, eval_spec, family_fields
from rerank_scaling.errors import UserError
from rerank_scaling.values import NAME

GRID_DEFAULTS = {"objectives": ["listwise"], "supervision": ["human"], "budgets": ["all"], "seeds": [0]}


@dataclass(frozen=True)
class StudyInfo:
    name: str | None = setting(None, section="study", value=NAME,
                               doc="the study folder's name (runs/<name>); default: the file's name")
    description: str = setting("", section="study")

    def __post_init__(self) -> None:
        check_all(self)


@dataclass(frozen=True)
class Hardware:
    """Where the grid runs (each cell trains on one device)."""

    workers: int = setting(1, section="hardware", min=1, doc="local worker processes")
    slurm_partition: str | None = setting(None, section="hardware")
    slurm_gpus: int = setting(1, section="hardware", min=0)
    slurm_cpus: int = setting(8, section="hardware", min=1)
    slurm_timeout_min: int = setting(240, section="hardware", min=1)

    def __post_init__(self) -> None:
        check_all(self)


@cache
def sections() -> dict[str, set[str]]:
    """``section -> keys`` an experiment file may hold: the common settings' and the model families' own
    (read when a file is, not on import: the family registry imports this package's ``fields``)."""
    out = section_keys(StudyInfo, RunConfig, EvalSpec, Hardware)
    for f in family_fields():
        out.setdefault(meta(f)["section"], set()).add(file_key(f))
    return out


@dataclass
class Experiment:
    name: str
    path: Path
    description: str
    cells: list[RunConfig]
    hardware: Hardware
    evals: tuple[EvalSpec, ...]
    study: StudyInfo  # as the file gives it (name may be None)


def _fail(path: Path, message: str) -> UserError:
    message = str(message)
    return UserError(message if message.startswith(str(path)) else f"{path}: {message}")


def _resolve(base: Path, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    p = Path(value).expanduser()
    return str((base / p).resolve()) if not p.is_absolute() else str(p)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.startswith("beir-folder:")


def _resolve_collection(base: Path, spec: Any) -> Any:
    """A collection that is a folder (``./x``, ``../x``, ``/x``, ``beir-folder:x``) against ``base``;
    an ir_datasets id as it is."""
    if not (isinstance(spec, str) and _looks_like_path(spec)):
        return spec
    prefix = "beir-folder:" if spec.startswith("beir-folder:") else ""
    return prefix + _resolve(base, spec.removeprefix(prefix))


def read_toml(path: Path) -> dict:
    if not path.exists():
        raise UserError(f"experiment file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot read ({' '.join(str(exc).split())})") from None


def _check_layout(path: Path, raw: dict) -> None:
    for section, value in raw.items():
        if section not in sections():
            raise _fail(path, f"unknown section [{section}] (sections: {', '.join(sections())})")
        if section == "eval" and not isinstance(value, list):
            raise _fail(path, "evaluation sets are given as [[eval]] tables")
        for table in value if section == "eval" else [value]:
            if not isinstance(table, dict):
                raise _fail(path, f"[{section}] must be a table")
            unknown = sorted(set(table) - sections()[section])
            if unknown:
                raise _fail(path, f"unknown key '{unknown[0]}' in [{section}]")


def _typed(cls, table: dict, path: Path, section: str):
    try:
        return cls(**table)
    except UserError as exc:
        raise _fail(path, f"{section}.{exc}") from None


def _evals(path: Path, raw: dict) -> tuple[EvalSpec, ...]:
    base = path.resolve().parent
    out = []
    for table in raw.get("eval", []):
        for key in ("name", "collection"):
            if key not in table:
                raise _fail(path, f"an [[eval]] table lacks '{key}'")
        table = dict(table)
        table["collection"] = _resolve_collection(base, table["collection"])
        try:
            out.append(eval_spec(table))
        except UserError as exc:
            raise _fail(path, f"eval '{table['name']}': {exc}") from None
    if not out:
        raise _fail(path, "no [[eval]] evaluation set")
    return tuple(out)


def _axis_values(path: Path, grid: dict, f: dataclasses.Field, ladder: str) -> list:
    axis = meta(f)["axis"]
    if axis == "sizes":
        from rerank_scaling.models.ladder import LADDERS

        default = list(LADDERS.get(ladder, ()))
    else:
        default = GRID_DEFAULTS.get(axis, [f.default])
    if axis != file_key(f) and axis in grid and file_key(f) in grid:
        raise _fail(path, f"grid: give {file_key(f)} (one value) or {axis} (a list), not both")
    values = grid[file_key(f)] if file_key(f) in grid else grid.get(axis, default)
    values = values if isinstance(values, list) else [values]
    if not values:
        raise _fail(path, f"grid.{axis} is empty")
    out = []
    for value in values:
        if axis == "budgets":
            if value == "all":
                out.append(None)
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _fail(path, f"grid.budgets: a budget must be a positive integer or \"all\", got {value!r}")
        if axis == "sizes":
            from rerank_scaling.models.ladder import ModelSpec

            value = str(value)
            try:
                ModelSpec(ladder, value).validate()
            except UserError as exc:
                raise _fail(path, f"grid.sizes: {exc}") from None
        try:
            out.append(check(f, value, hints(RunConfig)[f.name], name="each value"))
        except UserError as exc:
            raise _fail(path, f"grid.{axis}: {exc}") from None
    return out


def load_experiment(path: Path | str) -> Experiment:
    """Parse and validate an experiment file into its grid cells (no data loaded yet)."""
    from rerank_scaling.models import FAMILIES, owners

    path = Path(path)
    raw = read_toml(path)
    _check_layout(path, raw)
    base = path.resolve().parent
    study = _typed(StudyInfo, raw.get("study", {}), path, "study")
    hardware_keys = {file_key(f) for f in settings(Hardware)}
    hardware = _typed(Hardware, {k: v for k, v in raw.get("hardware", {}).items() if k in hardware_keys},
                      path, "hardware")
    evals = _evals(path, raw)

    common: dict[str, Any] = {"evals": evals}
    axes: list[dataclasses.Field] = []
    for f in settings(RunConfig):
        section = meta(f)["section"]
        if meta(f)["axis"]:
            axes.append(f)
            continue
        if meta(f)["tables"]:
            continue
        table = raw.get(section, {})
        if file_key(f) in table:
            value = table[file_key(f)]
            name = f"{section}.{file_key(f)}"
            try:
                value = check(f, value, hints(RunConfig)[f.name], name=name)
            except UserError as exc:
                message = str(exc)
                raise _fail(path, message if message.startswith(name) else f"{name}: {message}") from None
            if meta(f)["path"]:
                value = _resolve(base, value)
            elif f.name in ("train_collection", "teacher"):  # a folder (./x, ../x, /x) or a hub id
                value = _resolve_collection(base, value)
            common[f.name] = value
    ladder = common.get("ladder", RunConfig.ladder)
    try:
        check(next(f for f in settings(RunConfig) if f.name == "ladder"), ladder, str)
    except UserError as exc:
        raise _fail(path, f"grid.ladder: {exc}") from None
    grid = raw.get("grid", {})
    if "compute" in grid and "steps" in raw.get("train", {}):
        raise _fail(path, "[grid] compute derives each cell's steps: remove [train] steps (or compute)")
    values = [_axis_values(path, grid, f, ladder) for f in axes]
    families = values[[f.name for f in axes].index("family")]
    only: dict[str, tuple[str, ...]] = {}  # a family's own key -> the families that own it
    for f in family_fields():
        table, name = raw.get(meta(f)["section"], {}), f"{meta(f)['section']}.{file_key(f)}"
        if file_key(f) not in table:
            continue
        only[f.name] = owners(f.name)
        takers = [family for family in only[f.name] if family in families]
        if not takers:
            raise _fail(path, f"{name} applies to family {' / '.join(repr(x) for x in only[f.name])} only, and "
                        f"the grid has {' / '.join(repr(x) for x in families)}")
        for family in takers:  # each family that takes it checks it (a family's own choices may differ)
            own = FAMILIES[family].settings
            try:
                common[f.name] = check(next(g for g in settings(own) if g.name == f.name), table[file_key(f)],
                                       hints(own)[f.name], name=name)
            except UserError as exc:
                message = str(exc)
                raise _fail(path, message if message.startswith(name) else f"{name}: {message}") from None
    cells = []
    for combo in itertools.product(*values):
        cfg = {**common, **{f.name: v for f, v in zip(axes, combo)}}
        cfg = {k: v for k, v in cfg.items() if k not in only or cfg["family"] in only[k]}
        try:
            cells.append(RunConfig.from_dict(cfg, where=str(path)))
        except UserError as exc:
            raise _fail(path, str(exc)) from None
    return Experiment(study.name or path.stem, path, study.description, cells, hardware, evals, study)
