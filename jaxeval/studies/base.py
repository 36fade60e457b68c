"""What every study shares: the task, the pretraining and finetuning sweeps, provenance, workdir.

A study is ``compute(cfg, log) -> Output`` (pure up to logging) wrapped by ``run_in_workdir``,
which validates nothing itself but owns the files: ``config.json`` first, ``manifest.json`` with
status ``running``, the study's files (each atomic), then ``complete`` -- or ``failed`` with the
reason, never a half-written study that looks complete.

While ``compute`` runs, every sweep of the study (``pretrain_sweep``, ``finetune_sweep``, or
``sweep.run(..., **hooks)`` inside ``with sweep_hooks(...) as hooks``) gets a checkpoint store
in ``workdir/checkpoints/<sweep name>`` and a progress bar from the run's context (no threading
by hand): running the same command on the same workdir resumes from the finished chunks, with
the same bits as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from jaxeval import checkpoint as checkpoint_lib
from jaxeval import config as config_lib
from jaxeval import data as data_lib
from jaxeval import keys as keys_lib
from jaxeval import progress as progress_lib
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


def pretrain_sweep(cfg, model, x_train, root, num_seeds: int | None = None, *, on_chunk=None,
                   name: str | None = None, store=None) -> dict:
    """Pretrains models 0..P-1 (one vmapped sweep); returns ``{"encoder": [P, ...], "loss": [P, epochs]}``
    (and ``diverged_step`` ``[P]`` when ``make_pretrain`` reports it).

    ``name``: the sweep's checkpoint folder (default ``pretrain``); ``store``: an explicit
    ``sweep.ChunkStore`` instead of the run's (see ``sweep_hooks``)."""
    pretrain = make_pretrain(model, cfg.pretrain, x_train.shape[0])
    indices = keys_lib.replicate_indices(num_seeds or cfg.pretrain.num_seeds, streams=keys_lib.PRETRAIN_STREAMS)

    def one(rep, x):
        params, metrics = pretrain(x, keys=keys_lib.replicate_keys(root, rep))
        out = {"encoder": params["encoder"], "loss": metrics["loss"]}
        if "diverged_step" in metrics:  # once make_pretrain runs the divergence guard
            out["diverged_step"] = metrics["diverged_step"]
        return out

    with sweep_hooks(name, kind="pretrain", cfg=cfg, per_replicate=indices, shared=x_train,
                     chunk_width=cfg.chunk_width, on_chunk=on_chunk, store=store) as hooks:
        return sweep.run(one, indices, x_train, chunk_width=cfg.chunk_width, **hooks)


