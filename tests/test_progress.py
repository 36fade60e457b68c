"""Progress bars: chunks and scan steps reach their totals, quiet when asked or not a TTY, an ETA
that ignores restored chunks, unordered callbacks under multi-device shard_map, and no bit changes."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from jaxeval import keys as K
from jaxeval import progress, sweep
from jaxeval.train.loop import guarded_scan_epochs

N, BS, EPOCHS = 64, 4, 5  # 16 steps per epoch, 80 steps: reported every step_interval(80) = 1 step


def _make_fn():
    """A fresh function object per call (so each sweep traces anew: with or without the callback)."""
    def fn(rep, shared):
        def step_fn(w, idx, step):
            g = jnp.sum(jnp.take(shared, idx)) * w
            return w - 0.01 * g + 1e-3 * jnp.sin(w * step), jnp.mean(w)

        _, loss, div, w = guarded_scan_epochs(step_fn, rep["w0"], data_key=K.stream(K.root_key(0), "data", rep["i"]),
                                           num_examples=N, batch_size=BS, epochs=EPOCHS)
        return {"w": w, "loss": loss, "div": div}
    return fn


def _reps(r=6):
    return {"i": np.arange(r, dtype=np.int32), "w0": np.linspace(0.5, 1.5, r * 3, dtype=np.float32).reshape(r, 3)}


def _shared():
    return jnp.linspace(-1.0, 1.0, N, dtype=jnp.float32)


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_bars_reach_totals_and_do_not_change_bits():
    quiet = sweep.run(_make_fn(), _reps(), _shared(), chunk_width=2)
    buf = io.StringIO()
    p = progress.Progress(force=True, stream=buf)
    steps_seen = []
    orig = progress.SweepBar.on_step

    def spy(self, step, total):
        steps_seen.append((int(step), total))
        orig(self, step, total)

    progress.SweepBar.on_step = spy
    try:
        with p.sweep("toy", 3) as bar:
            assert progress.steps_active()
            shown = sweep.run(_make_fn(), _reps(), _shared(), chunk_width=2, on_chunk=bar.on_chunk)
    finally:
        progress.SweepBar.on_step = orig
    assert not progress.steps_active()
    assert _equal(quiet, shown)
    assert bar.done == 3 and bar.position == 3
    total = EPOCHS * (N // BS)
    assert {t for _, t in steps_seen} == {total}
    assert sorted({s for s, _ in steps_seen}) == list(range(1, total + 1))  # every step, each of 3 chunks
    assert len(steps_seen) == 3 * total
    text = buf.getvalue()
    assert "toy" in text and "100%" in text and "chunk 3/3" in text


def test_callback_traced_only_while_a_bar_is_active():
    def jaxpr():
        def f(w):  # a new function per trace (jax caches traces per function object)
            return guarded_scan_epochs(lambda c, idx, s: (c * 0.5, c), w, data_key=K.stream(K.root_key(0), "data", 0),
                                       num_examples=N, batch_size=BS, epochs=1)
        return str(jax.make_jaxpr(f)(1.0))

    assert "callback" not in jaxpr()
    with progress.Progress(force=True, stream=io.StringIO()).sweep("x", 1):
        assert "callback" in jaxpr()
    with progress.Progress(force=True, stream=io.StringIO(), steps=False).sweep("x", 1):
        assert "callback" not in jaxpr()
    assert "callback" not in jaxpr()


def test_step_interval_bounds_the_number_of_callbacks():
    assert progress.step_interval(80) == 1
    assert progress.step_interval(1000) == 10
    assert progress.step_interval(1001) == 11  # ceil: at most STEP_UPDATES reports
    for total in (1, 99, 100, 101, 12345):
        assert -(-total // progress.step_interval(total)) <= progress.STEP_UPDATES


@pytest.mark.parametrize("kwargs,enabled", [
    ({"stream": io.StringIO()}, False),  # not a TTY
    ({"stream": io.StringIO(), "force": True}, True),
    ({"stream": io.StringIO(), "force": True, "quiet": True}, False),  # --quiet wins
])
def test_quiet_rules(kwargs, enabled):
    p = progress.Progress(**kwargs)
    assert p.enabled is enabled
    with p.sweep("x", 2) as bar:
        assert progress.steps_active() is enabled
        bar.on_chunk(0, 2)
        bar.on_chunk(1, 2)
    assert (p.stream.getvalue() != "") is enabled


class _FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_tty_is_shown_and_restored_chunks_do_not_count_as_speed():
    p = progress.Progress(stream=_FakeTTY())
    assert p.enabled
    with p.sweep("resumed", 4) as bar:
        bar.on_restored(0)
        bar.on_chunk(0, 4)
        bar.on_restored(1)
        bar.on_chunk(1, 4)
        assert bar._bar.initial == 2 and bar.position == 2  # ETA from the computed chunks only
        bar.on_step(5, 10)
        assert bar.position == 2.5
        bar.on_step(3, 10)  # late/duplicate callbacks never move the bar back
        assert bar.position == 2.5
    assert "2 restored" in p.stream.getvalue()


def test_unordered_callbacks_work_under_multi_device_shard_map():
    """Every device reports the same steps; the bar keeps the largest (no ordered-effect error)."""
    devices = jax.devices()[:4]
    if len(devices) < 2:
        pytest.skip("needs several (fake) devices")
    mesh = Mesh(np.array(devices), ("replicate",))
    fn = _make_fn()
    reps = _reps(2 * len(devices))
    ref = jax.jit(jax.vmap(_make_fn(), in_axes=(0, None)))(reps, _shared())
    with progress.Progress(force=True, stream=io.StringIO()).sweep("sharded", 1) as bar:
        f = jax.jit(jax.shard_map(jax.vmap(fn, in_axes=(0, None)), mesh=mesh, in_specs=(P("replicate"), P()),
                                  out_specs=P("replicate")))
        out = jax.device_get(f(reps, _shared()))
        jax.effects_barrier()
        assert bar.step == EPOCHS * (N // BS)
    assert _equal(out, ref)  # the same bits as one device without callbacks
    assert out["div"].tolist() == [-1] * len(reps["i"])
