"""The divergence guard: a replicate whose loss or state turns NaN/inf stops and is reported with
its step; the other replicates keep their bits; a run that never diverges keeps its bits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxeval import config as config_lib
from jaxeval import keys as K
from jaxeval import models
from jaxeval.studies import base
from jaxeval.train import make_finetune
from jaxeval.train.loop import guarded_scan_epochs, scan_epochs

N, BS, EPOCHS = 32, 8, 3  # 4 steps per epoch, 12 steps


def _toy(lr, x0, *, guard=True):
    """Gradient descent on f(w) = w^2 (per-replicate learning rate): w_{t+1} = (1 - 2 lr) w_t."""
    def step_fn(carry, idx, step):
        w, n = carry
        loss = jnp.sum(w * w) + 0.0 * jnp.sum(idx)
        return (w - lr * 2.0 * w, n + 1), loss

    scan = guarded_scan_epochs if guard else scan_epochs
    return scan(step_fn, (x0, jnp.int32(0)), data_key=K.stream(K.root_key(0), "data", 0), num_examples=N,
                batch_size=BS, epochs=EPOCHS)


def test_huge_learning_rate_stops_that_replicate_at_the_closed_form_step():
    """|1 - 2 lr| = 2e20 per step: w = 1 -> -2e20 (finite) -> 4e40 (inf in float32) at step 1."""
    lrs = jnp.array([0.1, 1e20, 0.2, 0.05], jnp.float32)
    x0 = jnp.ones((4, 3), jnp.float32)
    carry, losses, diverged, last = jax.jit(jax.vmap(_toy))(lrs, x0)
    assert diverged.tolist() == [-1, 1, -1, -1]
    w, n = last
    # the diverged replicate keeps its last finite state: after step 0, w = 1 - 2e20, 1 update counted
    assert np.all(np.asarray(w[1]) == np.float32(1 - 2 * 1e20)) and int(n[1]) == 1
    assert not np.all(np.isfinite(np.asarray(carry[0][1])))  # while the loop itself ran on (unguarded carry)
    assert all(np.array_equal(a[i], b[i]) for a, b in zip(carry, last) for i in (0, 2, 3))
    assert int(n[0]) == EPOCHS * (N // BS)
    assert losses.shape == (4, EPOCHS, N // BS)
    flat = np.asarray(losses[1]).reshape(-1)
    assert flat[0] == 3.0 and np.all(np.isnan(flat[1:]))  # NaN from the rejected step on
    # closed form for a healthy replicate: w_T = (1 - 2 lr)^T
    np.testing.assert_allclose(np.asarray(w[0]), (1 - 2 * 0.1) ** 12, rtol=1e-5)
    # the others are bitwise what they are with a healthy replicate in that lane
    ok_lrs = lrs.at[1].set(0.3)
    _, losses2, diverged2, last2 = jax.jit(jax.vmap(_toy))(ok_lrs, x0)
    assert diverged2.tolist() == [-1, -1, -1, -1]
    for i in (0, 2, 3):
        assert np.array_equal(last[0][i], last2[0][i]) and np.array_equal(losses[i], losses2[i])


def test_injected_nan_in_the_state_is_caught_at_its_step():
    """A NaN that appears in the carry (not in the loss) at step 5 is caught at step 5."""
    def step_fn(carry, idx, step):
        w = carry * 0.5 + jnp.where(step == 5, jnp.nan, 0.0)
        return w, jnp.float32(1.0)

    _, _, diverged, last = guarded_scan_epochs(step_fn, jnp.ones(2), data_key=K.stream(K.root_key(0), "data", 0),
                                               num_examples=N, batch_size=BS, epochs=EPOCHS)
    assert int(diverged) == 5
    assert np.all(np.asarray(last) == 0.5 ** 5)


@pytest.fixture(scope="module")
def setup():
    cfg = config_lib.base_config()
    cfg.model.hidden = (32,)
    cfg.finetune.epochs = 2
    cfg.pretrain.enabled = False
    cfg.chunk_width = 4
    cfg = config_lib.validate(cfg)
    ds = base.load_task(cfg)
    model = models.build(cfg.model, ds.feature_shape, ds.num_classes)
    return cfg, model, base.task_arrays(ds)


def test_guard_leaves_the_bits_of_a_finite_run_alone(setup):
    """guard=True (the default) vs guard=False: identical parameters and losses (a select, no
    change of arithmetic: feeding the select back into the carry was measured to change them)."""
    cfg, model, task = setup
    x, y = task["x_train"], task["y_train"]
    keys = jax.vmap(lambda i: K.replicate_keys(K.root_key(0), {"init": i, "data": i, "dropout": i}))(jnp.arange(4))
    outs = []
    for guard in (True, False):
        ft = make_finetune(model, cfg.finetune, x.shape[0], guard=guard)
        outs.append(jax.jit(jax.vmap(lambda k: ft(None, x, y, keys=k)))(keys))
    (p1, m1), (p0, m0) = outs
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p0)))
    assert np.array_equal(m1["loss"], m0["loss"]) and np.array_equal(m1["order_checksum"], m0["order_checksum"])
    assert m1["diverged_step"].tolist() == [-1] * 4 and "diverged_step" not in m0


def test_watch_selects_what_is_checked_and_kept():
    """Watching part of the carry: a NaN elsewhere is not a divergence; the watched part is kept."""
    def step_fn(carry, idx, step):
        w, other = carry
        return (w * 0.5, other + jnp.where(step == 2, jnp.nan, 1.0)), jnp.float32(0.0)

    kw = dict(data_key=K.stream(K.root_key(0), "data", 0), num_examples=N, batch_size=BS, epochs=1)
    carry, _, diverged, last = guarded_scan_epochs(step_fn, (jnp.ones(()), jnp.zeros(())), watch=lambda c: c[0], **kw)
    assert int(diverged) == -1 and float(last) == 0.5 ** 4 and np.isnan(carry[1])
    _, _, diverged, last = guarded_scan_epochs(step_fn, (jnp.ones(()), jnp.zeros(())), **kw)
    assert int(diverged) == 2 and float(last[0]) == 0.25 and float(last[1]) == 2.0


def _encoders(model, bad: bool):
    e = models.init_encoder(model, key=K.stream(K.root_key(0), "pretrain_init", 0))
    e1 = jax.tree_util.tree_map(lambda a: a * 1.01, e)
    if bad:  # an injected NaN in one weight of pretrained model 1
        leaf0 = jax.tree_util.tree_leaves(e1)[0]
        e1 = jax.tree_util.tree_map(lambda a: a.at[(0,) * a.ndim].set(jnp.nan) if a is leaf0 else a, e1)
    return jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), e, e1)


def test_poisoned_replicate_is_reported_others_bitwise_unchanged(setup):
    cfg, model, task = setup
    des = {"pretrain": np.array([0, 1, 0, 0, 1], np.int32), "init": np.arange(5, dtype=np.int32),
           "data": np.arange(5, dtype=np.int32), "dropout": np.arange(5, dtype=np.int32)}
    bad = base.finetune_sweep(cfg, model, task, _encoders(model, True), K.root_key(0), "full", des)
    good = base.finetune_sweep(cfg, model, task, _encoders(model, False), K.root_key(0), "full", des)
    assert bad["train"]["diverged_step"].tolist() == [-1, 0, -1, -1, 0]
    assert good["train"]["diverged_step"].tolist() == [-1] * 5
    for r in (0, 2, 3):  # same chunk (0-3) and the next chunk (4) hold poisoned lanes
        for part in ("params", "metrics", "predictions", "train"):
            a, b = (jax.tree_util.tree_map(lambda t: t[r], o[part]) for o in (bad, good))
            assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    assert np.all(np.isnan(bad["train"]["loss"][1]))
    listed = base.diverged_list(bad["train"], des)
    assert listed == [{"replicate": 1, "step": 0, "pretrain": 1, "init": 1, "data": 1, "dropout": 1},
                      {"replicate": 4, "step": 0, "pretrain": 1, "init": 4, "data": 4, "dropout": 4}]
    s = base.kept_summary(bad["metrics"]["accuracy"], ~base.diverged_mask(bad["train"]))
    assert s["n"] == 3 and s["excluded"] == [1, 4]
    assert s["mean"] == pytest.approx(float(np.mean(good["metrics"]["accuracy"][[0, 2, 3]])))
