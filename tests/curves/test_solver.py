"""The solver: scale-invariant stopping (no early stop on a tiny objective), agreement with scipy,
status codes, pool scheduling and determinism."""

import numpy as np
import pytest
from scipy.optimize import least_squares

from jaxeval.curves import solver as S
from jaxeval.curves.families import get_family
from jaxeval.curves.fit import fit_curve
from jaxeval.curves.objective import make_objective

SIZES = np.unique(np.round(np.geomspace(100, 50_000, 12)))
RNG = np.random.default_rng(7)
Y = 0.08 + 3.0 * SIZES**-0.45 + 0.002 * RNG.standard_normal(SIZES.size)


def _same(a, b):
    for f in ("params", "value", "status", "iterations", "decrement", "min_eig"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


@pytest.mark.parametrize("loss", ["squared", "huber"])
def test_objective_scale_does_not_change_iterates(loss):
    """Multiplying the objective by 2^-30 (a 'mean' over 1e9 points, or a tiny Huber loss) or by
    2^12 leaves every iterate bit-identical: all thresholds are relative, and scaling by a power of
    two is exact in floating point. This is why a mean reduction cannot stop the fit early."""
    obj = make_objective(loss, delta=0.002)
    w = np.ones((3, SIZES.size)) * np.array([[1.0], [2.0**-30], [2.0**12]])
    fit = fit_curve("powerlaw", SIZES, np.broadcast_to(Y, w.shape), weights=w, objective=obj)
    assert np.all(fit.best_converged)
    for r in (1, 2):
        np.testing.assert_array_equal(fit.params[r], fit.params[0])
        np.testing.assert_array_equal(fit.iterations[r], fit.iterations[0])
        np.testing.assert_array_equal(fit.status[r], fit.status[0])
        np.testing.assert_allclose(fit.value[r] / w[r, 0], fit.value[0], rtol=1e-15)


def test_mean_reduction_reports_mean_and_stops_at_the_same_point():
    obj = make_objective("huber", delta=0.002)
    s = fit_curve("powerlaw", SIZES, Y, objective=obj)
    m = fit_curve("powerlaw", SIZES, Y, objective=obj._replace(reduction="mean"))
    np.testing.assert_array_equal(m.params, s.params)
    np.testing.assert_array_equal(m.iterations, s.iterations)
    np.testing.assert_allclose(m.value * SIZES.size, s.value, rtol=1e-15)
    assert m.objective["reduction"] == "mean" and s.objective["reduction"] == "sum"


@pytest.mark.parametrize("loss", ["squared", "huber"])
def test_agrees_with_scipy_least_squares(loss):
    # scipy's least_squares(loss="huber", f_scale=delta) minimises the same sum of Huber losses
    fam = get_family("pow4")
    obj = make_objective(loss, delta=0.002)
    fit = fit_curve(fam, SIZES, Y, objective=obj)
    b = fit.best[0]
    start = fit.starts[0, b]
    theta0 = np.where(fam.positive, np.log(np.abs(start)), start)  # positive entries are > 0

    def resid(t):
        p = np.where(fam.positive, np.exp(t), t)
        return p[0] - p[1] * (SIZES + p[3]) ** (-p[2]) - Y

    ref = least_squares(resid, theta0, method="trf", loss="linear" if loss == "squared" else "huber",
                        f_scale=0.002, xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=20000)
    ref_p = np.where(fam.positive, np.exp(ref.x), ref.x)
    assert fit.best_converged[0]
    assert fit.best_value[0] <= 2 * ref.cost * (1 + 1e-9)  # scipy's cost is half the sum of rho
    np.testing.assert_allclose(fit.best_params[0], ref_p, rtol=2e-5)


def test_converged_point_is_a_stationary_minimum():
    fit = fit_curve("powerlaw", SIZES, Y)
    fam = get_family("powerlaw")
    theta = np.where(fam.positive, np.log(fit.best_params[0]), fit.best_params[0])

    def F(t):
        p = np.where(fam.positive, np.exp(t), t)
        return 0.5 * np.sum((p[0] + p[1] * SIZES ** (-p[2]) - Y) ** 2)

    h = 1e-5
    grad = np.array([(F(theta + h * e) - F(theta - h * e)) / (2 * h) for e in np.eye(3)])
    hess = np.array([[(F(theta + h * (ei + ej)) - F(theta + h * (ei - ej)) - F(theta - h * (ei - ej))
                       + F(theta - h * (ei + ej))) / (4 * h * h) for ej in np.eye(3)] for ei in np.eye(3)])
    assert fit.best_converged[0] and fit.min_eig[0, fit.best[0]] > 0
    # Newton decrement from finite differences: the predicted further decrease is negligible
    assert grad @ np.linalg.solve(hess, grad) / 2 <= 1e-8 * F(theta)
    assert np.all(np.linalg.eigvalsh(hess) > 0)


def test_status_codes():
    obj = make_objective(space="log")
    starts = np.array([[0.08, 3.0, 0.45], [-5.0, 3.0, 0.45], [0.5, 1e3, 2.0]])
    fit = fit_curve("powerlaw", SIZES, Y, objective=obj, starts=starts, options=S.SolverOptions(max_iter=3))
    names = [S.STATUS_NAMES[s] for s in fit.status[0]]
    assert names[1] == "nonfinite_start"  # E = -5: log of a negative prediction
    assert names[2] == "max_iter" and fit.iterations[0, 2] == 3
    assert not fit.converged[0, 1] and not fit.converged[0, 2]


def test_no_finite_minimiser_is_not_reported_converged():
    # a log curve: a power law with floor only approaches it as alpha -> 0, A -> inf, E -> -inf
    y = 0.9 - 0.05 * np.log(SIZES)
    fit = fit_curve("powerlaw", SIZES, y)
    assert not np.any(fit.converged)
    assert fit.best_params[0, 2] < 0.05  # running toward alpha = 0


def test_pool_scheduling_and_determinism():
    y = np.stack([Y, Y * 1.1, Y + 0.01])
    a = fit_curve("powerlaw", SIZES, y)
    b = fit_curve("powerlaw", SIZES, y)
    _same(a, b)  # same inputs, same bits
    c = fit_curve("powerlaw", SIZES, y, options=S.SolverOptions(pool=4))  # 27 tasks through 4 lanes
    np.testing.assert_array_equal(c.status, a.status)
    np.testing.assert_array_equal(c.iterations, a.iterations)
    np.testing.assert_allclose(c.params, a.params, rtol=1e-10)


def test_float32_mode_and_bad_inputs():
    f32 = fit_curve("powerlaw", SIZES, Y, dtype="float32")
    f64 = fit_curve("powerlaw", SIZES, Y)
    assert f32.best_converged[0]
    np.testing.assert_allclose(f32.best_params[0], f64.best_params[0], rtol=2e-3)
    with pytest.raises(ValueError, match="dtype"):
        fit_curve("powerlaw", SIZES, Y, dtype="float16")
    with pytest.raises(ValueError, match="space='log' needs y > 0"):
        fit_curve("powerlaw", SIZES, Y - 1.0, objective={"space": "log"})
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_curve("powerlaw", SIZES, Y, weights=(np.arange(SIZES.size) < 2).astype(float))
    with pytest.raises(ValueError, match="starts must have shape"):
        fit_curve("powerlaw", SIZES, Y, starts=np.ones((4, 2)))
    with pytest.raises(ValueError, match="x must be positive"):
        fit_curve("powerlaw", -SIZES, Y)
