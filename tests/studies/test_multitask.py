"""The multi-task study: reproducibility, closed forms, keyed ranks, the link, bad config, report."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.stats as st

from jaxeval import config as config_lib
from jaxeval import keys as K
from jaxeval.stats.aggregates import name_key
from jaxeval.stats.resample import resample
from jaxeval.studies import multitask as mt

REPO = Path(__file__).resolve().parents[2]
TASKS = ("digits/parity", "digits/ge5", "digits/one_vs_rest:3", "digits/identity/n100")
# The tiny study as command-line overrides of the default config (the same config in-process).
# Configs and link in one finetuning mode: "scratch" runs the full-finetuning program, so the
# study compiles one finetuning program per shape group (the probe is the same code, another mode).
CONFIGS = ("full", "full@0.5", "scratch")
OVERRIDES = {
    "model.hidden": (32,), "model.recon_hidden": 32, "pretrain.epochs": 4, "pretrain.num_seeds": 2,
    "finetune.epochs": 2, "num_seeds": 2, "chunk_width": 4, "multitask.tasks": TASKS,
    "multitask.configs": CONFIGS, "multitask.checkpoints": (0.5, 1.0), "multitask.link_mode": "full",
    "multitask.num_resamples": 200,
}


def default_config():
    """``configs/digits_multitask.py``'s config."""
    sys.path.insert(0, str(REPO / "configs"))
    try:
        import digits_multitask
    finally:
        sys.path.pop(0)
    return digits_multitask.get_config()


def tiny_config(**extra):
    c = default_config()
    return config_lib.set_fields(c, {**OVERRIDES, **extra})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("multitask")
    return mt.run(tiny_config(), workdir=workdir, log=None), workdir


# Tests that use the study share one worker, which runs the module fixture once.
shared_study = pytest.mark.xdist_group("multitask_study")


