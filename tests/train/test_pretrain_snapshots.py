"""Pretraining snapshots: kept from the one scanned run without changing its bits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxeval import config as config_lib
from jaxeval import keys as K
from jaxeval import models
from jaxeval.train import make_pretrain
from jaxeval.train.pretrain import check_snapshot_epochs

EPOCHS = 4


@pytest.fixture(scope="module")
def setup():
    cfg = config_lib.base_config()
    cfg.model.hidden = (32,)
    cfg.model.recon_hidden = 32
    cfg.pretrain.epochs = EPOCHS
    cfg.pretrain.batch_size = 32
    x = jnp.asarray(np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32))  # 3 steps per epoch
    model = models.build(cfg.model, (16,), 4)
    idx = K.replicate_indices(2, streams=K.PRETRAIN_STREAMS)
    keys = K.replicate_keys(K.root_key(0), idx)

    def run(snapshot_epochs=(), pretrain_cfg=cfg.pretrain):
        pre = make_pretrain(model, pretrain_cfg, x.shape[0], snapshot_epochs=snapshot_epochs)
        # jit(vmap) over two pretraining seeds, as the sweeps run it.
        return jax.device_get(jax.jit(jax.vmap(lambda k: pre(x, keys=k)))(keys))

    return cfg, run


def test_snapshots_leave_the_final_bits_unchanged(setup):
    _, run = setup
    plain_params, plain = run()
    params, metrics = run((1, 2, 3, EPOCHS))
    assert "snapshots" not in plain
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, plain_params)  # bitwise
    np.testing.assert_array_equal(metrics["loss"], plain["loss"])
    snaps = metrics["snapshots"]
    assert snaps["encoder"]["Dense_0"]["kernel"].shape == (2, 4, 16, 32)  # [seeds, K, ...]
    # The last snapshot is the final state; earlier ones are the states on the way, all distinct.
    jax.tree_util.tree_map(lambda s, p: np.testing.assert_array_equal(s[:, -1], p), snaps, params)
    k = snaps["encoder"]["Dense_0"]["kernel"]
    for a in range(4):
        for b in range(a + 1, 4):
            assert not np.array_equal(k[:, a], k[:, b])


def test_snapshot_is_not_a_shorter_run_under_cosine(setup):
    """Under the cosine schedule (which spans all epochs) the state after e of E epochs is not an
    e-epoch run; with a constant learning rate the two are the same computation."""
    cfg, run = setup
    _, metrics = run((1, 2, 3, EPOCHS))
    short = cfg.pretrain.copy_and_resolve_references()
    short.epochs = 2
    short_params, short_metrics = run((), short)
    k_snap = metrics["snapshots"]["encoder"]["Dense_0"]["kernel"][:, 1]
    assert np.abs(k_snap - short_params["encoder"]["Dense_0"]["kernel"]).max() > 1e-3
    assert not np.array_equal(metrics["loss"][:, :2], short_metrics["loss"])
    const = cfg.pretrain.copy_and_resolve_references()
    const.schedule = "constant"
    _, cm = run((2,), const)
    const_short = const.copy_and_resolve_references()
    const_short.epochs = 2
    cs_params, _ = run((), const_short)
    np.testing.assert_allclose(cm["snapshots"]["encoder"]["Dense_0"]["kernel"][:, 0],
                               cs_params["encoder"]["Dense_0"]["kernel"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [(0,), (EPOCHS + 1,), (2, 1), (1, 1), (1.5,), (True,)])
def test_bad_snapshot_epochs(bad):
    with pytest.raises(ValueError, match=r"snapshot_epochs=.*distinct increasing integers in \[1, 4\]"):
        check_snapshot_epochs(bad, EPOCHS)
