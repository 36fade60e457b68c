"""Per-chunk sweep checkpoints on orbax: the ``ChunkStore`` that makes a study resumable.

Layout (one folder per sweep of a study)::

    workdir/checkpoints/<sweep name>/identity.json   what the chunks were computed from
    workdir/checkpoints/<sweep name>/<chunk index>/  one orbax checkpoint per finished chunk

A chunk checkpoint holds two orbax items, committed together by orbax's atomic rename (a killed
save leaves only a ``*.orbax-checkpoint-tmp`` folder, which is ignored and replaced): ``out``,
the chunk's outputs (a host pytree of nested dicts of numpy arrays, leading axis the chunk
width; orbax restores them with their dtypes, no template needed), and ``meta`` (JSON: chunk
index, the identity's hash and the sha256 fingerprint of ``out``).

Never mixed, never silently wrong:

* ``identity`` (the study, its config hash, the sweep's name, inputs fingerprint, chunk width,
  versions and device) is written once; a store opened on a folder with another identity raises
  a ``ValueError`` naming the fields that differ.
* ``load`` re-fingerprints what orbax restored and compares it with ``meta``: a truncated,
  corrupted or foreign checkpoint is never returned. ``on_corrupt="redo"`` (default) says so,
  deletes it and returns ``None`` (the sweep recomputes the chunk: same bits, the program being
  deterministic); ``"raise"`` refuses with a ``ValueError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import numpy as np

from jaxeval import provenance, results

PyTree = Any
ON_CORRUPT = ("redo", "raise")
TMP_SUFFIX = ".orbax-checkpoint-tmp"
FORMAT = 1


@contextlib.contextmanager
def _quiet_orbax():
    """Orbax logs ~30 INFO lines per checkpoint through absl (shown by absl entry points): keep
    them to warnings while this module calls it."""
    logger = logging.getLogger("absl")
    old = logger.level
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fingerprint(tree: PyTree) -> str:
    """``provenance.fingerprint`` of ``tree``, typed PRNG keys taken as their key data."""
    def plain(x):
        if jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key):
            return jax.random.key_data(x)
        return x

    return provenance.fingerprint(jax.tree_util.tree_map(plain, tree))


def identity_hash(identity: Mapping) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def check_storable(tree: PyTree, where: str = "out") -> None:
    """Raises ``TypeError`` unless ``tree`` is nested dicts (string keys) of arrays: what orbax
    restores as itself without a template (it would return tuples as lists, ints keys as str)."""
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            if not isinstance(k, str):
                raise TypeError(f"chunk outputs must be nested dicts with string keys; {where} has key {k!r}")
            check_storable(v, f"{where}[{k!r}]")
    elif not (isinstance(tree, (np.ndarray, jax.Array)) and np.ndim(tree) >= 1):
        raise TypeError(f"chunk outputs must be nested dicts of arrays with a leading chunk axis; {where} is "
                        f"{type(tree).__name__} {getattr(tree, 'shape', '')}")


class CheckpointStore:
    """``sweep.ChunkStore`` of one sweep, in ``directory`` (see the module docstring).

    ``identity``: JSON-able dict of everything the chunks depend on. ``log``: where the
    message about a corrupt checkpoint goes (default: stderr). ``on_load(index)``: called when a
    chunk is restored (progress). ``loaded``/``saved`` count the chunks of this process.
    """

    def __init__(self, directory: str | Path, identity: Mapping, *, on_corrupt: str = "redo",
                 log: Callable[[str], None] | None = None, on_load: Callable[[int], None] | None = None):
        if on_corrupt not in ON_CORRUPT:
            raise ValueError(f"on_corrupt={on_corrupt!r} is not allowed; choose one of {ON_CORRUPT}")
        self.directory = Path(directory)
        self.identity = json.loads(json.dumps({"format": FORMAT, **identity}, sort_keys=True, default=str))
        self.hash = identity_hash(self.identity)
        self.on_corrupt, self.log, self.on_load = on_corrupt, log or _stderr, on_load
        self.loaded = self.saved = self.redone = 0
        self._ckptr = None
        self._open()

    # -- identity --------------------------------------------------------------------------------

    def _open(self) -> None:
        ident = self.directory / "identity.json"
        if ident.exists():
            try:
                old = results.read_json(ident)
            except (ValueError, OSError) as e:
                raise ValueError(f"checkpoint folder {self.directory}: identity.json is unreadable ({e}); "
                                 "delete the folder to recompute this sweep") from None
            if old != self.identity:
                diff = sorted(k for k in set(old) | set(self.identity) if old.get(k) != self.identity.get(k))
                shown = "; ".join(f"{k}: stored {_short(old.get(k))}, now {_short(self.identity.get(k))}" for k in diff)
                hint = (" (jaxeval's code changed since they were computed)" if diff == ["code"] else "")
                raise ValueError(
                    f"checkpoint folder {self.directory} holds chunks of another sweep{hint} ({shown}); refusing to "
                    "mix them: use a new --workdir, or delete the folder to recompute this sweep")
            return
        if self.directory.exists() and self.chunks():
            raise ValueError(f"checkpoint folder {self.directory} holds chunks but no identity.json, so what they "
                             "were computed from is unknown; delete the folder to recompute this sweep")
        results.write_json(ident, self.identity)

    # -- chunks ----------------------------------------------------------------------------------

    def path(self, index: int) -> Path:
        return self.directory / str(int(index))

    def chunks(self) -> list[int]:
        """Indices of the committed chunk checkpoints (unfinished orbax temp folders excluded)."""
        if not self.directory.exists():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir() if p.is_dir() and p.name.isdigit())

    @property
    def _checkpointer(self):
        if self._ckptr is None:
            import orbax.checkpoint as ocp

            me = jax.process_index()  # a single-writer store (sweep: process 0 loads and saves)
            with _quiet_orbax():
                # Single-process options on every handler too: else, under jax.distributed, process
                # 0 waits in orbax's save barrier for processes that never save.
                mp = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
                self._ckptr = ocp.Checkpointer(
                    ocp.CompositeCheckpointHandler(
                        composite_options=ocp.CompositeOptions(multiprocessing_options=mp),
                        out=ocp.StandardCheckpointHandler(multiprocessing_options=mp),
                        meta=ocp.JsonCheckpointHandler(multiprocessing_options=mp)),
                    multiprocessing_options=mp)
        return self._ckptr

    def save(self, index: int, out: PyTree) -> None:
        """Stores chunk ``index``'s outputs atomically (orbax: temp folder, then rename)."""
        import orbax.checkpoint as ocp

        check_storable(out)
        meta = {"chunk": int(index), "identity": self.hash, "fingerprint": fingerprint(out)}
        with _quiet_orbax():
            self._checkpointer.save(self.path(index), args=ocp.args.Composite(
                out=ocp.args.StandardSave(out), meta=ocp.args.JsonSave(meta)), force=True)
        self.saved += 1

    def load(self, index: int) -> PyTree | None:
        """Chunk ``index``'s outputs, or ``None`` when it is not stored (or was corrupt: redo)."""
        path = self.path(index)
        if not path.is_dir():
            return None
        import orbax.checkpoint as ocp

        try:
            with _quiet_orbax():
                got = self._checkpointer.restore(path, args=ocp.args.Composite(
                    out=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
            out, meta = got["out"], got["meta"]
            problem = None
            if not isinstance(meta, Mapping) or meta.get("identity") != self.hash:
                problem = "it belongs to another sweep (identity hash differs)"
            elif meta.get("chunk") != int(index):
                problem = f"it holds chunk {meta.get('chunk')}, not {index}"
            elif fingerprint(out) != meta.get("fingerprint"):
                problem = "its contents do not match the fingerprint stored with it"
        except Exception as e:  # noqa: BLE001  (any failure to read is a corrupt checkpoint)
            problem = f"it cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})"
        if problem is None:
            self.loaded += 1
            if self.on_load is not None:
                self.on_load(int(index))
            return out
        msg = f"checkpoint {path} is corrupt or incomplete: {problem}"
        if self.on_corrupt == "raise":
            raise ValueError(f"{msg}; delete it to recompute that chunk")
        self.log(f"{msg}; deleting it and recomputing chunk {index}")
        shutil.rmtree(path, ignore_errors=True)
        self.redone += 1
        return None

    def close(self) -> None:
        """Releases orbax's checkpointer (a later save or load opens a new one)."""
        if self._ckptr is not None:
            with _quiet_orbax():
                self._ckptr.close()
            self._ckptr = None

    def stats(self) -> dict[str, int]:
        return {"loaded": self.loaded, "saved": self.saved, "corrupt_redone": self.redone}


def _short(v, n: int = 80) -> str:
    s = json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= n else s[: n - 3] + "..."
