"""Vmapped replicates in fixed-width chunks (DESIGN §4).

``run(fn, per_replicate, shared, chunk_width=C)`` evaluates ``fn(rep, shared)`` for every
replicate ``rep`` (a slice of ``per_replicate`` along its leading axis) as ``jit(vmap(fn))`` over
chunks of exactly ``C`` replicates; the last chunk is padded with copies of the first replicate
and the padding dropped. Every chunk runs the same compiled program, so replicate ``i``'s bits
depend on ``C`` but not on how many replicates the study has or where ``i`` sits. (On XLA:CPU
the reduction order of a vmapped program depends on the vmap width, so a different ``C`` is a
different, statistically equivalent program.) A single run is a sweep of one, padded to ``C``.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def num_replicates(per_replicate: PyTree) -> int:
    leaves = jax.tree_util.tree_leaves(per_replicate)
    if not leaves:
        raise ValueError("per_replicate has no arrays: nothing to sweep over")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"every per-replicate array needs the same leading (replicate) axis; got sizes {sizes}")
    return int(sizes.pop())


def pad_to_chunks(per_replicate: PyTree, chunk_width: int) -> tuple[PyTree, int]:
    """Pads the replicate axis to a multiple of ``chunk_width`` with copies of replicate 0."""
    r = num_replicates(per_replicate)
    n_chunks = -(-r // chunk_width)
    pad = n_chunks * chunk_width - r

    def _pad(a):
        a = np.asarray(a)
        return np.concatenate([a, np.repeat(a[:1], pad, axis=0)]) if pad else a

    return jax.tree_util.tree_map(_pad, per_replicate), n_chunks


class ChunkStore(Protocol):
    """Where a sweep keeps its finished chunks (checkpoints for resume).

    ``load(i)`` returns chunk ``i``'s outputs (host pytree, leading axis ``chunk_width``) or
    ``None`` when it is not there; ``save(i, out)`` stores them atomically.
    """

    def load(self, index: int) -> PyTree | None: ...

    def save(self, index: int, out: PyTree) -> None: ...


_COMPILED: "weakref.WeakKeyDictionary[Callable, Callable]" = weakref.WeakKeyDictionary()


def _vmapped(fn: Callable) -> Callable:
    """``jit(vmap(fn, in_axes=(0, None)))``, built once per ``fn`` object (so repeated sweeps of
    the same function reuse its traced and compiled program)."""
    try:
        return _COMPILED[fn]
    except (KeyError, TypeError):
        step = jax.jit(jax.vmap(fn, in_axes=(0, None)))
        try:
            _COMPILED[fn] = step
        except TypeError:  # not weak-referenceable
            pass
        return step


def check_chunk_width(chunk_width) -> int:
    if isinstance(chunk_width, bool) or not isinstance(chunk_width, (int, np.integer)) or chunk_width <= 0:
        raise ValueError(f"chunk_width must be a positive integer, got {chunk_width!r}")
    return int(chunk_width)


def run(
    fn: Callable[[PyTree, PyTree], PyTree],
    per_replicate: PyTree,
    shared: PyTree = None,
    *,
    chunk_width: int,
    on_chunk: Callable[[int, int], None] | None = None,
    store: "ChunkStore | None" = None,
) -> PyTree:
    """``fn(rep, shared) -> out`` over all replicates; returns ``out`` stacked ``[R, ...]`` (numpy).

    ``per_replicate``: pytree of host arrays with leading axis ``R`` (e.g. stream indices).
    ``shared``: pytree broadcast to every replicate (``in_axes=None``: data, pretrained params).
    ``on_chunk(i, n_chunks)`` is called after each finished chunk (progress).
    ``store``: finished chunks are saved to it and, when it already holds chunk ``i`` (a resumed
    run), loaded instead of recomputed (see ``ChunkStore``).
    """
    chunk_width = check_chunk_width(chunk_width)
    r = num_replicates(per_replicate)
    padded, n_chunks = pad_to_chunks(per_replicate, chunk_width)
    step = _vmapped(fn)
    outs = []
    for c in range(n_chunks):
        chunk = jax.tree_util.tree_map(lambda a: a[c * chunk_width : (c + 1) * chunk_width], padded)
        out = store.load(c) if store is not None else None
        if out is None:
            out = jax.device_get(step(chunk, shared))
            if store is not None:
                store.save(c, out)
        outs.append(out)
        if on_chunk is not None:
            on_chunk(c, n_chunks)
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs)[:r], *outs)


def take(stacked: PyTree, index) -> PyTree:
    """Replicate ``index`` of a stacked pytree (inside jit: ``index`` may be traced)."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a)[index], stacked)
