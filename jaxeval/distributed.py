"""Several processes (hosts) on JAX's own distributed runtime: one SPMD program, process 0 writes.

Every process runs the same study code: the same config, the same keys (they are pure functions
of the seed), the same sweeps. A sweep with ``devices=0`` shards its chunks over the devices of
all processes (``jaxeval.sweep``), and every process gets all outputs back
(``multihost_utils.process_allgather``), so statistics are computed everywhere and agree; only
process 0 writes files (``jaxeval.results`` checks ``is_writer()``).

Switched on by ``runtime.configure(distributed=True)`` or the environment::

    JAXEVAL_DISTRIBUTED=1                  required: call jax.distributed.initialize()
    JAXEVAL_COORDINATOR=host0:1234         process 0's address (or JAX_COORDINATOR_ADDRESS)
    JAXEVAL_NUM_PROCESSES=2                the number of processes
    JAXEVAL_PROCESS_ID=0                   this process, 0..n-1

Left unset, JAX detects them on SLURM, Open MPI, Kubernetes and Cloud TPU.
"""

from __future__ import annotations

import os
from typing import Any

ENV = "JAXEVAL_DISTRIBUTED"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def requested() -> bool:
    """Whether ``$JAXEVAL_DISTRIBUTED`` asks for jax.distributed."""
    v = os.environ.get(ENV, "").strip().lower()
    if v not in _TRUE + _FALSE:
        raise ValueError(f"${ENV}={os.environ[ENV]!r} is not allowed: 1/true/yes/on or 0/false/no/off (or unset)")
    return v in _TRUE


def _env_int(name: str) -> int | None:
    v = os.environ.get(name, "")
    if v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"${name}={v!r} is not allowed: an integer") from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout_s: int = 300) -> None:
    """``jax.distributed.initialize`` with arguments from ``$JAXEVAL_*`` (see the module
    docstring) unless given; a no-op when already initialised. Must run before any JAX
    computation. On CPU, cross-process collectives use gloo."""
    import jax

    if jax.distributed.is_initialized():
        return
    coordinator_address = coordinator_address or os.environ.get("JAXEVAL_COORDINATOR") or None
    num_processes = num_processes if num_processes is not None else _env_int("JAXEVAL_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAXEVAL_PROCESS_ID")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes={num_processes} is not allowed: >= 1")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id={process_id} is not allowed: 0..{num_processes - 1} "
                         f"(num_processes={num_processes})")
    # CPU processes exchange data (process_allgather, broadcasts) through gloo (jax's default
    # in 0.10; set explicitly so a changed default cannot break multi-process CPU runs).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=timeout_s)


def is_initialized() -> bool:
    import sys

    jax = sys.modules.get("jax")
    return bool(jax is not None and jax.distributed.is_initialized())


def process_index() -> int:
    """This process's index (0 when not distributed; never starts a JAX backend by itself)."""
    if not is_initialized():
        return 0
    import jax

    return jax.process_index()


def process_count() -> int:
    if not is_initialized():
        return 1
    import jax

    return jax.process_count()


def is_writer() -> bool:
    """Whether this process writes results: process 0 (every process when not distributed)."""
    return process_index() == 0


def gather(tree: Any) -> Any:
    """Every process's full copy (numpy) of a pytree of global arrays (``process_allgather``)."""
    import jax

    if process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def barrier(name: str) -> None:
    """Waits until every process gets here (a no-op in one process)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def shutdown() -> None:
    import jax

    if jax.distributed.is_initialized():
        jax.distributed.shutdown()
