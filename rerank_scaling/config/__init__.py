"""Typed configuration, declared once and torch-free.

* :mod:`.fields` -- ``setting()``: a dataclass field with its section, flag and range;
  the checks and derivations every consumer shares.
* :mod:`.run` -- :class:`RunConfig` (one cell: the common settings and its family's own section,
  declared by the family's registry entry, :data:`rerank_scaling.models.FAMILIES`) and :class:`EvalSpec`.
* :mod:`.experiment` -- experiment files (TOML) expanded into cells.
"""

from rerank_scaling.config.experiment import Experiment, Hardware, StudyInfo, load_experiment
from rerank_scaling.config.run import (DEFAULT_METRICS, EvalSpec, RunConfig, eval_spec, supervision_parts,
                                       train_settings)

__all__ = ["DEFAULT_METRICS", "EvalSpec", "Experiment", "Hardware", "RunConfig", "StudyInfo", "eval_spec", "supervision_parts",
           "load_experiment", "train_settings"]
