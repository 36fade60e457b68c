"""The comparison study: is configuration A really better than B, on one task or a suite?

Arms (``compare.arms``, see :mod:`jaxeval.studies.arms`) are the base config with overrides in
any field. **Paired by design**: every arm runs the same replicates ``s = 0..num_seeds-1`` (the
same ``init``, ``data``, ``dropout`` and pretraining indices, from the same root), so two arms
share their data order and, where parameter shapes agree, their initial parameters: common
random numbers. Replicate ``s`` pretrains its own model (``pretrain`` index ``s``) when
``compare.pretrain_per_seed`` (so the comparison includes pretraining randomness), else all
replicates finetune pretrained model 0. The pairing is measured (initial-parameter and
batch-order checksums of both arms) and recorded in the summary.

Statistics (:mod:`jaxeval.studies.compare_stats`, all keyed from the ``bootstrap`` stream;
:func:`analyze` works on scores alone):

* per (pair, task): the mean paired difference with a paired bootstrap CI, ``P(A>B)`` over
  shared seeds with the Bouthillier et al. (2021) decision (significant: CI above 0.5;
  meaningful: and reaching above ``gamma``), ASO ``eps_min`` both ways (Bonferroni over the
  family), a two-sided paired sign-flip permutation p-value, adjusted over every (pair, task)
  test (``compare.correction``), and the same numbers without the pairing (labelled unpaired);
* per pair, aggregated over tasks: mean and IQM differences and ``P(A>B)`` (mean over tasks)
  with a paired bootstrap over seeds (``compare.bootstrap``: ``"seed"`` draws seeds once for
  all tasks, since seed ``s`` shares its keys and pretrained model across tasks; ``"stratified"``
  draws them independently within each task, rliable's stratified bootstrap), at level
  ``alpha / num_pairs`` (Bonferroni over pairs). The verdict comes from this ``P(A>B)``
  interval: significant (and meaningful), "no difference" (the interval lies inside
  ``[1 - gamma, gamma]``) or "cannot tell", then with the seeds that would settle it
  (:func:`seeds_to_settle`, from :mod:`jaxeval.stats.power`).

Scores are oriented so that higher is better (``nll`` and ``ece`` are negated): differences are
improvements of A over B.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import ml_collections
import numpy as np

from jaxeval import config as config_lib
from jaxeval import keys as keys_lib
from jaxeval import models, provenance, results
from jaxeval.metrics import METRICS
from jaxeval.stats import multiple
from jaxeval.stats.intervals import BootstrapWarning
from jaxeval.studies import arms as arms_lib
from jaxeval.studies import base
from jaxeval.studies.compare_stats import (  # noqa: F401  (re-exported: the study's statistics)
    CATEGORIES,
    DEFAULTS,
    DRAWS,
    OutcomeModel,
    aggregate_comparison,
    analyze,
    decide,
    pair_label,
    seeds_to_settle,
    verdict_line,
)

CONFIG_GROUP = {
    # "name: field=value, ..." (jaxeval.studies.arms); the first arm of a pair is A.
    "arms": ("pretrained: mode=full", "scratch: mode=full, pretrain.enabled=False"),
    "tasks": (),  # label maps of a suite, e.g. ("identity", "parity", "ge5"); () = (dataset.task,)
    "metric": "accuracy",
    "reference": "",  # "": every pair of arms (i < j, A = arm i); else each other arm (A) vs this one (B)
    **DEFAULTS,  # the statistics' options: alpha, gamma, correction, bootstrap, ... (compare_stats.DEFAULTS)
    "pretrain_per_seed": True,  # replicate s pretrains its own model (pretrain index s)
}
HIGHER_IS_BETTER = {"accuracy": True, "precision": True, "recall": True, "f1": True, "nll": False, "ece": False}
REPLICATE_COLUMNS = ("arm", "task", "replicate", "pretrain", "init", "data", "dropout", "mode", "metric", "value",
                     "diverged_step")


def check_config(cfg) -> None:
    """Checks ``cfg.compare`` and every arm's config (errors name the arm, field and value)."""
    g = cfg.compare
    chk = config_lib.check
    arms = arms_lib.build(g.arms, cfg)
    names = [a.name for a in arms]
    tasks = tuple(g.tasks)
    chk(all(isinstance(t, str) and t for t in tasks) and len(set(tasks)) == len(tasks), "compare.tasks", tasks,
        "a tuple of distinct label maps, e.g. ('identity', 'parity', 'ge5'); () = (dataset.task,)")
    chk(g.metric in METRICS, "compare.metric", g.metric, f"one of {METRICS}")
    chk(g.reference == "" or g.reference in names, "compare.reference", g.reference,
        f"'' (every pair of arms) or one of the arm names {names}")
    chk(0 < g.alpha < 1, "compare.alpha", g.alpha, "in (0, 1)")
    chk(0.5 < g.gamma < 1, "compare.gamma", g.gamma, "in (0.5, 1): the smallest P(A>B) worth having")
    chk(g.correction in multiple.METHODS, "compare.correction", g.correction, f"one of {multiple.METHODS}")
    chk(g.bootstrap in DRAWS, "compare.bootstrap", g.bootstrap, f"one of {DRAWS}")
    for f in ("num_resamples", "num_permutations", "power_simulations"):
        v = g[f]
        chk(isinstance(v, int) and not isinstance(v, bool) and v >= 100, f"compare.{f}", v, "an integer >= 100")
    chk(0 < g.aso_tau <= 0.5, "compare.aso_tau", g.aso_tau, "in (0, 0.5]")
    chk(0 < g.target_power < 1, "compare.target_power", g.target_power, "in (0, 1)")
    chk(isinstance(g.pretrain_per_seed, bool), "compare.pretrain_per_seed", g.pretrain_per_seed, "True or False")
    chk(cfg.num_seeds >= 2, "num_seeds", cfg.num_seeds, "at least 2 paired seeds")
    chk(cfg.pretrain.num_seeds == 1, "pretrain.num_seeds", cfg.pretrain.num_seeds,
        "1 in the compare study (compare.pretrain_per_seed gives every replicate its own pretrained model)")


