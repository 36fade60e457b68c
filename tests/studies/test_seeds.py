"""The multi-seed study: reproducibility contract (DESIGN §3-4), accuracy, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxeval import config as config_lib
from jaxeval import keys as K
from jaxeval import models
from jaxeval.studies import seeds

REPO = Path(__file__).resolve().parents[2]


def small_config(**overrides):
    """A fast config: small MLP, short training (seconds, mostly compilation)."""
    c = config_lib.base_config()
    c.model.hidden = (64,)
    c.model.recon_hidden = 64
    c.pretrain.epochs = 2
    c.finetune.epochs = 3
    c.finetune.modes = ("full",)
    c.num_seeds = 4
    c.chunk_width = 4
    return config_lib.set_fields(c, overrides)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default study (configs/digits_seeds.py) run once in-process, with its workdir."""
    sys.path.insert(0, str(REPO / "configs"))
    try:
        import digits_seeds
    finally:
        sys.path.pop(0)
    workdir = tmp_path_factory.mktemp("default")
    return seeds.run(digits_seeds.get_config(), workdir=workdir, log=None), workdir


@pytest.mark.xdist_group("default_study")  # one worker runs the module fixture once
def test_default_study_beats_probe_and_chance(default_run):
    result, _ = default_run
    modes = result.summary["modes"]
    full, probe = modes["full"]["accuracy"], modes["probe"]["accuracy"]
    chance = result.summary["chance_accuracy"]
    assert full["n"] == 8 and len(full["values"]) == 8
    assert full["mean"] > 0.9, full
    assert min(full["values"]) > probe["mean"], (full, probe)
    assert probe["mean"] > chance + 0.5, (probe, chance)
    assert full["ci"][0] < full["mean"] < full["ci"][1]
    assert np.std(full["values"]) > 0  # seeds really differ


@pytest.mark.xdist_group("default_study")
def test_workdir_files(default_run):
    result, workdir = default_run
    names = {p.name for p in workdir.iterdir()}
    assert {"config.json", "manifest.json", "replicates.csv", "summary.json", "report.md", "seeds_distributions.png",
            "checkpoints"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["finetune_full", "finetune_probe", "pretrain"]
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["chunk_width"] == 8
    assert manifest["prng"]["impl"] == "threefry2x32"
    for field in ("versions", "runtime", "config_hash", "design", "dataset", "fingerprints", "checkpoints"):
        assert manifest[field], field
    assert manifest["checkpoints"]["sweeps"]["finetune_full"] == {"chunks": 1, "loaded": 0, "saved": 1,
                                                                  "corrupt_redone": 0}
    assert result.summary["divergence"]["count"] == 0
    lines = (workdir / "replicates.csv").read_text().splitlines()
    assert lines[0] == ",".join(seeds.REPLICATE_COLUMNS)
    assert len(lines) == 1 + 2 * 8 * 6  # header + modes x replicates x metrics
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["modes"]["full"]["accuracy"]["values"] == result.summary["modes"]["full"]["accuracy"]["values"]


def _run_cli(workdir, *extra):
    cmd = [sys.executable, "-m", "jaxeval.seeds", "--config", str(REPO / "configs/digits_seeds.py"),
           "--workdir", str(workdir), "--quiet", "--config.model.hidden=(64,)", "--config.pretrain.epochs=2",
           "--config.finetune.epochs=3", "--config.num_seeds=3", "--config.chunk_width=4", *extra]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


@pytest.mark.slow
def test_two_fresh_processes_give_identical_bits(tmp_path):
    runs = [_run_cli(tmp_path / name) for name in ("a", "b")]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
        assert "accuracy" in r.stdout
    fp = [json.loads((tmp_path / n / "manifest.json").read_text())["fingerprints"] for n in ("a", "b")]
    assert fp[0] == fp[1]
    assert all(v for v in fp[0].values())
    assert (tmp_path / "a" / "replicates.csv").read_bytes() == (tmp_path / "b" / "replicates.csv").read_bytes()


def test_cli_unknown_override_is_refused(tmp_path):
    r = _run_cli(tmp_path / "x", "--config.finetune.learning_rat=0.1")
    assert r.returncode != 0
    assert "learning_rat" in r.stderr


# --- the chunk-width contract and stream independence --------------------------------------------

@pytest.fixture(scope="module")
def setup():
    cfg = config_lib.validate(small_config(**{"pretrain.enabled": False}))
    ds = seeds.load_task(cfg)
    model = models.build(cfg.model, ds.feature_shape, ds.num_classes)
    return cfg, model, seeds.task_arrays(ds)


def _design(init, data=None, dropout=None):
    init = np.asarray(init, np.int32)
    return {"pretrain": np.zeros_like(init), "init": init,
            "data": init if data is None else np.asarray(data, np.int32),
            "dropout": init if dropout is None else np.asarray(dropout, np.int32)}


def _sweep(setup, des, chunk_width=4, cfg=None):
    cfg0, model, task = setup
    out = seeds.finetune_sweep(cfg or cfg0, model, task, None, K.root_key(0), "full", des, chunk_width=chunk_width)
    return {k: out[k] for k in ("params", "metrics", "train")}


def _replicate(out, i):
    return jax.tree_util.tree_map(lambda a: a[i], out)


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_replicate_bits_do_not_depend_on_study_size_or_position(setup):
    """Replicate 5 alone, and at positions 3, 6 and 17 of studies of 5, 8 and 20 replicates."""
    ref = _replicate(_sweep(setup, _design([5])), 0)
    for total, pos in ((5, 3), (8, 6), (20, 17)):
        others = [i for i in range(40) if i != 5][: total - 1]
        others.insert(pos, 5)
        out = _sweep(setup, _design(others))
        assert _equal(_replicate(out, pos), ref), (total, pos)
        assert not _equal(_replicate(out, (pos + 1) % total), ref)


def test_chunk_width_changes_bits_only_slightly(setup):
    """Measures how far two chunk widths end up (README: 'What the chunk width changes')."""
    s = list(range(8))
    a, b = _sweep(setup, _design(s), chunk_width=1), _sweep(setup, _design(s), chunk_width=8)
    diff = max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree_util.tree_leaves(a["params"]),
                                                             jax.tree_util.tree_leaves(b["params"])))
    acc = np.abs(a["metrics"]["accuracy"] - b["metrics"]["accuracy"])
    print(f"chunk width 1 vs 8: max |param diff| = {diff:.3g}, max |accuracy diff| = {acc.max():.4f}")
    assert diff < 0.05  # parameters stay close (last-bit reduction-order differences, amplified)
    assert acc.max() <= 0.02  # statistically equivalent results


