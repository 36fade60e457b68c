"""Two jax.distributed processes on localhost (CPU, gloo): the same results as one process,
written once (by process 0 only).

Each process has 2 fake CPU devices; ``devices=0`` spreads the sweeps over all 4 (each process
runs the chunks of its own devices; shard_map: one SPMD program over both). The workers are
``tests/_distributed_worker.py``; the reference here is the default single-device sweep.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxeval import distributed, provenance, results, sweep
from tests import _distributed_worker as worker

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_", "JAXEVAL_DISTRIBUTED"))}
    env.update(JAX_PLATFORMS="cpu", JAXEVAL_DISTRIBUTED="1", JAXEVAL_COORDINATOR=f"localhost:{port}",
               JAXEVAL_NUM_PROCESSES="2")
    procs = [subprocess.Popen([sys.executable, "-m", "tests._distributed_worker", str(out)], cwd=REPO,
                              env={**env, "JAXEVAL_PROCESS_ID": str(i)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        logs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (stdout, stderr) in zip(procs, logs):
        assert p.returncode == 0, f"worker failed (rc {p.returncode}):\n{stdout}\n{stderr[-4000:]}"
    reports = [json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1]) for stdout, _ in logs]
    return out, reports


@pytest.fixture(scope="module")
def one_process():
    """The same sweeps in this process, on one device (the default path)."""
    sweeps, reps = worker.build()
    return {name: sweep.run(fn, reps, shared, chunk_width=worker.CHUNK) for name, (fn, shared) in sweeps.items()}


@pytest.mark.xdist_group("two_processes")
def test_processes_see_one_four_device_mesh(two_processes):
    _, reports = two_processes
    assert [r["process"] for r in reports] == [0, 1]
    for r in reports:
        assert (r["processes"], r["devices"], r["local_devices"]) == (2, 4, 2)
        assert r["layout"] == {"devices": 4, "processes": 2, "axis": "replicate", "device_kind": "cpu",
                               "engine": "per_device"}
        assert r["settings"] == {"mode": "exact", "gpu_deterministic_ops": True, "cpu_devices": 2,
                                 "distributed": True}
    assert [r["writer"] for r in reports] == [True, False]


@pytest.mark.xdist_group("two_processes")
def test_two_processes_equal_one_process_bitwise(two_processes, one_process):
    out, reports = two_processes
    expected = provenance.fingerprint(one_process)
    assert [r["fingerprint"] for r in reports] == [expected, expected]  # every process got all results
    toy = provenance.fingerprint(one_process["toy"])
    assert [r["toy_shard_map"] for r in reports] == [toy, toy]  # one SPMD program over both processes
    with np.load(out / "results.npz") as z:
        for name, tree in one_process.items():
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
                assert np.array_equal(z[f"{name}/{jax.tree_util.keystr(path)}"], leaf), (name, path)


@pytest.mark.xdist_group("two_processes")
def test_processes_with_different_inputs_are_refused(two_processes):
    _, reports = two_processes
    for r in reports:
        assert r["refused"] and "the processes passed different inputs" in r["refused"], r["refused"]


@pytest.mark.xdist_group("two_processes")
def test_written_once_by_process_0(two_processes):
    out, _ = two_processes
    assert sorted(p.name for p in out.iterdir()) == ["results.npz", "written_by_0.json"]


@pytest.mark.xdist_group("two_processes")
def test_store_is_process_0s_and_broadcast(two_processes, one_process):
    """Only process 0 has a store (process 1 passes None), holding a marked chunk 1: both
    processes return it (broadcast, not recomputed), the other chunks as computed; process 0
    saves the computed chunks 0, 2, 3, 4."""
    _, reports = two_processes
    for r in reports:
        assert np.all(np.array(r["store_chunk1"]) == 7.0)
        assert r["store_rest"] == r["toy_rest"]
    assert [r["store_saved"] for r in reports] == [[0, 2, 3, 4], None]


def test_single_process_is_writer(tmp_path):
    assert not distributed.is_initialized() and distributed.process_index() == 0 and results.is_writer()
    results.write_json(tmp_path / "x.json", {"a": 1})
    assert results.read_json(tmp_path / "x.json") == {"a": 1}


def test_distributed_env_validation(monkeypatch):
    monkeypatch.setenv(distributed.ENV, "maybe")
    with pytest.raises(ValueError, match=r"JAXEVAL_DISTRIBUTED='maybe' is not allowed"):
        distributed.requested()
    monkeypatch.setenv(distributed.ENV, "0")
    assert not distributed.requested()
