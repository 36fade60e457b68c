"""Resume: SIGKILL a study at several points, rerun the same command, get the same bits; corrupt
or truncated checkpoints and results give a clean redo or a clear error, never a wrong summary."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxeval import checkpoint
from jaxeval.studies import seeds

REPO = Path(__file__).resolve().parents[1]
# After reading a truncated checkpoint fails, orbax's I/O thread may post to its closed asyncio loop
# ("Event loop is closed", an unraisable exception at garbage collection): harmless, and expected here.
pytestmark = pytest.mark.filterwarnings("ignore:(?s)Exception ignored.*Event loop is closed")
# 1 pretraining chunk + 3 full + 3 probe finetuning chunks of width 1: 7 checkpoints.
OVERRIDES = {"model.hidden": (32,), "model.recon_hidden": 32, "pretrain.epochs": 1, "finetune.epochs": 2,
             "num_seeds": 3, "chunk_width": 1}
NUM_CHUNKS = 7
KILL_AFTER = (1, 3, 5)  # kill once the k-th checkpoint is committed; each rerun resumes the last


def _config():
    sys.path.insert(0, str(REPO / "configs"))
    try:
        import digits_seeds
    finally:
        sys.path.pop(0)
    cfg = digits_seeds.get_config()
    for k, v in OVERRIDES.items():
        group, _, field = k.rpartition(".")
        (cfg[group] if group else cfg)[field] = v
    return cfg


def _cmd(workdir):
    return [sys.executable, "-m", "jaxeval.seeds", "--config", str(REPO / "configs/digits_seeds.py"),
            "--workdir", str(workdir), "--quiet", *[f"--config.{k}={v}" for k, v in OVERRIDES.items()]]


def _env():
    cache = str(REPO / ".cache" / "jax")
    return {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": cache,
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2"}


def _committed(workdir) -> int:
    root = Path(workdir) / "checkpoints"
    return sum(1 for d in root.glob("*/*") if d.is_dir() and d.name.isdigit()) if root.exists() else 0


def _run_and_kill(workdir, after: int) -> bool:
    """Runs the CLI; SIGKILLs it once ``after`` checkpoints are committed. True if it was killed."""
    proc = subprocess.Popen(_cmd(workdir), cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if _committed(workdir) >= after:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    return False


def _arrays(workdir):
    out = {}
    for mode in ("full", "probe"):
        with np.load(Path(workdir) / f"predictions_{mode}.npz") as z:
            out.update({f"{mode}/{k}": z[k] for k in z.files})
    return out


def _assert_same_results(workdir, ref):
    m, mref = (json.loads((Path(w) / "manifest.json").read_text()) for w in (workdir, ref))
    assert m["status"] == "complete"
    assert m["fingerprints"] == mref["fingerprints"]
    for name in ("summary.json", "replicates.csv"):
        assert (Path(workdir) / name).read_bytes() == (Path(ref) / name).read_bytes(), name
    a, b = _arrays(workdir), _arrays(ref)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return m


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted study, run in-process (so also: a CLI process gives the same bits)."""
    workdir = tmp_path_factory.mktemp("reference")
    seeds.run(_config(), workdir=workdir, log=None, report=False)
    return workdir


