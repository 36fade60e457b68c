"""The variance study: a real (tiny) factorial run, fresh-process bits, CV plans, power, bad input.

The statistics themselves (recovery of known components within their CIs at the stated rate, REML
agreement with statsmodels) are tested on simulated grids in tests/stats/test_variance.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.stats

from jaxeval import config as config_lib
from jaxeval import keys as K
from jaxeval import results
from jaxeval.studies import variance

REPO = Path(__file__).resolve().parents[2]

SMALL = {
    "model.hidden": (32,), "model.recon_hidden": 32, "pretrain.epochs": 1, "finetune.epochs": 2,
    "finetune.modes": ("full",), "chunk_width": 4, "variance.init": 3, "variance.data": 2, "variance.dropout": 2,
    "variance.num_resamples": 400, "variance.cv_folds": 3, "variance.cv_repeats": 1,
}


def small_config(**overrides):
    c = config_lib.base_config("variance")
    return config_lib.set_fields(c, {**SMALL, **overrides})


CONFIG_FILE = """
from jaxeval.config import base_config, set_fields

def get_config():
    return set_fields(base_config("variance"), {items!r})
"""


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("variance")
    return variance.run(small_config(), workdir=workdir, log=None), workdir


@pytest.mark.xdist_group("variance_study")
def test_components_shares_and_outputs(small_run):
    result, workdir = small_run
    s = result.summary
    assert s["design"]["num_replicates"] == 12 and s["design"]["kind"] == "factorial"
    assert "init:data:dropout" not in s["design"]["identifiable"]
    full = s["modes"]["full"]
    for metric in ("accuracy", "nll"):
        comp = full[metric]
        names = [c["component"] for c in comp["components"]]
        assert names == ["init", "data", "dropout", "init:data", "init:dropout", "data:dropout", "residual"]
        for c in comp["components"]:
            # non-negative, or flagged and truncated to 0 (never silently clipped)
            assert c["truncated"] >= 0
            assert c["negative"] == (c["estimate"] < 0)
            assert c["truncated"] == (0.0 if c["negative"] else c["estimate"])
            assert c["ci"][0] <= c["ci"][1]
        assert comp["shares_sum"] == pytest.approx(1.0, abs=1e-12)
        # ANOVA identity: the components sum (untruncated) to the expected one-run variance of
        # the crossed model; here at least: the total is positive and of the order of the
        # replicates' observed variance.
        var = np.var(comp["per_replicate"]["values"], ddof=1)
        assert 0.2 * var < comp["total_variance"] < 5 * var
        assert comp["power"]["seeds_per_arm"] >= 2 and "method" in comp
    # best-of-1 is the mean; best-of-k is non-decreasing in k
    bk = full["best_of_k"]["accuracy"]["with_replacement"]
    assert bk["k"][0] == 1 and bk["mean"][0] == pytest.approx(full["accuracy"]["per_replicate"]["mean"], abs=1e-6)
    assert np.all(np.diff(bk["mean"]) >= -1e-7)
    nll_bk = full["best_of_k"]["nll"]["with_replacement"]
    assert np.all(np.diff(nll_bk["mean"]) <= 1e-7)  # lower is better: the best of more runs is lower
    tn = full["testset_noise"]
    assert tn["num_runs"] == 12 and tn["num_examples"] == 360
    assert tn["share_training"] + tn["share_test_set"] == pytest.approx(1.0)
    cv = full["cv"]
    assert cv["method"] == "kfold" and cv["num_models"] == 3 and cv["examples_used"] == 1437 // 3 * 3
    assert 0.0 < cv["estimate"] < 1.0
    rows = (workdir / "replicates.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 12 * 6  # replicates x all metrics
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["design_kind"] == "factorial"
    correct = np.load(workdir / "correct_full.npz")["correct"]
    assert correct.shape == (12, 360)
    text = variance.format_summary(s)
    assert "residual" in text and "share" in text and "seeds per arm" in text


@pytest.mark.xdist_group("variance_study")
def test_report_writes_plots(small_run):
    _, workdir = small_run
    lines = variance.report(workdir)
    for name in ("variance_components.png", "best_of_k.png"):
        png = workdir / name
        assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert any("| init |" in line for line in lines)


@pytest.mark.slow
@pytest.mark.xdist_group("variance_study")
def test_bitwise_reproducible_in_fresh_process(small_run, tmp_path):
    """The CLI in a new process gives the same bits (fingerprints, CSV, summary numbers)."""
    result, workdir = small_run
    cfg_file = tmp_path / "tiny_variance.py"
    cfg_file.write_text(CONFIG_FILE.format(items=SMALL))
    out = tmp_path / "run"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "jaxeval.variance", f"--config={cfg_file}", f"--workdir={out}",
                           "--quiet"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (json.loads((d / "manifest.json").read_text()) for d in (workdir, out))
    assert a["fingerprints"] == b["fingerprints"]
    assert a["config_hash"] == b["config_hash"]
    assert (workdir / "replicates.csv").read_bytes() == (out / "replicates.csv").read_bytes()
    assert np.array_equal(np.load(workdir / "correct_full.npz")["correct"], np.load(out / "correct_full.npz")["correct"])
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (workdir, out))
    assert sa == sb
    assert "residual" in proc.stdout


def test_cv_plans_partition_the_examples():
    root = K.root_key(3)
    n = 50
    plan = variance.cv_plan(config_lib.validate(small_config(**{"variance.cv_folds": 4, "variance.cv_repeats": 2}),
                                                "variance"), root, n)
    mask, ti = plan["mask"], plan["columns"]["train_index"]
    assert mask.shape == (8, n) and ti.shape == (8, 48 - 12) and plan["examples_used"] == 48
    for r in range(2):
        rows = plan["repeat"] == r
        held = mask[rows].sum(axis=0)
        assert held.max() == 1 and held.sum() == 48  # each used example held out exactly once
    for i in range(8):
        assert not np.intersect1d(ti[i], np.flatnonzero(mask[i])).size  # never trained on what it tests
        assert np.unique(ti[i]).size == ti.shape[1]
    # repeats use different fold assignments and different training seeds
    assert not np.array_equal(mask[:4], mask[4:])
    assert set(plan["columns"]["init"]) == {1000, 1001}
    loo = variance.cv_plan(config_lib.validate(small_config(**{"variance.cv": "loo"}), "variance"), root, 10)
    assert np.array_equal(loo["mask"], np.eye(10, dtype=bool)) and loo["columns"]["train_index"].shape == (10, 9)
    boot = variance.cv_plan(config_lib.validate(small_config(**{"variance.cv": "bootstrap632",
                                                                  "variance.cv_bootstraps": 5}), "variance"), root, 30)
    for i in range(5):
        in_bag = np.zeros(30, bool)
        in_bag[boot["columns"]["train_index"][i]] = True
        assert np.array_equal(boot["mask"][i], ~in_bag)


def test_cv_estimates_closed_forms():
    plan = {"mask": np.array([[1, 1, 0, 0], [0, 0, 1, 1]], bool), "repeat": np.array([0, 0]), "examples_used": 4}
    correct = np.array([[1, 0, 1, 1], [0, 0, 1, 0]], bool)
    out = variance.cv_estimates(plan, correct, method="kfold", apparent_accuracy=None, test_accuracy=0.5, alpha=0.05)
    assert out["fold_accuracy"] == [0.5, 0.5] and out["estimate"] == 0.5
    boot = {"mask": np.array([[1, 0, 0, 1], [1, 1, 0, 0]], bool), "repeat": np.array([0, 1]), "examples_used": 4}
    correct = np.array([[1, 1, 1, 0], [0, 1, 1, 1]], bool)
    out = variance.cv_estimates(boot, correct, method="bootstrap632", apparent_accuracy=1.0, test_accuracy=0.5,
                                alpha=0.05)
    # example 0: out of bag twice (1, 0) -> 0.5; example 1: once (1); example 3: once (0); example 2 never
    assert out["oob_accuracy"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert out["estimate"] == pytest.approx(0.368 + 0.632 * 0.5)


def test_t_test_power_matches_simulation_and_is_minimal():
    var, delta, alpha = 4e-4, 0.01, 0.05
    key = K.stream(K.root_key(0), "bootstrap", 0)
    n, sims = 20, 4000
    a = jax.random.normal(jax.random.fold_in(key, 0), (sims, n)) * np.sqrt(var) + delta
    b = jax.random.normal(jax.random.fold_in(key, 1), (sims, n)) * np.sqrt(var)
    p = scipy.stats.ttest_ind(np.asarray(a, np.float64), np.asarray(b, np.float64), axis=1).pvalue
    simulated = np.mean(p < alpha)
    exact = float(variance.t_test_power(n, var, delta=delta, alpha=alpha))
    assert abs(simulated - exact) < 4 * np.sqrt(exact * (1 - exact) / sims), (simulated, exact)
    out = variance.seeds_for_power(var, delta=delta, power=0.8, alpha=alpha)
    m = out["seeds_per_arm"]
    assert variance.t_test_power(m, var, delta=delta, alpha=alpha) >= 0.8 > variance.t_test_power(
        m - 1, var, delta=delta, alpha=alpha)
    # the normal approximation 2 (z + z)^2 var / delta^2 = 62.8: the t-test needs a little more
    assert 63 <= m <= 65


def test_missing_replicate_is_explicit():
    des = variance.make_design(config_lib.validate(small_config(), "variance"))
    scores = np.asarray(jax.random.normal(K.stream(K.root_key(1), "bootstrap", 0), (12,)), np.float64)
    scores[5] = np.nan
    cfg = config_lib.validate(small_config(), "variance")
    out = variance.components(scores, des, key=K.stream(K.root_key(1), "bootstrap", 1), v=cfg.variance)
    assert "dropped" in out["method"] and out["grid_analysed"] != [3, 2, 2]
    cfg = config_lib.validate(small_config(**{"variance.missing": "raise"}), "variance")
    with pytest.raises(ValueError, match="missing"):
        variance.components(scores, des, key=K.stream(K.root_key(1), "bootstrap", 1), v=cfg.variance)


def test_designs_from_config():
    d = variance.make_design(config_lib.validate(small_config(**{"variance.design": "ofat"}), "variance"))
    assert d.kind == "ofat" and d.num_replicates == 1 + 2 + 1 + 1
    d = variance.make_design(config_lib.validate(small_config(**{"variance.design": "together", "num_seeds": 5}),
                                                 "variance"))
    assert d.kind == "together" and d.num_replicates == 5
    d = variance.make_design(config_lib.validate(small_config(**{"variance.design": "nested",
                                                                  "pretrain.num_seeds": 2}), "variance"))
    assert d.kind == "nested" and d.num_replicates == 24 and "pretrain" in d.identifiable()
    d = variance.make_design(config_lib.validate(small_config(**{"pretrain.num_seeds": 2}), "variance"))
    assert d.factors == ("pretrain", "init", "data", "dropout") and d.num_replicates == 24
    cols = variance.replicate_columns(variance.make_design(config_lib.validate(
        small_config(**{"variance.design": "ofat"}), "variance")))
    assert set(cols) == {"pretrain", "init", "data", "dropout"} and not cols["pretrain"].any()


@pytest.mark.parametrize("field,value,match", [
    ("variance.effects", ("init:data:dropout",), "not identifiable"),
    ("variance.design", "latin", "variance.design"),
    ("variance.metrics", ("accuracy", "auc"), "variance.metrics"),
    ("variance.cv", "holdout", "variance.cv"),
    ("variance.missing", "zero", "variance.missing"),
    ("variance.cv_folds", 1, "variance.cv_folds"),
    ("variance.alpha", 0.7, "variance.alpha"),
])
def test_bad_config(field, value, match):
    with pytest.raises(ValueError, match=match):
        config_lib.validate(small_config(**{field: value}), "variance")


def test_refuses_interaction_an_ofat_design_cannot_identify():
    with pytest.raises(ValueError, match="not identifiable in an 'ofat' design"):
        config_lib.validate(small_config(**{"variance.design": "ofat", "variance.effects": ("init:data",)}), "variance")
    with pytest.raises(ValueError, match="pretrain.num_seeds"):
        config_lib.validate(small_config(**{"variance.design": "nested"}), "variance")


def test_diverged_rows_cover_training_metrics_and_pretraining():
    from jaxeval.metrics import METRICS

    metrics = {m: np.array([0.5, 0.5, 0.5, np.nan]) for m in METRICS}
    fin = {"train": {"diverged_step": np.array([-1, 7, -1, -1]), "loss": np.zeros((4, 2))}, "metrics": metrics}
    assert variance.diverged_rows(fin).tolist() == [False, True, False, True]
    pre = {"diverged_step": np.array([-1, 2])}
    assert variance.diverged_rows(fin, np.array([0, 0, 1, 0]), pre).tolist() == [False, True, True, True]