def test_stream_independence(setup):
    """Data index changes order not init; init changes init not order; dropout changes neither."""
    designs = {"base": _design([0]), "data": _design([0], data=[1]), "init": _design([1], data=[0], dropout=[0]),
               "dropout": _design([0], dropout=[1])}
    runs = {name: _replicate(_sweep(setup, d), 0) for name, d in designs.items()}
    order = {name: int(r["train"]["order_checksum"]) for name, r in runs.items()}
    init = {name: int(r["train"]["init_checksum"]) for name, r in runs.items()}
    assert init["data"] == init["base"] == init["dropout"]
    assert init["init"] != init["base"]
    assert order["init"] == order["base"] == order["dropout"]
    assert order["data"] != order["base"]
    # each source does change the trained model
    for name in ("data", "init", "dropout"):
        assert not _equal(runs[name]["params"], runs["base"]["params"]), name


def test_checksums_track_what_they_digest(setup):
    """The digests used above are not constant: the batch order matches keys.batch_indices."""
    from jaxeval.train import batch_indices
    cfg, _, task = setup
    n = task["x_train"].shape[0]
    a = batch_indices(K.stream(K.root_key(0), "data", 0), n, cfg.finetune.batch_size, cfg.finetune.epochs)
    b = batch_indices(K.stream(K.root_key(0), "data", 1), n, cfg.finetune.batch_size, cfg.finetune.epochs)
    assert a.shape == (cfg.finetune.epochs, n // cfg.finetune.batch_size, cfg.finetune.batch_size)
    assert not np.array_equal(a, b)
    assert sorted(np.asarray(a[0]).reshape(-1).tolist()) == sorted(set(np.asarray(a[0]).reshape(-1).tolist()))


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,match", [
    ("dataset.name", "imagenet", "dataset.name='imagenet'"),
    ("num_seeds", 0, "num_seeds=0"),
    ("num_seeds", -2, "num_seeds=-2"),
    ("chunk_width", 0, "chunk_width=0"),
    ("finetune.modes", ("full", "bogus"), "finetune.modes"),
    ("model.name", "resnet", "model.name='resnet'"),
])
def test_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        config_lib.validate(small_config(**{field: value}))


def test_unknown_field():
    c = config_lib.base_config().to_dict()
    c["finetune"]["learning_rat"] = 0.1
    with pytest.raises(ValueError, match="finetune.learning_rat is not known"):
        config_lib.validate(c)


def test_batch_size_larger_than_data(tmp_path):
    with pytest.raises(ValueError, match="config.finetune.batch_size=5000 is larger than the training set"):
        seeds.run(small_config(**{"finetune.batch_size": 5000, "pretrain.enabled": False}), workdir=tmp_path, log=None)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "batch_size" in manifest["failure"]
    assert not (tmp_path / "summary.json").exists()