def pairs_of(names: Sequence[str], reference: str = "") -> list[tuple[str, str]]:
    """``[(A, B), ...]``: every pair ``i < j`` (A = arm i), or each other arm vs ``reference``."""
    if reference:
        return [(n, reference) for n in names if n != reference]
    return [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]


def design(cfg) -> dict[str, np.ndarray]:
    """The replicates every arm runs: ``s`` for init, data and dropout; pretrain ``s`` (or 0)."""
    s = np.arange(cfg.num_seeds, dtype=np.int32)
    p = s.copy() if cfg.compare.pretrain_per_seed else np.zeros_like(s)
    return {"pretrain": p, "init": s, "data": s.copy(), "dropout": s.copy()}


# ----------------------------------------------------------------------------- the study


@dataclasses.dataclass
class StudyResult:
    config: Any
    design: dict[str, np.ndarray]
    arms: list
    finetune: dict[str, dict[str, dict]]  # arm -> task -> {"params", "metrics", "train", "predictions"} [R, ...]
    summary: dict
    manifest: dict


def _task_config(arm_cfg, task: str):
    c = ml_collections.ConfigDict(arm_cfg.to_dict())
    c.dataset.task = task
    return config_lib.validate(c)


def _pairing(runs, des, tasks, pairs) -> dict:
    """What the arms share, measured: equal initial parameters / batch orders per replicate."""
    shared = {}
    for A, B in pairs:
        per = {}
        for task in tasks:
            ta, tb = runs[A][task]["train"], runs[B][task]["train"]
            per[task] = {f: int(np.sum(np.asarray(ta[f"{f}_checksum"]) == np.asarray(tb[f"{f}_checksum"])))
                         for f in ("init", "order")}
        shared[pair_label(A, B)] = per
    return {
        "design": "paired: every arm runs the same replicates (stream indices) from the same root key",
        "replicates": {k: np.asarray(v).tolist() for k, v in des.items()},
        "streams": list(keys_lib.FINETUNE_STREAMS) + ["pretrain_* (index = pretrain column)"],
        "shared_replicates": shared,
        "note": "'init'/'order': replicates whose initial parameters / batch order are bitwise equal in both arms "
                "(common random numbers; init differs where parameter shapes or pretraining differ)",
    }


