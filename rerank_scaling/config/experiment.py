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

Where cells run: ``[hardware]`` (per-cell keys such as ``devices``,
``strategy``, ``batch_per_device``, ``threads_per_worker``) and ``[slurm]``
(:class:`Slurm`: account, partition, qos, constraint, gres, mem, time, setup
lines, requeues) apply to every cell; a table ``[hardware.sizes.<size>]``
overrides them for the cells of one model size (:data:`PROFILE_KEYS`): each
profile becomes its own submission. None of these change a cell's numbers
(:data:`~rerank_scaling.config.run.EXECUTION`; ``precision`` aside), so an
existing study accepts edits of them (:func:`study_changes`).

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
from rerank_scaling.config.run import EXECUTION, EvalSpec, RunConfig, eval_spec, family_fields
from rerank_scaling.errors import UserError
from rerank_scaling.values import NAME, POSITIVE_INT, ListOf, Text, Value

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
    """Where the grid runs: the grid-wide keys of ``[hardware]`` (the per-cell ones are :class:`RunConfig`'s)."""

    workers: int = setting(1, section="hardware", min=1,
                           doc="local worker processes on a CPU machine (with GPUs: as many cells as fit the GPUs)")
    batch_per_device: int | None = setting(None, section="hardware", min=1,
                                           doc="query groups one device processes at a time: derives [train] "
                                               "grad_accumulation = batch_size / (devices x nodes x this)")
    # the [slurm] keys as they were first spelled (still read; [slurm] is the place now)
    slurm_partition: str | None = setting(None, section="hardware", doc="old spelling of [slurm] partition")
    slurm_gpus: int | None = setting(None, section="hardware", min=0, doc="old spelling of [slurm] gpus_per_node")
    slurm_cpus: int | None = setting(None, section="hardware", min=1, doc="old spelling of [slurm] cpus_per_task")
    slurm_timeout_min: int | None = setting(None, section="hardware", min=1,
                                            doc="old spelling of [slurm] timeout_min")

    def __post_init__(self) -> None:
        check_all(self)


FIRST_STAGE = Text('"bm25", "grid" or "study:PATH"', pattern=r"bm25|grid|study:.+", example="dense")
FILTER_KEYS = ("family", "size", "objective", "supervision", "budget", "seed")  # a retriever cell's keys


class RunFilter(Value):
    """``{objective = "infonce-hard", supervision = "human"}``: a retriever run matches when each key's value (or
    one of a list of values) is its config's; normalised to sorted ``(key, (values...))`` pairs."""

    what = f"a table of {' / '.join(FILTER_KEYS)} = a value or a list of values"

    def _check(self, value: Any, name: str) -> Any:
        if isinstance(value, tuple):
            return value
        if not isinstance(value, dict):
            raise self._bad(name, value)
        out = []
        for key in sorted(value):
            if key not in FILTER_KEYS:
                raise UserError(f"{name}: unknown key '{key}' (keys: {', '.join(FILTER_KEYS)})")
            items = value[key] if isinstance(value[key], list) else [value[key]]
            if not items or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
                raise UserError(f"{name}.{key} must be a string, an integer or a list of them, got {value[key]!r}")
            out.append((key, tuple(str(v) for v in items)))
        return tuple(out)

    def bad_values(self) -> list[Any]:
        return ["objective", {"model": "x"}]


@dataclass(frozen=True)
class ChainSettings:
    """``[chain]``: the study's chains (first stage -> top ``depth`` -> a reranker of the grid), evaluated end to
    end after the cells (:mod:`rerank_scaling.grid.chains`). Rerankers: every cross-encoder cell with
    ``save_model = true``."""

    first_stages: tuple[str, ...] = setting((), section="chain", value=ListOf(FIRST_STAGE),
                                            doc='"bm25"; "grid" (this grid\'s retriever cells); "study:PATH" '
                                                "(the retriever runs with saved models of another study folder)")
    first_stage_filter: tuple = setting((), section="chain", value=RunFilter(),
                                        doc="which retriever runs of grid / study:PATH are first stages")
    depths: tuple[int, ...] = setting((10, 20, 50), section="chain", value=ListOf(POSITIVE_INT),
                                      doc="rerank depths k: the first stage's top k reordered by the reranker")
    batch_queries: int = setting(32, section="chain", min=1, doc="queries per batch of the batched timing")
    latency_queries: int = setting(20, section="chain", min=1, doc="queries timed one at a time per chain")

    def __post_init__(self) -> None:
        check_all(self)
        if not self.first_stages:
            raise UserError("first_stages is empty: give \"bm25\", \"grid\" or \"study:PATH\"")
        if not self.depths:
            raise UserError("depths is empty: give rerank depths such as [10, 20, 50]")
        for key, values in (("first_stages", self.first_stages), ("depths", self.depths)):
            twice = next((v for i, v in enumerate(values) if v in values[:i]), None)
            if twice is not None:
                raise UserError(f"{key} names {twice!r} twice")

    def matches(self, config: dict) -> bool:
        """Whether a retriever run's config (``config.json``'s dict) passes :attr:`first_stage_filter` (a budget of
        every training query is ``"all"``, as the grid names it)."""
        def text(key: str) -> str:
            value = config.get(key)
            return "all" if key == "budget" and value is None else str(value)
        return all(text(key) in values for key, values in self.first_stage_filter)


