"""What every study shares: the task, the pretraining and finetuning sweeps, provenance, workdir.

A study is ``compute(cfg, log) -> Output`` (pure up to logging) wrapped by ``run_in_workdir``,
which validates nothing itself but owns the files: ``config.json`` first, ``manifest.json`` with
status ``running``, the study's files (each atomic), then ``complete`` -- or ``failed`` with the
reason, never a half-written study that looks complete.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from jaxeval import config as config_lib
from jaxeval import data as data_lib
from jaxeval import keys as keys_lib
from jaxeval import provenance, results, sweep
from jaxeval.train import evaluate, make_finetune, make_pretrain


@dataclasses.dataclass
class Output:
    """A computed study: ``files`` maps file names to writers ``(path) -> None``."""

    summary: dict
    manifest: dict
    files: dict[str, Callable[[Path], None]]
    extra: dict = dataclasses.field(default_factory=dict)


def load_task(cfg) -> data_lib.Dataset:
    """The config's dataset (with the generated size, if any), label map and train subset."""
    generated = {}
    if cfg.dataset.name in data_lib.GENERATED:
        generated = {k: v for k, v in (("num_train", cfg.dataset.num_train), ("num_test", cfg.dataset.num_test)) if v}
        generated["seed"] = cfg.dataset.generator_seed
    ds = data_lib.load(cfg.dataset.name, data_dir=cfg.dataset.data_dir or None, offline=cfg.dataset.offline,
                       **generated)
    if cfg.dataset.task != "identity":
        ds = data_lib.derive_task(ds, cfg.dataset.task)
    if cfg.dataset.train_size:
        if cfg.dataset.train_size > ds.num_train:
            raise ValueError(f"config.dataset.train_size={cfg.dataset.train_size} is larger than the training set "
                             f"of {cfg.dataset.name!r} ({ds.num_train} examples)")
        ds = data_lib.subset(ds, cfg.dataset.train_size, key=keys_lib.stream(keys_lib.root_key(cfg.seed), "split", 0))
    return ds


def check_batch_sizes(cfg, num_train: int) -> None:
    groups = ("pretrain", "finetune") if cfg.pretrain.enabled else ("finetune",)
    for group in groups:
        bs = cfg[group].batch_size
        if bs > num_train:
            raise ValueError(
                f"config.{group}.batch_size={bs} is larger than the training set of {cfg.dataset.name!r} "
                f"({num_train} examples); it must be <= {num_train}"
            )


def task_arrays(ds: data_lib.Dataset) -> dict[str, jax.Array]:
    return {"x_train": jnp.asarray(ds.x_train), "y_train": jnp.asarray(ds.y_train),
            "x_test": jnp.asarray(ds.x_test), "y_test": jnp.asarray(ds.y_test)}


def pretrain_sweep(cfg, model, x_train, root, num_seeds: int | None = None, *, on_chunk=None) -> dict:
    """Pretrains models 0..P-1 (one vmapped sweep); returns ``{"encoder": [P, ...], "loss": [P, epochs]}``."""
    pretrain = make_pretrain(model, cfg.pretrain, x_train.shape[0])
    indices = keys_lib.replicate_indices(num_seeds or cfg.pretrain.num_seeds, streams=keys_lib.PRETRAIN_STREAMS)

    def one(rep, x):
        params, metrics = pretrain(x, keys=keys_lib.replicate_keys(root, rep))
        return {"encoder": params["encoder"], "loss": metrics["loss"]}

    return sweep.run(one, indices, x_train, chunk_width=cfg.chunk_width, on_chunk=on_chunk)


