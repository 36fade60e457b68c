"""The comparison study: paired arms, identical arms, planted effects, pairing, bad arms, report."""

import json
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy.stats import norm

from jaxeval import config as config_lib
from jaxeval import keys as K
from jaxeval.stats import power
from jaxeval.stats.intervals import BootstrapWarning
from jaxeval.studies import arms as arms_lib
from jaxeval.studies import compare

REPO = Path(__file__).resolve().parents[2]


def small_config(**overrides):
    """Tiny: MLP 32, 1 pretraining epoch, 3 finetuning epochs, 6 paired seeds in one chunk."""
    c = config_lib.base_config("compare")
    c.model.hidden = (32,)
    c.model.recon_hidden = 32
    c.pretrain.epochs = 1
    c.finetune.epochs = 3
    c.finetune.modes = ("full",)
    c.num_seeds = 6
    c.chunk_width = 6
    c.compare.num_resamples = 1000
    c.compare.num_permutations = 1000
    c.compare.power_simulations = 200
    return config_lib.set_fields(c, overrides)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Three arms on two tasks: 'same' is 'base' again; 'short' finetunes 2 epochs, same keys."""
    cfg = small_config(**{"compare.arms": ("base:", "same:", "short: finetune.epochs=2"),
                          "compare.reference": "base", "compare.tasks": ("identity", "parity")})
    workdir = tmp_path_factory.mktemp("compare")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BootstrapWarning)
        result = compare.run(cfg, workdir=workdir, log=None)
    return result, workdir


def _pair(summary, a, b):
    (p,) = [p for p in summary["pairs"] if (p["a"], p["b"]) == (a, b)]
    return p


def _leaves_equal(x, y):
    lx, ly = jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y)
    return len(lx) == len(ly) and all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(lx, ly))


@pytest.mark.xdist_group("compare_study")
def test_identical_arms_no_difference_bitwise_equal(study):
    result, _ = study
    s = result.summary
    assert [(p["a"], p["b"]) for p in s["pairs"]] == [("same", "base"), ("short", "base")]
    for task in ("identity", "parity"):
        assert _leaves_equal(result.finetune["same"][task], result.finetune["base"][task]), task
        assert np.std(result.finetune["base"][task]["metrics"]["accuracy"]) > 0  # seeds differ
        assert s["pairing"]["shared_replicates"]["same vs base"][task] == {"init": 6, "order": 6}
    pair = _pair(s, "same", "base")
    agg = pair["aggregate"]
    lo, hi = agg["probability_of_improvement"]["ci"]
    assert lo <= 0.5 <= hi
    assert agg["category"] == "no difference" and agg["better"] is None
    assert pair["verdict"].endswith(": no difference")
    for r in pair["tasks"].values():
        assert r["differences"] == [0.0] * 6
        assert r["probability_of_improvement"]["ci"][0] <= 0.5 <= r["probability_of_improvement"]["ci"][1]
        assert r["permutation"]["p_value"] == 1.0 and not r["permutation"]["reject"]
    assert "seeds_to_settle" not in pair


@pytest.mark.xdist_group("compare_study")
def test_paired_interval_narrower_on_shared_keys(study):
    """'short' and 'base' share init and data keys: their scores move together across seeds."""
    result, _ = study
    pair = _pair(result.summary, "short", "base")
    for task in ("identity", "parity"):
        assert result.summary["pairing"]["shared_replicates"]["short vs base"][task]["init"] == 6
    ratio = pair["aggregate"]["unpaired"]["width_ratio"]
    print("unpaired / paired CI width on shared keys:", ratio)
    assert ratio["mean"] > 1.0
    for r in pair["tasks"].values():
        paired = r["difference"]["ci"][1] - r["difference"]["ci"][0]
        unpaired = r["unpaired"]["difference"]["ci"][1] - r["unpaired"]["difference"]["ci"][0]
        assert paired < unpaired


@pytest.mark.xdist_group("compare_study")
def test_summary_numbers_and_verdict_line(study):
    result, _ = study
    s = result.summary
    pair = _pair(s, "short", "base")
    base_acc = np.asarray(result.finetune["base"]["identity"]["metrics"]["accuracy"])
    short_acc = np.asarray(result.finetune["short"]["identity"]["metrics"]["accuracy"])
    r = pair["tasks"]["identity"]
    np.testing.assert_allclose(r["differences"], short_acc - base_acc, rtol=0, atol=1e-7)
    np.testing.assert_allclose(r["difference"]["estimate"], np.mean(short_acc - base_acc), atol=1e-6)
    wins = np.mean((short_acc > base_acc) + 0.5 * (short_acc == base_acc))
    assert r["probability_of_improvement"]["estimate"] == pytest.approx(wins, abs=1e-6)
    # Holm over the family of 2 pairs x 2 tasks, from the raw permutation p-values
    ps = [p["tasks"][t]["permutation"]["p_value"] for p in s["pairs"] for t in s["tasks"]]
    order = np.argsort(ps, kind="stable")
    holm = np.maximum.accumulate(np.minimum(1, (4 - np.arange(4)) * np.asarray(ps)[order]))
    adj = [p["tasks"][t]["permutation"]["p_adjusted"] for p in s["pairs"] for t in s["tasks"]]
    np.testing.assert_allclose(np.asarray(adj)[order], holm, atol=1e-6)
    assert s["correction"]["family_size"] == 4
    assert pair["aggregate"]["ci_level"] == pytest.approx(1 - 0.05 / 2)
    pattern = (r"^short > base on \d/2 tasks(, base > short on \d/2)? \(Holm-corrected\); aggregate IQM [+-]\d\.\d{3} "
               r"\[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]; P\(short>base\)=\d\.\d\d \[\d\.\d\d, \d\.\d\d\]: .+")
    assert re.match(pattern, pair["verdict"]), pair["verdict"]
    assert s["verdicts"] == [p["verdict"] for p in s["pairs"]]
    text = compare.format_summary(s)
    assert text.splitlines()[-2:] == s["verdicts"]
    if pair["aggregate"]["category"] == "cannot tell":
        assert "seeds_to_settle" in pair and "would settle it" in pair["verdict"]


@pytest.mark.xdist_group("compare_study")
def test_workdir_and_report(study):
    result, workdir = study
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["study"] == "compare"
    assert set(manifest["arms"]) == {"base", "same", "short"}
    fp = manifest["fingerprints"]
    assert fp["same/identity/params"] == fp["base/identity/params"]
    assert fp["short/identity/params"] != fp["base/identity/params"]
    assert {"pretrain.base", "finetune.same.1-parity"} <= set(manifest["checkpoints"]["sweeps"])
    lines = (workdir / "replicates.csv").read_text().splitlines()
    assert lines[0] == ",".join(compare.REPLICATE_COLUMNS)
    assert len(lines) == 1 + 3 * 2 * 6 * 6  # arms x tasks x seeds x metrics
    saved = json.loads((workdir / "summary.json").read_text())
    assert saved["verdicts"] == result.summary["verdicts"]
    assert saved["divergence"]["count"] == 0
    # report.md (written by the run, through the report tool) holds the study's section
    md_file = (workdir / "report.md").read_text()
    assert "## Compare: is A really better than B?" in md_file and saved["verdicts"][0] in md_file
    (row,) = [line for line in md_file.splitlines() if line.startswith("| short |")]
    cells = [f"{saved['arms']['short']['tasks'][t]['mean']:.4f} ±" for t in ("identity", "parity")]
    assert 0 <= row.index(cells[0]) < row.index(cells[1])  # columns in task order (JSON sorts dict keys)
    pngs = {name: (workdir / name).read_bytes() for name in ("compare_differences.png", "compare_poi.png")}
    for name, data in pngs.items():
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    md = compare.report(workdir)  # again, from the saved files only: the same plots, bit for bit
    assert {name: (workdir / name).read_bytes() for name in pngs} == pngs
    assert any(saved["verdicts"][1] in line for line in md)
    assert any("compare_poi.png" in line for line in md)
    assert not [p for p in workdir.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.xdist_group("compare_study")
def test_rerun_on_workdir_restores_every_chunk(study):
    """Same config, same workdir: every sweep comes back from its checkpoints, same summary."""
    result, workdir = study
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BootstrapWarning)
        again = compare.run(result.config, workdir=workdir, log=None, report=False)
    sweeps = again.manifest["checkpoints"]["sweeps"]
    assert len(sweeps) == 1 + 3 * 2 and all(v["loaded"] == v["chunks"] for v in sweeps.values()), sweeps
    assert json.dumps(again.summary, sort_keys=True) == json.dumps(result.summary, sort_keys=True)


def test_report_needs_saved_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json"):
        compare.report(tmp_path)


# --- statistics only (known truth) ----------------------------------------------------------------

def _gaussian(key, n, delta, shared=0.0, indep=0.5):
    return power.gaussian_score_model(delta=delta, variance_components={"seed": shared, "run": indep},
                                      shared=("seed",))(key, n)


def test_planted_improvement_detected_at_stated_rate():
    """seeds_to_settle states N seeds and a power for P(A>B) = 0.7; the study's own decision
    (aggregate_comparison) on 200 simulated N-seed studies of that truth detects at that rate,
    and at level alpha when there is nothing to detect."""
    alpha, target = 0.05, 0.8
    stated = compare.seeds_to_settle(np.r_[np.ones(70), np.zeros(30)], key=K.root_key(1), alpha=alpha,
                                     target_power=target, num_simulations=400)
    n, p_stated = stated["show_difference"]["seeds"], stated["show_difference"]["power"]
    assert p_stated >= target and 20 <= n <= 80, stated
    approx = stated["show_difference"]["normal_approx_seeds"]
    assert abs(n - approx) <= 0.5 * approx
    delta = norm.ppf(0.7) * 1.0  # paired differences ~ N(delta, 1): P(A > B) = 0.7
    root = K.root_key(2)
    sims = 200
    detect = {0.0: 0, delta: 0}
    for d in detect:
        for m in range(sims):
            a, b = _gaussian(jax.random.fold_in(root, m), n, d)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BootstrapWarning)
                out = compare.aggregate_comparison(np.asarray(a)[:, None], np.asarray(b)[:, None],
                                                   key=jax.random.fold_in(K.root_key(3), m), alpha=alpha,
                                                   num_resamples=500, unpaired=False)
            detect[d] += out["category"].startswith("significant") and out["better"] == "A"
    rate, null = detect[delta] / sims, detect[0.0] / sims
    se = math.sqrt(p_stated * (1 - p_stated) * (1 / sims + 1 / 400))
    print(f"N={n}: stated power {p_stated:.3f}, detection rate {rate:.3f}; null rate {null:.3f}")
    assert abs(rate - p_stated) <= 3 * se
    assert null <= alpha / 2 + 3 * math.sqrt(alpha / 2 * (1 - alpha / 2) / sims)


@pytest.mark.parametrize("shared,expected", [(1.0, math.sqrt(0.05 / 1.05)), (0.0, 1.0)])
def test_paired_vs_unpaired_width_matches_theory(shared, expected):
    """Seed effect of variance ``shared`` common to both arms, independent noise 0.05: the
    paired CI of the mean difference is sqrt(0.05 / (0.05 + shared)) times the unpaired one."""
    ratios = []
    for m in range(5):
        a, b = _gaussian(jax.random.fold_in(K.root_key(4), m), 40, 0.1, shared=shared, indep=0.05)
        out = compare.aggregate_comparison(np.asarray(a)[:, None], np.asarray(b)[:, None],
                                           key=jax.random.fold_in(K.root_key(5), m), num_resamples=1000)
        ratios.append(1 / out["unpaired"]["width_ratio"]["mean"])
    print("paired / unpaired width:", np.round(ratios, 3), "theory", round(expected, 3))
    assert np.mean(ratios) == pytest.approx(expected, rel=0.25)


def test_decide_categories():
    assert compare.decide(0.6, 0.9, 0.75) == ("significant and meaningful", "A")
    assert compare.decide(0.55, 0.7, 0.75) == ("significant, not meaningful", "A")
    assert compare.decide(0.1, 0.4, 0.75) == ("significant and meaningful", "B")
    assert compare.decide(0.3, 0.45, 0.75) == ("significant, not meaningful", "B")
    assert compare.decide(0.3, 0.7, 0.75) == ("no difference", None)
    assert compare.decide(0.5, 0.5, 0.75) == ("no difference", None)
    assert compare.decide(0.2, 0.8, 0.75) == ("cannot tell", None)


def test_missing_runs_are_dropped_in_pairs():
    """A diverged replicate (NaN score) removes its pair in that task and its seed from the aggregate."""
    ka, kb = jax.random.split(K.root_key(9))
    a = np.array(0.8 + 0.02 * jax.random.normal(ka, (8, 2)))
    b = a - 0.01 + np.asarray(0.01 * jax.random.normal(kb, (8, 2)))
    a[2, 0] = np.nan
    opts = {"num_resamples": 200, "num_permutations": 200, "power_simulations": 100}
    out = compare.analyze({"a": a, "b": b}, tasks=("t0", "t1"), pairs=[("a", "b")], key=K.root_key(0), options=opts)
    pair = out["pairs"][0]
    assert pair["tasks"]["t0"]["n"] == 7 and pair["tasks"]["t0"]["dropped_seeds"] == [2]
    assert pair["tasks"]["t1"]["n"] == 8 and pair["aggregate"]["dropped_seeds"] == [2]
    d = np.delete(a[:, 0] - b[:, 0], 2)
    assert pair["tasks"]["t0"]["difference"]["estimate"] == pytest.approx(float(d.mean()), abs=1e-6)


def test_analyze_is_keyed_and_reproducible():
    ka, kb = jax.random.split(K.root_key(6))
    a = np.asarray(0.8 + 0.02 * jax.random.normal(ka, (8, 2)))
    b = a - 0.01 + np.asarray(0.01 * jax.random.normal(kb, (8, 2)))
    kw = dict(tasks=("t0", "t1"), pairs=[("a", "b")], options={"num_resamples": 500, "num_permutations": 500,
                                                               "power_simulations": 100})
    one = compare.analyze({"a": a, "b": b}, key=K.root_key(7), **kw)
    two = compare.analyze({"a": a, "b": b}, key=K.root_key(7), **kw)
    other = compare.analyze({"a": a, "b": b}, key=K.root_key(8), **kw)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    assert json.dumps(one, sort_keys=True) != json.dumps(other, sort_keys=True)
    # lower-is-better metrics are negated: B's higher loss is A's improvement
    neg = compare.analyze({"a": -a, "b": -b}, key=K.root_key(7), higher_is_better=False, **kw)
    assert neg["pairs"][0]["aggregate"]["mean"] == one["pairs"][0]["aggregate"]["mean"]


# --- arms: parsing and bad input -------------------------------------------------------------------

def test_arm_values_are_coerced_to_field_types():
    cfg = small_config(**{"compare.arms": (
        "w: model.hidden=(16, 16), finetune.learning_rate=1e-3, pretrain.enabled=false, mode=probe",
        "s: finetune.schedule=constant, finetune.weight_decay=0, model.hidden=24, finetune.modes=(full,)",
    )})
    a, b = arms_lib.build(cfg.compare.arms, cfg)
    assert a.name == "w" and a.config.model.hidden == (16, 16) and a.config.pretrain.enabled is False
    assert a.config.finetune.learning_rate == 1e-3 and a.config.finetune.modes == ("probe",)
    assert b.config.finetune.schedule == "constant" and b.config.model.hidden == (24,)
    assert b.config.finetune.modes == ("full",)
    assert isinstance(b.config.finetune.weight_decay, float)
    assert b.config.finetune.epochs == cfg.finetune.epochs  # the rest is the base config
    config_lib.validate(cfg, "compare")


@pytest.mark.parametrize("arms,match", [
    (("a: finetune.epochs=0", "b:"), r"arms\[0\] \(arm 'a'.*finetune\.epochs=0 is not allowed: must be a positive"),
    (("a:", "b: finetune.epoch=3"), r"arms\[1\] \(arm 'b'\): finetune\.epoch is not a config field; the fields of "
                                    r"finetune are \[.*'epochs'"),
    (("a:",), "at least two arms"),
    (("a:", "a: finetune.epochs=2"), "name 'a' is already used"),
    (("a: seed=3", "b:"), "an arm cannot change seed"),
    (("a: num_seeds=3", "b:"), "cannot change num_seeds"),
    (("a finetune.epochs=3", "b:"), r"arms\[0\]='a finetune.epochs=3' is not allowed: an arm is 'name: field=value"),
    (("a: model.hidden=wide", "b:"), r"model\.hidden=wide is not allowed: a tuple of integers"),
    (("a: pretrain.enabled=maybe", "b:"), r"pretrain\.enabled=maybe is not allowed: True or False"),
    (("a: finetune.epochs=2.5", "b:"), r"finetune\.epochs=2\.5 is not allowed: an integer"),
    (("a: finetune.epochs", "b:"), "each override is field=value"),
    (("a: mode=bogus", "b:"), r"arm 'a'.*finetune\.modes"),
    (("a: model=3", "b:"), "model is a group of fields"),
    (("a: finetune.epochs=2, finetune.epochs=3", "b:"), "finetune.epochs is set twice"),
    (("a: compare.alpha=0.1", "b:"), "cannot change compare.alpha"),
    (("a: finetune.modes=('full', 'probe')", "b:"), "exactly one finetuning mode"),
])
def test_bad_arm_specs_raise_clear_errors(arms, match):
    with pytest.raises(ValueError, match=match):
        config_lib.validate(small_config(**{"compare.arms": arms}), "compare")


@pytest.mark.parametrize("field,value,match", [
    ("compare.reference", "c", r"compare\.reference='c'.*arm names \['a', 'b'\]"),
    ("compare.metric", "auc", r"compare\.metric='auc'"),
    ("compare.tasks", ("parity", "parity"), r"compare\.tasks"),
    ("compare.gamma", 0.5, r"compare\.gamma=0\.5"),
    ("compare.correction", "sidak", r"compare\.correction='sidak'"),
    ("compare.bootstrap", "tasks", r"compare\.bootstrap='tasks'"),
    ("num_seeds", 1, r"num_seeds=1"),
])
def test_bad_compare_fields(field, value, match):
    with pytest.raises(ValueError, match=match):
        config_lib.validate(small_config(**{"compare.arms": ("a:", "b:"), field: value}), "compare")


def test_bad_task_names_the_task():
    cfg = small_config(**{"compare.arms": ("a:", "b:"), "compare.tasks": ("parity", "ge42")})
    with pytest.raises(ValueError, match=r"compare\.tasks: task 'ge42'.*threshold"):
        compare.run(cfg, log=None)


def test_cli_arm_override_is_parsed_and_checked(tmp_path):
    cmd = [sys.executable, "-m", "jaxeval.compare", "--config", str(REPO / "configs/digits_compare.py"),
           "--workdir", str(tmp_path / "x"), "--config.compare.arms=('a: finetune.epochz=1', 'b:')"]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, cwd=REPO,
                       timeout=300)
    assert r.returncode != 0
    assert "arms[0] (arm 'a'): finetune.epochz is not a config field" in r.stderr