LEGACY_SLURM = {"slurm_partition": "partition", "slurm_gpus": "gpus_per_node", "slurm_cpus": "cpus_per_task",
                "slurm_timeout_min": "timeout_min"}


@dataclass(frozen=True)
class Slurm:
    """``[slurm]``: what a cell's sbatch asks for. Each key is passed through to submitit's SLURM executor
    (``--account``, ``--partition``, ...); ``None`` leaves it to the site's default."""

    account: str | None = setting(None, section="slurm", doc="--account")
    partition: str | None = setting(None, section="slurm", doc="--partition")
    qos: str | None = setting(None, section="slurm", doc="--qos")
    constraint: str | None = setting(None, section="slurm", doc="--constraint (e.g. a100|h100)")
    gres: str | None = setting(None, section="slurm",
                               doc="--gres (e.g. gpu:a100:4) instead of --gpus-per-node = devices")
    gpus_per_node: int | None = setting(None, section="slurm", min=0,
                                        doc="--gpus-per-node; None: the cell's devices (one task per GPU)")
    mem: str | None = setting(None, section="slurm", doc="--mem per node (e.g. 64G)")
    cpus_per_task: int = setting(8, section="slurm", min=1, doc="--cpus-per-task (one task per device)")
    timeout_min: int = setting(240, section="slurm", min=1, doc="--time in minutes")
    exclude: str | None = setting(None, section="slurm", doc="--exclude (nodes to avoid)")
    setup: tuple[str, ...] = setting((), section="slurm",
                                     doc="shell lines the job runs first (module load ..., source venv/bin/activate)")
    extra: tuple[str, ...] = setting((), section="slurm",
                                     doc="any other sbatch option as key=value (reservation=x, mail-type=END)")
    max_requeues: int = setting(3, section="slurm", min=0,
                                doc="times a cell at its time limit is checkpointed and requeued before it fails")
    signal_delay_s: int = setting(120, section="slurm", min=1,
                                  doc="seconds before the time limit SLURM signals the job to checkpoint")
    array_parallelism: int = setting(64, section="slurm", min=1, doc="cells of one array running at once")

    def __post_init__(self) -> None:
        check_all(self)
        for item in self.extra:
            if "=" not in item or not item.split("=", 1)[0].strip():
                raise UserError(f"extra: '{item}' is not key=value")


@cache
def sections() -> dict[str, set[str]]:
    """``section -> keys`` an experiment file may hold: the common settings', ``[slurm]``'s and the model
    families' own, and ``[hardware.sizes.<size>]`` profiles (read when a file is, not on import: the family
    registry imports this package's ``fields``)."""
    out = section_keys(StudyInfo, RunConfig, EvalSpec, Hardware, Slurm, ChainSettings)
    for f in family_fields():
        out.setdefault(meta(f)["section"], set()).add(file_key(f))
    out["hardware"].add("sizes")  # [hardware.sizes.<size>]: per-size profiles
    return out


# what a [hardware.sizes.<size>] table may set: the cell's [hardware] keys, the [train] keys of how it runs (and
# precision), batch_per_device, and any [slurm] key
PROFILE_KEYS: set[str] = ({file_key(f) for f in settings(RunConfig)
                           if meta(f)["section"] == "hardware" or f.name in EXECUTION or f.name == "precision"}
                          | {"batch_per_device"} | {file_key(f) for f in settings(Slurm)}) - {"cache_dir"}