def _sweep_name(arm: str, index: int, task: str) -> str:
    """The checkpoint folder of one (arm, task) finetuning sweep: ``finetune.<arm>.<i>-<task>``."""
    return f"finetune.{arm}.{index}-{re.sub(r'[^A-Za-z0-9_.-]', '_', task)}"


def compute(cfg, log) -> base.Output:
    log = log or (lambda *a, **k: None)
    g = cfg.compare
    arms = arms_lib.build(g.arms, cfg)
    names = [a.name for a in arms]
    tasks = tuple(g.tasks) or (cfg.dataset.task,)
    pairs = pairs_of(names, g.reference)
    root = keys_lib.root_key(cfg.seed)
    des = design(cfg)
    num_pre = cfg.num_seeds if g.pretrain_per_seed else 1
    jobs = []  # every (arm, task) loaded and checked before any training
    for arm in arms:
        for task in tasks:
            acfg = _task_config(arm.config, task)
            try:
                ds = base.load_task(acfg)
                base.check_batch_sizes(acfg, ds.num_train)
            except ValueError as e:
                raise ValueError(f"config.compare.tasks: task {task!r} (arm {arm.name!r}): {e}") from None
            jobs.append((arm, task, acfg, ds))
    runs: dict[str, dict[str, dict]] = {a.name: {} for a in arms}
    pre_cache: dict[str, tuple[str, dict]] = {}
    datasets, fingerprints, rows, sweeps, kept = {}, {}, [], {}, {}
    for arm, task, acfg, ds in jobs:
        datasets.setdefault(task, {"name": ds.name, "version": ds.version, "fingerprint": ds.fingerprint,
                                   "num_train": ds.num_train, "num_test": ds.num_test, "num_classes": ds.num_classes})
        model = models.build(acfg.model, ds.feature_shape, ds.num_classes)
        arrays = base.task_arrays(ds)
        pre = encoders = None
        if acfg.pretrain.enabled:  # one pretraining sweep per distinct (model, pretraining, inputs)
            ck = config_lib.config_hash(ml_collections.ConfigDict(
                {"model": acfg.model.to_dict(), "pretrain": acfg.pretrain.to_dict(),
                 "x": provenance.fingerprint(ds.x_train), "n": num_pre, "c": acfg.chunk_width, "s": acfg.seed}))
            if ck not in pre_cache:
                name = f"pretrain.{arm.name}"
                log(f"[{arm.name}] pretraining {num_pre} model(s) on {ds.num_train} unlabeled examples ...")
                pre_cache[ck] = (name, base.pretrain_sweep(acfg, model, arrays["x_train"], root, num_seeds=num_pre,
                                                           name=name))
                sweeps[name] = (pre_cache[ck][1], {"pretrain": np.arange(num_pre)})
                fingerprints[f"{name}/params"] = provenance.fingerprint(pre_cache[ck][1])
            pre_name, pre = pre_cache[ck]
            encoders = pre["encoder"]
        mode = acfg.finetune.modes[0]
        name = _sweep_name(arm.name, tasks.index(task), task)
        log(f"[{arm.name}] task {task}: finetuning ({mode}) {cfg.num_seeds} paired replicates ...")
        fin = base.finetune_sweep(acfg, model, arrays, encoders, root, mode, des, name=name)
        runs[arm.name][task] = fin
        sweeps[name] = (fin["train"], des)
        keep = ~base.diverged_mask(fin["train"])
        if pre is not None:
            keep &= ~base.diverged_mask(pre)[des["pretrain"]]
        kept[(arm.name, task)] = keep
        for part in ("params", "metrics", "predictions"):
            fingerprints[f"{arm.name}/{task}/{part}"] = provenance.fingerprint(fin[part])
        div = np.asarray(fin["train"].get("diverged_step", np.full(cfg.num_seeds, -1)))
        for r in range(cfg.num_seeds):
            for metric in METRICS:
                rows.append({"arm": arm.name, "task": task, "replicate": r, "pretrain": int(des["pretrain"][r]),
                             "init": int(des["init"][r]), "data": int(des["data"][r]),
                             "dropout": int(des["dropout"][r]), "mode": mode, "metric": metric,
                             "value": float(fin["metrics"][metric][r]), "diverged_step": int(div[r])})
    # Diverged replicates (base.DIVERGENCE_RULE) enter the statistics as missing: analyze drops
    # the pair in that task, and the seed from the aggregate.
    scores = {n: np.stack([np.where(kept[(n, t)], np.asarray(runs[n][t]["metrics"][g.metric], np.float32), np.nan)
                           for t in tasks], axis=1) for n in names}
    log(f"comparing {len(pairs)} pair(s) on {len(tasks)} task(s) ...")
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", BootstrapWarning)
        stats = analyze(scores, tasks=tasks, pairs=pairs, key=keys_lib.stream(root, "bootstrap", 0), options=g,
                        higher_is_better=HIGHER_IS_BETTER[g.metric])
    for m in w:
        msg = f"{m.category.__name__}: {m.message}"
        if msg not in caught:
            caught.append(msg)
    summary = {
        "study": "compare",
        "metric": g.metric, "higher_is_better": HIGHER_IS_BETTER[g.metric],
        "num_seeds": cfg.num_seeds, "tasks": list(tasks), "arm_names": names, "datasets": datasets,
        "arms": {a.name: {"spec": a.spec, "overrides": dict(a.overrides), "mode": a.config.finetune.modes[0],
                          "pretrained": bool(a.config.pretrain.enabled),
                          "tasks": {t: base.kept_summary(runs[a.name][t]["metrics"][g.metric], kept[(a.name, t)])
                                    for t in tasks}}
                 for a in arms},
        "pairing": _pairing(runs, des, tasks, pairs),
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.to_dict().items()},
        "bootstrap_key": {"stream": "bootstrap", "index": 0},
        **stats,
        "verdicts": [p["verdict"] for p in stats["pairs"]],
        "divergence": base.divergence(sweeps),
        "warnings": caught,
    }
    manifest = base.provenance_manifest(cfg, root, jobs[0][3], des, fingerprints)
    manifest["arms"] = {a.name: config_lib.config_hash(a.config) for a in arms}
    files = {"replicates.csv": partial(results.write_csv, rows=rows, columns=REPLICATE_COLUMNS)}
    return base.Output(summary=summary, manifest=manifest, files=files,
                       extra={"design": des, "arms": arms, "finetune": runs})