def finetune_sweep(cfg, model, task, encoders, root, mode: str, des: dict, *, chunk_width: int | None = None,
                   on_chunk=None, eval_train: bool = False) -> dict:
    """Finetunes and evaluates every replicate of the design ``des`` (``{stream: int32[R]}`` with a
    ``pretrain`` column indexing ``encoders``) in ``mode``; outputs stacked ``[R, ...]``:
    ``params``, ``train`` (loss, checksums), ``predictions`` (per test example), ``metrics``.

    An optional ``des["train_index"]`` (``int32[R, n]``) trains replicate r on the training
    examples ``train_index[r]`` only (folds, bootstrap samples: one shape, so one program);
    ``eval_train=True`` adds ``train_predictions`` on the whole training split (held-out folds).
    """
    sub = "train_index" in des
    n = np.shape(des["train_index"])[1] if sub else task["x_train"].shape[0]
    finetune = make_finetune(model, cfg.finetune, n, mode=mode)

    def one(rep, shared):
        enc_stack, t = shared
        encoder = None if enc_stack is None else sweep.take(enc_stack, rep["pretrain"])
        rep_keys = keys_lib.replicate_keys(root, {k: rep[k] for k in keys_lib.FINETUNE_STREAMS})
        x, y = t["x_train"], t["y_train"]
        if sub:
            x, y = x[rep["train_index"]], y[rep["train_index"]]
        params, train = finetune(encoder, x, y, keys=rep_keys)
        preds, metrics = evaluate(model, params, t["x_test"], t["y_test"],
                                  batch_size=cfg.eval.batch_size, ece_bins=cfg.eval.ece_bins)
        out = {"params": params, "train": train, "predictions": preds._asdict(), "metrics": metrics}
        if eval_train:
            out["train_predictions"] = evaluate(model, params, t["x_train"], t["y_train"],
                                                batch_size=cfg.eval.batch_size, ece_bins=cfg.eval.ece_bins)[0]._asdict()
        return out

    return sweep.run(one, des, (encoders, task), chunk_width=chunk_width or cfg.chunk_width, on_chunk=on_chunk)


def t_summary(values, confidence: float = 0.95) -> dict:
    """Mean, std (ddof=1), Student-t CI of the mean over seeds, and the per-seed values."""
    v = np.asarray(values, np.float64)
    n = v.size
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if n > 1 else float("nan")
    if n > 1:
        half = float(scipy.stats.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n))
        ci = [mean - half, mean + half]
    else:
        ci = [float("nan"), float("nan")]
    return {"n": n, "mean": mean, "std": std, "ci": ci, "ci_level": confidence,
            "ci_method": "student_t_over_seeds", "values": v.tolist()}


def provenance_manifest(cfg, root, ds: data_lib.Dataset, design: dict, fingerprints: dict) -> dict:
    """The manifest fields of DESIGN §4 (without status)."""
    return {
        "versions": provenance.versions(),
        "runtime": provenance.runtime(),
        "git_commit": provenance.git_commit(),
        "prng": {"impl": keys_lib.PRNG_IMPL, "root_seed": cfg.seed, "root_key_data": keys_lib.key_fingerprint(root),
                 "stream_ids": keys_lib.STREAM_IDS},
        "design": {k: np.asarray(v).tolist() for k, v in design.items()},
        "dataset": {"name": ds.name, "version": ds.version, "fingerprint": ds.fingerprint, "info": ds.info},
        "fingerprints": fingerprints,
    }


def _check_workdir(workdir: Path, study: str, chash: str) -> None:
    manifest = workdir / "manifest.json"
    if not manifest.exists():
        return
    try:
        old = results.read_json(manifest)
    except ValueError as e:
        raise ValueError(f"{manifest} is not valid JSON ({e}); delete the workdir or use a new --workdir") from None
    if old.get("study") not in (None, study) or old.get("config_hash") not in (None, chash):
        raise ValueError(
            f"workdir {workdir} holds another study ({old.get('study')}, config hash {old.get('config_hash')}; "
            f"this one: {study}, {chash}); use a new --workdir or delete the old one"
        )


def run_in_workdir(study: str, config, compute: Callable[[Any, Callable], Output], *,
                   workdir: str | Path | None, log=print) -> Output:
    """Validates ``config``, runs ``compute(cfg, log)`` and writes its files with status tracking."""
    log = log or (lambda *a, **k: None)
    cfg = config_lib.validate(config, study)
    chash = config_lib.config_hash(cfg)
    t0 = time.perf_counter()
    manifest: dict[str, Any] = {"study": study, "config_hash": chash, "chunk_width": cfg.chunk_width, "seed": cfg.seed}
    workdir = Path(workdir) if workdir is not None else None
    if workdir is not None:
        _check_workdir(workdir, study, chash)
        workdir.mkdir(parents=True, exist_ok=True)
        results.write_json(workdir / "config.json", config_lib.to_dict(cfg))
        manifest = results.set_status(workdir, manifest, "running")
    try:
        out = compute(cfg, log)
        manifest = {**manifest, **out.manifest, "wall_seconds": round(time.perf_counter() - t0, 3)}
        if workdir is not None:
            for name, write in out.files.items():
                write(workdir / name)
            results.write_json(workdir / "summary.json", out.summary)
            manifest = results.set_status(workdir, manifest, "complete")
        out.manifest = manifest
        return out
    except BaseException as e:
        if workdir is not None:
            results.set_status(workdir, manifest, "failed", f"{type(e).__name__}: {e}")
        raise
