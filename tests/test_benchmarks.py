"""Smoke test of ``benchmarks/bench_engine.py --quick`` (run as a subprocess, as a user runs it).

PyTorch is a benchmark-only dependency (``benchmarks/requirements.txt``) that CI does not install.
Without it the benchmark skips its PyTorch rows only, and says so; this test then checks that it
said so, and checks everything else. Timings are not asserted (the machines are shared): only
that every arm ran and trained, kept its bits from round to round, and that jaxeval's sweep
sharded over 2 devices gives the same bits as on one. About 25 s with a cold compilation cache
on 2 quiet cores (15 s warm).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_engine_quick(tmp_path):
    env = dict(os.environ)
    # The persistent compilation cache that the test workers share (same programs, same bits).
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".cache" / "jax"))
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_engine.py", "--quick", "--cpu-devices", "2", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(out.read_text())
    assert res["machine"]["deterministic_ops_flag"] is True
    assert "--xla_gpu_deterministic_ops=true" in res["machine"]["xla_flags"]
    rows = {r["key"]: r for section in res["sections"] for r in section["rows"]}

    has_torch = importlib.util.find_spec("torch") is not None
    assert ("tiny/torch" in rows) == has_torch
    if not has_torch:
        assert "torch is not installed" in proc.stderr
    from jaxeval import sweep  # sharding over devices: jaxeval.sweep.run(devices=...)

    sharded = "devices" in inspect.signature(sweep.run).parameters
    expected = {"tiny/jax_loop", "tiny/sweep/8/8", "inv/base", "inv/2x32-u8"}
    expected |= {"tiny/sharded/8/8"} if sharded else set()
    assert expected <= set(rows), sorted(rows)
    for key, row in rows.items():
        assert row["throughput"] > 0 and row["compile_s"] >= 0, key
        assert row["same_bits_across_rounds"], key  # CPU: a fixed program is deterministic
    if sharded:
        assert rows["tiny/sharded/8/8"]["bits_vs_reference"] == "same", rows["tiny/sharded/8/8"]
    # Every arm trains: one epoch lifts test accuracy well above chance (0.10).
    for key in ("tiny/jax_loop", "tiny/sweep/8/8", "inv/base", "inv/2x32-u8"):
        assert rows[key]["accuracy"] > 0.2, (key, rows[key]["accuracy"])
    # Memory per seed of a vmapped chunk of 8 is no more than that of the single-seed program.
    assert rows["tiny/sweep/8/8"]["mib_per_seed"] <= 1.1 * rows["tiny/jax_loop"]["mib_per_seed"]