def run(config, *, workdir: str | Path | None = None, log=print, progress=None, report: bool = True) -> StudyResult:
    """Runs the comparison; writes config.json, manifest.json, replicates.csv, summary.json and
    report.md (+ the PNGs of :func:`report`) into ``workdir`` when given, checkpointing every
    finished chunk (rerunning on the same workdir resumes). ``log`` gets progress lines
    (None = quiet); ``progress``: a ``jaxeval.progress.Progress`` (bars)."""
    out = base.run_in_workdir("compare", config, compute, workdir=workdir, log=log, progress=progress, report=report)
    e = out.extra
    return StudyResult(config=config, design=e["design"], arms=e["arms"], finetune=e["finetune"],
                       summary=out.summary, manifest=out.manifest)


# ----------------------------------------------------------------------------- printing


def _ci(d: dict, fmt: str = "+.3f") -> str:
    return f"{d['estimate']:{fmt}} [{d['ci'][0]:{fmt}}, {d['ci'][1]:{fmt}}]"


def _settle_text(s: dict) -> str:
    sd = s["show_difference"]
    if sd["seeds"] is not None:
        show = f"{sd['seeds']} to show the difference (simulated power {sd['power']:.2f})"
    elif sd.get("simulated"):
        show = (f"more than {sd['simulated']['seeds'][-1]} to show the difference (simulated power "
                f"{sd['power']:.2f} there; normal approximation {sd['normal_approx_seeds']})")
    elif sd["normal_approx_seeds"] is not None:
        show = f"about {sd['normal_approx_seeds']} to show the difference (normal approximation, not simulated)"
    else:
        show = "no number of seeds shows a difference of the observed size (none observed)"
    rule = s["rule_out"]["seeds"]
    rule = (f"{rule} to rule out a meaningful difference" if rule is not None
            else "a meaningful difference cannot be ruled out")
    return f"{show}; {rule}; Noether's design number for P(A>B) = gamma: {s['noether_seeds']}"


