"""Which size law to use for a forecast, and why.

``law="auto"`` (the default) is the saturating size law ``a + b*N^c`` with the
bootstrap bias correction applied to its forecasts (see README.md in this
package: on synthetic data the plain fit is biased low and the correction about
halves that bias, while choosing the law by cross-validation over-shoots when
curves do saturate).  With fewer than 4 sizes, ``auto`` falls back to the 2-parameter
log-linear law.  ``law="cv"`` picks the law with the lowest leave-largest-out
error.  Every choice carries the leave-largest-out errors of all candidate laws
(``size``, ``loglinear`` and, for bounded metrics, ``bounded``; ``fang`` is the
size law reparameterised, so it is not a separate candidate) so the output can
show them side by side.

Leave-largest-out: for each of the largest ``folds`` sizes, fit on the strictly
smaller sizes and predict the runs at that size (one extrapolation step).
Only folds with at least 4 training sizes are used, so every candidate law is
over-determined in every fold.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from rerank_scaling.errors import UserError
from rerank_scaling.scaling.fit import fit_law, make_context
from rerank_scaling.scaling.laws import LAWS, SIZE_LAWS, get_law

CHOICES = ("auto", "cv", *SIZE_LAWS)
MIN_TRAIN_SIZES = 4


@dataclass(frozen=True)
class LawScore:
    law: str
    cv_rmse: float | None  # leave-largest-out RMSE (y units); None if no fold was possible
    cv_bias: float | None  # mean signed leave-largest-out error
    n_folds: int


@dataclass(frozen=True)
class LawChoice:
    law: str
    reason: str
    scores: tuple[LawScore, ...]

    def score(self, law: str) -> LawScore | None:
        return next((s for s in self.scores if s.law == law), None)


def leave_largest_out(law: str, N: np.ndarray, y: np.ndarray, metric: str, folds: int = 2) -> LawScore:
    sizes = np.unique(N)
    errors = []
    for k in range(1, folds + 1):
        if sizes.size - k < MIN_TRAIN_SIZES:
            break
        train = N < sizes[-k]
        test = N == sizes[-k]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit = fit_law(law, N[train], y[train], metric=metric)
            except UserError:
                continue
        errors.append(float(np.mean(fit.predict(N[test]) - y[test])))
    if not errors:
        return LawScore(law, None, None, 0)
    errs = np.array(errors)
    return LawScore(law, float(np.sqrt(np.mean(errs**2))), float(errs.mean()), len(errors))


def _fmt(score: LawScore) -> str:
    return f"{score.law} {score.cv_rmse:.4g}" if score.cv_rmse is not None else f"{score.law} n/a"


def choose_law(requested: str, N, y, metric: str, folds: int = 2) -> LawChoice:
    """Resolve ``requested`` (``auto``, ``cv`` or a size-law name) for these points."""
    if requested not in CHOICES:
        raise UserError(f"unknown law '{requested}' (choose from {', '.join(CHOICES)})")
    N, y = np.asarray(N, dtype=float), np.asarray(y, dtype=float)
    ctx = make_context(metric, N, None, y)
    candidates = [name for name in SIZE_LAWS if LAWS[name].applicable(ctx) and name != "fang"]
    scores = tuple(leave_largest_out(name, N, y, metric, folds) for name in candidates)
    table = ", ".join(_fmt(s) for s in scores)
    cv_note = f"leave-largest-out RMSE: {table}" if any(s.n_folds for s in scores) else (
        f"too few sizes for leave-largest-out checks (need {MIN_TRAIN_SIZES + 1})"
    )
    n_sizes = np.unique(N).size
    if requested == "auto":
        if n_sizes >= get_law("size").n_params + 1:
            return LawChoice(
                "size",
                "auto: saturating a+b*N^c with bootstrap bias correction (the plain fit "
                f"runs low on slowly saturating curves, see scaling/README.md); {cv_note}",
                scores,
            )
        return LawChoice(
            "loglinear", f"auto: only {n_sizes} sizes, so 2-parameter a+b*ln(N) instead of a+b*N^c; {cv_note}", scores
        )
    if requested == "cv":
        scored = [s for s in scores if s.cv_rmse is not None]
        if not scored:
            return choose_law("auto", N, y, metric, folds)
        best = min(scored, key=lambda s: s.cv_rmse)
        return LawChoice(best.law, f"cv: lowest {cv_note}", scores)
    return LawChoice(requested, f"{requested}: requested; {cv_note}", scores)
