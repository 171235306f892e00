"""The forecasting engine: scales, shape constraints, the conjugate posterior and the moderated prior."""

import math

import numpy as np
import pytest
from scipy import special, stats

from rerank_scaling.scaling import engine as E

SIZES = np.array([17e6, 32e6, 68e6, 150e6])
TARGETS = np.array([400e6, 1e9, 3e9, 1e10])


def test_scales_round_trip_and_pick_the_metric_range():
    assert E.scale_for("ndcg@10", [0.3, 0.5]).kind == "logit"
    pct = E.scale_for("acc", [30.0, 55.0])
    assert (pct.kind, pct.hi) == ("logit", 100.0)
    assert E.scale_for("ce@64", [2.1, 1.9]).kind == "log"
    assert E.scale_for("query-ms-cpu", [3.0, 5.0]).kind == "log"  # a cost: positive
    assert E.scale_for("bleu-ish", [-1.0, 5.0]).kind == "identity"  # unknown and unbounded
    assert E.scale_for("retained-ndcg@10", [0.8, 0.97]).kind == "logit"
    assert E.scale_for("retained-ndcg@10", [0.8, 1.02]).kind == "log"  # a student above its teacher
    for scale, y in ((E.scale_for("ndcg@10", [0.3]), np.array([0.01, 0.3, 0.99])),
                     (pct, np.array([1.0, 50.0, 99.0])), (E.scale_for("ce@64", [2.0]), np.array([0.1, 2.0, 9.0]))):
        assert scale.back(scale.to(y)) == pytest.approx(y)
    # a value at the bound is kept EPS of the range inside it, so its logit is finite
    assert np.isfinite(E.scale_for("ndcg@10", [0.5]).to([0.0, 1.0])).all()


@pytest.mark.parametrize("metric,y", [
    ("ndcg@10", [0.60, 0.64, 0.66, 0.67]),       # rises and bends
    ("ndcg@10", [0.62, 0.61, 0.63, 0.615]),      # flat in noise
    ("ndcg@10", [0.70, 0.66, 0.63, 0.60]),       # falls: the law's direction is refused, the forecast flattens
    ("map", [0.93, 0.96, 0.98, 0.99]),           # near the top of its range
    ("ce@64", [2.0, 1.2, 0.6, 0.25]),            # an entropy racing to 0
    ("retained-ndcg@10", [0.80, 0.90, 0.95, 0.98]),  # a student's share of its teacher's NDCG
])
def test_forecasts_are_monotone_and_stay_in_range(metric, y):
    """Every target beyond the largest fitted size: forecasts ordered in size the metric's way (1B never
    below 400M for NDCG), forecasts and intervals inside [0, 1] (NDCG, MAP) or above 0 (CE)."""
    s = -1 if metric.startswith("ce") else 1
    p = E.predictive(SIZES, y, TARGETS, metric, s, seed=1)
    steps = np.diff(p.point) * s
    assert (steps >= -1e-12).all(), p.point
    for kappa in (0.0, 1.0, 10.0):
        lo, hi = p.interval(0.9, kappa)
        assert (lo <= p.point + 1e-12).all() and (p.point <= hi + 1e-12).all()
        if metric == "ce@64":
            assert (lo > 0).all()
        else:
            assert (lo >= 0).all() and (hi <= 1).all()


def test_every_draw_is_monotone():
    p = E.predictive(SIZES, [0.60, 0.64, 0.66, 0.67], TARGETS, "ndcg@10", 1, seed=0)
    assert (np.diff(p.law, axis=1) >= -1e-12).all()  # each posterior law rises (or stays flat) with size


