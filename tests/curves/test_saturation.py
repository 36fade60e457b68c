"""Saturation verdicts and saturation sizes on curves whose answer is known."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxeval.curves.families import get_family
from jaxeval.curves.fit import json_num
from jaxeval.curves.saturation import saturation, saturation_size
from jaxeval.curves.uncertainty import bootstrap_curve

SIZES = np.unique(np.round(np.geomspace(100, 20_000, 10)))


def _curve(name, params, x):
    with jax.enable_x64(True):
        return np.asarray(get_family(name)(jnp.asarray(params), jnp.asarray(x)))


def _scores(name, params, sizes, seed):
    rng = np.random.default_rng(seed)
    truth = _curve(name, params, sizes)
    return truth[None] + 0.002 * rng.standard_normal((8, 1)) + 0.002 * rng.standard_normal((8, sizes.size))


@pytest.fixture(scope="module")
def exp_boot():
    """Exponential saturation 0.4 exp(-n / 3000) + 0.1, observed up to n = 2e4."""
    return bootstrap_curve("exp3", SIZES, _scores("exp3", [0.4, 1 / 3000, 0.1], SIZES, 0),
                           key=jax.random.key(0), num_resamples=63)


@pytest.fixture(scope="module")
def pow_boot():
    """Power law 0.05 + 2 n^-0.4: doubling n = 2e4 still gains about 0.009."""
    return bootstrap_curve("powerlaw", SIZES, _scores("powerlaw", [0.05, 2.0, 0.4], SIZES, 1),
                           key=jax.random.key(1), num_resamples=63)


def test_exponential_saturation_is_saturated(exp_boot):
    """At n = 2e4 the true gain from doubling is 0.4 e^{-20000/3000} ~ 5e-4 < epsilon = 3e-3; the
    true curve is within epsilon of its limit from n = 3000 ln(0.4 / 3e-3) ~ 14,700 on."""
    s = saturation(exp_boot, epsilon=3e-3)
    assert s.verdict == "saturated", s.reason
    assert s.p_small_gain[-1] >= 0.95 and s.p_small_gain[0] == 0.0  # early on, doubling helps a lot
    assert s.gain[0] > 0.01 and s.gain_hi[-1] < 3e-3
    n_true = 3000 * np.log(0.4 / 3e-3)
    assert s.n_saturation == pytest.approx(n_true, rel=0.05)
    assert s.n_saturation_lo < s.n_saturation < s.n_saturation_hi < 1.1 * n_true
    assert s.limit == pytest.approx(0.1, abs=0.003)  # ~4 standard errors of the 8-seed mean offset
    assert s.limit_lo < s.limit < s.limit_hi
    summary = json.loads(json.dumps(s.summary(), allow_nan=False))  # strict JSON
    assert summary["verdict"] == "saturated" and summary["n_saturation"] == pytest.approx(s.n_saturation)


def test_power_law_is_not_saturated_and_the_boundary_cannot_be_told(pow_boot):
    s = saturation(pow_boot, epsilon=1e-3)
    assert s.verdict == "not saturated", s.reason
    assert s.p_small_gain[-1] == 0.0 and s.gain_lo[-1] > 1e-3
    true_gain = np.diff(_curve("powerlaw", [0.05, 2.0, 0.4], [2 * SIZES[-1], SIZES[-1]]))[0]
    assert s.gain_lo[-1] <= true_gain <= s.gain_hi[-1]
    # epsilon at the estimated gain: the interval straddles it
    u = saturation(pow_boot, epsilon=float(s.gain[-1]))
    assert u.verdict == "cannot tell" and "straddles epsilon" in u.reason
    never = saturation_size("log2", np.array([[0.05, 0.9]]), 1e-3, 10.0, 1e6)[0]
    assert json.dumps({"n": json_num(never[0])}, allow_nan=False) == '{"n": "inf"}'
    assert 0.05 < u.p_small_gain[-1] < 0.95


def test_saturation_size_closed_form():
    # power law: |A n^-alpha| <= eps from n = (A / eps)^(1 / alpha); grid of 100 points per decade,
    # interpolated inside the cell (the error of linear interpolation in log n is ~(2.3%)^2)
    p = np.array([[0.05, 2.0, 0.4], [0.1, 5.0, 0.7]])
    n_eps, limit = saturation_size("powerlaw", p, 1e-3, 10.0, 1e12)
    exact = (p[:, 1] / 1e-3) ** (1 / p[:, 2])
    np.testing.assert_allclose(n_eps, exact, rtol=2e-3)
    np.testing.assert_allclose(limit, p[:, 0])
    # beyond the horizon, or no finite limit at all (log2 decreases forever): inf
    assert saturation_size("powerlaw", p, 1e-3, 10.0, 1e6)[0][0] == np.inf
    n_log, lim_log = saturation_size("log2", np.array([[0.05, 0.9]]), 1e-3, 10.0, 1e12)
    assert n_log[0] == np.inf and np.isnan(lim_log[0])


def test_higher_is_better_flips_the_gain(exp_boot):
    acc = 1.0 - _scores("exp3", [0.4, 1 / 3000, 0.1], SIZES, 0)
    b = bootstrap_curve("exp3", SIZES, acc, key=jax.random.key(0), num_resamples=63)
    s_acc = saturation(b, epsilon=3e-3, higher_is_better=True)
    s_err = saturation(exp_boot, epsilon=3e-3)
    assert s_acc.verdict == s_err.verdict == "saturated"
    np.testing.assert_allclose(s_acc.gain, s_err.gain, rtol=1e-6, atol=1e-9)


def test_unconverged_fit_cannot_tell_and_bad_epsilon():
    # a log-shaped curve has no finite power-law minimiser: the point fit does not converge
    scores = 0.9 - 0.05 * np.log(SIZES)[None] + 0.002 * np.random.default_rng(4).standard_normal((8, SIZES.size))
    b = bootstrap_curve("powerlaw", SIZES, scores, key=jax.random.key(2), num_resamples=63)
    s = saturation(b, epsilon=1e-3)
    assert s.verdict == "cannot tell" and "did not converge" in s.reason
    with pytest.raises(ValueError, match="epsilon"):
        saturation(b, epsilon=0.0)
    with pytest.raises(ValueError, match="level"):
        saturation(b, epsilon=1e-3, level=0.4)


def test_observed_gain_per_doubling_is_the_model_free_last_step(exp_boot):
    """The observed gain uses the same joint draws as the refits: its estimate is the mean curve's
    drop over the last grid step per doubling, its resamples the resampled mean curves' drops."""
    s = saturation(exp_boot, epsilon=3e-3)
    m, mb = exp_boot.mean_curve, exp_boot.resample_means
    d = np.log2(SIZES[-1] / SIZES[-2])
    assert s.observed_gain == pytest.approx((m[-2] - m[-1]) / d, rel=1e-12)
    g = s.observed_gain + exp_boot.inflation * ((mb[:, -2] - mb[:, -1]) / d - s.observed_gain)
    assert s.p_observed_small == pytest.approx(np.mean(g < 3e-3))
    assert s.observed_gain_lo <= s.observed_gain <= s.observed_gain_hi
    obs = s.summary()["observed_gain_per_doubling"]
    assert obs["from"] == SIZES[-2] and obs["to"] == SIZES[-1]


@pytest.mark.parametrize("name, params, verdict", [
    ("exp3", [0.4, 1 / 1000, 0.1], "saturated"),  # flat at the end: the last step gains ~1e-5 per doubling
    ("powerlaw", [0.05, 2.0, 0.4], "not saturated"),  # still falling: ~0.012 per doubling over the last step
])
def test_last1_verdict_comes_from_the_observed_gain(name, params, verdict):
    """LCDB's last1 (a flat line) predicts a gain of exactly 0 at every size for every refit, so it
    would call any curve saturated with certainty; its verdict is made from the observed gain per
    doubling instead, so a curve still falling at the end is 'not saturated' even under last1."""
    b = bootstrap_curve("last1", SIZES, _scores(name, params, SIZES, 5), key=jax.random.key(4), num_resamples=63)
    s = saturation(b, epsilon=5e-3)
    assert np.all(s.gain == 0.0)
    assert s.verdict == verdict, s.reason
    assert "observed gain per doubling" in s.reason
