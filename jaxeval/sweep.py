"""Vmapped replicates in fixed-width chunks, optionally over several devices (DESIGN §4).

``run(fn, per_replicate, shared, chunk_width=C)`` evaluates ``fn(rep, shared)`` for every
replicate ``rep`` (a slice of ``per_replicate`` along its leading axis) as ``jit(vmap(fn))`` over
chunks of exactly ``C`` replicates; the last chunk is padded with copies of the first replicate
and the padding dropped. Every chunk runs the same compiled program, so replicate ``i``'s bits
depend on ``C`` but not on how many replicates the study has or where ``i`` sits. (On XLA:CPU
the reduction order of a vmapped program depends on the vmap width, so a different ``C`` is a
different, statistically equivalent program.) A single run is a sweep of one, padded to ``C``.

**Chunks** are the unit of results and of resume: chunk ``i`` is always replicates
``[i*C, (i+1)*C)`` (padded), however many devices run the sweep.

**Devices** (``devices=``, see ``make_mesh``): a 1-D mesh of ``D`` devices (axis
``"replicate"``) runs ``D`` chunks per step, chunk ``k`` of a step on mesh device ``k``; a step
with fewer than ``D`` chunks left is filled with chunks of copies of replicate 0 (where the
engine needs every device busy), whose outputs are dropped. Two engines (``engine=``):

* ``"per_device"`` (default): every device runs the very program of the one-device sweep (the
  same ``jit(vmap(fn))``, compiled for each device, dispatched asynchronously, so the devices run
  concurrently). Replicate ``i``'s bits are the one-device bits **by construction**; the price
  is one compile per device on the first step (on GPU, JAX's persistent compilation cache,
  ``runtime.configure(compilation_cache=...)``, turns the later ones into loads).
* ``"shard_map"``: one SPMD program, ``jit(shard_map(vmap(fn)))`` over the mesh axis (one
  compile for all devices). XLA compiles a multi-device SPMD program through other passes than a
  one-device program, and the result is not always bitwise the same: measured on XLA:CPU (jax
  0.10.2), 3 of 14 random small finetune configs (all with gradient accumulation) ended
  1e-8..1e-7 apart from the one-device sweep, the same on 2 and 4 devices; the others, and the
  default study's finetuning from scratch, were equal. (Plain ``jit(vmap)`` with the inputs
  sharded over an explicit mesh was measured 3e-8 off.)

Under ``jax.distributed`` the mesh spans every process's devices; every process must pass the
same inputs (checked: a sha256 compared across processes) and gets all outputs back
(``process_allgather``); each process runs the chunks of its own devices.
"""

from __future__ import annotations

import contextlib
import hashlib
import contextvars
import weakref
from typing import Any, Callable, Iterator, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

