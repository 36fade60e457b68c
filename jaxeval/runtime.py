"""Process set-up before JAX initialises a backend: exact mode, CPU devices, multi-process.

Call ``configure(...)`` first thing in an entry point (before any JAX computation): XLA reads
``XLA_FLAGS`` and JAX fixes its device count and process group when the backend starts.

* **exact** (default): adds ``--xla_gpu_deterministic_ops=true`` to ``XLA_FLAGS``. On GPU this
  makes XLA use deterministic implementations of scatter, reductions, GEMMs and convolutions
  (no atomics) and turns off the autotuning of GEMM fusions, whose timing-based choice of kernel
  can change between compilations; ops without a deterministic implementation (select-and-
  scatter) fail to compile instead of running non-deterministically. It also refuses a
  non-threefry default PRNG. On CPU, XLA is deterministic for a fixed program anyway.
* **inexact** (``exact=False``): removes that flag: faster GPU kernels (atomics, autotuned
  fusions), results **not** bitwise reproducible from run to run. It says so on stderr.

``settings()`` is what the manifest records (``manifest["runtime"]["exact"]``, via
``provenance.runtime()``): the mode, whether the GPU deterministic-ops flag is set, the CPU
device count asked for and whether jax.distributed is on.
"""

from __future__ import annotations

import os
import sys

GPU_DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"
_GPU_DETERMINISTIC_PREFIX = "--xla_gpu_deterministic_ops"
CPU_DEVICES_ENV = "JAXEVAL_CPU_DEVICES"  # "0" = one per core, "n" = n fake CPU devices
INEXACT_WARNING = ("jaxeval: inexact mode: GPU kernels may use atomics and autotuned fusions (faster); "
                   "results are NOT bitwise reproducible from run to run")

_STATE: dict = {"mode": None, "cpu_devices": None}


def _backend_started() -> bool:
    from jax._src import xla_bridge  # no public API says whether a backend is up

    return xla_bridge.backends_are_initialized()


def _set_xla_flags(flags: list[str]) -> None:
    new = " ".join(flags)
    if new == os.environ.get("XLA_FLAGS", ""):
        return
    if _backend_started():
        raise RuntimeError(
            f"runtime.configure must run before JAX starts its backend (XLA_FLAGS would change from "
            f"{os.environ.get('XLA_FLAGS', '')!r} to {new!r} but XLA has already read them); call it first "
            "in the entry point, before any JAX computation")
    if new:
        os.environ["XLA_FLAGS"] = new
    else:
        os.environ.pop("XLA_FLAGS", None)


def cpu_core_count() -> int:
    """CPU cores this process may use (its affinity mask when the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_cpu_devices(n: int) -> int:
    """Makes JAX's CPU backend ``n`` devices (``0``: one per core): a sweep then shards its
    chunks over them (``devices=0``) like over GPUs. Must run before the backend starts."""
    import jax

    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"cpu_devices={n!r} is not allowed: an integer >= 0 (0 = one per core, "
                         f"{cpu_core_count()} here)")
    n = n or cpu_core_count()
    if jax.config.jax_num_cpu_devices != n:
        if _backend_started():
            raise RuntimeError(f"cpu_devices={n}: JAX's backend has already started with "
                               f"{jax.config.jax_num_cpu_devices} CPU device(s); set it before any JAX computation")
        jax.config.update("jax_num_cpu_devices", n)
    _STATE["cpu_devices"] = n
    return n


def configure(*, exact: bool = True, compilation_cache: str | None = None, cpu_devices: int | None = None,
              distributed: bool | None = None) -> dict:
    """Sets up this process; returns ``settings()``.

    ``exact``: see the module docstring. ``compilation_cache``: a folder for JAX's persistent
    compilation cache (same compiled programs, hence the same bits; faster restarts).
    ``cpu_devices``: ``set_cpu_devices(n)`` (default: ``$JAXEVAL_CPU_DEVICES`` if set).
    ``distributed``: ``jaxeval.distributed.initialize()`` (default: ``$JAXEVAL_DISTRIBUTED``).
    """
    import jax

    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(_GPU_DETERMINISTIC_PREFIX)]
    if exact:
        from jaxeval.keys import check_prng_config

        _set_xla_flags([*flags, GPU_DETERMINISTIC_FLAG])
        check_prng_config()
    else:
        _set_xla_flags(flags)
        print(INEXACT_WARNING, file=sys.stderr, flush=True)
    _STATE["mode"] = "exact" if exact else "inexact"
    if cpu_devices is None and os.environ.get(CPU_DEVICES_ENV, "") != "":
        try:
            cpu_devices = int(os.environ[CPU_DEVICES_ENV])
        except ValueError:
            raise ValueError(f"${CPU_DEVICES_ENV}={os.environ[CPU_DEVICES_ENV]!r} is not allowed: an integer >= 0 "
                             "(0 = one CPU device per core)") from None
    if cpu_devices is not None:
        set_cpu_devices(cpu_devices)
    from jaxeval import distributed as distributed_lib

    if distributed if distributed is not None else distributed_lib.requested():
        distributed_lib.initialize()
    if compilation_cache:
        jax.config.update("jax_compilation_cache_dir", compilation_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every checkpoint at INFO
    return settings()


def settings() -> dict:
    """What the manifest records about this set-up (``provenance.runtime()["exact"]``).

    ``mode``: ``"exact"``, ``"inexact"``, or ``None`` when ``configure`` was not called (library
    use: XLA's defaults). ``gpu_deterministic_ops``: whether ``XLA_FLAGS`` holds the flag.
    """
    flags = os.environ.get("XLA_FLAGS", "").split()
    from jaxeval import distributed as distributed_lib

    return {"mode": _STATE["mode"], "gpu_deterministic_ops": GPU_DETERMINISTIC_FLAG in flags,
            "cpu_devices": _STATE["cpu_devices"], "distributed": distributed_lib.is_initialized()}
