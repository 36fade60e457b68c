"""Supervised finetuning (full or linear probe) and evaluation, as pure jittable functions."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import optax

from jaxeval import metrics as metrics_lib
from jaxeval import models
from jaxeval.keys import step_key
from jaxeval.train.loop import guarded_scan_epochs, scan_epochs, steps_per_epoch
from jaxeval.train.optim import make_optimizer

MODES = ("full", "probe")


def tree_checksum(tree) -> jax.Array:
    """A uint32 digest of a pytree's bits (position-weighted sum of the words), cheap inside jit."""
    total = jnp.uint32(0)
    for i, leaf in enumerate(jax.tree_util.tree_leaves(tree)):
        words = jax.lax.bitcast_convert_type(leaf.astype(jnp.float32), jnp.uint32).reshape(-1)
        weights = jnp.arange(1, words.shape[0] + 1, dtype=jnp.uint32) * jnp.uint32(2654435761)
        total = total * jnp.uint32(1000003) + jnp.sum(words * weights) + jnp.uint32(i)
    return total


def make_finetune(model: models.Model, cfg, num_examples: int, *, mode: str = "full", guard: bool = True):
    """Returns ``finetune(encoder, x[N, ...], y[N], *, keys) -> (params, metrics)``.

    * ``encoder``: pretrained encoder params, or ``None`` to train from scratch (then the
      encoder is initialised from ``fold_in(keys["init"], 0)``).
    * ``keys``: ``init`` (head init: ``fold_in(init, 1)``), ``data`` (batch order), ``dropout``.
    * ``mode="full"`` trains everything; ``"probe"`` freezes the encoder (eval mode, no dropout,
      no gradient) and trains the classifier head only.

    ``metrics``: ``loss[epochs]`` (mean train cross-entropy per epoch; NaN from the epoch a run
    diverged in), ``order_checksum`` and ``init_checksum`` (uint32 digests of the batch order used
    and of the initial parameters, for reproducibility tests; the order digest covers the whole
    run, diverged or not), ``diverged_step`` (int32: the first step with a non-finite loss or
    parameter, ``-1`` if none; a non-finite Adam moment shows in the parameters one step later).

    ``guard`` (default on): the divergence guard of ``guarded_scan_epochs`` on the parameters
    and the loss -- a diverging run returns its last finite parameters (its updates stop
    there). It is a select beside the arithmetic: a run that does not diverge has the same bits
    either way. ``guard=False`` omits it (and ``diverged_step``), for tests.
    """
    if mode not in MODES:
        raise ValueError(f"finetune mode={mode!r} is not known; choose one of {MODES}")
    probe = mode == "probe"
    spe = steps_per_epoch(num_examples, cfg.batch_size)
    tx = make_optimizer(cfg, total_steps=spe * cfg.epochs, freeze_encoder=probe)

    def finetune(encoder, x: jax.Array, y: jax.Array, *, keys: Mapping[str, jax.Array]):
        if encoder is None:
            encoder = models.init_encoder(model, key=jax.random.fold_in(keys["init"], 0))
        params = {"encoder": encoder, "head": models.init_head(model, "classifier", key=jax.random.fold_in(keys["init"], 1))}
        init_sum = tree_checksum(params)

        def loss_fn(params, xb, yb, step):
            if probe:
                h = model.encoder.apply({"params": jax.lax.stop_gradient(params["encoder"])}, xb, train=False)
                logits = model.classifier.apply(
                    {"params": params["head"]}, h, train=True,
                    rngs={"dropout": jax.random.fold_in(step_key(keys["dropout"], step), 1)},
                )
            else:
                logits = models.apply(model, "classifier", params, xb, train=True, key=step_key(keys["dropout"], step))
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, yb))

        def step_fn(carry, idx, step):
            params, opt_state, checksum = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx], step)
            updates, opt_state = tx.update(grads, opt_state, params)
            weights = jnp.arange(1, idx.shape[0] + 1, dtype=jnp.uint32) + step.astype(jnp.uint32) * 7919
            checksum = checksum * jnp.uint32(1000003) + jnp.sum(idx.astype(jnp.uint32) * weights)
            return (optax.apply_updates(params, updates), opt_state, checksum), loss

        carry = (params, tx.init(params), jnp.uint32(0))
        loop_args = dict(data_key=keys["data"], num_examples=num_examples, batch_size=cfg.batch_size, epochs=cfg.epochs)
        if guard:
            (_, _, checksum), losses, diverged, params = guarded_scan_epochs(
                step_fn, carry, watch=lambda c: c[0], **loop_args)
        else:
            (params, _, checksum), losses = scan_epochs(step_fn, carry, **loop_args)
        metrics = {"loss": jnp.mean(losses, axis=1), "order_checksum": checksum, "init_checksum": init_sum}
        if guard:
            metrics["diverged_step"] = diverged
        return params, metrics

    return finetune


def evaluate(model: models.Model, params, x: jax.Array, y: jax.Array, *, batch_size: int = 1024, ece_bins: int = 15):
    """Per-example ``Predictions`` ``[M]`` and summary metrics of ``params`` on ``(x[M, ...], y[M])``.

    Runs in eval mode (no dropout), in batches of ``batch_size`` (the last one padded and trimmed).
    """
    m = x.shape[0]
    bs = min(batch_size, m)
    nb = -(-m // bs)
    pad = nb * bs - m
    xp = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    logits = jax.lax.map(
        lambda xb: models.apply(model, "classifier", params, xb, train=False), xp.reshape(nb, bs, *x.shape[1:])
    ).reshape(nb * bs, -1)[:m]
    preds = metrics_lib.predictions(logits, y)
    return preds, metrics_lib.classification_metrics(preds, y, model.num_classes, ece_bins)
