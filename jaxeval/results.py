"""Results on disk: atomic writes (temp file + rename) and the manifest's status.

A workdir holds one study. ``manifest.json`` says ``running`` while a study runs, ``complete``
only after every other file is written, and ``failed`` (with the reason) if it raised; a reader
must check ``status == "complete"`` before trusting anything else in the folder.

Under ``jax.distributed`` every process runs the same study, and only process 0 writes: every
writer here is a no-op on the other processes (``is_writer()``), so studies call them as usual.
Code that writes files by other means must check ``is_writer()`` itself.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

STATUSES = ("running", "complete", "failed")


def _jsonable(obj: Any):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def is_writer() -> bool:
    """Whether this process writes results: process 0 under ``jax.distributed``, else always."""
    from jaxeval import distributed

    return distributed.is_writer()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (same-folder temp file, fsync, rename); a no-op on
    processes other than 0 under ``jax.distributed`` (see ``is_writer``)."""
    if not is_writer():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path, obj: Any) -> None:
    write_bytes(path, (json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def read_json(path) -> Any:
    with open(path) as f:
        return json.load(f)


def write_csv(path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _csv_value(row[k]) for k in columns})
    write_bytes(path, buf.getvalue().encode())


def _csv_value(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))  # round-trips exactly
    return v.item() if isinstance(v, np.generic) else v


def write_npz(path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes(path, buf.getvalue())


def set_status(workdir, manifest: dict, status: str, reason: str | None = None) -> dict:
    """Writes ``manifest.json`` with ``status`` (and ``reason`` when failed)."""
    if status not in STATUSES:
        raise ValueError(f"status={status!r}; allowed: {STATUSES}")
    manifest = {**manifest, "status": status}
    manifest.pop("failure", None)
    if reason is not None:
        manifest["failure"] = reason
    write_json(Path(workdir) / "manifest.json", manifest)
    return manifest
