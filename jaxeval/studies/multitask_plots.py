"""Plots and markdown of a finished multi-task study, from its saved results only.

``report(workdir)`` reads ``manifest.json`` (must say ``complete``), ``summary.json`` and
``replicates.csv`` and writes (matplotlib, Agg):

* ``per_task.png``: one panel per task, each config's runs (faint points) and mean with its
  bootstrap interval, chance as a dashed line;
* ``aggregates.png``: mean / median / IQM / optimality gap of normalised scores per config, with
  intervals (rliable's layout);
* ``profiles.png``: performance profiles (fraction of runs with normalised score > tau) with bands;
* ``link.png``: per dataset and task, the pretraining loss vs the downstream metric at every
  (pretraining seed, checkpoint), coloured by checkpoint, with the fitted link and its correlation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jaxeval import reporting, results
from jaxeval.studies import multitask as mt

_pyplot = reporting.pyplot


def _load(workdir: Path):
    manifest = results.read_json(workdir / "manifest.json")
    if manifest.get("status") != "complete" or manifest.get("study") != mt.STUDY:
        raise ValueError(f"{workdir} does not hold a complete multitask study (manifest: study="
                         f"{manifest.get('study')!r}, status={manifest.get('status')!r})")
    return manifest, results.read_json(workdir / "summary.json"), reporting.read_csv(workdir / "replicates.csv")


def _grid(n: int, ncols: int = 4):
    ncols = min(ncols, n)
    return math.ceil(n / ncols), ncols


def plot_per_task(summary: dict, rows: list[dict], path: Path) -> None:
    plt = _pyplot()
    tasks, configs = summary["tasks"], summary["configs"]
    nr, nc = _grid(len(tasks))
    fig, axes = plt.subplots(nr, nc, figsize=(3.2 * nc, 2.9 * nr), squeeze=False)
    colors = plt.cm.tab10(np.arange(len(configs)) % 10)
    for ax, t in zip(axes.flat, tasks):
        for j, c in enumerate(configs):
            vals = [float(r["value"]) for r in rows if r["config"] == c and r["task"] == t["name"]
                    and r["metric"] == t["metric"] and r["diverged_step"] == "-1"]
            jitter = j + np.linspace(-0.15, 0.15, len(vals)) if vals else []
            ax.scatter(jitter, vals, s=6, alpha=0.3, color=colors[j])
            s = summary["per_task"][c][t["name"]]
            ax.errorbar([j], [s["mean"]], yerr=[[s["mean"] - s["lo"]], [s["hi"] - s["mean"]]], fmt="o",
                        color=colors[j], capsize=4, label=c)
        ax.axhline(t["chance"], color="gray", ls="--", lw=1, label="chance")
        ax.set_title(t["name"], fontsize=9)
        ax.set_xticks(range(len(configs)), configs, rotation=30, fontsize=7)
        ax.set_ylabel(f"test {t['metric']}")
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    level = round(100 * (1 - summary["bootstrap"]["alpha"]))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8,
               title=f"mean with {level}% bootstrap CI; faint points: runs", title_fontsize=8)
    fig.suptitle("Per-task results")
    fig.tight_layout(rect=(0, 0.12 / nr, 1, 1))
    reporting.save_figure(fig, path, dpi=110)


def plot_aggregates(summary: dict, path: Path, kind: str = "normalized") -> None:
    plt = _pyplot()
    configs = summary["configs"]
    fig, axes = plt.subplots(1, len(mt.AGGREGATES), figsize=(3.2 * len(mt.AGGREGATES), 0.5 * len(configs) + 1.6),
                             squeeze=False)
    colors = plt.cm.tab10(np.arange(len(configs)) % 10)
    for ax, a in zip(axes[0], mt.AGGREGATES):
        for j, c in enumerate(configs):
            v = summary["aggregates"][kind][c][a]
            ax.barh([j], [v["hi"] - v["lo"]], left=[v["lo"]], height=0.6, color=colors[j], alpha=0.6,
                    label=c)
            ax.plot([v["estimate"]] * 2, [j - 0.3, j + 0.3], color="k", lw=1.5)
        ax.set_yticks(range(len(configs)), configs if a == mt.AGGREGATES[0] else [""] * len(configs))
        ax.set_title(a.replace("_", " "))
        ax.set_xlabel("normalised score" if kind == "normalized" else "score")
    level = round(100 * (1 - summary["bootstrap"]["alpha"]))
    axes[0, -1].legend(fontsize=7, loc="best", title=f"{level}% CI (bar), estimate (line)", title_fontsize=7)
    fig.tight_layout()
    reporting.save_figure(fig, path, dpi=110)


def plot_profiles(summary: dict, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for c, p in summary["profiles"].items():
        line, = ax.plot(p["taus"], p["estimate"], label=c)
        ax.fill_between(p["taus"], p["lo"], p["hi"], color=line.get_color(), alpha=0.2)
    ax.set_xlabel(r"normalised score threshold $\tau$")
    ax.set_ylabel(r"fraction of runs with score > $\tau$")
    ax.set_title("Performance profiles")
    ax.legend(fontsize=8)
    fig.tight_layout()
    reporting.save_figure(fig, path, dpi=110)


def plot_link(summary: dict, path: Path) -> None:
    plt = _pyplot()
    order = [t["name"] for t in summary["tasks"]] + ["suite mean"]
    panels = [(name, task, entry["tasks"][task], entry) for name, entry in summary["link"].items()
              for task in sorted(entry["tasks"], key=order.index) if "skipped" not in entry["tasks"][task]]
    nr, nc = _grid(len(panels))
    fig, axes = plt.subplots(nr, nc, figsize=(3.4 * nc, 3.0 * nr), squeeze=False)
    metric = {t["name"]: t["metric"] for t in summary["tasks"]}
    for ax, (name, task, s, entry) in zip(axes.flat, panels):
        x = np.asarray(entry["pretrain_metric"], float)  # [P, C]
        y = np.asarray(s["downstream_mean"], float)
        cmap = plt.cm.viridis(np.linspace(0, 0.9, x.shape[1]))
        for c in range(x.shape[1]):
            ax.scatter(x[:, c], y[:, c], color=cmap[c], s=18, label=f"epoch {entry['checkpoint_epochs'][c]}")
        r = s["pearson"]
        label = f"{s['link']} fit; Pearson r = {mt.fmt(r['estimate'], 2)} [{mt.fmt(r['lo'], 2)}, {mt.fmt(r['hi'], 2)}]"
        a, b = s["intercept"]["estimate"], s["slope"]["estimate"]
        if a is not None and b is not None and np.isfinite(a) and np.isfinite(b):
            grid = np.linspace(x.min(), x.max(), 50)
            fit = 1 / (1 + np.exp(-(a + b * grid))) if s["link"] == "logit" else a + b * grid
            ax.plot(grid, fit, color="k", lw=1.2, label=label)
        ax.set_title(f"{name}: {task}", fontsize=9)
        ax.set_xlabel("pretraining loss")
        ax.set_ylabel(f"downstream {metric.get(task, 'mean metric')}")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("Pretraining -> downstream (mean over finetuning seeds)")
    fig.tight_layout()
    reporting.save_figure(fig, path, dpi=110)


_md_table = reporting.md_table


def report(workdir: Path) -> list[str]:
    """Writes the PNGs into ``workdir`` and returns the report's markdown lines."""
    workdir = Path(workdir)
    manifest, summary, rows = _load(workdir)
    plot_per_task(summary, rows, workdir / "per_task.png")
    plot_aggregates(summary, workdir / "aggregates.png")
    plot_profiles(summary, workdir / "profiles.png")
    if summary["link"] and any("skipped" not in s for e in summary["link"].values() for s in e["tasks"].values()):
        plot_link(summary, workdir / "link.png")
    b = summary["bootstrap"]
    level = round(100 * (1 - b["alpha"]))
    lines = ["## Multi-task study", "",
             f"{len(summary['tasks'])} tasks, configs {', '.join(summary['configs'])}; "
             f"{summary['num_pretrain_seeds']} pretraining x {summary['num_finetune_seeds']} finetuning seeds "
             "per task. "
             f"Intervals: {level}% percentile bootstrap, {b['plan']} ({b['roles']}), {b['num_resamples']} resamples. "
             f"Wall time {manifest.get('wall_seconds', float('nan')):.0f} s.", "",
             "### Per-task mean [CI]", ""]
    lines += _md_table(mt.PER_TASK_HEAD + summary["configs"], mt.per_task_rows(summary))
    lines += ["", "![per-task results](per_task.png)", "",
              "### Aggregates of normalised scores (x - chance) / (1 - chance)", ""]
    lines += _md_table(mt.AGGREGATE_HEAD, mt.aggregate_rows(summary, "normalized"))
    lines += ["", "![aggregates](aggregates.png)", "", "![performance profiles](profiles.png)", "",
              f"### Ranking ({summary['ranking']['rule']})", ""]
    lines += _md_table(mt.RANKING_HEAD, mt.ranking_rows(summary))
    if summary["link"]:
        lines += ["", "### Pretraining loss -> downstream metric", ""]
        lines += _md_table(mt.LINK_HEAD, mt.link_rows(summary))
        if (workdir / "link.png").exists():
            lines += ["", "![pretraining vs downstream](link.png)"]
    if summary["warnings"]:
        lines += ["", "Warnings: " + "; ".join(summary["warnings"])]
    return lines
