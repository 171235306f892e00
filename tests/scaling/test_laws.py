"""Exact data from a known law recovers its parameters (hand-computed fixtures)."""

import numpy as np
import pytest

from rerank_scaling.scaling import LAWS, fit_law
from rerank_scaling.scaling.fit import make_context

N = np.array([4e6, 8e6, 17e6, 32e6, 68e6, 150e6])


def test_size_law_exact_recovery():
    a, b, c = 0.76, -0.08 * 1e8**0.3, -0.3  # y = a + b*N^c in raw units
    fit = fit_law("size", N, a + b * N**c, metric="ndcg@10")
    assert fit.params["a"] == pytest.approx(a, abs=1e-6)
    assert fit.params["b"] == pytest.approx(b, rel=1e-6)
    assert fit.params["c"] == pytest.approx(c, abs=1e-6)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert np.max(np.abs(fit.residuals)) < 1e-8
    # hand-computed value at 1B: 0.76 - 0.08 * 10**-0.3
    assert fit.predict([1e9])[0] == pytest.approx(0.76 - 0.08 * 10**-0.3, abs=1e-6)


def test_fang_form_exact_recovery_for_loss():
    A, alpha, delta = 2.0e8, 0.3, 0.3
    y = (A / N) ** alpha + delta
    fit = fit_law("fang", N, y, metric="ce@64")
    assert fit.params["A"] == pytest.approx(A, rel=1e-5)
    assert fit.params["alpha"] == pytest.approx(alpha, abs=1e-6)
    assert fit.params["delta"] == pytest.approx(delta, abs=1e-6)


def test_fang_mirrored_for_increasing_metric():
    A, alpha, delta = 1.0e4, 0.25, 0.76
    y = delta - (A / N) ** alpha
    fit = fit_law("fang", N, y, metric="ndcg@10")
    assert fit.params["alpha"] == pytest.approx(alpha, abs=1e-6)
    assert fit.params["delta"] == pytest.approx(delta, abs=1e-6)


def test_loglinear_and_bounded_exact():
    fit = fit_law("loglinear", N, 0.1 + 0.03 * np.log(N), metric="ndcg@10")
    assert (fit.params["a"], fit.params["b"]) == pytest.approx((0.1, 0.03), abs=1e-9)
    fit = fit_law("bounded", N, 1.0 - 5.0 * N**-0.2, metric="ndcg@10")
    assert (fit.params["b"], fit.params["c"]) == pytest.approx((-5.0, -0.2), rel=1e-6)


def test_data_law_exact():
    D = np.geomspace(1e4, 1e6, 7)
    fit = fit_law("data", np.ones_like(D), 0.7 - 3.0 * D**-0.4, D=D, metric="map")
    assert (fit.params["a"], fit.params["b"], fit.params["c"]) == pytest.approx((0.7, -3.0, -0.4), rel=1e-6)


def _grid():
    n, d = np.meshgrid(N, np.geomspace(1e4, 1e6, 6))
    return n.ravel(), d.ravel()


def test_joint_additive_exact():
    n, d = _grid()
    truth = dict(a=0.8, b=-40.0, c=-0.3, d=-6.0, e=-0.35)
    y = truth["a"] + truth["b"] * n ** truth["c"] + truth["d"] * d ** truth["e"]
    fit = fit_law("joint", n, y, D=d, metric="ndcg@10")
    for k, v in truth.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k


def test_joint_fang_exact():
    n, d = _grid()
    A, alpha, B, beta, delta = 3e7, 0.35, 2e4, 0.6, 0.5
    y = ((A / n) ** (alpha / beta) + B / d) ** beta + delta
    fit = fit_law("joint-fang", n, y, D=d, metric="ce@64")
    got = fit.params
    assert got["alpha"] == pytest.approx(alpha, rel=1e-4)
    assert got["beta"] == pytest.approx(beta, rel=1e-4)
    assert got["delta"] == pytest.approx(delta, abs=1e-5)
    assert got["A"] == pytest.approx(A, rel=1e-3)
    assert got["B"] == pytest.approx(B, rel=1e-3)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_every_law_object_is_complete(name):
    law = LAWS[name]
    assert law.formula and law.param_names and law.inputs
    ctx = make_context("ndcg@10", N, N, np.linspace(0.4, 0.6, N.size))
    if not law.applicable(ctx):
        pytest.skip("needs a bound")
    lo, hi = law.bounds(ctx)
    assert lo.shape == hi.shape == (law.n_params,) and np.all(lo < hi)
    starts = law.init_grid(np.log(N / ctx.n_ref), np.log(N / ctx.d_ref), np.linspace(0.4, 0.6, N.size), ctx)
    assert starts.shape[1] == law.n_params and np.all((starts >= lo) & (starts <= hi))
    # predictions broadcast over a batch of parameter vectors
    batch = np.stack([starts[0], starts[0]])
    assert law.predict(batch, np.zeros(3), np.zeros(3), ctx).shape == (2, 3)
    assert law.public(starts, ctx).shape == starts.shape