PyTree = Any
AXIS = "replicate"  # the mesh axis of the replicate (seed) dimension


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
    ``None`` when it is not there; ``save(i, out)`` stores them atomically. Chunk ``i`` is
    replicates ``[i*C, (i+1)*C)`` whatever the number of devices, so a run may resume on another
    number of devices. Under ``jax.distributed`` only process 0's store is used (the others may
    pass ``None``): process 0 alone calls ``load`` and ``save`` (a single-writer store on its file
    system), and the sweep broadcasts what it loads to the other processes.
    """

    def load(self, index: int) -> PyTree | None: ...

    def save(self, index: int, out: PyTree) -> None: ...


_COMPILED: "weakref.WeakKeyDictionary[Callable, Callable]" = weakref.WeakKeyDictionary()
_SHARDED: "weakref.WeakKeyDictionary[Callable, dict]" = weakref.WeakKeyDictionary()


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


def _sharded(fn: Callable, mesh: Mesh) -> Callable:
    """``jit(shard_map(vmap(fn)))`` over ``mesh``'s axis: replicates split over devices, ``shared``
    replicated; built once per (``fn``, ``mesh``). ``check_vma=False``: the body has no
    collectives, and the varying-axis check would reject plain ``fn``s (a ``lax.scan`` whose carry
    starts from a constant and picks up the replicate axis)."""
    try:
        return _SHARDED[fn][mesh]
    except (KeyError, TypeError):
        pass
    axis = mesh.axis_names[0]
    step = jax.jit(jax.shard_map(jax.vmap(fn, in_axes=(0, None)), mesh=mesh,
                                 in_specs=(P(axis), P()), out_specs=P(axis), check_vma=False))
    try:
        _SHARDED.setdefault(fn, {})[mesh] = step
    except TypeError:  # not weak-referenceable
        pass
    return step


def check_chunk_width(chunk_width) -> int:
    if isinstance(chunk_width, bool) or not isinstance(chunk_width, (int, np.integer)) or chunk_width <= 0:
        raise ValueError(f"chunk_width must be a positive integer, got {chunk_width!r}")
    return int(chunk_width)


def make_mesh(devices: "None | int | Sequence[jax.Device] | Mesh" = None) -> Mesh | None:
    """The 1-D mesh (axis ``"replicate"``) a sweep shards its replicates over.

    ``None`` or ``1``: no mesh (one device: the default device, plain ``jit(vmap)``).
    ``0``: all devices (``jax.devices()``: every process's under ``jax.distributed``).
    ``n``: the first ``n`` of ``jax.devices()``. A sequence of devices, or a 1-D ``Mesh`` (used
    as is, whatever its axis name).
    """
    if devices is None:
        return None
    if isinstance(devices, Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(f"devices: a sweep needs a 1-D mesh (one replicate axis); got axes {devices.axis_names}")
        mesh = devices
    else:
        available = jax.devices()
        if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
            n = int(devices)
            if n < 0 or n > len(available):
                raise ValueError(f"devices={n} is not allowed: 0 (all {len(available)} devices) or 1..{len(available)} "
                                 f"(the first n of {len(available)} {available[0].platform} devices)")
            if n == 1:
                return None
            devs = available if n == 0 else available[:n]
        elif isinstance(devices, (list, tuple)) and devices and all(isinstance(d, jax.Device) for d in devices):
            devs = list(devices)
        else:
            raise ValueError(f"devices={devices!r} is not allowed: None, an integer (0 = all devices, "
                             "n = the first n), a list of jax devices or a 1-D jax.sharding.Mesh")
        mesh = Mesh(np.array(devs), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,))
    procs = {d.process_index for d in mesh.devices.flat}
    if jax.process_count() > 1 and procs != set(range(jax.process_count())):
        raise ValueError(f"devices: under jax.distributed the mesh must hold devices of every process "
                         f"(0..{jax.process_count() - 1}); it holds devices of processes {sorted(procs)} "
                         "(use devices=0 for all devices)")
    return mesh


ENGINES = ("per_device", "shard_map")


def _check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not allowed: one of {ENGINES}")
    return engine


def describe(devices: "None | int | Sequence[jax.Device] | Mesh" = None, engine: str = "per_device") -> dict:
    """The layout for a manifest: ``{"devices", "processes", "axis", "device_kind", "engine"}``."""
    mesh = make_mesh(devices)
    devs = [jax.devices()[0]] if mesh is None else list(mesh.devices.flat)
    return {"devices": len(devs), "processes": len({d.process_index for d in devs}),
            "axis": None if mesh is None else mesh.axis_names[0], "device_kind": devs[0].device_kind,
            "engine": "one_device" if mesh is None else _check_engine(engine)}


_DEFAULT: contextvars.ContextVar[tuple] = contextvars.ContextVar("jaxeval_sweep_devices", default=(None, "per_device"))


@contextlib.contextmanager
def use_devices(devices: "None | int | Sequence[jax.Device] | Mesh", engine: str = "per_device") -> Iterator[None]:
    """Inside the block, ``run(...)`` without ``devices`` uses ``devices`` and ``engine`` (a study
    wraps its computation in ``use_devices(cfg.devices)``)."""
    make_mesh(devices)  # fail early on a bad value
    token = _DEFAULT.set((devices, _check_engine(engine)))
    try:
        yield
    finally:
        _DEFAULT.reset(token)


def _host(tree: PyTree) -> PyTree:
    """Every process's copy of a (possibly multi-process, sharded) output, as numpy."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def _to_host_value(x):
    """Under jax.distributed, device_put wants host values (it checks every process passes the
    same); typed keys stay jax arrays."""
    if jax.process_count() == 1 or jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key):
        return x
    return np.asarray(x)


