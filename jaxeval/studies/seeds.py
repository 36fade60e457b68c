"""The multi-seed study: pretrain, finetune N seeds vmapped, evaluate, summarise over seeds.

Replicate ``(p, s)`` finetunes pretrained model ``p`` with finetuning index ``s`` for every
finetuning stream (init, data, dropout): all streams vary together. Everything before the file
writes is a pure function of (config, keys, data).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from jaxeval import keys as keys_lib
from jaxeval import models, provenance, results
from jaxeval.metrics import METRICS
from jaxeval.studies import base
from jaxeval.studies.base import finetune_sweep, load_task, task_arrays  # noqa: F401  (re-exported)

REPLICATE_COLUMNS = ("replicate", "pretrain", "init", "data", "dropout", "mode", "task", "data_size", "metric", "value",
                     "diverged_step")
# Units of the metrics (axis labels of the report's plots).
UNITS = {"accuracy": "fraction correct", "precision": "macro average, fraction", "recall": "macro average, fraction",
         "f1": "macro average, fraction", "nll": "nats per example", "ece": "fraction, equal-width bins"}


@dataclasses.dataclass
class StudyResult:
    config: Any
    design: dict[str, np.ndarray]  # factor -> int32[R]
    pretrain: dict | None  # {"encoder": stacked [P, ...], "loss": [P, epochs]}
    finetune: dict[str, dict]  # mode -> {"params", "metrics", "train", "predictions"} stacked [R, ...]
    summary: dict
    manifest: dict


def design(cfg) -> dict[str, np.ndarray]:
    """Replicates: pretrain index p (outer) x finetuning index s (all finetuning streams = s)."""
    grid = keys_lib.replicate_indices(grid={"pretrain": cfg.pretrain.num_seeds if cfg.pretrain.enabled else 1,
                                            "init": cfg.num_seeds})
    s = grid["init"]
    return {"pretrain": grid["pretrain"], "init": s, "data": s.copy(), "dropout": s.copy()}


def replicate_rows(cfg, num_train: int, des, mode, metrics, diverged_step=None) -> list[dict]:
    rows = []
    for r in range(des["init"].shape[0]):
        for name in METRICS:
            rows.append({"replicate": r, "pretrain": int(des["pretrain"][r]), "init": int(des["init"][r]),
                         "data": int(des["data"][r]), "dropout": int(des["dropout"][r]), "mode": mode,
                         "task": cfg.dataset.task, "data_size": num_train, "metric": name,
                         "value": float(metrics[name][r]),
                         "diverged_step": -1 if diverged_step is None else int(diverged_step[r])})
    return rows


def kept_replicates(des, fin_train, pre=None) -> np.ndarray:
    """``bool[R]``: replicates the statistics use (``base.DIVERGENCE_RULE``): their finetuning did
    not diverge, nor did the pretraining of their encoder."""
    keep = ~base.diverged_mask(fin_train)
    if pre is not None:
        keep &= ~base.diverged_mask(pre)[np.asarray(des["pretrain"])]
    return keep


def compute(cfg, log) -> base.Output:
    ds = load_task(cfg)
    base.check_batch_sizes(cfg, ds.num_train)
    root = keys_lib.root_key(cfg.seed)
    model = models.build(cfg.model, ds.feature_shape, ds.num_classes)
    task = task_arrays(ds)
    pre = encoders = None
    if cfg.pretrain.enabled:
        log(f"pretraining {cfg.pretrain.num_seeds} model(s) on {ds.num_train} unlabeled examples ...")
        pre = base.pretrain_sweep(cfg, model, task["x_train"], root)
        encoders = pre["encoder"]
    des = design(cfg)
    fin = {}
    for mode in cfg.finetune.modes:
        log(f"finetuning ({mode}) {des['init'].shape[0]} replicates, chunk width {cfg.chunk_width} ...")
        fin[mode] = finetune_sweep(cfg, model, task, encoders, root, mode, des)
    keep = {mode: kept_replicates(des, res["train"], pre) for mode, res in fin.items()}
    sweeps = {f"finetune_{mode}": (res["train"], des) for mode, res in fin.items()}
    if pre is not None:
        sweeps = {"pretrain": (pre, {"pretrain": np.arange(pre["loss"].shape[0])}), **sweeps}
    summary = {
        "study": "seeds",
        "dataset": {"name": ds.name, "version": ds.version, "task": cfg.dataset.task, "num_train": ds.num_train,
                    "num_test": ds.num_test, "num_classes": ds.num_classes},
        "num_replicates": int(des["init"].shape[0]),
        "modes": {mode: {name: base.kept_summary(res["metrics"][name], keep[mode]) for name in METRICS}
                  for mode, res in fin.items()},
        "chance_accuracy": float(np.max(np.bincount(ds.y_test, minlength=ds.num_classes)) / ds.num_test),
        "divergence": base.divergence(sweeps),
    }
    if pre is not None:
        summary["pretrain_loss"] = base.kept_summary(pre["loss"][:, -1], ~base.diverged_mask(pre))
    fingerprints = {
        "pretrain_params": (provenance.fingerprint({k: pre[k] for k in ("encoder", "loss")})
                            if pre is not None else None),
        **{f"{mode}_{part}": provenance.fingerprint(res[part]) for mode, res in fin.items()
           for part in ("params", "metrics", "predictions")},
    }
    rows = [row for mode, res in fin.items()
            for row in replicate_rows(cfg, ds.num_train, des, mode, res["metrics"], res["train"].get("diverged_step"))]
    files = {"replicates.csv": partial(results.write_csv, rows=rows, columns=REPLICATE_COLUMNS)}
    for mode, res in fin.items():
        preds = {k: np.asarray(v) for k, v in res["predictions"].items()}
        files[f"predictions_{mode}.npz"] = lambda path, p=preds: results.write_npz(path, **p)
    return base.Output(summary=summary, manifest=base.provenance_manifest(cfg, root, ds, des, fingerprints),
                       files=files, extra={"design": des, "pretrain": pre, "finetune": fin})


def run(config, *, workdir: str | Path | None = None, log=print, progress=None, report: bool = True) -> StudyResult:
    """Runs the study; writes config.json, manifest.json, replicates.csv, summary.json,
    predictions_<mode>.npz and report.md (+ PNG) into ``workdir`` when given, checkpointing every
    finished chunk (rerunning on the same workdir resumes). ``log`` gets progress lines
    (None = quiet); ``progress``: a ``jaxeval.progress.Progress`` (bars)."""
    out = base.run_in_workdir("seeds", config, compute, workdir=workdir, log=log, progress=progress, report=report)
    e = out.extra
    return StudyResult(config=config, design=e["design"], pretrain=e["pretrain"], finetune=e["finetune"],
                       summary=out.summary, manifest=out.manifest)


def format_summary(summary: dict) -> str:
    """The table printed at the end of a study."""
    d = summary["dataset"]
    lines = [f"{d['name']} ({d['task']}): {d['num_train']} train / {d['num_test']} test examples, "
             f"{summary['num_replicates']} replicates; chance accuracy {summary['chance_accuracy']:.3f}"]
    if "pretrain_loss" in summary:
        lines.append(f"pretraining reconstruction loss: {summary['pretrain_loss']['mean']:.4f}")
    lines.append(f"{'mode':<6} {'metric':<9} {'n':>3} {'mean ± std':>18} {'95% CI (t)':>20}   per seed")
    for mode, ms in summary["modes"].items():
        for name in ("accuracy", "f1", "nll", "ece"):
            s = ms[name]
            per = " ".join(f"{v:.3f}" for v in s["values"][:16]) + (" ..." if len(s["values"]) > 16 else "")
            lines.append(f"{mode:<6} {name:<9} {s['n']:>3} {_num(s['mean']):>8} ± {_num(s['std']):<7} "
                         f"[{_num(s['ci'][0])}, {_num(s['ci'][1])}]   {per}")
    lines.extend(format_divergence(summary.get("divergence")))
    return "\n".join(lines)


def _num(v, digits: int = 4) -> str:
    return "nan" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def format_divergence(div: dict | None) -> list[str]:
    """Lines listing diverged replicates (with their step) and the exclusion rule."""
    if not div:
        return []
    if not div["count"]:
        return ["diverged replicates: none"]
    lines = [f"diverged replicates: {div['count']} -- excluded: {div['rule']}"]
    for label, rows in div["sweeps"].items():
        for row in rows:
            idx = ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("replicate", "step"))
            lines.append(f"  {label}: replicate {row['replicate']} ({idx}) diverged at step {row['step']}")
    return lines


# --- report (from the saved results only) ---------------------------------------------------------

def report(workdir: str | Path) -> list[str]:
    """Markdown lines of the seeds study's report section; writes ``seeds_distributions.png``
    (per-seed values per mode and metric: violin + points, mean with its 95% t-interval) into
    ``workdir``. Reads only ``summary.json`` and ``replicates.csv``."""
    from jaxeval import reporting

    workdir = Path(workdir)
    summary = results.read_json(workdir / "summary.json")
    table = reporting.read_csv(workdir / "replicates.csv")
    d = summary["dataset"]
    lines = ["## Seeds: results per mode and metric", "",
             f"{d['name']} ({d['task']}): {d['num_train']} train / {d['num_test']} test examples, "
             f"{summary['num_replicates']} replicates per mode; chance accuracy {summary['chance_accuracy']:.3f}. "
             "Mean, standard deviation (ddof 1) and 95% Student-t interval of the mean over the kept replicates.", ""]
    rows = []
    for mode, ms in summary["modes"].items():
        for name in METRICS:
            s = ms[name]
            vals = [v for v in s["values"] if v is not None]
            rows.append([mode, name, s["n"], _num(s["mean"]), _num(s["std"]),
                         f"[{_num(s['ci'][0])}, {_num(s['ci'][1])}]",
                         _num(min(vals)) if vals else "", _num(max(vals)) if vals else "",
                         ", ".join(map(str, s.get("excluded", []))) or "none"])
    lines += reporting.md_table(["mode", "metric", "n", "mean", "std", "95% CI", "min", "max", "excluded"], rows)
    if "pretrain_loss" in summary:
        p = summary["pretrain_loss"]
        spread = f" ± {_num(p['std'])} (std)" if p["n"] > 1 else ""
        lines += ["", f"Pretraining reconstruction loss (mean squared error, last epoch): {_num(p['mean'])}{spread} "
                      f"over {p['n']} pretrained model(s)."]
    png = plot_distributions(table, summary, workdir / "seeds_distributions.png")
    lines += ["", f"![per-seed distributions]({png.name})", "",
              "Each point is one replicate (seed); the violin is the distribution of the kept replicates, the "
              "black bar their mean with the 95% t-interval; red crosses are diverged replicates (excluded from the "
              "statistics; drawn within the axes, at the edge when their value is outside them or not finite).", ""]
    return lines


def plot_distributions(table: list[dict], summary: dict, path: Path) -> Path:
    """Violin + strip of the per-seed values, one panel per metric, one column per mode."""
    from jaxeval import reporting

    plt = reporting.pyplot()
    from matplotlib.lines import Line2D

    modes = list(summary["modes"])
    ncol = 3
    nrow = -(-len(METRICS) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.6 * nrow), squeeze=False)
    handles = {}
    for ax, name in zip(axes.flat, METRICS):
        diverged = {}
        for j, mode in enumerate(modes):
            rows = [r for r in table if r["mode"] == mode and r["metric"] == name]
            vals = np.array([float(r["value"]) for r in rows])
            bad = np.array([int(r.get("diverged_step", -1)) >= 0 for r in rows], bool)
            excluded = set(summary["modes"][mode][name].get("excluded", []))
            bad |= np.array([int(r["replicate"]) in excluded for r in rows], bool)
            kept = vals[~bad & np.isfinite(vals)]
            if kept.size > 1 and np.ptp(kept) > 0:
                parts = ax.violinplot([kept], positions=[j], widths=0.7, showextrema=False)
                for body in parts["bodies"]:
                    body.set_facecolor(f"C{j}")
                    body.set_alpha(0.25)
            # deterministic jitter: the golden-ratio sequence over the replicate index (no RNG)
            jitter = ((np.arange(vals.size) * 0.6180339887) % 1.0 - 0.5) * 0.35
            ok = ~bad & np.isfinite(vals)
            ax.scatter(j + jitter[ok], vals[ok], s=14, color=f"C{j}", alpha=0.8, edgecolor="none", zorder=3)
            handles["replicate (seed)"] = Line2D([], [], ls="", marker="o", markersize=4, color="0.4")
            if bad.any():
                diverged[j] = (j + jitter[bad], vals[bad])
            s = summary["modes"][mode][name]
            if s["n"] and s["mean"] is not None:
                lo, hi = s["ci"]
                if lo is not None and hi is not None:
                    handles["mean, 95% t-interval"] = ax.errorbar(
                        [j + 0.42], [s["mean"]], yerr=[[s["mean"] - lo], [hi - s["mean"]]], fmt="o", color="black",
                        capsize=4, markersize=4, zorder=5)
                else:
                    ax.plot([j + 0.42], [s["mean"]], "o", color="black", markersize=4)
        if diverged:  # drawn inside the kept replicates' range: a diverged model's value may be huge or NaN
            lo, hi = ax.get_ylim()
            for x, v in diverged.values():
                handles["diverged (excluded; clipped to the axes)"] = ax.scatter(
                    x, np.clip(np.nan_to_num(v, nan=lo), lo, hi), marker="x", color="red", zorder=4, clip_on=False)
            ax.set_ylim(lo, hi)
        ax.set_xticks(range(len(modes)), [f"{m}\n(n={summary['modes'][m][name]['n']})" for m in modes])
        ax.set_xlim(-0.6, len(modes) - 0.3)
        ax.set_ylabel(f"{name} ({UNITS.get(name, '')})")
        ax.set_title(f"test {name}")
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(METRICS):]:
        ax.set_visible(False)
    d = summary["dataset"]
    fig.suptitle(f"Per-seed test metrics: {d['name']} ({d['task']}), {summary['num_replicates']} replicates per mode")
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return reporting.save_figure(fig, path)