def format_summary(summary: dict) -> str:
    """The tables printed at the end of the study, ending with one verdict line per pair."""
    metric = summary["metric"] + ("" if summary["higher_is_better"] else " (lower is better; differences negated)")
    lines = [f"compare: {len(summary['arms'])} arms x {len(summary['tasks'])} task(s) x {summary['num_seeds']} "
             f"paired seeds; metric {metric}"]
    tasks, n = summary["tasks"], summary["num_seeds"]
    for name in summary["arm_names"]:
        arm = summary["arms"][name]
        means = ", ".join(f"{t} {_num(arm['tasks'][t]['mean'])}" for t in tasks)
        lines.append(f"  {name:<12} [{arm['spec']}]  mean: {means}")
    for pair in summary["pairs"]:
        A, B = pair["a"], pair["b"]
        sh = summary["pairing"]["shared_replicates"][pair_label(A, B)]
        lines.append(f"\n{A} (A) vs {B} (B); pairing: " + "; ".join(
            f"{t}: init shared {sh[t]['init']}/{n}, order shared {sh[t]['order']}/{n}" for t in tasks))
        lines.append(f"  {'task':<14} {'A - B [95% CI]':>28} {'P(A>B) [95% CI]':>20} {'eps_min':>7} "
                     f"{'p perm':>7} {'p adj':>7}  verdict   | unpaired A - B CI")
        for task in tasks:
            r = pair["tasks"][task]
            v = {"A": f"{A} > {B}", "B": f"{B} > {A}", None: "n.s."}[r["better"]]
            u = r["unpaired"]["difference"]["ci"]
            lines.append(f"  {task:<14} {_ci(r['difference']):>28} {_ci(r['probability_of_improvement'], '.2f'):>20} "
                         f"{r['aso']['eps_min']:>7.3f} {r['permutation']['p_value']:>7.4f} "
                         f"{r['permutation']['p_adjusted']:>7.4f}  {v:<9} | [{u[0]:+.3f}, {u[1]:+.3f}]")
        agg = pair["aggregate"]
        lvl = f"{100 * agg['ci_level']:.1f}%"
        lines.append(f"  aggregate ({lvl} CI, {agg['method']}):")
        for name in ("mean", "iqm"):
            u = agg["unpaired"][name]["ci"] if "unpaired" in agg else None
            lines.append(f"    {name:<5} difference {_ci(agg[name])}"
                         + (f"   unpaired [{u[0]:+.3f}, {u[1]:+.3f}]" if u else ""))
        lines.append(f"    P(A>B) {_ci(agg['probability_of_improvement'], '.3f')} (gamma "
                     f"{agg['probability_of_improvement']['gamma']:g})")
        if "seeds_to_settle" in pair:
            s = pair["seeds_to_settle"]
            lines.append(f"    seeds per arm to settle it: {_settle_text(s)}")
    for msg in summary.get("warnings", []):
        lines.append(f"warning: {msg}")
    lines.append("")
    lines.extend(summary["verdicts"])
    return "\n".join(lines)


# ----------------------------------------------------------------------------- report