def test_the_misspecification_term_widens_with_kappa_and_distance():
    p = E.predictive(SIZES, [0.60, 0.64, 0.66, 0.67], TARGETS, "ndcg@10", 1, seed=0)
    w0 = np.subtract(*p.interval(0.9, 0.0)[::-1])
    w1 = np.subtract(*p.interval(0.9, 1.0)[::-1])
    assert (w1 > w0).all()
    assert (np.diff(p.reach) > 0).all() and p.horizon[0] == pytest.approx(math.log(400e6 / 150e6))
    # reach = h * |log-linear slope on the logit scale| / sqrt(k - 2)
    z = E.scale_for("ndcg@10", [0.6]).to([0.60, 0.64, 0.66, 0.67])
    slope = np.polyfit(np.log(SIZES), z, 1)[0]
    assert p.reach[0] == pytest.approx(p.horizon[0] * abs(slope) / math.sqrt(2))


def test_linear_data_on_the_logit_scale_is_recovered():
    """Exact log-linear data (on the logit scale): the log-linear component fits with no residual, takes the
    weight, and the forecast is the line's."""
    t = np.log(SIZES)
    z = -0.5 + 0.2 * (t - t.mean())
    y = special.expit(z)
    p = E.predictive(SIZES, y, [1e9], "ndcg@10", 1, seed=0)
    truth = special.expit(-0.5 + 0.2 * (np.log(1e9) - t.mean()))
    assert p.point[0] == pytest.approx(truth, abs=1e-6)


def test_posterior_noise_matches_the_textbook_when_one_component():
    """With the log-linear component alone and a flat prior, sigma^2 | data is scaled inverse chi-square
    with n - 2 degrees of freedom and scale RSS / (n - 2): its mean is RSS / (n - 4)."""
    rng = np.random.default_rng(0)
    x = np.repeat(SIZES, 3)
    z = 0.1 * np.log(x) + rng.normal(0, 0.05, x.size)
    comp = E.components(np.log(x), z, linear_only=True)
    d = E.draw(comp, [np.log(1e9)], 1, n_draws=200_000, rng=np.random.default_rng(1))
    rss = float(comp.rss[0])
    assert np.average(d.sigma**2, weights=d.w) == pytest.approx(rss / (x.size - 4), rel=0.02)


def test_weighted_quantile_by_hand():
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    w = np.array([0.1, 0.2, 0.3, 0.4])
    # midpoints of the cumulative weights: 0.05, 0.2, 0.45, 0.8 -> the median interpolates 3..4
    q = E.weighted_quantile(x, w, [0.5, 0.2])
    assert q[0, 0] == pytest.approx(3 + (0.5 - 0.45) / (0.8 - 0.45))
    assert q[1, 0] == pytest.approx(2.0)


def test_moderated_prior_by_hand():
    """Smyth's (2004) moments: e_g = log s_g^2 - digamma(d/2) + log(d/2); s0^2 = exp(mean e + digamma(nu0/2)
    - log(nu0/2)) with trigamma(nu0/2) = var(e) - mean trigamma(d/2)."""
    rng = np.random.default_rng(3)
    df = np.full(40, 4.0)
    true = rng.lognormal(np.log(0.01), 0.8, df.size)  # groups' variances differ
    rss = true * rng.chisquare(df)
    prior = E.moderated_prior(rss, df)
    e = np.log(rss / df) - special.digamma(df / 2) + np.log(df / 2)
    tri = float(special.polygamma(1, prior.nu0 / 2))
    assert tri == pytest.approx(np.var(e, ddof=1) - float(special.polygamma(1, 2.0)), rel=1e-6)
    assert prior.s0sq == pytest.approx(math.exp(e.mean() + special.digamma(prior.nu0 / 2)
                                                - math.log(prior.nu0 / 2)), rel=1e-9)
    # identical variances: pooled completely; fewer than 3 groups: flat
    assert E.moderated_prior(np.full(10, 0.04) * 4, np.full(10, 4.0)).nu0 >= 100
    assert E.moderated_prior([0.1, 0.2], [2, 2]) == E.FLAT


def test_t_quantile():
    assert E.t_quantile(0.9, 5) == pytest.approx(stats.t.ppf(0.95, 5))
    assert E.t_quantile(0.9, 0) == math.inf