def _shard_map_engine(fn: Callable, mesh: Mesh, shared: PyTree, chunk_width: int) -> Callable:
    """``compute(chunks, n) -> outputs of the first n``: ``D`` chunks as one
    ``jit(shard_map(vmap(fn)))`` step."""
    step = _sharded(fn, mesh)
    shared_d = jax.tree_util.tree_map(lambda x: jax.device_put(_to_host_value(x), NamedSharding(mesh, P())), shared)
    in_sharding = NamedSharding(mesh, P(mesh.axis_names[0]))

    def compute(chunks, n_real):
        xs = jax.tree_util.tree_map(lambda *a: jax.device_put(np.concatenate(a), in_sharding), *chunks)
        out = _host(step(xs, shared_d))
        return [jax.tree_util.tree_map(lambda a: a[k * chunk_width:(k + 1) * chunk_width], out)
                for k in range(n_real)]

    return compute


def _per_device_engine(fn: Callable, mesh: Mesh, shared: PyTree, chunk_width: int) -> Callable:
    """``compute(chunks, n) -> outputs of the first n``: chunk ``k`` through the one-device
    ``jit(vmap(fn))`` on mesh device ``k`` (this process's devices; the others' outputs come
    back by allgather)."""
    step = _vmapped(fn)
    devices = list(mesh.devices.flat)
    mine = [k for k, d in enumerate(devices) if d.process_index == jax.process_index()]
    shared_on = {k: jax.device_put(shared, devices[k]) for k in mine}
    multi = jax.process_count() > 1

    def compute(chunks, n_real):
        # One process skips the filler chunks; several need every device's output to assemble.
        run_on = mine if multi else [k for k in mine if k < n_real]
        # Asynchronous dispatch: the devices run concurrently. (Not from worker threads: JAX's
        # context settings, e.g. ``default_matmul_precision``, are thread-local and would not
        # reach them, giving another program than the one-device sweep.) The first step compiles
        # once per device, one after the other.
        outs = {k: step(jax.device_put(chunks[k], devices[k]), shared_on[k]) for k in run_on}
        if not multi:
            return [jax.device_get(outs[k]) for k in range(n_real)]
        sharding = NamedSharding(mesh, P(mesh.axis_names[0]))

        def assemble(*leaves):  # one global [D*C, ...] array from the per-device outputs
            shape = (len(devices) * leaves[0].shape[0], *leaves[0].shape[1:])
            return jax.make_array_from_single_device_arrays(shape, sharding, list(leaves))

        out = _host(jax.tree_util.tree_map(assemble, *[outs[k] for k in mine]))
        return [jax.tree_util.tree_map(lambda a: a[k * chunk_width:(k + 1) * chunk_width], out)
                for k in range(n_real)]

    return compute


def _check_same_inputs(per_replicate: PyTree, shared: PyTree, chunk_width: int) -> None:
    """Under jax.distributed: raises on every process unless all passed the same inputs (a
    sha256 over every leaf's dtype, shape and bytes; typed keys by their key data)."""
    from jax.experimental import multihost_utils

    h = hashlib.sha256(str(chunk_width).encode())
    for leaf in jax.tree_util.tree_leaves((per_replicate, shared)):
        if jax.dtypes.issubdtype(getattr(leaf, "dtype", np.float32), jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    multihost_utils.assert_equal(np.frombuffer(h.digest(), np.uint8),
                                 "sweep.run: the processes passed different inputs (config, keys or data differ)")


def _store_in_use(store: "ChunkStore | None") -> bool:
    """Whether chunks go through a store: under jax.distributed, whether process 0 has one (the
    other processes may pass ``None``; they follow process 0)."""
    if jax.process_count() == 1:
        return store is not None
    from jax.experimental import multihost_utils

    return bool(int(multihost_utils.broadcast_one_to_all(np.int32(store is not None))))


def _load(store: "ChunkStore | None", index: int, like: Callable[[], PyTree]) -> PyTree | None:
    """``store.load(index)``; under jax.distributed process 0 loads and broadcasts the bits."""
    if jax.process_count() == 1:
        return store.load(index)
    from jax.experimental import multihost_utils

    source = jax.process_index() == 0
    out = store.load(index) if source else None
    if not int(multihost_utils.broadcast_one_to_all(np.int32(out is not None))):
        return None
    template = like()
    if source:  # the store's arrays as the sweep's outputs (a mismatch raises here, not in a collective)
        out = jax.tree_util.tree_map(lambda s, a: np.asarray(a, s.dtype).reshape(s.shape), template, out)
    else:
        out = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), template)
    # broadcast_one_to_all sums over processes: send the bytes (x + 0 is exact on integers).
    raw = jax.tree_util.tree_map(lambda a: np.ascontiguousarray(np.asarray(a)).view(np.uint8), out)
    raw = multihost_utils.broadcast_one_to_all(raw)
    return jax.tree_util.tree_map(lambda b, s: np.asarray(b).view(s.dtype).reshape(s.shape), raw, template)


