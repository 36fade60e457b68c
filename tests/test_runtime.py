"""Process set-up: exact / inexact mode, fake CPU devices, and what the manifest records.

This process's backend is already up (conftest), so ``configure`` may only run where it changes
nothing XLA has read; changing flags or the CPU device count now must be an error, not a lie in
the manifest. The set-up itself is exercised in fresh processes by tests/test_distributed.py.
"""

import jax
import pytest

from jaxeval import provenance, runtime


@pytest.fixture
def clean_state(monkeypatch):
    monkeypatch.setattr(runtime, "_STATE", {"mode": None, "cpu_devices": None})
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv(runtime.CPU_DEVICES_ENV, raising=False)
    jax.numpy.zeros(1).block_until_ready()  # the backend is up


def test_exact_after_backend_start_is_an_error(clean_state):
    with pytest.raises(RuntimeError, match="runtime.configure must run before JAX starts its backend"):
        runtime.configure(exact=True)
    assert runtime.settings()["mode"] is None  # nothing recorded


def test_inexact_says_so_and_is_recorded(clean_state, capsys):
    settings = runtime.configure(exact=False)  # no flag to remove: nothing changes for XLA
    assert "NOT bitwise reproducible" in capsys.readouterr().err
    assert settings == {"mode": "inexact", "gpu_deterministic_ops": False, "cpu_devices": None, "distributed": False}
    assert provenance.runtime()["exact"] == settings


def test_exact_flag_already_set_is_accepted(clean_state, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", runtime.GPU_DETERMINISTIC_FLAG)
    settings = runtime.configure(exact=True)
    assert settings["mode"] == "exact" and settings["gpu_deterministic_ops"]


def test_cpu_devices(clean_state, monkeypatch):
    assert runtime.set_cpu_devices(len(jax.devices())) == 4  # what the backend already has: fine
    with pytest.raises(RuntimeError, match="has already started with 4 CPU device"):
        runtime.set_cpu_devices(3)
    with pytest.raises(ValueError, match=r"cpu_devices=-1 is not allowed: an integer >= 0 \(0 = one per core"):
        runtime.set_cpu_devices(-1)
    monkeypatch.setenv(runtime.CPU_DEVICES_ENV, "many")
    monkeypatch.setenv("XLA_FLAGS", runtime.GPU_DETERMINISTIC_FLAG)
    with pytest.raises(ValueError, match=r"\$JAXEVAL_CPU_DEVICES='many' is not allowed"):
        runtime.configure(exact=True)


def test_core_count():
    assert runtime.cpu_core_count() >= 1