@dataclass
class Experiment:
    name: str
    path: Path
    description: str
    cells: list[RunConfig]
    hardware: Hardware
    evals: tuple[EvalSpec, ...]
    study: StudyInfo  # as the file gives it (name may be None)
    slurm: Slurm = Slurm()  # [slurm]: every cell's
    profiles: dict[str, Slurm] = dataclasses.field(default_factory=dict)  # size -> its [slurm] with overrides
    chain: ChainSettings | None = None  # [chain]: chained evaluation after the cells (None: no chains)

    @property
    def rerankers(self) -> list[RunConfig]:
        """The cells a chain reranks with: the cross-encoder cells that save their model."""
        return [c for c in self.cells if c.family == "cross-encoder" and c.save_model]

    def slurm_of(self, cell: RunConfig) -> Slurm:
        """The ``[slurm]`` settings of a cell: its size's profile's, else the file's."""
        return self.profiles.get(cell.size, self.slurm)


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
    sizes = raw.get("hardware", {}).get("sizes", {})
    if not isinstance(sizes, dict) or not all(isinstance(v, dict) for v in sizes.values()):
        raise _fail(path, "per-size profiles are tables: [hardware.sizes.<size>]")
    for size, table in sizes.items():
        unknown = sorted(set(table) - PROFILE_KEYS)
        if unknown:
            raise _fail(path, f"unknown key '{unknown[0]}' in [hardware.sizes.{size}] (a profile sets: "
                        f"{', '.join(sorted(PROFILE_KEYS))})")


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


def _slurm(path: Path, raw: dict, hardware: Hardware) -> Slurm:
    """``[slurm]``, with the old ``[hardware] slurm_*`` spellings folded in."""
    table = dict(raw.get("slurm", {}))
    for old, new in LEGACY_SLURM.items():
        value = getattr(hardware, old)
        if value is not None:
            if new in table:
                raise _fail(path, f"give [slurm] {new} or [hardware] {old} (its old spelling), not both")
            table[new] = value
    return _typed(Slurm, table, path, "slurm")


def _profile(path: Path, size: str, table: dict, slurm: Slurm) -> tuple[dict[str, Any], Slurm, int | None]:
    """A ``[hardware.sizes.<size>]`` table: its :class:`RunConfig` values (checked), its :class:`Slurm`
    (the file's, overridden) and its ``batch_per_device``."""
    where = f"hardware.sizes.{size}"
    fields = {file_key(f): f for f in settings(RunConfig)}
    values = {}
    for key, value in table.items():
        if key in fields:
            f = fields[key]
            try:
                values[f.name] = check(f, value, hints(RunConfig)[f.name], name=f"{where}.{key}")
            except UserError as exc:
                raise _fail(path, str(exc)) from None
    slurm_keys = {file_key(f) for f in settings(Slurm)}
    own = {k: v for k, v in table.items() if k in slurm_keys}
    profile_slurm = _typed(Slurm, {**{k: getattr(slurm, k) for k in slurm_keys}, **own}, path, where) if own else slurm
    per_device = table.get("batch_per_device")
    if per_device is not None:
        f = next(f for f in settings(Hardware) if f.name == "batch_per_device")
        try:
            check(f, per_device, hints(Hardware)["batch_per_device"], name=f"{where}.batch_per_device")
        except UserError as exc:
            raise _fail(path, str(exc)) from None
    return values, profile_slurm, per_device


def _accumulation(path: Path, cfg: dict, per_device: int | None, where: str, explicit: bool) -> dict:
    """``cfg`` with ``grad_accumulation`` derived from ``batch_per_device`` (global batch / devices / it)."""
    if per_device is None:
        return cfg
    if explicit:
        raise _fail(path, f"{where}.batch_per_device derives [train] grad_accumulation: give one of them")
    world = cfg.get("devices", 1) * cfg.get("nodes", 1)
    batch = cfg.get("batch_size", RunConfig.batch_size)
    steps, rest = divmod(batch, world * per_device)
    if rest or steps < 1:
        raise _fail(path, f"{where}.batch_per_device = {per_device}: batch_size ({batch}) is not a multiple of "
                    f"devices x nodes x batch_per_device ({world} x {per_device})")
    return {**cfg, "grad_accumulation": steps}