def _save(store: "ChunkStore | None", index: int, out: PyTree) -> None:
    if store is not None and jax.process_index() == 0:
        store.save(index, out)


def run(
    fn: Callable[[PyTree, PyTree], PyTree],
    per_replicate: PyTree,
    shared: PyTree = None,
    *,
    chunk_width: int,
    on_chunk: Callable[[int, int], None] | None = None,
    store: "ChunkStore | None" = None,
    devices: "None | int | Sequence[jax.Device] | Mesh" = None,
    engine: str | None = None,
) -> PyTree:
    """``fn(rep, shared) -> out`` over all replicates; returns ``out`` stacked ``[R, ...]`` (numpy).

    ``per_replicate``: pytree of host arrays with leading axis ``R`` (e.g. stream indices).
    ``shared``: pytree broadcast to every replicate (``in_axes=None``: data, pretrained params).
    ``on_chunk(i, n_chunks)`` is called after each finished chunk (progress).
    ``store``: finished chunks are saved to it and, when it already holds chunk ``i`` (a resumed
    run), loaded instead of recomputed (see ``ChunkStore``).
    ``devices``: see ``make_mesh``; ``1`` runs on the default device, a mesh runs ``D`` chunks
    per step, one per device; ``None``: the ``use_devices`` block's, else one device.
    ``engine``: ``"per_device"`` (default: the one-device program on every device, the same
    bits) or ``"shard_map"`` (one SPMD program; see the module docstring).
    """
    if devices is None:
        devices, default_engine = _DEFAULT.get()
        engine = engine or default_engine
    engine = engine or "per_device"
    chunk_width = check_chunk_width(chunk_width)
    mesh = make_mesh(devices)
    r = num_replicates(per_replicate)
    padded, n_chunks = pad_to_chunks(per_replicate, chunk_width)
    if jax.process_count() > 1:
        _check_same_inputs(per_replicate, shared, chunk_width)

    def chunk(c):
        return jax.tree_util.tree_map(lambda a: a[c * chunk_width : (c + 1) * chunk_width], padded)

    if mesh is None:
        step, width = _vmapped(fn), 1
        compute = lambda chunks: [jax.device_get(step(chunks[0], shared))]  # noqa: E731
    else:
        width = mesh.devices.size
        engine_fn = _per_device_engine if _check_engine(engine) == "per_device" else _shard_map_engine
        compute_full = engine_fn(fn, mesh, shared, chunk_width)
        filler = jax.tree_util.tree_map(lambda a: np.repeat(a[:1], chunk_width, axis=0), padded)

        def compute(chunks):
            return compute_full(chunks + [filler] * (width - len(chunks)), len(chunks))

    like = lambda: jax.eval_shape(jax.vmap(fn, in_axes=(0, None)), chunk(0), shared)  # noqa: E731
    stored = _store_in_use(store)
    outs: list = [None] * n_chunks
    for first in range(0, n_chunks, width):
        group = range(first, min(first + width, n_chunks))
        for c in group:
            outs[c] = _load(store, c, like) if stored else None
        todo = [c for c in group if outs[c] is None]
        if todo:
            for c, out in zip(todo, compute([chunk(c) for c in todo])):
                outs[c] = out
                _save(store, c, out)
        for c in group:
            if on_chunk is not None:
                on_chunk(c, n_chunks)
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs)[:r], *outs)


def take(stacked: PyTree, index) -> PyTree:
    """Replicate ``index`` of a stacked pytree (inside jit: ``index`` may be traced)."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a)[index], stacked)
