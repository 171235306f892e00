"""Typed configuration, declared once and torch-free.

* :mod:`.fields` -- ``setting()``: a dataclass field with its section, flag and range;
  the checks and derivations every consumer shares.
* :mod:`.run` -- :class:`RunConfig` (one cell) and :class:`EvalSpec`.
* :mod:`.experiment` -- experiment files (TOML) expanded into cells.
"""

from rerank_scaling.config.experiment import Experiment, Hardware, StudyInfo, load_experiment
from rerank_scaling.config.run import DEFAULT_METRICS, EvalSpec, RunConfig, distils, eval_spec, train_settings

__all__ = ["DEFAULT_METRICS", "EvalSpec", "Experiment", "Hardware", "RunConfig", "StudyInfo", "distils", "eval_spec",
           "load_experiment", "train_settings"]