def load_experiment(path: Path | str, text: str | None = None) -> Experiment:
    """Parse and validate an experiment file into its grid cells (no data loaded yet). ``text``: read
    these contents instead of the file's, as if they were at ``path`` (relative paths resolve against it)."""
    from rerank_scaling.models import FAMILIES, owners

    path = Path(path)
    if text is None:
        raw = read_toml(path)
    else:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise _fail(path, f"invalid TOML: {exc}") from None
    _check_layout(path, raw)
    base = path.resolve().parent
    study = _typed(StudyInfo, raw.get("study", {}), path, "study")
    hardware_keys = {file_key(f) for f in settings(Hardware)}
    hardware = _typed(Hardware, {k: v for k, v in raw.get("hardware", {}).items() if k in hardware_keys},
                      path, "hardware")
    slurm = _slurm(path, raw, hardware)
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
    sizes = set(values[[f.name for f in axes].index("size")])
    profiles, overrides = {}, {}
    for size, table in raw.get("hardware", {}).get("sizes", {}).items():
        if size not in sizes:
            raise _fail(path, f"[hardware.sizes.{size}]: '{size}' is not a size of the grid "
                        f"(sizes: {', '.join(sorted(sizes))})")
        overrides[size], profiles[size], per_size = _profile(path, size, table, slurm)
        overrides[size]["_per_device"] = per_size
    explicit = "grad_accumulation" in raw.get("train", {})
    cells = []
    for combo in itertools.product(*values):
        cfg = {**common, **{f.name: v for f, v in zip(axes, combo)}}
        own = dict(overrides.get(cfg["size"], {}))
        per_size = own.pop("_per_device", None)
        cfg = {**cfg, **own}
        cfg = {k: v for k, v in cfg.items() if k not in only or cfg["family"] in only[k]}
        where = f"hardware.sizes.{cfg['size']}" if per_size is not None else "hardware"
        cfg = _accumulation(path, cfg, per_size or hardware.batch_per_device, where,
                            "grad_accumulation" in own or (explicit and per_size is None))
        try:
            cells.append(RunConfig.from_dict(cfg, where=str(path)))
        except UserError as exc:
            raise _fail(path, str(exc)) from None
    return Experiment(study.name or path.stem, path, study.description, cells, hardware, evals, study,
                      slurm, profiles, _chain(path, raw, cells))


def _chain(path: Path, raw: dict, cells: list[RunConfig]) -> ChainSettings | None:
    """``[chain]`` checked against the grid: rerankers to chain, retriever cells where it names ``grid``;
    ``study:PATH`` resolved against the file's folder (read when the chains are planned)."""
    if "chain" not in raw:
        return None
    table = dict(raw["chain"])
    if isinstance(table.get("first_stages"), list):
        base = path.resolve().parent
        table["first_stages"] = [f"study:{_resolve(base, s.removeprefix('study:'))}"
                                 if isinstance(s, str) and s.startswith("study:") and len(s) > 6 else s
                                 for s in table["first_stages"]]
    chain = _typed(ChainSettings, table, path, "chain")
    if not any(c.family == "cross-encoder" and c.save_model for c in cells):
        raise _fail(path, "[chain] has no reranker: chains rerank with the grid's cross-encoder cells that keep "
                    "their model ([train] save_model = true)")
    if "grid" in chain.first_stages:
        from rerank_scaling.models import FAMILIES

        if not any(FAMILIES[c.family].stage == "retrieval" and c.save_model and chain.matches(c.to_dict())
                   for c in cells):
            raise _fail(path, "chain.first_stages: \"grid\" but no retriever cell of the grid keeps its model "
                        "(save_model = true) and passes first_stage_filter")
    return chain


def study_changes(old: Experiment, new: Experiment) -> list[str]:
    """What ``new`` changes in the study ``old`` made that would change its numbers: cells added or
    removed, or a cell's setting outside :data:`~rerank_scaling.config.run.EXECUTION` (``[hardware]``,
    ``[slurm]`` and how cells run may change; an empty list says the study can go on)."""
    before, after = {c.run_id: c for c in old.cells}, {c.run_id: c for c in new.cells}
    changes = [f"cell {run} is new" for run in sorted(set(after) - set(before))]
    changes += [f"cell {run} is gone" for run in sorted(set(before) - set(after))]
    for run in sorted(set(before) & set(after)):
        a, b = before[run].result_settings(), after[run].result_settings()
        changes += [f"{run}: {key} {a[key]!r} -> {b[key]!r}" for key in sorted(a) if a[key] != b.get(key)]
    return changes
