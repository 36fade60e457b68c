"""``report.md`` of a workdir, made only from its saved results (DESIGN §5).

``write_report(workdir)`` writes the common sections -- status (with the failure reason),
provenance (what the bits depend on), checkpoints, diverged replicates and the exclusion rule --
then the study's own section: ``jaxeval.studies.<study>.report(workdir) -> list[str]`` (which
writes its PNGs into the workdir) when the module defines it and the study is ``complete``
(a running, killed or failed study's other files may be stale). Every file is written
atomically. Helpers for the studies' sections: ``pyplot``, ``save_figure``, ``md_table``,
``read_csv``.
"""

from __future__ import annotations

import csv
import importlib
import io
from pathlib import Path
from typing import Any, Sequence

from jaxeval import results


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, *, dpi: int = 120) -> Path:
    """Saves ``fig`` as a PNG atomically and closes it; returns the path."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    pyplot().close(fig)
    results.write_bytes(path, buf.getvalue())
    return path


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table (``|`` in cells escaped)."""
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _short(fp: Any, n: int = 16) -> str:
    return f"`{fp[:n]}`" if isinstance(fp, str) else str(fp)


def status_section(manifest: dict) -> list[str]:
    status = manifest.get("status")
    lines = ["## Status", ""]
    if status == "complete":
        lines.append(f"**complete** -- every file of this workdir was written by the finished study "
                     f"(wall time of its last run: {manifest.get('wall_seconds', float('nan')):.1f} s).")
    elif status == "failed":
        lines.append(f"**failed**: {manifest.get('failure', 'no reason recorded')}. The other files may be stale or "
                     "missing; rerun the same command to resume from the finished chunks.")
    else:
        lines.append(f"**{status}** -- the study has not completed (it is still running, or it was killed); its "
                     "results are not trusted. Rerun the same command to resume from the finished chunks.")
    return lines + [""]


def provenance_section(manifest: dict) -> list[str]:
    rt = manifest.get("runtime", {})
    versions = manifest.get("versions", {})
    prng = manifest.get("prng", {})
    ds = manifest.get("dataset", {})
    rows = [
        ["study", manifest.get("study")],
        ["config hash", _short(manifest.get("config_hash"))],
        ["root seed", manifest.get("seed")],
        ["chunk width", manifest.get("chunk_width")],
        ["dataset", (f"{ds.get('name')} {ds.get('version')} (fingerprint {_short(ds.get('fingerprint'))})"
                     if ds else None)],
        ["backend / device", (f"{rt.get('backend')} / {rt.get('device_kind')} x {rt.get('device_count')}"
                              if rt else None)],
        ["XLA flags", f"`{rt.get('xla_flags')}`" if rt.get("xla_flags") else "(none)"],
        ["PRNG", f"{prng.get('impl') or rt.get('prng_impl')}"],
        ["x64 / matmul precision", f"{rt.get('enable_x64')} / {rt.get('default_matmul_precision')}" if rt else None],
        ["versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v)],
        ["git commit", manifest.get("git_commit")],
    ]
    lines = ["## Provenance", ""] + md_table(["what the bits depend on", "value"],
                                              [r for r in rows if r[1] is not None])
    fps = manifest.get("fingerprints") or {}
    if fps:
        lines += ["", "Fingerprints (sha256 of the saved arrays; equal fingerprints = identical bits):", ""]
        lines += md_table(["result", "sha256"], [[k, _short(v, 24)] for k, v in sorted(fps.items())])
    ck = (manifest.get("checkpoints") or {}).get("sweeps") or {}
    if ck:
        lines += ["", "Checkpoints (`checkpoints/<sweep>/<chunk>`, orbax) of the last run: chunks restored from an "
                      "earlier run vs computed by this one:", ""]
        lines += md_table(["sweep", "chunks", "restored", "computed", "corrupt, recomputed"],
                          [[k, v.get("chunks"), v.get("loaded", ""), v.get("saved", ""), v.get("corrupt_redone", "")]
                           for k, v in ck.items()])
    return lines + [""]


def divergence_section(summary: dict | None) -> list[str]:
    lines = ["## Diverged replicates", ""]
    div = (summary or {}).get("divergence")
    if div is None:
        return lines + ["(not recorded by this study)", ""]
    lines.append(f"Rule: {div['rule']}.")
    lines.append("")
    order = {k: i for i, k in enumerate(("pretrain", "init", "data", "dropout"))}

    def indices(r):
        keys = sorted((k for k in r if k not in ("replicate", "step")), key=lambda k: (order.get(k, len(order)), k))
        return ", ".join(f"{k}={r[k]}" for k in keys)

    rows = [[label, r["replicate"], r["step"], indices(r)] for label, listed in div["sweeps"].items() for r in listed]
    if not rows:
        return lines + ["None: every replicate trained to the end with finite loss and parameters.", ""]
    return lines + md_table(["sweep", "replicate", "diverged at step", "design indices"], rows) + [""]


def write_report(workdir: str | Path) -> Path:
    """Writes ``workdir/report.md`` (and the study's PNGs); returns its path.

    Raises ``ValueError`` for a folder without a readable ``manifest.json``; when the study's own
    section fails, the common sections are still written (with the error) and the error raised.
    """
    workdir = Path(workdir)
    try:
        manifest = results.read_json(workdir / "manifest.json")
    except FileNotFoundError:
        raise ValueError(f"{workdir} has no manifest.json: not a study workdir") from None
    except ValueError as e:
        raise ValueError(f"{workdir / 'manifest.json'} is not valid JSON ({e}): the workdir is damaged") from None
    study = manifest.get("study", "?")
    complete = manifest.get("status") == "complete"
    summary = None
    if complete:
        try:
            summary = results.read_json(workdir / "summary.json")
        except (OSError, ValueError) as e:
            raise ValueError(f"{workdir} says complete but summary.json is unreadable ({e}); rerun the study "
                             "(it recomputes from its checkpoints)") from None
    lines = [f"# {study} study: report", "",
             f"Made from the saved results in `{workdir.name}` only "
             "(`python -m jaxeval.report --workdir DIR` remakes it).", ""]
    lines += status_section(manifest) + provenance_section(manifest)
    error = None
    if complete:
        lines += divergence_section(summary)
        try:
            module = importlib.import_module(f"jaxeval.studies.{study}")
            section = getattr(module, "report", None)
            lines += section(workdir) if section is not None else [f"(the {study} study defines no report section)", ""]
        except Exception as e:  # noqa: BLE001  (keep the common sections; raise after writing)
            error = e
            lines += [f"## {study} section failed", "", f"`{type(e).__name__}: {e}`", ""]
    path = workdir / "report.md"
    results.write_bytes(path, ("\n".join(lines).rstrip() + "\n").encode())
    if error is not None:
        raise RuntimeError(f"the {study} report section failed ({type(error).__name__}: {error}); "
                           f"{path} holds the common sections") from error
    return path