def _plot_differences(summary: dict, path: Path) -> Path:
    """Per pair: per-seed paired differences, the mean difference per task and the mean / IQM
    differences over tasks, with their paired and unpaired CIs."""
    from jaxeval import reporting

    plt = reporting.pyplot()
    pairs = summary["pairs"]
    tasks = summary["tasks"]
    labels = list(tasks) + ["mean", "IQM"]
    fig, axes = plt.subplots(len(pairs), 1, figsize=(max(6.0, 1.3 * len(labels) + 2), 3.4 * len(pairs)),
                             squeeze=False)
    axes = axes[:, 0]
    for ax, pair in zip(axes, pairs):
        for i, task in enumerate(tasks):
            r = pair["tasks"][task]
            d = np.asarray(r["differences"])
            ax.scatter(i - 0.12 + np.linspace(-0.08, 0.08, d.size), d, s=10, color="0.55", alpha=0.6,
                       label="paired difference per seed" if i == 0 else None)
        agg = pair["aggregate"]
        entries = [pair["tasks"][t]["difference"] for t in tasks] + [agg["mean"], agg["iqm"]]
        unp = [pair["tasks"][t]["unpaired"]["difference"] for t in tasks]
        if "unpaired" in pair["aggregate"]:
            unp += [pair["aggregate"]["unpaired"]["mean"], pair["aggregate"]["unpaired"]["iqm"]]
        for series, dx, color, label in ((entries, 0.05, "C0", "estimate, paired CI"),
                                         (unp, 0.22, "C1", "unpaired CI (ignores the pairing)")):
            x = np.arange(len(series)) + dx
            est = np.array([e["estimate"] for e in series])
            lo = np.array([e["ci"][0] for e in series])
            hi = np.array([e["ci"][1] for e in series])
            ax.errorbar(x, est, yerr=[est - lo, hi - est], fmt="o", color=color, capsize=4, label=label)
        ax.axhline(0.0, color="k", lw=0.8, ls="--", label="no difference")
        ax.axvline(len(tasks) - 0.5, color="0.8", lw=0.8)
        ax.set_xticks(np.arange(len(labels)), labels)
        ax.set_xlabel("task (per task: difference of means; aggregates over tasks)")
        sign = "" if summary["higher_is_better"] else " (negated: lower is better)"
        ax.set_ylabel(f"{pair['a']} - {pair['b']}\n{summary['metric']}{sign}")
        ax.set_title(f"{pair['a']} vs {pair['b']}: {pair['aggregate']['category']}", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return reporting.save_figure(fig, path)


def _plot_poi(summary: dict, path: Path) -> Path:
    """Per pair: P(A>B) per task and over tasks with paired (and rliable's unpaired) intervals,
    the 0.5 line (no difference) and the gamma / 1 - gamma lines (meaningful)."""
    from jaxeval import reporting

    plt = reporting.pyplot()
    pairs = summary["pairs"]
    tasks = summary["tasks"]
    labels = list(tasks) + ["aggregate"]
    fig, axes = plt.subplots(len(pairs), 1, figsize=(max(6.0, 1.3 * len(labels) + 2), 3.2 * len(pairs)),
                             squeeze=False)
    axes = axes[:, 0]
    for ax, pair in zip(axes, pairs):
        agg = pair["aggregate"]
        gamma = agg["probability_of_improvement"]["gamma"]
        paired = [pair["tasks"][t]["probability_of_improvement"] for t in tasks] + [agg["probability_of_improvement"]]
        unp = [pair["tasks"][t]["unpaired"]["probability_of_improvement"] for t in tasks]
        if "unpaired" in agg:
            unp.append(agg["unpaired"]["probability_of_improvement"])
        for series, dx, color, label in ((paired, 0.0, "C0", "paired P(A>B), bootstrap CI"),
                                         (unp, 0.18, "C1", "unpaired (rliable) P(A>B)")):
            x = np.arange(len(series)) + dx
            est = np.array([e["estimate"] for e in series])
            lo = np.array([e["ci"][0] for e in series])
            hi = np.array([e["ci"][1] for e in series])
            ax.errorbar(x, est, yerr=[est - lo, hi - est], fmt="o", color=color, capsize=4, label=label)
        ax.axhline(0.5, color="k", lw=0.8, ls="--", label="0.5: no difference")
        ax.axhline(gamma, color="C2", lw=0.9, ls=":", label=f"gamma = {gamma:g}: meaningful")
        ax.axhline(1 - gamma, color="C2", lw=0.9, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xticks(np.arange(len(labels)), labels)
        ax.set_xlabel("task")
        ax.set_ylabel(f"P({pair['a']} > {pair['b']})")
        ax.set_title(f"{pair['a']} vs {pair['b']}: {agg['category']} "
                     f"(aggregate CI level {100 * agg['ci_level']:.1f}%)", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return reporting.save_figure(fig, path)


def _num(v, fmt: str = ".4f") -> str:
    return "nan" if v is None or not np.isfinite(v) else f"{v:{fmt}}"


def report(workdir) -> list[str]:
    """Markdown lines of the compare study's report section; writes ``compare_differences.png``
    and ``compare_poi.png`` into ``workdir``. Reads only the saved ``summary.json``."""
    from jaxeval import reporting

    workdir = Path(workdir)
    path = workdir / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `python -m jaxeval.compare --workdir {workdir}` first")
    summary = results.read_json(path)
    if summary.get("study") != "compare":
        raise ValueError(f"{path} is a {summary.get('study')!r} study, not 'compare'")
    diff_png = _plot_differences(summary, workdir / "compare_differences.png")
    poi_png = _plot_poi(summary, workdir / "compare_poi.png")
    n, tasks, corr = summary["num_seeds"], summary["tasks"], summary["correction"]
    metric = summary["metric"] + ("" if summary["higher_is_better"] else " (lower is better; differences negated)")
    lines = ["## Compare: is A really better than B?", "",
             f"Metric: {metric}; {n} paired seeds per arm; tasks: {', '.join(tasks)}. Paired by design: every arm "
             "runs the same replicates (init, data-order, dropout and pretraining indices) from the same root key.",
             "", "Per arm and task: mean ± std over the kept seeds.", ""]
    lines += reporting.md_table(
        ["arm", "overrides of the base config", *tasks],
        [[name, ", ".join(f"{k}={v}" for k, v in arm["overrides"].items()) or "(none)",
          *(f"{_num(arm['tasks'][t]['mean'])} ± {_num(arm['tasks'][t]['std'])} (n={arm['tasks'][t]['n']})"
            for t in tasks)]
         for name, arm in ((a, summary["arms"][a]) for a in summary["arm_names"])])
    for pair in summary["pairs"]:
        A, B, agg = pair["a"], pair["b"], pair["aggregate"]
        shared = summary["pairing"]["shared_replicates"][pair_label(A, B)]
        lvl = f"{100 * agg['ci_level']:.1f}%"
        lines += ["", f"### {A} (A) vs {B} (B)", "", f"**Verdict:** {pair['verdict']}", "",
                  "Common random numbers, measured: " + "; ".join(
                      f"{t}: initial parameters equal in {shared[t]['init']}/{n} seeds, batch order in "
                      f"{shared[t]['order']}/{n}" for t in tasks) + ".", ""]
        rows = []
        for task in tasks:
            r = pair["tasks"][task]
            u = r["unpaired"]["difference"]["ci"]
            rows.append([task, r["n"], _ci(r["difference"]), _ci(r["probability_of_improvement"], ".2f"),
                         f"{r['aso']['eps_min']:.3f} / {r['aso']['eps_min_reverse']:.3f}",
                         f"{r['permutation']['p_value']:.4f}", f"{r['permutation']['p_adjusted']:.4f}",
                         {"A": f"{A} > {B}", "B": f"{B} > {A}", None: "not significant"}[r["better"]],
                         f"[{u[0]:+.3f}, {u[1]:+.3f}]"])
        for nme in ("mean", "iqm"):
            u = agg["unpaired"][nme]["ci"]
            rows.append([f"aggregate {nme} ({lvl} CI)", n - len(agg["dropped_seeds"]), _ci(agg[nme]), "", "", "", "",
                         "", f"[{u[0]:+.3f}, {u[1]:+.3f}]"])
        rows.append([f"aggregate P(A>B) ({lvl} CI)", n - len(agg["dropped_seeds"]), "",
                     _ci(agg["probability_of_improvement"], ".2f"), "", "", "", agg["category"], ""])
        lines += reporting.md_table(
            ["task", "seeds", "A - B, paired 95% CI", "P(A>B), 95% CI", "ASO eps_min A>B / B>A", "p (paired perm.)",
             f"p ({corr['method']})", "verdict", "A - B, UNPAIRED CI"], rows)
        if "seeds_to_settle" in pair:
            s = pair["seeds_to_settle"]
            lines += ["", f"Seeds per arm that would settle it ({s['model']}): {_settle_text(s)}."]
    lines += ["", "How to read it: a task's verdict is the two-sided paired sign-flip permutation test after the "
                  f"{corr['method']} correction over all {corr['family_size']} (pair, task) tests at alpha "
                  f"{corr['alpha']:g}. The pair's verdict is Bouthillier et al.'s rule on the aggregate P(A>B) "
                  "interval (Bonferroni over pairs): significant if it excludes 0.5, meaningful if it also reaches "
                  "past gamma; \"no difference\" if it lies inside [1 - gamma, gamma]. ASO: A almost stochastically "
                  "dominates B when eps_min < tau. UNPAIRED columns ignore the pairing (each arm resampled on its "
                  "own).",
              "", f"![paired differences per task]({diff_png.name})", "",
              "Grey points: per-seed paired differences; blue: the estimate with its paired CI; orange: the same "
              "estimate's CI without the pairing.", "",
              f"![P(A>B) with the 0.5 and gamma lines]({poi_png.name})", ""]
    return lines
