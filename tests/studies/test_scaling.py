"""The scaling study: nested subsets, the steps policy, results files, reproducibility, bad config,
the report, and the analysis on curves whose answer is known."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxeval import config as config_lib
from jaxeval import data as data_lib
from jaxeval import keys as K
from jaxeval import models
from jaxeval.curves import get_family
from jaxeval.curves.saturation import VERDICTS
from jaxeval.studies import base, scaling

REPO = Path(__file__).resolve().parents[2]
FAMILIES = ("powerlaw", "exp3", "last1")


def tiny_config(**overrides):
    """mnist1d 600/200, MLP 32, batch 16, 4 seeds, 5 sizes 40..600 with 40 steps each."""
    c = config_lib.base_config("scaling")
    c.dataset.name = "mnist1d"
    c.dataset.num_train = 600
    c.dataset.num_test = 200
    c.model.hidden = (32,)
    c.pretrain.enabled = False
    c.finetune.modes = ("full",)
    c.finetune.batch_size = 16
    c.num_seeds = 4
    c.chunk_width = 4
    c.scaling.min_size = 40
    c.scaling.num_sizes = 5
    c.scaling.steps_policy = "steps"
    c.scaling.steps = 40
    c.scaling.families = FAMILIES
    c.scaling.num_resamples = 24
    return config_lib.set_fields(c, overrides)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("scaling")
    return scaling.run(tiny_config(), workdir=workdir, log=None), workdir


pytestmark = pytest.mark.xdist_group("scaling_study")  # one worker runs the module fixture once


def test_sizes_are_nested_prefixes_of_one_keyed_permutation(study):
    result, workdir = study
    np.testing.assert_array_equal(result.sizes, [40, 79, 155, 305, 600])  # round(geomspace(40, 600, 5))
    saved = np.load(workdir / "subsets.npz")
    np.testing.assert_array_equal(saved["order"], result.order)
    np.testing.assert_array_equal(saved["sizes"], result.sizes)
    # one permutation of the whole train split, from the split stream: every size is a prefix of it
    ref = data_lib.subset_indices(600, 600, key=K.stream(K.root_key(0), "split", 0))
    np.testing.assert_array_equal(result.order, np.asarray(ref))
    assert len(set(result.order.tolist())) == 600
    for small, big in zip(result.sizes[:-1], result.sizes[1:]):
        assert set(result.order[:small]) < set(result.order[:big])


def test_each_size_trains_on_its_prefix_with_the_stated_steps(study):
    """Re-running the sweep of the second size by hand, on order[:n] with the epochs of the steps
    plan, gives the study's metrics bit for bit: the study trains on exactly that subset for
    exactly those steps (a different subset or step count would change the bits)."""
    result, _ = study
    cfg = config_lib.validate(tiny_config(), "scaling")
    ds = base.load_task(cfg)
    j, n = 1, int(result.sizes[1])
    plan = result.plan[j]
    assert plan == {"n": n, "epochs": 10, "steps_per_epoch": 4, "steps": 40}  # ceil(40 / (79 // 16)) epochs
    idx = result.order[:n]
    task = {"x_train": jnp.asarray(ds.x_train[idx]), "y_train": jnp.asarray(ds.y_train[idx]),
            "x_test": jnp.asarray(ds.x_test), "y_test": jnp.asarray(ds.y_test)}
    model = models.build(cfg.model, ds.feature_shape, ds.num_classes)
    cfg_n = scaling._with_epochs(cfg, plan["epochs"])
    out = base.finetune_sweep(cfg_n, model, task, None, K.root_key(0), "full", scaling.design(cfg))
    np.testing.assert_array_equal(np.asarray(out["metrics"]["accuracy"], np.float64),
                                  result.values["full"]["accuracy"][:, j])
    assert out["train"]["loss"].shape == (4, 10)


def test_steps_plan_policies():
    cfg = config_lib.validate(tiny_config(**{"finetune.batch_size": 32, "scaling.steps": 100}), "scaling")
    plan = scaling.steps_plan(cfg, [40, 100, 1000, 5000])
    assert [p["steps_per_epoch"] for p in plan] == [1, 3, 31, 156]
    assert [p["epochs"] for p in plan] == [100, 34, 4, 1]  # ceil(100 / spe), at least one epoch
    assert [p["steps"] for p in plan] == [100, 102, 124, 156]
    cfg = config_lib.validate(tiny_config(**{"finetune.batch_size": 32, "scaling.steps_policy": "epochs",
                                             "finetune.epochs": 5}), "scaling")
    assert [p["steps"] for p in scaling.steps_plan(cfg, [40, 100, 1000])] == [5, 15, 155]
    cfg = config_lib.validate(tiny_config(**{"finetune.batch_size": 32, "scaling.steps_policy": "epochs",
                                             "finetune.epochs": 5, "scaling.min_steps": 60}), "scaling")
    plan = scaling.steps_plan(cfg, [40, 100, 1000])
    assert [p["epochs"] for p in plan] == [60, 20, 5]  # max(5, ceil(60 / spe))
    assert [p["steps"] for p in plan] == [60, 60, 155]


def test_replicates_csv(study):
    result, workdir = study
    with open(workdir / "replicates.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == scaling.REPLICATE_COLUMNS
    assert len(rows) == 4 * 5 * len(scaling.ROW_METRICS)  # seeds x sizes x metrics (one mode)
    plan = {p["n"]: p for p in result.plan}
    for r in rows:
        n = int(r["data_size"])
        assert int(r["steps"]) == plan[n]["steps"] and int(r["epochs"]) == plan[n]["epochs"]
        j = list(result.sizes).index(n)
        assert float(r["value"]) == result.values[r["mode"]][r["metric"]][int(r["replicate"]), j]  # exact (repr)
        assert r["init"] == r["data"] == r["dropout"] == r["replicate"] and r["diverged_step"] == "-1"
    err = result.values["full"]["error"]
    np.testing.assert_array_equal(err, 1.0 - result.values["full"]["accuracy"])
    # learning happens: the largest size beats the smallest on average, and beats chance (0.9 error)
    assert err[:, -1].mean() < err[:, 0].mean() and err[:, -1].mean() < 0.85
    assert np.all(np.isfinite(result.values["full"]["train_loss"]))


def test_summary_and_manifest(study):
    result, workdir = study
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary, allow_nan=False))
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["sizes"] == [40, 79, 155, 305, 600]
    sp = summary["steps_policy"]
    assert sp["policy"] == "steps" and sp["target_steps"] == 40 and manifest["steps_policy"] == sp
    assert all(40 <= p["steps"] < 40 + p["steps_per_epoch"] for p in sp["per_size"])
    assert summary["subsets"]["max_size"] == 600 and summary["pretrain"] == {"enabled": False}
    m = summary["modes"]["full"]
    assert m["replicates_used"] == [0, 1, 2, 3] and m["replicates_excluded"] == []
    assert summary["divergence"]["count"] == 0
    assert set(summary["divergence"]["sweeps"]) == {f"finetune_full_n{n}" for n in result.sizes}
    np.testing.assert_allclose(m["curve"]["mean"], result.values["full"]["error"].mean(0))
    assert all(lo <= mu <= hi for lo, mu, hi in zip(m["curve"]["band_lo"], m["curve"]["mean"], m["curve"]["band_hi"]))
    # every family's final fit records its objective, optimiser status per start and convergence
    assert set(m["fits"]) == set(FAMILIES)
    for f, fit in m["fits"].items():
        assert fit["objective"] == {"loss": "squared", "space": "linear", "reduction": "sum"}
        assert fit["status"] in ("converged", "max_iter", "stalled", "nonfinite_start", "closed_form")
        assert sum(fit["starts_status"].values()) == fit["num_starts"] and isinstance(fit["converged"], bool)
    sel = m["selection"]
    assert sel["chosen"] in FAMILIES and sel["origins"] == [4]  # 5 sizes: fit 4, score the 5th
    assert m["fit"]["point"]["family"] == sel["chosen"] == m["saturation"]["family"]
    assert m["saturation"]["verdict"] in VERDICTS and m["saturation"]["reason"].startswith(sel["chosen"])
    assert [e["n"] for e in m["extrapolation"]] == [1200.0, 6000.0]
    assert len(m["fit"]["x_eval"]) == len(m["fit"]["curve"]) == len(m["fit"]["band_lo"]) == 60
    text = scaling.format_summary(summary)
    assert "steps policy 'steps'" in text and m["saturation"]["verdict"].upper() in text


def test_rerun_in_the_same_process_is_bitwise_identical(study):
    result, _ = study
    again = scaling.run(tiny_config(), log=None)
    for metric in scaling.ROW_METRICS:
        np.testing.assert_array_equal(again.values["full"][metric], result.values["full"][metric])
    assert again.manifest["fingerprints"] == result.manifest["fingerprints"]
    assert json.dumps(again.summary, sort_keys=True) == json.dumps(result.summary, sort_keys=True)


def test_rerun_on_the_workdir_resumes_from_checkpoints(study, tmp_path):
    """A second run on a copy of the finished workdir loads every sweep's chunk instead of training,
    and writes the same replicates.csv and summary.json."""
    result, workdir = study
    copy = tmp_path / "w"
    shutil.copytree(workdir, copy)
    again = scaling.run(tiny_config(), workdir=copy, log=None, report=False)
    sweeps = again.manifest["checkpoints"]["sweeps"]
    assert set(sweeps) == {f"finetune_full_n{n}" for n in result.sizes}
    assert all(v["loaded"] == 1 and v["saved"] == 0 for v in sweeps.values()), sweeps
    for name in ("replicates.csv", "summary.json", "subsets.npz"):
        assert (copy / name).read_bytes() == (workdir / name).read_bytes(), name


def test_report_reads_only_the_saved_results(study, tmp_path):
    _, workdir = study
    for name in ("summary.json", "replicates.csv"):
        shutil.copy(workdir / name, tmp_path / name)
    lines = scaling.report(tmp_path)
    png = (tmp_path / "scaling.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert (workdir / "scaling.png").exists()  # run() made one too
    text = "\n".join(lines)
    assert "![scaling](scaling.png)" in text and "**Saturation**" in text and "| n | epochs | steps |" in text
    with pytest.raises(ValueError, match="not a scaling study"):
        (tmp_path / "summary.json").write_text(json.dumps({"study": "seeds"}))
        scaling.report(tmp_path)


@pytest.mark.parametrize("overrides, match", [
    ({"scaling.min_size": 8}, r"scaling.min_size=8 .*finetune.batch_size=16"),
    ({"scaling.max_size": 30}, r"scaling.max_size=30 .*larger than scaling.min_size=40"),
    ({"scaling.steps_policy": "budget"}, r"scaling.steps_policy='budget'"),
    ({"scaling.steps": 0}, r"scaling.steps=0 .*positive integer"),
    ({"scaling.metric": "accuracy"}, r"scaling.metric='accuracy'"),
    ({"scaling.families": ("powerlaw", "pow5")}, r"scaling.families=.*pow5"),
    ({"scaling.families": ("bnsl",)}, r"scaling.num_sizes=5 .*must be >= 7"),
    ({"scaling.epsilon": 0.0}, r"scaling.epsilon=0.0"),
    ({"scaling.extrapolate": (0.5,)}, r"scaling.extrapolate=\(0.5,\)"),
    ({"scaling.level": 1.5}, r"scaling.level=1.5"),
    ({"scaling.loss": "l1"}, r"scaling.loss='l1'"),
    ({"num_seeds": 1}, r"num_seeds=1 .*at least 2"),
    ({"dataset.train_size": 100}, r"dataset.train_size=100 .*must be 0"),
    ({"pretrain.enabled": True, "pretrain.num_seeds": 2}, r"pretrain.num_seeds=2"),
])
def test_bad_config_values_name_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        config_lib.validate(tiny_config(**overrides), "scaling")


def test_bad_values_found_at_run_time():
    with pytest.raises(ValueError, match=r"scaling.max_size=5000 is larger than the training set .*600 .*"
                                         r"raise config.dataset.num_train"):
        scaling.run(tiny_config(**{"scaling.max_size": 5000}), log=None)
    with pytest.raises(ValueError, match=r"num_sizes=5 gives only 3 distinct integer sizes"):
        scaling.size_grid(40, 42, 5)
    c = tiny_config()
    c.scaling.sizes = (1, 2)
    with pytest.raises(ValueError, match="scaling.sizes is not known"):
        config_lib.validate(c, "scaling")


def test_analyse_curve_on_a_known_saturating_curve():
    """8 seeds of 0.4 exp(-n / 3000) + 0.1 plus seed offsets and noise, observed to n = 3.2e4:
    the backtest must prefer exp3 to the power law (whose n^-alpha tail keeps promising gains),
    the verdict is 'saturated' (true gain from doubling 3.2e4 is ~1e-5 < epsilon = 3e-3), and the
    extrapolation CI at 2x covers the true value 0.1."""
    sizes = np.unique(np.round(np.geomspace(100, 32_000, 9)))
    with jax.enable_x64(True):
        truth = np.asarray(get_family("exp3")(jnp.asarray([0.4, 1 / 3000, 0.1]), jnp.asarray(sizes)))
    rng = np.random.default_rng(0)
    scores = truth + 0.002 * rng.standard_normal((8, 1)) + 0.002 * rng.standard_normal((8, sizes.size))
    a = scaling.analyse_curve(sizes, scores, key=jax.random.key(0), families=("powerlaw", "exp3"),
                              num_resamples=63, epsilon=3e-3, extrapolate=(2.0,))
    assert a.backtest.chosen == "exp3"
    assert a.saturation.verdict == "saturated", a.saturation.reason
    (e,) = a.extrapolation
    assert e["ci"][0] <= 0.1 + 1e-5 <= e["ci"][1]
    s = json.loads(json.dumps(a.summary(), allow_nan=False))
    assert s["saturation"]["family"] == "exp3" and s["fit"]["point"]["converged"]


def test_cli_refuses_a_bad_value_naming_the_field(tmp_path):
    """The entry point loads the default config file, applies overrides and fails before any work."""
    cmd = [sys.executable, "-m", "jaxeval.scaling", "--config", str(REPO / "configs/mnist1d_scaling.py"),
           "--workdir", str(tmp_path / "w"), "--quiet", "--config.scaling.steps_policy=budget"]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, cwd=REPO,
                       timeout=300)
    assert r.returncode != 0
    assert "config.scaling.steps_policy='budget' is not allowed: one of ('steps', 'epochs')" in r.stderr
