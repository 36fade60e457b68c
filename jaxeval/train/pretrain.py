"""Self-supervised pretraining: a masked (denoising) autoencoder on unlabeled inputs.

Each step zeroes a random ``mask_rate`` fraction of every input's features (``pretrain_mask``
stream, folded in per step) and regresses the clean input from the corrupted one (mean squared
error over all features). Only the encoder is kept for finetuning.

``snapshot_epochs`` keeps the parameters after chosen epochs of the *same* scanned run
(pretraining checkpoints, e.g. at 25/50/75/100% of the steps) without changing the bits of the
final parameters or losses (tested). A snapshot after ``e`` of ``E`` epochs is the state of an
``E``-epoch run: its learning-rate schedule (cosine over all ``E`` epochs) is not that of an
``e``-epoch run, so the two differ.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxeval import models
from jaxeval.keys import step_key
from jaxeval.train.loop import guarded_scan_epochs, steps_per_epoch
from jaxeval.train.optim import make_optimizer


def check_snapshot_epochs(snapshot_epochs, epochs: int) -> tuple[int, ...]:
    """``snapshot_epochs`` as a tuple of distinct increasing integers in ``[1, epochs]``; raises."""
    snaps = tuple(snapshot_epochs)
    ok = all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in snaps)
    if not ok or list(snaps) != sorted(set(snaps)) or (snaps and not 1 <= snaps[0] <= snaps[-1] <= epochs):
        raise ValueError(
            f"snapshot_epochs={snapshot_epochs!r} is not allowed: distinct increasing integers in [1, {epochs}] "
            "(the epochs after which the parameters are kept)"
        )
    return tuple(int(e) for e in snaps)


def make_pretrain(model: models.Model, cfg, num_examples: int, *, snapshot_epochs=()):
    """Returns ``pretrain(x[N, ...], *, keys) -> (params, metrics)``, a pure jittable function.

    ``keys`` maps ``pretrain_init``, ``pretrain_data``, ``pretrain_dropout``, ``pretrain_mask`` to
    keys of one pretraining replicate. ``params = {"encoder", "head"}`` (reconstruction head);
    ``metrics["loss"]`` is the per-epoch mean reconstruction loss ``[epochs]``;
    ``metrics["diverged_step"]`` the first step whose loss or parameters were not finite (``-1``:
    none; the returned parameters are then the last finite ones). With
    ``snapshot_epochs = (e_1, ..., e_K)`` (in ``[1, epochs]``), ``metrics["snapshots"]`` holds the
    params after each ``e_k`` epochs, stacked ``[K, ...]`` (see the module docstring).
    """
    spe = steps_per_epoch(num_examples, cfg.batch_size)
    tx = make_optimizer(cfg, total_steps=spe * cfg.epochs)
    snaps = check_snapshot_epochs(snapshot_epochs, cfg.epochs)
    slot_of = np.full(cfg.epochs + 1, -1, np.int32)  # epochs done -> snapshot slot (-1: none)
    slot_of[list(snaps)] = np.arange(len(snaps), dtype=np.int32)

    def pretrain(x: jax.Array, *, keys: Mapping[str, jax.Array]):
        init_key = keys["pretrain_init"]
        params = {
            "encoder": models.init_encoder(model, key=jax.random.fold_in(init_key, 0)),
            "head": models.init_head(model, "reconstructor", key=jax.random.fold_in(init_key, 1)),
        }

        def loss_fn(params, batch, step):
            keep = jax.random.bernoulli(step_key(keys["pretrain_mask"], step), 1.0 - cfg.mask_rate, batch.shape)
            recon = models.apply(
                model, "reconstructor", params, jnp.where(keep, batch, 0.0), train=True,
                key=step_key(keys["pretrain_dropout"], step),
            )
            return jnp.mean(jnp.square(recon - batch))

        def step_fn(carry, idx, step):
            params, opt_state = carry[:2]
            loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], step)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            if not snaps:
                return (params, opt_state), loss
            # After the last step of epoch e: write the params into e's slot (if it has one).
            slot = jnp.asarray(slot_of)[(step + 1) // spe]
            write = ((step + 1) % spe == 0) & (slot >= 0)
            k = jnp.maximum(slot, 0)
            buf = jax.tree_util.tree_map(
                lambda b, p: jax.lax.dynamic_update_index_in_dim(b, jnp.where(write, p, b[k]), k, 0), carry[2], params
            )
            return (params, opt_state, buf), loss

        carry = (params, tx.init(params))
        if snaps:
            carry += (jax.tree_util.tree_map(lambda p: jnp.zeros((len(snaps), *p.shape), p.dtype), params),)
        # The divergence guard: a run whose loss or parameters stop being finite keeps its last
        # finite parameters and reports the step (-1 if none); it changes no bits otherwise.
        carry, losses, diverged, params = guarded_scan_epochs(
            step_fn, carry, watch=lambda c: c[0], data_key=keys["pretrain_data"],
            num_examples=num_examples, batch_size=cfg.batch_size, epochs=cfg.epochs,
        )
        metrics = {"loss": jnp.mean(losses, axis=1), "diverged_step": diverged}
        if snaps:
            metrics["snapshots"] = carry[2]
        return params, metrics

    return pretrain
