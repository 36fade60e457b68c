"""What a study's bits depend on (DESIGN §4): versions, backend, flags, PRNG, fingerprints."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import jax
import numpy as np

PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "scipy", "tensorflow-datasets", "ml-collections", "chex")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def runtime() -> dict[str, Any]:
    """Backend, device kind and count, XLA flags, PRNG and precision settings; ``exact``: the
    determinism mode of ``jaxeval.runtime`` (``mode`` exact/inexact/None, the GPU
    deterministic-ops flag, CPU devices, jax.distributed)."""
    from jaxeval import runtime as runtime_lib

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "exact": runtime_lib.settings(),
        "prng_impl": jax.config.jax_default_prng_impl,
        "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
        "enable_x64": bool(jax.config.jax_enable_x64),
        "default_matmul_precision": jax.config.jax_default_matmul_precision,
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def git_commit() -> str | None:
    """The commit of the jaxeval checkout, if it is one (``+dirty`` when it has changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def fingerprint(tree: Any) -> str:
    """sha256 over the dtype, shape and bytes of every leaf of ``tree`` (in tree order)."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