@shared_study
def test_suite_runs_and_groups_tasks_of_one_shape(study):
    result, _ = study
    s = result.summary
    assert [t["name"] for t in s["tasks"]] == list(TASKS)
    assert s["configs"] == list(CONFIGS) and s["runs_per_task"] == 4
    # The three binary tasks on the whole training set ran as one vmapped sweep, n100 in its own.
    sweeps = json.loads((study[1] / "manifest.json").read_text())["checkpoints"]["sweeps"]
    assert set(sweeps) == {"pretrain_digits", "full_digits_n1437_c2", "full_digits_n100_c10",
                           "scratch_digits_n1437_c2", "scratch_digits_n100_c10"}
    assert sweeps["full_digits_n1437_c2"]["chunks"] == 3 * 2 * 2 * 2 // 4  # tasks x P x checkpoints x F / width
    # Pretrained configs: backbone p, finetuning index f; scratch: index p * F + f (distinct runs).
    d = result.runs["scratch"][0]["design"]
    np.testing.assert_array_equal(d["init"][:, 0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(result.runs["full"][0]["design"]["init"][:, 0], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(result.runs["full"][1]["design"]["encoder"][:, :, 0], [[0, 1], [2, 3]])
    # "full@0.5" is the link's run from the first checkpoint, "full" from the last.
    np.testing.assert_array_equal(result.raw["full@0.5"][..., 0], result.runs["full"][0]["metrics"]["accuracy"][:, 0])
    np.testing.assert_array_equal(result.raw["full"][..., 0], result.runs["full"][0]["metrics"]["accuracy"][:, 1])
    assert s["divergence"]["count"] == 0
    # Learning happened: full finetuning beats chance on parity, and the link has all digits tasks.
    assert s["per_task"]["full"]["digits/parity"]["mean"] > s["tasks"][0]["chance"] + 0.1
    assert set(s["link"]["digits"]["tasks"]) == set(TASKS) | {"suite mean"}
    assert np.shape(s["link"]["digits"]["pretrain_metric"]) == (2, 2)
    rows = (study[1] / "replicates.csv").read_text().splitlines()
    # header + (full: 2 checkpoints, scratch: 1) x tasks x P x F x 6 metrics
    assert len(rows) == 1 + (2 + 1) * len(TASKS) * 4 * 6
    assert rows[0] == ",".join(mt.REPLICATE_COLUMNS)


@shared_study
def test_rerun_is_bitwise_identical(study):
    result, _ = study
    again = mt.run(tiny_config(), log=None)  # compiled programs are reused; the bits must not change
    assert again.manifest["fingerprints"] == result.manifest["fingerprints"]
    for c in result.raw:
        np.testing.assert_array_equal(again.raw[c], result.raw[c])
    assert json.dumps(again.summary, sort_keys=True, default=str) == json.dumps(result.summary, sort_keys=True,
                                                                                  default=str)


@shared_study
@pytest.mark.slow
def test_entry_point_in_a_fresh_process_gives_the_same_bits(study, tmp_path):
    result, _ = study
    cmd = [sys.executable, "-m", "jaxeval.multitask", "--config", str(REPO / "configs/digits_multitask.py"),
           "--workdir", str(tmp_path / "cli"), "--quiet"]
    cmd += [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
    # --inexact: on CPU a no-op for the bits (the exact-mode flag is GPU-only), and it keeps XLA_FLAGS
    # as in this process, so the fresh process finds this process's programs in the persistent cache.
    cmd.append("--inexact")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(REPO / ".cache" / "jax")}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for table in ("per-task mean", "aggregates of normalised scores", "ranking", "pretraining loss -> downstream"):
        assert table in r.stdout
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["config_hash"] == result.manifest["config_hash"]
    assert manifest["fingerprints"] == result.manifest["fingerprints"]


@shared_study
def test_summary_equals_closed_forms_of_the_saved_scores(study):
    result, _ = study
    s = result.summary
    chance = np.array([t["chance"] for t in s["tasks"]])
    for c, raw in result.raw.items():
        flat = raw.reshape(-1, raw.shape[-1])
        np.testing.assert_allclose(result.normalized[c], (raw - chance) / (1 - chance), rtol=1e-12)
        for i, t in enumerate(TASKS):
            np.testing.assert_allclose(s["per_task"][c][t]["mean"], flat[:, i].mean(), rtol=1e-5)
        norm = result.normalized[c].reshape(-1, raw.shape[-1])
        agg = s["aggregates"]["normalized"][c]
        np.testing.assert_allclose(agg["mean"]["estimate"], norm.mean(0).mean(), rtol=1e-5)
        np.testing.assert_allclose(agg["median"]["estimate"], np.median(norm.mean(0)), rtol=1e-5)
        np.testing.assert_allclose(agg["iqm"]["estimate"], st.trim_mean(norm, 0.25, axis=None), rtol=1e-5)
        np.testing.assert_allclose(agg["optimality_gap"]["estimate"], np.maximum(1 - norm, 0).mean(), rtol=1e-5,
                                   atol=1e-7)
        for a in mt.AGGREGATES:
            assert agg[a]["lo"] <= agg[a]["estimate"] <= agg[a]["hi"]
    # Chance: always predicting the training set's majority class (parity: even or odd).
    ds = mt.load_suite(config_lib.validate(tiny_config(), "multitask"), K.root_key(0))[2][0]
    majority = np.argmax(np.bincount(ds.y_train))
    assert chance[0] == pytest.approx(np.mean(ds.y_test == majority), abs=1e-6)


def _fixed_scores():
    """``[P, F, T]`` = the tiny study's shape (its compiled bootstrap is reused), ties, values > 1."""
    return np.round(np.random.default_rng(0).uniform(0.2, 1.1, size=(2, 2, 4)), 1)


def _closed_forms(flat):
    return {"mean": flat.mean(0).mean(), "median": np.median(flat.mean(0)), "iqm": st.trim_mean(flat, 0.25, axis=None),
            "optimality_gap": np.maximum(1 - flat, 0).mean(), "task_means": flat.mean(0)}


def test_aggregates_equal_closed_forms_on_fixed_inputs():
    x = _fixed_scores()
    flat = x.reshape(4, 4)
    out = mt.suite_intervals(x, key=jax.random.key(0), nested=True, task_bootstrap=False, num_resamples=200,
                             alpha=0.05)
    for name, value in _closed_forms(flat).items():
        np.testing.assert_allclose(out[name]["estimate"], value, rtol=1e-6)
        assert np.all(np.asarray(out[name]["lo"]) <= np.asarray(out[name]["hi"]))
    strat = mt._suite_stat_2d(flat)  # the stratified plan's statistic: the same closed forms
    for name, value in _closed_forms(flat).items():
        np.testing.assert_allclose(strat[name], value, rtol=1e-6)
    # A missing run is omitted (never zeroed), and counted.
    x2 = x.copy()
    x2[1, 0, 3] = np.nan
    out2 = mt.suite_intervals(x2, key=jax.random.key(0), nested=True, task_bootstrap=False, num_resamples=200,
                              alpha=0.05)
    np.testing.assert_allclose(out2["task_means"]["estimate"][3], np.nanmean(x2[..., 3]), rtol=1e-6)
    np.testing.assert_allclose(out2["mean"]["estimate"], np.nanmean(x2, axis=(0, 1)).mean(), rtol=1e-6)
    assert out2["num_missing"] == 1


def test_nested_plan_shares_draws_across_tasks():
    """Nested: one draw of (pretraining seed, finetuning seeds) for every task (they share backbones
    and seed indices): a task that copies another stays a copy. Stratified: draws per task."""
    x = np.repeat(np.arange(12.0).reshape(3, 4, 1), 2, axis=-1)
    nested = resample(x, key=jax.random.key(1), plan=mt.suite_plan(True, False))
    np.testing.assert_array_equal(nested[..., 0], nested[..., 1])
    assert len(np.unique(nested)) < 12  # it did resample
    flat = resample(x.reshape(12, 2), key=jax.random.key(1), plan=mt.suite_plan(False, False))
    assert not np.array_equal(flat[:, 0], flat[:, 1])
    crossed = resample(x, key=jax.random.key(1), plan=mt.suite_plan(True, True))  # tasks resampled too
    assert crossed.shape == x.shape


@shared_study
def test_rank_intervals_are_keyed_and_reproducible(study):
    result, _ = study
    kw = dict(num_resamples=200, alpha=0.05, task_bootstrap=False, missing="raise")
    boot = K.stream(K.root_key(0), "bootstrap", 0)
    a = mt.rank_configs(result.raw, TASKS, key=name_key(boot, "ranks"), **kw)
    b = mt.rank_configs(result.raw, TASKS, key=name_key(boot, "ranks"), **kw)
    c = mt.rank_configs(result.raw, TASKS, key=jax.random.key(7), **kw)
    assert a == b == result.summary["ranking"]  # the study's ranks are reproducible from its key
    assert any(a["methods"][m]["p_first"] != c["methods"][m]["p_first"] for m in a["methods"])
    assert set(a["methods"]) == {"mean_rank", "borda", "copeland", "kemeny"}
    for r in a["methods"].values():
        np.testing.assert_allclose(sum(r["p_first"]), 1.0, rtol=1e-6)
        assert all(lo <= rk <= hi for lo, rk, hi in zip(r["lower"], r["ranks"], r["upper"]))


@shared_study
def test_missing_scores_are_explicit(study):
    result, _ = study
    raw = {k: v.copy() for k, v in result.raw.items()}
    raw["full@0.5"][..., 1] = np.nan  # config 1 has no score on task 1
    kw = dict(key=jax.random.key(0), num_resamples=50, alpha=0.05, task_bootstrap=False, methods=("borda",))
    with pytest.raises(ValueError, match=r"missing for \(config, task\) \[\[1, 1\]\]"):
        mt.rank_configs(raw, TASKS, missing="raise", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dropped = mt.rank_configs(raw, TASKS, missing="drop_task", **kw)
    assert dropped["methods"]["borda"]["tasks_used"] == [TASKS[0], TASKS[2], TASKS[3]]
    raw["full"][0, 0, 2] = np.nan  # one run of a cell: ranked on cell means, tasks resampled (recorded)
    partial = mt.rank_configs(raw, TASKS, missing="pairwise", **kw)
    assert partial["rule"].startswith("cell means")


def _planted_link(k, P=20, C=4, F=3, beta=0.1):
    """Accuracy-like y = 0.7 + beta (x - 2.5) + seed/checkpoint/finetune noise, all in (0, 1):
    the Pearson correlation of x with the F-seed mean is known in closed form."""
    n = lambda i, shape: np.asarray(jax.random.normal(jax.random.fold_in(k, i), shape))  # noqa: E731
    mu = np.array([3.0, 2.6, 2.3, 2.1])
    x = mu + 0.15 * n(0, (P, 1)) + 0.1 * n(1, (P, C))
    y = (0.7 + beta * (x - 2.5) + 0.02 * n(2, (P, 1)) + 0.015 * n(3, (P, C)))[..., None] + 0.025 * n(4, (P, C, F))
    vx = mu.var() + 0.15**2 + 0.1**2
    rho = beta * np.sqrt(vx) / np.sqrt(beta**2 * vx + 0.02**2 + 0.015**2 + 0.025**2 / F)
    return x, y, rho


def test_link_recovers_a_planted_correlation():
    cover, est = [], []
    for r in range(30):
        x, y, rho = _planted_link(jax.random.key(r))
        s = mt.link_summary(x, y, key=jax.random.key(1000 + r), num_resamples=200, alpha=0.05)
        assert s["link"] == "logit"
        cover.append(s["pearson"]["lo"] <= rho <= s["pearson"]["hi"])
        est.append(s["pearson"]["estimate"])
    assert abs(rho - 0.8) < 0.01
    assert np.mean(cover) >= 0.8, np.mean(cover)  # nominal 0.95; the cluster bootstrap runs 0.89-0.94
    assert abs(np.mean(est) - rho) < 0.03
    # Cell means at 1.0 (a perfect task) have no logit: the identity link is used instead.
    y1 = y.copy()
    y1[0, 0] = 1.0
    assert mt.link_summary(x, y1, key=jax.random.key(0), num_resamples=200, alpha=0.05)["link"] == "identity"


@pytest.mark.parametrize("field,value,match", [
    ("multitask.tasks", ("digits-parity",), "not a task spec"),
    ("multitask.tasks", ("imagenet/parity",), "a dataset from"),
    ("multitask.tasks", ("digits/parity@nll",), "a metric from"),
    ("multitask.tasks", ("digits/parity", "digits/parity"), "distinct tasks"),
    ("multitask.tasks", (), "non-empty"),
    ("multitask.metric", "ece", "higher is better"),
    ("multitask.checkpoints", (0.5, 0.9), "the last 1.0"),
    ("multitask.checkpoints", (0.5, 0.25, 1.0), "increasing fractions"),
    ("multitask.checkpoints", (0.01, 1.0), "distinct epochs >= 1"),
    ("multitask.configs", ("full", "linear"), "mode in"),
    ("multitask.configs", ("probe@0.3",), "a checkpoint from"),
    ("multitask.configs", ("full", "full"), "distinct"),
    ("multitask.link_mode", "frozen", "no link"),
    ("multitask.missing", "zero", "one of"),
    ("multitask.alpha", 1.5, r"in \(0, 1\)"),
    ("multitask.num_resamples", 1, ">= 2"),
    ("dataset.task", "parity", "config.multitask.tasks"),
])
def test_bad_config_values_raise_clear_errors(field, value, match):
    c = tiny_config(**{field: value})
    with pytest.raises(ValueError, match=rf"config\.{field}|multitask\.tasks") as e:
        config_lib.validate(c, "multitask")
    assert e.match(match)


def test_link_and_nested_need_pretraining_seeds():
    with pytest.raises(ValueError, match=r"config\.multitask\.link_mode='full'.*pretrain.num_seeds >= 2"):
        config_lib.validate(tiny_config(**{"pretrain.num_seeds": 1}), "multitask")
    with pytest.raises(ValueError, match=r"config\.multitask\.nested=True"):
        config_lib.validate(tiny_config(**{"pretrain.num_seeds": 1, "multitask.link_mode": ""}), "multitask")


def test_task_errors_name_the_task():
    cfg = config_lib.validate(tiny_config(**{"multitask.tasks": ("digits/parity", "digits/ge12")}), "multitask")
    with pytest.raises(ValueError, match=r"multitask.tasks\[1\]='digits/ge12'.*threshold"):
        mt.load_suite(cfg, K.root_key(0))
    cfg = config_lib.validate(tiny_config(**{"multitask.tasks": ("digits/parity/n50",)}), "multitask")
    with pytest.raises(ValueError, match=r"finetune.batch_size=64.*task 'digits/parity/n50' \(50 examples\)"):
        mt.load_suite(cfg, K.root_key(0))


@shared_study
def test_report_writes_pngs_from_saved_results(study):
    _, workdir = study
    for png in ("per_task.png", "aggregates.png", "profiles.png", "link.png"):
        (workdir / png).unlink(missing_ok=True)
    lines = mt.report(workdir)
    for png in ("per_task.png", "aggregates.png", "profiles.png", "link.png"):
        data = (workdir / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png
    text = "\n".join(lines)
    for needle in ("| task | metric | chance | full | full@0.5 | scratch |", "| config | mean | median | iqm |",
                   "| method | config |", "| dataset | task | Pearson |", "![per-task results](per_task.png)"):
        assert needle in text, needle
    assert "multitask section failed" not in (workdir / "report.md").read_text()  # the run's own report


@shared_study
def test_report_refuses_an_incomplete_workdir(study, tmp_path):
    _, workdir = study
    manifest = json.loads((workdir / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    with pytest.raises(ValueError, match="not hold a complete multitask study"):
        mt.report(tmp_path)


@shared_study
def test_format_summary_tables(study):
    text = mt.format_summary(study[0].summary)
    for needle in ("per-task mean [CI]", "aggregates of normalised scores", "ranking (", "kemeny", "suite mean"):
        assert needle in text
    assert all(t in text for t in TASKS)


def test_default_config_is_a_valid_suite_of_two_datasets():
    cfg = config_lib.validate(default_config(), "multitask")
    specs = [mt.parse_task(t, cfg.multitask.metric) for t in cfg.multitask.tasks]
    assert len(specs) >= 5 and {s.dataset for s in specs} == {"digits", "mnist1d"}
    assert any(s.train_size for s in specs)  # a low-data variant
    assert cfg.multitask.link_mode and cfg.pretrain.num_seeds >= 2 and cfg.multitask.nested
