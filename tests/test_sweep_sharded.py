"""The replicate axis over several devices (a 1-D mesh): the same bits as one device.

conftest gives 4 fake CPU devices. Each device runs whole chunks of ``chunk_width`` replicates,
so replicate i's bits must not depend on the device count, on the padding to devices x
chunk_width, or on which chunks a store already held. The default engine (``per_device``) runs
the one-device program on every device; ``shard_map`` compiles one SPMD program, which XLA may
optimise differently from the one-device program (see ``jaxeval.sweep``).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from jaxeval import config as config_lib
from jaxeval import keys as K
from jaxeval import models, sweep
from jaxeval.train import make_finetune

ROOT = K.root_key(0)
_DATA = K.stream(ROOT, "dataset", 0)
X = jax.random.normal(jax.random.fold_in(_DATA, 0), (128, 16))
Y = jax.random.randint(jax.random.fold_in(_DATA, 1), (128,), 0, 4)


def _one_device_mesh():
    return Mesh(np.array(jax.devices()[:1]), (sweep.AXIS,))


LAYOUTS = {"mesh of 1": _one_device_mesh, "2 devices": lambda: 2, "4 devices": lambda: 4, "all devices": lambda: 0}


def _toy(rep, shared):
    """A keyed init and 20 gradient steps: reductions whose bits depend on the program."""
    x, y = shared
    w = jax.random.normal(K.stream(ROOT, "init", rep["init"]), (16,))

    def step(w, _):
        g = jax.grad(lambda w: jnp.mean((jnp.tanh(x @ w) - y / 4) ** 2))(w)
        return w - 0.5 * g, None

    w, _ = jax.lax.scan(step, w, None, length=20)
    return {"w": w, "loss": jnp.mean((jnp.tanh(x @ w) - y / 4) ** 2), "init": rep["init"]}


def _finetune_fn():
    """A small real finetune of a given (pretrained) encoder, as the studies run it: MLP 32,
    dropout, Adam with weight decay, clipping, gradient accumulation over 2 steps, 64 examples.
    Measured (jax 0.10.2, XLA:CPU): under ``shard_map`` on 2 or 4 devices this program ends
    3e-8 apart from the one-device sweep (XLA compiles the SPMD program differently); the
    per-device engine must give the one-device bits."""
    cfg = config_lib.base_config()
    cfg.model.hidden = (32,)
    f = cfg.finetune
    f.epochs, f.batch_size, f.schedule, f.grad_clip, f.accum_steps, f.weight_decay = 2, 32, "constant", 1.0, 2, 0.01
    model = models.build(cfg.model, (16,), 4)
    finetune = make_finetune(model, f, 64, mode="full")
    encoder = models.init_encoder(model, key=K.stream(ROOT, "pretrain_init", 0))

    def tune(rep, shared):
        x, y, encoder = shared
        params, metrics = finetune(encoder, x[:64], y[:64], keys=K.replicate_keys(ROOT, rep))
        return {"params": params, "loss": metrics["loss"], "order": metrics["order_checksum"]}

    return tune, (X, Y, encoder)


def _assert_bitwise(a, b):
    chex.assert_trees_all_equal_structs(a, b)
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)):
        assert np.array_equal(np.asarray(x), np.asarray(y)), (jax.tree_util.keystr(path), np.max(np.abs(x - y)))


@pytest.fixture(scope="module")
def finetune_runs():
    """One small finetune sweep, 10 replicates in chunks of 2 (5 chunks): on one device (the
    default path), and per device on 1, 2, 4 and all devices (4: a step of 4 chunks, then one
    of 1 chunk)."""
    tune, shared = _finetune_fn()
    reps = K.replicate_indices(10)
    runs = {"default": sweep.run(tune, reps, shared, chunk_width=2)}
    for name, devices in LAYOUTS.items():
        runs[name] = sweep.run(tune, reps, shared, chunk_width=2, devices=devices())
    return runs


@pytest.mark.xdist_group("sharded_finetune")
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_finetune_per_device_equals_one_device_bitwise(finetune_runs, layout):
    _assert_bitwise(finetune_runs[layout], finetune_runs["default"])


@pytest.mark.xdist_group("sharded_finetune")
def test_finetune_replicates_really_differ(finetune_runs):
    w = finetune_runs["default"]["params"]["head"]["Dense_0"]["kernel"]
    assert w.shape[0] == 10 and len({w[i].tobytes() for i in range(10)}) == 10  # no padding copies leaked


@pytest.mark.parametrize("engine", sweep.ENGINES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("r, width", [(10, 2), (7, 3), (4, 4)])  # 5 chunks; 3 chunks, last padded; 1 chunk
def test_toy_sharded_equals_one_device_bitwise(engine, layout, r, width):
    reps = {"init": np.arange(r, dtype=np.int32)}
    ref = sweep.run(_toy, reps, (X, Y), chunk_width=width)
    out = sweep.run(_toy, reps, (X, Y), chunk_width=width, devices=LAYOUTS[layout](), engine=engine)
    assert out["init"].tolist() == list(range(r))  # order kept, padding dropped
    _assert_bitwise(out, ref)


@pytest.mark.parametrize("engine", sweep.ENGINES)
def test_padding_to_devices_times_width_equals_unpadded_run(engine):
    """10 replicates over 4 devices x 2 = 8 per step: the second step is 1 chunk (+ 3 filler
    chunks under shard_map); replicates 0..7 equal a run of exactly 8 (one full step, no
    padding at all), and replicate 9 a run of replicate 9 alone."""
    run = lambda r: sweep.run(_toy, {"init": np.asarray(r, np.int32)}, (X, Y), chunk_width=2, devices=4,  # noqa: E731
                              engine=engine)
    full, exact, alone = run(np.arange(10)), run(np.arange(8)), run([9])
    assert full["w"].shape == (10, 16)
    _assert_bitwise(jax.tree_util.tree_map(lambda a: a[:8], full), exact)
    _assert_bitwise(jax.tree_util.tree_map(lambda a: a[9:], full), alone)


class DictStore:
    def __init__(self, chunks=None):
        self.chunks, self.saved, self.loaded = dict(chunks or {}), [], []

    def load(self, i):
        out = self.chunks.get(i)
        if out is not None:
            self.loaded.append(i)
        return out

    def save(self, i, out):
        self.saved.append(i)
        self.chunks[i] = jax.tree_util.tree_map(np.copy, out)


@pytest.mark.parametrize("engine", sweep.ENGINES)
def test_store_chunks_do_not_depend_on_devices(engine):
    """Chunk i is replicates [i*C, (i+1)*C) whatever the device count: a store filled on 4
    devices holds what one device computes, filler chunks are never saved, and a run on 2
    devices resumes from it (loads what is there, computes only the rest)."""
    reps = {"init": np.arange(10, dtype=np.int32)}
    ref = sweep.run(_toy, reps, (X, Y), chunk_width=2)
    store = DictStore()
    seen = []
    out = sweep.run(_toy, reps, (X, Y), chunk_width=2, devices=4, store=store, engine=engine,
                    on_chunk=lambda i, n: seen.append((i, n)))
    _assert_bitwise(out, ref)
    assert sorted(store.saved) == [0, 1, 2, 3, 4] and seen == [(i, 5) for i in range(5)]
    for i in range(5):
        _assert_bitwise(store.chunks[i], jax.tree_util.tree_map(lambda a: a[2 * i : 2 * i + 2], ref))

    marked = jax.tree_util.tree_map(lambda a: np.full_like(a, 7), store.chunks[0])
    resumed = DictStore({0: marked, 2: store.chunks[2], 4: store.chunks[4]})
    out = sweep.run(_toy, reps, (X, Y), chunk_width=2, devices=2, store=resumed, engine=engine)
    assert sorted(resumed.loaded) == [0, 2, 4] and sorted(resumed.saved) == [1, 3]
    assert np.all(out["w"][:2] == 7)  # chunk 0 came from the store, not recomputed
    _assert_bitwise(jax.tree_util.tree_map(lambda a: a[2:], out), jax.tree_util.tree_map(lambda a: a[2:], ref))


@pytest.mark.parametrize("engine", sweep.ENGINES)
def test_one_trace_per_function(engine):
    chex.clear_trace_counter()
    traced = chex.assert_max_traces(_toy, n=1)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ("seeds",))  # any 1-D mesh, any axis name
    for r in (3, 9):  # different replicate counts and step counts, one program
        sweep.run(traced, {"init": np.arange(r, dtype=np.int32)}, (X, Y), chunk_width=2, devices=mesh, engine=engine)


@pytest.mark.parametrize("bad, match", [
    (5, r"devices=5 is not allowed: 0 \(all 4 devices\) or 1..4"),
    (-1, "devices=-1 is not allowed"),
    ("all", "devices='all' is not allowed"),
    (True, "devices=True is not allowed"),
])
def test_bad_devices(bad, match):
    with pytest.raises(ValueError, match=match):
        sweep.run(_toy, {"init": np.arange(2, dtype=np.int32)}, (X, Y), chunk_width=2, devices=bad)


def test_bad_engine():
    with pytest.raises(ValueError, match=r"engine='pmap' is not allowed: one of \('per_device', 'shard_map'\)"):
        sweep.run(_toy, {"init": np.arange(2, dtype=np.int32)}, (X, Y), chunk_width=2, devices=2, engine="pmap")


def test_two_dimensional_mesh_is_refused():
    mesh = jax.make_mesh((2, 2), ("a", "b"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    with pytest.raises(ValueError, match="1-D mesh"):
        sweep.make_mesh(mesh)


def test_make_mesh_and_describe():
    assert sweep.make_mesh(None) is None and sweep.make_mesh(1) is None  # the default device
    assert sweep.make_mesh(0).devices.size == len(jax.devices()) == 4
    assert list(sweep.make_mesh(3).devices.flat) == jax.devices()[:3]
    assert sweep.describe(1) == {"devices": 1, "processes": 1, "axis": None, "device_kind": "cpu",
                                 "engine": "one_device"}
    assert sweep.describe(0) == {"devices": 4, "processes": 1, "axis": "replicate", "device_kind": "cpu",
                                 "engine": "per_device"}
    assert sweep.describe(2, "shard_map")["engine"] == "shard_map"


# --- the config field -----------------------------------------------------------------------------


def _old_sweep(fn, per_replicate, shared, chunk_width):
    """The single-device sweep as it was before sharding (commit 3fb9468): the reference bits."""
    padded, n = sweep.pad_to_chunks(per_replicate, chunk_width)
    step = jax.jit(jax.vmap(fn, in_axes=(0, None)))
    r = sweep.num_replicates(per_replicate)
    outs = [jax.device_get(step(jax.tree_util.tree_map(lambda a: a[c * chunk_width:(c + 1) * chunk_width], padded),
                                shared)) for c in range(n)]
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs)[:r], *outs)


def test_default_config_keeps_single_device_bits():
    cfg = config_lib.validate(config_lib.base_config())
    assert cfg.devices == 1 and sweep.make_mesh(cfg.devices) is None
    reps = {"init": np.arange(7, dtype=np.int32)}
    _assert_bitwise(sweep.run(_toy, reps, (X, Y), chunk_width=3, devices=cfg.devices),
                    _old_sweep(_toy, reps, (X, Y), 3))


@pytest.mark.parametrize("bad", [-1, True])  # (ConfigDict's typing already refuses 1.5 or "all")
def test_config_devices_validation(bad):
    cfg = config_lib.base_config()
    cfg.devices = bad
    with pytest.raises(ValueError, match=r"config\.devices=.* is not allowed: an integer >= 0 \(0 = all devices"):
        config_lib.validate(cfg)


def test_config_devices_accepts_all_and_n():
    for n in (0, 2):
        cfg = config_lib.base_config()
        cfg.devices = n
        assert config_lib.validate(cfg).devices == n


def test_use_devices_sets_the_default_of_a_block():
    reps = {"init": np.arange(6, dtype=np.int32)}
    ref = sweep.run(_toy, reps, (X, Y), chunk_width=2)
    calls = []
    real = sweep.make_mesh

    def spy(devices=None):
        calls.append(devices)
        return real(devices)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep, "make_mesh", spy)
        with sweep.use_devices(4):
            _assert_bitwise(sweep.run(_toy, reps, (X, Y), chunk_width=2), ref)
            sweep.run(_toy, reps, (X, Y), chunk_width=2, devices=1)  # explicit wins
        sweep.run(_toy, reps, (X, Y), chunk_width=2)  # outside: one device again
    assert calls[1:] == [4, 1, None]  # calls[0]: use_devices' own check
    with pytest.raises(ValueError, match="devices=9 is not allowed"):
        with sweep.use_devices(9):
            pass