@pytest.mark.slow
@pytest.mark.xdist_group("resume")
def test_killed_three_times_then_resumed_gives_identical_bits(reference, tmp_path):
    workdir = tmp_path / "killed"
    for k in KILL_AFTER:
        assert _run_and_kill(workdir, k), f"the study finished before its {k}-th checkpoint: kill point missed"
        manifest = json.loads((workdir / "manifest.json").read_text())
        assert manifest["status"] == "running"  # a killed study never looks complete
        assert not (workdir / "summary.json").exists()
        assert k <= _committed(workdir) < NUM_CHUNKS
    done = _committed(workdir)
    r = subprocess.run(_cmd(workdir), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = _assert_same_results(workdir, reference)
    sweeps = m["checkpoints"]["sweeps"]
    assert sum(s["chunks"] for s in sweeps.values()) == NUM_CHUNKS
    assert sum(s["loaded"] for s in sweeps.values()) == done  # resumed, not recomputed
    assert sum(s["saved"] for s in sweeps.values()) == NUM_CHUNKS - done
    assert (workdir / "report.md").exists()


def _largest_file(folder: Path) -> Path:
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


@pytest.mark.xdist_group("resume")
def test_truncated_checkpoint_and_results_are_redone_cleanly(reference, tmp_path, capsys):
    workdir = tmp_path / "corrupt"
    shutil.copytree(reference, workdir)
    data = _largest_file(workdir / "checkpoints" / "finetune_full" / "1" / "out")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    summary = workdir / "summary.json"
    summary.write_bytes(summary.read_bytes()[:40])
    seeds.run(_config(), workdir=workdir, log=None, report=False)
    err = capsys.readouterr().err
    assert "finetune_full/1 is corrupt or incomplete" in err and "recomputing chunk 1" in err
    m = _assert_same_results(workdir, reference)
    assert m["checkpoints"]["sweeps"]["finetune_full"] == {"chunks": 3, "loaded": 2, "saved": 1, "corrupt_redone": 1}


@pytest.mark.xdist_group("resume")
def test_truncated_manifest_or_other_config_is_refused(reference, tmp_path):
    workdir = tmp_path / "refused"
    shutil.copytree(reference, workdir)
    manifest = workdir / "manifest.json"
    good = manifest.read_bytes()
    manifest.write_bytes(good[:50])
    with pytest.raises(ValueError, match="manifest.json is not valid JSON"):
        seeds.run(_config(), workdir=workdir, log=None, report=False)
    manifest.write_bytes(good)
    other = _config()
    other.num_seeds = 4
    with pytest.raises(ValueError, match="holds another study"):
        seeds.run(other, workdir=workdir, log=None, report=False)
    assert manifest.read_bytes() == good  # nothing was touched
    # without its manifest, the checkpoints themselves refuse to mix two configs
    manifest.unlink()
    with pytest.raises(ValueError, match="holds chunks of another sweep .*config_hash"):
        seeds.run(other, workdir=workdir, log=None, report=False)


# --- the store itself (fast, no study) ------------------------------------------------------------

def _tree(v=1.0):
    return {"params": {"w": np.full((2, 3), v, np.float32)}, "train": {"step": np.array([-1, 4], np.int32),
            "sum": np.array([7, 9], np.uint32)}, "ok": np.array([True, False])}


def test_store_round_trips_bits_and_dtypes(tmp_path):
    store = checkpoint.CheckpointStore(tmp_path / "s", {"study": "t", "config_hash": "a"})
    assert store.load(0) is None
    tree = _tree(np.float32(0.1))
    store.save(0, tree)
    got = checkpoint.CheckpointStore(tmp_path / "s", {"study": "t", "config_hash": "a"}).load(0)
    for path, a, b in ((("params", "w"), tree["params"]["w"], got["params"]["w"]),
                       (("train", "step"), tree["train"]["step"], got["train"]["step"]),
                       (("train", "sum"), tree["train"]["sum"], got["train"]["sum"]), (("ok",), tree["ok"], got["ok"])):
        assert a.dtype == b.dtype and np.array_equal(a, b), path
    assert store.chunks() == [0]


def test_store_refuses_another_identity_and_detects_silent_corruption(tmp_path):
    import orbax.checkpoint as ocp

    store = checkpoint.CheckpointStore(tmp_path / "s", {"study": "t", "config_hash": "a"})
    store.save(0, _tree(1.0))
    with pytest.raises(ValueError, match="holds chunks of another sweep .*config_hash: stored \"a\", now \"b\""):
        checkpoint.CheckpointStore(tmp_path / "s", {"study": "t", "config_hash": "b"})
    code = checkpoint.CheckpointStore(tmp_path / "c", {"study": "t", "code": "v1"})
    code.save(0, _tree(1.0))
    with pytest.raises(ValueError, match=r"another sweep \(jaxeval's code changed since they were computed\)"):
        checkpoint.CheckpointStore(tmp_path / "c", {"study": "t", "code": "v2"})
    # A chunk whose arrays changed but whose metadata did not (e.g. bit rot): never returned.
    meta = ocp.Checkpointer(ocp.CompositeCheckpointHandler()).restore(
        store.path(0), args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    ocp.Checkpointer(ocp.CompositeCheckpointHandler()).save(store.path(0), args=ocp.args.Composite(
        out=ocp.args.StandardSave(_tree(2.0)), meta=ocp.args.JsonSave(meta)), force=True)
    strict = checkpoint.CheckpointStore(tmp_path / "s", {"study": "t", "config_hash": "a"}, on_corrupt="raise")
    with pytest.raises(ValueError, match="do not match the fingerprint stored with it; delete it"):
        strict.load(0)
    logged = []
    redo = checkpoint.CheckpointStore(tmp_path / "s", {"study": "t", "config_hash": "a"}, log=logged.append)
    assert redo.load(0) is None and "recomputing chunk 0" in logged[0] and not redo.path(0).exists()
    # a chunk saved under another index is not taken for this one
    redo.save(1, _tree(3.0))
    shutil.copytree(redo.path(1), redo.path(2))
    assert redo.load(2) is None and "holds chunk 1, not 2" in logged[1]
    assert np.array_equal(redo.load(1)["params"]["w"], _tree(3.0)["params"]["w"])


def test_store_refuses_outputs_it_cannot_restore_as_themselves(tmp_path):
    store = checkpoint.CheckpointStore(tmp_path / "s", {"study": "t"})
    with pytest.raises(TypeError, match="nested dicts"):
        store.save(0, {"a": (np.zeros(2), np.ones(2))})
    with pytest.raises(TypeError, match="string keys"):
        store.save(0, {1: np.zeros(2)})


@pytest.mark.xdist_group("resume")
def test_progress_bars_do_not_change_the_bits_of_a_study(reference, tmp_path):
    """Bars over chunks and steps (host callbacks traced into every training scan) vs none."""
    import io

    from jaxeval.progress import Progress

    buf = io.StringIO()
    seeds.run(_config(), workdir=tmp_path / "bars", log=None, report=False, progress=Progress(force=True, stream=buf))
    m = _assert_same_results(tmp_path / "bars", reference)
    assert m["checkpoints"]["sweeps"]["finetune_full"]["saved"] == 3
    text = buf.getvalue()
    for sweep_name, steps in (("pretrain", 22), ("finetune_full", 44), ("finetune_probe", 44)):
        assert f"seeds {sweep_name}: 100%" in text and f"step {steps}/{steps}" in text, sweep_name


def test_sweep_hooks_checkpoint_direct_sweeps_under_distinct_names(tmp_path):
    """A study calling sweep.run itself gets the run's store through base.sweep_hooks; names are
    the given one or the kind (kind_2, ... in call order); one name never holds two sweeps."""
    import jax.numpy as jnp

    from jaxeval import sweep
    from jaxeval.studies import base

    def fn(rep, shared):
        return {"y": rep["i"] * 2.0 + shared}

    def compute(cfg, log, bad=False):
        outs = []
        for name, r in (("toy", 3), ("toy", 3), (None, 5)) + ((("toy", 4),) if bad else ()):
            per = {"i": np.arange(r, dtype=np.float32)}
            with base.sweep_hooks(name, kind="toy", cfg=cfg, per_replicate=per, shared=jnp.float32(1.0),
                                  chunk_width=2) as hooks:
                outs.append(sweep.run(fn, per, jnp.float32(1.0), chunk_width=2, **hooks))
        assert np.array_equal(outs[2]["y"], 2.0 * np.arange(5) + 1)
        return base.Output(summary={}, manifest={}, files={})

    out = base.run_in_workdir("seeds", _config(), compute, workdir=tmp_path, log=None, report=False)
    sweeps = out.manifest["checkpoints"]["sweeps"]
    assert sweeps["toy"] == {"chunks": 2, "loaded": 2, "saved": 0, "corrupt_redone": 0}  # the 2nd call's store
    assert sweeps["toy_2"]["saved"] == 3
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["toy", "toy_2"]
    again = base.run_in_workdir("seeds", _config(), compute, workdir=tmp_path, log=None, report=False)
    assert again.manifest["checkpoints"]["sweeps"]["toy_2"]["loaded"] == 3
    with pytest.raises(ValueError, match="sweep name 'toy' is used twice in study 'seeds' with different inputs"):
        base.run_in_workdir("seeds", _config(), lambda c, log: compute(c, log, bad=True), workdir=tmp_path,
                            log=None, report=False)
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "failed"
