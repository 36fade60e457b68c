"""Model selection by rolling-origin backtest: it must pick a better family than a plain power law
where that is known to be true."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.reference import reference_path
from jaxeval.curves.families import get_family
from jaxeval.curves.select import backtest

SIZES = np.unique(np.round(np.geomspace(100, 100_000, 12)))


@pytest.fixture(scope="module")
def saturating():
    """Exponential saturation, 0.4 exp(-n / 3000) + 0.1, 5 seeds with noise 0.003."""
    with jax.enable_x64(True):
        truth = np.asarray(get_family("exp3")(jnp.asarray([0.4, 1 / 3000, 0.1]), jnp.asarray(SIZES)))
    scores = truth + 0.003 * np.random.default_rng(1).standard_normal((5, SIZES.size))
    return backtest(SIZES, scores, families=("powerlaw", "pow3", "exp3")), truth


def test_backtest_prefers_exponential_saturation_over_a_power_law(saturating):
    """Why exp3 must win: past n ~ 1e4 the remaining gain of this curve decays like exp(-n/3000),
    while any power law's decays like n^-alpha; a power law fitted on the smaller sizes keeps
    predicting gains that never come (its out-of-range error stays ~1e-2 at every origin), whereas
    exp3 extrapolates to the noise level once the bend is inside the training range."""
    bt, _ = saturating
    assert bt.chosen == "exp3"
    score = dict(zip(bt.families, bt.score))
    assert score["exp3"] < 0.01 * score["powerlaw"]
    assert score["exp3"] < 0.01 * score["pow3"]
    # exp3 beats the power law at every origin from 5 training sizes on
    i, j = bt.families.index("exp3"), bt.families.index("powerlaw")
    assert np.all(bt.errors[i, 1:] < bt.errors[j, 1:])


def test_backtest_bookkeeping(saturating):
    bt, truth = saturating
    F, O, S = len(bt.families), bt.origins.size, SIZES.size
    np.testing.assert_array_equal(bt.origins, np.arange(4, S))  # LCDB: from 4 training sizes to S - 1
    assert bt.errors.shape == bt.last_errors.shape == bt.converged.shape == (F, O)
    assert bt.predictions.shape == (F, O, S)
    assert bt.weights.sum() == pytest.approx(1.0) and np.argmax(bt.weights) == bt.families.index(bt.chosen)
    assert [f for f, _ in bt.ranking()][0] == bt.chosen
    # the reported error is recomputed from the stored predictions (squared, held-out sizes only)
    k = bt.families.index("exp3")
    held = np.arange(S) >= bt.origins[2]
    np.testing.assert_allclose(bt.errors[k, 2], np.mean((bt.predictions[k, 2, held] - bt.curve[held]) ** 2))
    # final fits use every size; the averaged prediction is the weighted sum of the final fits
    assert bt.fits["exp3"].best_converged[0]
    x = np.array([2e5, 5e5])
    avg = sum(w * bt.fits[f].predict(x, row=0) for f, w in zip(bt.families, bt.weights))
    np.testing.assert_allclose(bt.predict(x, average=True), avg)
    np.testing.assert_allclose(bt.predict(x), bt.fits["exp3"].predict(x, row=0))
    assert abs(bt.predict(np.array([3e5]))[0] - 0.1) < 0.005  # close to the true plateau
    assert json.loads(json.dumps(bt.summary(), allow_nan=False))["chosen"] == "exp3"  # strict JSON


def test_backtest_prefers_a_broken_power_law_on_4_digit_addition():
    """Caballero et al. (2022, Fig. 4 left): test cross-entropy of 4-digit addition vs training-set
    size has a sharp drop after n ~ 500 that no single power law follows; a broken power law with
    one break does. Backtested on the 14 points they fitted, BNSL must win; refitted on all 14, it
    must extrapolate to their 3 held-out sizes (800-928) far better than the power law."""
    path = reference_path("bnsl_4digit_addition.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    x = np.array([float(r["train_set_size"]) for r in rows])
    y = np.array([float(r["test_cross_entropy"]) for r in rows])
    fit_part = np.array([r["used_for_fit"] == "1" for r in rows])
    bt = backtest(x[fit_part], y[fit_part], families=("powerlaw", "bnsl"), objective={"space": "log"})
    assert bt.chosen == "bnsl"
    np.testing.assert_array_equal(bt.origins, np.arange(6, 14))  # 6 parameters -> from 6 sizes
    held = ~fit_part
    rmsle = {f: np.sqrt(np.mean((np.log(bt.fits[f].predict(x[held], row=0)) - np.log(y[held])) ** 2))
             for f in bt.families}
    assert rmsle["bnsl"] < 0.05 < 0.3 < rmsle["powerlaw"]


def test_backtest_rejects_bad_arguments():
    y = 0.1 + SIZES**-0.3
    with pytest.raises(ValueError, match="min_train=4 is below the parameter count"):
        backtest(SIZES, y, families=("bnsl",), min_train=4)
    with pytest.raises(ValueError, match="one-variable"):
        backtest(SIZES, y, families=("chinchilla",))
    with pytest.raises(ValueError, match="aggregate"):
        backtest(SIZES, y, families=("powerlaw",), aggregate="max")
    with pytest.raises(ValueError, match="non-finite"):
        backtest(SIZES, np.stack([y, y * np.nan]), families=("powerlaw",))