def finetune_sweep(cfg, model, task, encoders, root, mode: str, des: dict, *, chunk_width: int | None = None,
                   on_chunk=None, eval_train: bool = False, name: str | None = None, store=None) -> dict:
    """Finetunes and evaluates every replicate of the design ``des`` (``{stream: int32[R]}`` with a
    ``pretrain`` column indexing ``encoders``) in ``mode``; outputs stacked ``[R, ...]``:
    ``params``, ``train`` (loss, checksums), ``predictions`` (per test example), ``metrics``.

    An optional ``des["train_index"]`` (``int32[R, n]``) trains replicate r on the training
    examples ``train_index[r]`` only (folds, bootstrap samples: one shape, so one program);
    ``eval_train=True`` adds ``train_predictions`` on the whole training split (held-out folds).
    ``train["diverged_step"]``: the first non-finite step of each replicate, -1 if none (see
    ``divergence``). ``name``: the sweep's checkpoint folder (default ``finetune_<mode>``, then
    ``_2``, ``_3``, ... in call order); ``store``: an explicit ``sweep.ChunkStore``.
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

    width = chunk_width or cfg.chunk_width
    with sweep_hooks(name, kind=f"finetune_{mode}", cfg=cfg, per_replicate=des, shared=(encoders, task),
                     chunk_width=width, extra={"mode": mode, "eval_train": eval_train},
                     on_chunk=on_chunk, store=store) as hooks:
        return sweep.run(one, des, (encoders, task), chunk_width=width, **hooks)


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


# --- divergence ----------------------------------------------------------------------------------

DIVERGENCE_RULE = (
    "a replicate whose training diverged (a non-finite training loss or parameter at some step: "
    "diverged_step >= 0; its updates stopped there), or whose pretrained model diverged, is excluded from "
    "every statistic; n counts the replicates kept"
)


def diverged_mask(train: Mapping) -> np.ndarray:
    """``bool[R]``: replicates whose training diverged (``train["diverged_step"] >= 0``; all False
    for outputs without the field)."""
    steps = train.get("diverged_step")
    if steps is None:
        r = sweep.num_replicates(train)
        return np.zeros(r, bool)
    return np.asarray(steps) >= 0


def diverged_list(train: Mapping, design: Mapping | None = None) -> list[dict]:
    """``[{"replicate": r, "step": s, <design factor>: index, ...}]`` for every diverged replicate."""
    out = []
    for r in np.flatnonzero(diverged_mask(train)):
        row = {"replicate": int(r), "step": int(np.asarray(train["diverged_step"])[r])}
        for k, v in (design or {}).items():
            if np.ndim(v) == 1:
                row[k] = int(np.asarray(v)[r])
        out.append(row)
    return out


def kept_summary(values, keep, confidence: float = 0.95) -> dict:
    """``t_summary`` over the kept replicates (``keep``: bool[R], e.g. ``~diverged_mask(train)``),
    plus ``excluded`` (replicate indices); ``n = 0`` gives NaN statistics instead of a warning."""
    v, keep = np.asarray(values, np.float64), np.asarray(keep, bool)
    if keep.any():
        s = t_summary(v[keep], confidence)
    else:
        s = {"n": 0, "mean": float("nan"), "std": float("nan"), "ci": [float("nan")] * 2, "ci_level": confidence,
             "ci_method": "student_t_over_seeds", "values": []}
    return {**s, "excluded": np.flatnonzero(~keep).tolist()}


def divergence(sweeps: Mapping[str, tuple[Mapping, Mapping | None]]) -> dict:
    """The summary's ``divergence`` entry, which the report's common section shows: ``{"rule",
    "sweeps": {label: [diverged replicates]}, "count"}`` from ``{label: (train outputs, design)}``
    (a study that excludes by another rule passes its own text as ``summary["divergence"]["rule"]``)."""
    listed = {label: diverged_list(train, des) for label, (train, des) in sweeps.items()}
    return {"rule": DIVERGENCE_RULE, "sweeps": listed, "count": sum(len(v) for v in listed.values())}


# --- the run: workdir, checkpoints, progress -----------------------------------------------------

@dataclasses.dataclass
class RunContext:
    """What ``run_in_workdir`` gives every sweep of the study it runs (see ``sweep_hooks``)."""

    study: str
    config_hash: str
    workdir: Path | None
    progress: progress_lib.Progress | None = None
    on_corrupt: str = "redo"
    identities: dict = dataclasses.field(default_factory=dict)  # sweep name -> identity hash
    sweeps: dict = dataclasses.field(default_factory=dict)  # sweep name -> chunk counts (manifest)

    def claim(self, name: str | None, kind: str, ident_hash: str | None) -> str:
        """The sweep's name: ``name``, or ``kind`` (``kind_2``, ... when taken) in call order; a
        name given twice must have the same identity hash (``None``: not checkpointed)."""
        if name is None:
            name, k = kind, 1
            while name in self.identities:
                k += 1
                name = f"{kind}_{k}"
        elif not name or not all(c.isalnum() or c in "_.-" for c in name) or name.startswith("."):
            raise ValueError(f"sweep name={name!r} is not allowed: letters, digits, '_', '.', '-' (a folder name)")
        elif self.identities.get(name, ident_hash) != ident_hash:
            raise ValueError(f"sweep name {name!r} is used twice in study {self.study!r} with different inputs; "
                             "give each sweep its own name")
        self.identities[name] = ident_hash
        return name


_RUN: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("jaxeval_run", default=None)


def current_run() -> RunContext | None:
    """The study run in progress (inside ``run_in_workdir``), else ``None``."""
    return _RUN.get()


# Modules that only present results (never change a bit): editing them keeps checkpoints valid.
_PRESENTATION = ("checkpoint.py", "progress.py", "report.py", "reporting.py", "results.py")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of jaxeval's source (every ``.py`` file but the presentation modules): chunks computed
    by other code are not reused, even under the same config."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel not in _PRESENTATION:
            h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _bits_environment() -> dict:
    """What a chunk's bits depend on besides its inputs (DESIGN §4): code, versions and device."""
    rt = provenance.runtime()
    return {"code": code_fingerprint(), "versions": provenance.versions(),
            **{k: rt.get(k) for k in ("backend", "device_kind", "xla_flags", "prng_impl", "threefry_partitionable",
                                     "enable_x64", "default_matmul_precision")}}


def sweep_identity(cfg, *, kind: str, per_replicate, shared, chunk_width: int, extra: Mapping | None = None) -> dict:
    """Everything a sweep's chunks depend on: the (sweep's) config, its inputs, chunk width, device."""
    try:
        chash = config_lib.config_hash(cfg)
    except AttributeError:  # a plain mapping
        chash = checkpoint_lib.identity_hash(cfg)
    return {"kind": kind, "sweep_config_hash": chash, "chunk_width": int(chunk_width),
            "num_replicates": sweep.num_replicates(per_replicate),
            "inputs": checkpoint_lib.fingerprint({"per_replicate": per_replicate, "shared": shared}),
            **dict(extra or {}), **_bits_environment()}


@contextlib.contextmanager
def sweep_hooks(name: str | None, *, kind: str, cfg, per_replicate, shared, chunk_width: int,
                extra: Mapping | None = None, on_chunk=None, store=None) -> Iterator[dict]:
    """``sweep.run`` keyword arguments (``store``, ``on_chunk``) for one sweep of the running study.

    Inside ``run_in_workdir`` with a workdir: a ``CheckpointStore`` in
    ``workdir/checkpoints/<name>`` keyed on the study, its config hash and ``sweep_identity``
    (so it never mixes two studies or two sweeps), and a progress bar. Outside a run (library
    calls, tests): just ``store`` and ``on_chunk`` as given. ``name``: see ``RunContext.claim``.
    """
    run = _RUN.get()
    if run is None:
        yield {"store": store, "on_chunk": on_chunk}
        return
    n_chunks = -(-sweep.num_replicates(per_replicate) // sweep.check_chunk_width(chunk_width))
    checkpointed = store is None and run.workdir is not None and jax.process_index() == 0  # process 0 stores
    ident = None
    if checkpointed:
        ident = {"study": run.study, "config_hash": run.config_hash,
                 **sweep_identity(cfg, kind=kind, per_replicate=per_replicate, shared=shared,
                                  chunk_width=chunk_width, extra=extra)}
    name = run.claim(name, kind, checkpoint_lib.identity_hash(ident) if ident else None)
    bars = run.progress or progress_lib.Progress(quiet=True)
    with bars.sweep(f"{run.study} {name}", n_chunks) as bar:
        if checkpointed:
            store = checkpoint_lib.CheckpointStore(run.workdir / "checkpoints" / name, {**ident, "sweep": name},
                                                   on_corrupt=run.on_corrupt, on_load=bar.on_restored)

        def chunk_done(i, n):
            bar.on_chunk(i, n)
            if on_chunk is not None:
                on_chunk(i, n)

        try:
            yield {"store": store, "on_chunk": chunk_done}
        finally:
            if isinstance(store, checkpoint_lib.CheckpointStore):
                store.close()
    stats = store.stats() if isinstance(store, checkpoint_lib.CheckpointStore) else {}
    run.sweeps[name] = {"chunks": n_chunks, **stats}


def _check_workdir(workdir: Path, study: str, chash: str) -> dict | None:
    """Refuses a workdir that holds another study (or an unreadable manifest); returns the old
    manifest of this study (a resume), or ``None`` for a fresh workdir."""
    manifest = workdir / "manifest.json"
    if not manifest.exists():
        return None
    try:
        old = results.read_json(manifest)
        if not isinstance(old, dict):
            raise ValueError(f"expected a JSON object, got {type(old).__name__}")
    except (ValueError, OSError) as e:
        raise ValueError(f"{manifest} is not valid JSON ({e}); delete the workdir or use a new --workdir") from None
    if old.get("study") not in (None, study) or old.get("config_hash") not in (None, chash):
        raise ValueError(
            f"workdir {workdir} holds another study ({old.get('study')}, config hash {old.get('config_hash')}; "
            f"this one: {study}, {chash}); use a new --workdir or delete the old one"
        )
    return old


def run_in_workdir(study: str, config, compute: Callable[[Any, Callable], Output], *,
                   workdir: str | Path | None, log=print, progress: progress_lib.Progress | None = None,
                   report: bool = True, on_corrupt: str = "redo") -> Output:
    """Validates ``config``, runs ``compute(cfg, log)`` and writes its files with status tracking.

    With a ``workdir``, every sweep checkpoints its finished chunks there and a rerun of the
    same config resumes from them (a finished study is recomputed from its checkpoints: the same
    files, the same bits); a workdir of another config is refused. ``progress``: bars over
    chunks and steps (default: none). ``report``: write ``report.md`` and its plots after the
    study completes (a failing report is printed, and does not fail the study). ``on_corrupt``:
    what a corrupt checkpoint does, ``"redo"`` (recompute its chunk, saying so) or ``"raise"``.
    """
    log = log or (lambda *a, **k: None)
    cfg = config_lib.validate(config, study)
    chash = config_lib.config_hash(cfg)
    t0 = time.perf_counter()
    manifest: dict[str, Any] = {"study": study, "config_hash": chash, "chunk_width": cfg.chunk_width, "seed": cfg.seed}
    workdir = Path(workdir) if workdir is not None else None
    if workdir is not None:
        old = _check_workdir(workdir, study, chash)
        if old is not None:
            log(f"resuming {study} in {workdir} (previous status: {old.get('status')}); finished chunks are "
                f"loaded from {workdir / 'checkpoints'}")
        workdir.mkdir(parents=True, exist_ok=True)
        results.write_json(workdir / "config.json", config_lib.to_dict(cfg))
        manifest = results.set_status(workdir, manifest, "running")
    run = RunContext(study=study, config_hash=chash, workdir=workdir, progress=progress, on_corrupt=on_corrupt)
    token = _RUN.set(run)
    try:
        with sweep.use_devices(cfg.devices):  # every sweep of the study runs on the config's devices
            out = compute(cfg, log)
        manifest = {**manifest, **out.manifest, "sharding": sweep.describe(cfg.devices),
                    "wall_seconds": round(time.perf_counter() - t0, 3)}
        if workdir is not None:
            manifest["checkpoints"] = {"folder": "checkpoints", "sweeps": run.sweeps}
            for name, write in out.files.items():
                write(workdir / name)
            results.write_json(workdir / "summary.json", out.summary)
            manifest = results.set_status(workdir, manifest, "complete")
        out.manifest = manifest
    except BaseException as e:
        if workdir is not None:
            results.set_status(workdir, manifest, "failed", f"{type(e).__name__}: {e}")
        raise
    finally:
        _RUN.reset(token)
    if workdir is not None and report and jax.process_index() == 0:
        try:
            from jaxeval import reporting

            path = reporting.write_report(workdir)
            log(f"report: {path}")
        except Exception as e:  # noqa: BLE001  (the study is complete; its report is a view of it)
            print(f"warning: the study is complete but its report failed: {type(e).__name__}: {e}; retry with "
                  f"python -m jaxeval.report --workdir {workdir}", file=sys.stderr, flush=True)
    return out
