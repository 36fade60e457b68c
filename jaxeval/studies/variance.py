"""The variance study: which source of randomness moves the result, and by how much.

Replicates follow a :class:`~jaxeval.designs.Design` over the finetuning streams (``init``,
``data`` order, ``dropout``) and, optionally, the pretraining seed:

* ``factorial``: every combination of ``init x data x dropout`` levels (x ``pretrain`` when
  ``pretrain.num_seeds > 1``): main effects and all interactions below the top order;
* ``ofat``: one stream at a time, the others at level 0: main effects only;
* ``together``: ``num_seeds`` seeds, every stream changes with the seed: the total only;
* ``nested``: ``pretrain.num_seeds`` pretrained models, the finetuning grid within each:
  pretraining variance vs finetuning variance.

All replicates of a finetuning mode are one vmapped sweep. For each mode and metric the study
reports variance components (balanced ANOVA, GPQ intervals; missing/diverged replicates by an
explicit rule), the test-set vs training noise split of the accuracy's standard error, the
expected best-of-k curve (both estimators, bootstrap band), how many seeds a given difference
needs, and cross-validated estimates (k-fold, leave-one-out or .632 bootstrap) whose folds are
another vmapped replicate axis. Everything before the file writes is a pure function of
(config, keys, data).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from pathlib import Path
from statistics import NormalDist
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxeval import config as config_lib
from jaxeval import data as data_lib
from jaxeval import designs
from jaxeval import keys as keys_lib
from jaxeval import models, provenance, results
from jaxeval.metrics import METRICS
from jaxeval.stats import expected_max as expected_max_lib
from jaxeval.stats import testset_noise as testset_noise_lib
from jaxeval.stats import variance as variance_lib
from jaxeval.stats.intervals import percentile_interval
from jaxeval.studies import base

DESIGNS = ("factorial", "ofat", "together", "nested")
CV_METHODS = ("none", "kfold", "loo", "bootstrap632")
MISSING = ("drop", "reml", "raise")
HIGHER_IS_BETTER = {"accuracy": True, "precision": True, "recall": True, "f1": True, "nll": False, "ece": False}

CONFIG_GROUP = {
    "design": "factorial",  # one of DESIGNS
    # Levels per finetuning stream (factorial / nested grid; ofat: the size of each stream's arm).
    "init": 6,
    "data": 6,
    "dropout": 3,
    "effects": (),  # effects that must be reported, e.g. ("init", "init:data"); () = all identifiable
    "metrics": ("accuracy", "nll"),  # analysed metrics (jaxeval.metrics.METRICS)
    "alpha": 0.05,  # 1 - confidence level of every interval
    "num_resamples": 2000,  # interval draws (GPQ), bootstrap resamples
    "missing": "drop",  # diverged/missing replicates: drop incomplete levels, REML on the rest, or raise
    "cv": "kfold",  # one of CV_METHODS
    "cv_folds": 5,  # k of k-fold
    "cv_repeats": 2,  # independent fold assignments (each with its own seed for every stream)
    "cv_bootstraps": 16,  # resamples of the .632 bootstrap
    "power_delta": 0.01,  # difference (in the metric's units) the power answer is for
    "power": 0.8,  # target power
}


def check_config(cfg) -> None:
    v = cfg.variance
    config_lib.check(v.design in DESIGNS, "variance.design", v.design, f"one of {DESIGNS}")
    for f in ("init", "data", "dropout", "num_resamples", "cv_folds", "cv_repeats", "cv_bootstraps"):
        config_lib.check_positive_int(cfg, f"variance.{f}")
    metrics = tuple(v.metrics)
    config_lib.check(len(metrics) > 0 and all(m in METRICS for m in metrics) and len(set(metrics)) == len(metrics),
                     "variance.metrics", metrics, f"a non-empty tuple of distinct metrics from {METRICS}")
    config_lib.check(0 < v.alpha < 0.5, "variance.alpha", v.alpha, "in (0, 0.5)")
    config_lib.check(v.num_resamples >= 100, "variance.num_resamples", v.num_resamples, "an integer >= 100")
    config_lib.check(v.missing in MISSING, "variance.missing", v.missing, f"one of {MISSING}")
    config_lib.check(v.cv in CV_METHODS, "variance.cv", v.cv, f"one of {CV_METHODS}")
    config_lib.check(v.cv_folds >= 2, "variance.cv_folds", v.cv_folds, "an integer >= 2")
    config_lib.check(v.power_delta > 0, "variance.power_delta", v.power_delta, "> 0 (a difference to detect)")
    config_lib.check(0 < v.power < 1, "variance.power", v.power, "in (0, 1)")
    if v.design == "nested":
        config_lib.check(cfg.pretrain.enabled and cfg.pretrain.num_seeds >= 2, "pretrain.num_seeds",
                         cfg.pretrain.num_seeds, "an integer >= 2 with pretrain.enabled=True for a nested design")
    des = make_design(cfg)
    if des.num_replicates < 2:
        raise ValueError(f"config.variance: the {v.design} design has {des.num_replicates} replicate; every level "
                         "count is 1, so nothing varies (raise variance.init/data/dropout or num_seeds)")
    if v.effects:
        des.check_effects(list(v.effects))


def make_design(cfg) -> designs.Design:
    """The study's design from ``cfg.variance`` (and ``num_seeds``/``pretrain.num_seeds``)."""
    v = cfg.variance
    grid = {s: int(v[s]) for s in keys_lib.FINETUNE_STREAMS}
    p = int(cfg.pretrain.num_seeds) if cfg.pretrain.enabled else 1
    if v.design == "factorial":
        return designs.factorial({"pretrain": p, **grid} if p > 1 else grid)
    if v.design == "ofat":
        return designs.ofat(grid)
    if v.design == "together":
        return designs.together(int(cfg.num_seeds))
    return designs.nested(pretrain=p, finetune={k: n for k, n in grid.items() if n > 1} or 1)


def replicate_columns(des: designs.Design) -> dict[str, np.ndarray]:
    """Index columns for the sweep: every finetuning stream and ``pretrain`` (0 where the design
    holds it fixed)."""
    r = des.num_replicates
    return {name: np.asarray(des.indices.get(name, np.zeros(r, np.int32)), np.int32)
            for name in ("pretrain", *keys_lib.FINETUNE_STREAMS)}


@dataclasses.dataclass
class StudyResult:
    config: Any
    design: designs.Design
    pretrain: dict | None
    finetune: dict[str, dict]  # mode -> stacked sweep outputs [R, ...]
    summary: dict
    manifest: dict


# -- analyses (pure functions of scores and keys) ---------------------------------------------


def _key(root, part: int, mode_index: int, metric_index: int = 0) -> jax.Array:
    """The key of one analysis: ``bootstrap`` stream, index ``part``, folded with mode and metric."""
    return jax.random.fold_in(jax.random.fold_in(keys_lib.stream(root, "bootstrap", part), mode_index), metric_index)


def diverged_rows(fin: dict, pretrain_of: np.ndarray | None = None, pre: dict | None = None) -> np.ndarray:
    """``bool[R]``: replicates that diverged (``base.diverged_mask``), whose pretrained model
    (``pre["diverged_step"][pretrain_of[r]]``) diverged, or whose test metrics are not finite."""
    metric_bad = ~np.all([np.isfinite(np.asarray(fin["metrics"][m])) for m in METRICS], axis=0)
    bad = base.diverged_mask(fin["train"]) | metric_bad
    if pre is not None and "diverged_step" in pre and pretrain_of is not None:
        bad |= np.asarray(pre["diverged_step"])[np.asarray(pretrain_of)] >= 0
    return bad


def components(scores: np.ndarray, des: designs.Design, *, key, v) -> dict:
    """Variance components of ``scores[R]`` (NaN = missing) as a JSON-ready dict."""
    if des.kind == "ofat":
        if not np.isfinite(scores).all():
            raise ValueError("an ofat design cannot drop a missing replicate (every arm shares the base row); "
                             "rerun or use a factorial design")
        vc = variance_lib.ofat_variances(scores, des, alpha=v.alpha)
    elif v.missing == "reml" and not np.isfinite(scores).all():
        vc = variance_lib.variance_components(scores, des, key=key, alpha=v.alpha, method="reml", missing="omit",
                                              num_resamples=min(200, v.num_resamples))
    else:
        vc = variance_lib.variance_components(scores, des, key=key, alpha=v.alpha, num_resamples=v.num_resamples,
                                              missing="raise" if v.missing == "raise" else "drop")
    comps = []
    for i, name in enumerate(vc.names):
        comps.append({"component": name, "estimate": float(vc.estimate[i]), "truncated": float(vc.truncated[i]),
                      "negative": bool(vc.negative[i]), "ci": [float(vc.ci_low[i]), float(vc.ci_high[i])],
                      "share": None if np.isnan(vc.share[i]) else float(vc.share[i]),
                      "std": float(np.sqrt(vc.truncated[i]))})
    shares = [c["share"] for c in comps if c["share"] is not None]
    return {"components": comps, "method": vc.method, "grid_analysed": list(vc.shape),
            "total_variance": float(vc.total), "shares_sum": float(sum(shares)) if shares else None,
            "ci_level": 1 - v.alpha, "table": vc.table()}


def t_test_power(n, total_variance: float, *, delta: float, alpha: float) -> np.ndarray:
    """Exact power of the two-sided two-sample t-test with ``n`` seeds per arm, true difference
    ``delta`` and per-run variance ``total_variance`` (noncentral t)."""
    import scipy.stats

    n = np.asarray(n, np.float64)
    df = 2 * n - 2
    nc = delta / np.sqrt(2 * max(total_variance, 1e-300) / n)
    t = scipy.stats.t.ppf(1 - alpha / 2, df)
    return scipy.stats.nct.sf(t, df, nc) + scipy.stats.nct.cdf(-t, df, nc)


def seeds_for_power(total_variance: float, *, delta: float, power: float, alpha: float) -> dict:
    """Seeds per arm for a two-sided two-sample t-test at level ``alpha`` to detect a mean
    difference ``delta`` with probability ``power`` when single runs have variance
    ``total_variance`` (the sum of the fitted components): the smallest ``n`` whose exact
    (noncentral-t) power reaches ``power``, plus the power at a few seed counts."""
    out = {"delta": delta, "target_power": power, "alpha": alpha, "total_variance": total_variance,
           "test": "two-sided two-sample t-test, unpaired (arms that share keys can only need fewer)"}
    if total_variance <= 0:
        return {**out, "seeds_per_arm": 2, "note": "the total variance is 0: any two seeds per arm detect it"}
    n = 2
    while t_test_power(n, total_variance, delta=delta, alpha=alpha) < power and n < 1_000_000:
        n = n * 2 if n < 1024 else n + 1024
    lo = max(2, n // 2)
    while lo < n:  # smallest n in (n/2, n] reaching the target (power is increasing in n)
        mid = (lo + n) // 2
        if t_test_power(mid, total_variance, delta=delta, alpha=alpha) >= power:
            n = mid
        else:
            lo = mid + 1
    grid = sorted({2, 4, 8, 16, 32, 64, 128, n})
    return {**out, "seeds_per_arm": int(n), "curve": {"n_seeds": grid, "power": [
        float(p) for p in t_test_power(grid, total_variance, delta=delta, alpha=alpha)]}}


def best_of_k(scores: np.ndarray, *, key, v, higher_is_better: bool) -> dict:
    """Expected best-of-k over seeds, both estimators, with bootstrap bands."""
    x = np.asarray(scores, np.float64)
    x = x[np.isfinite(x)]
    sign = 1.0 if higher_is_better else -1.0
    out = {"higher_is_better": higher_is_better, "num_runs": int(x.size)}
    for i, method in enumerate(expected_max_lib.METHODS):
        ks = list(range(1, x.size + 1)) if method == "without_replacement" else \
            sorted({int(k) for k in np.unique(np.geomspace(1, 4 * x.size, 12).round())})
        curve = expected_max_lib.expected_max_curve(sign * x, ks, key=jax.random.fold_in(key, i), method=method,
                                                    num_resamples=v.num_resamples, alpha=v.alpha)
        lo, hi = (sign * np.asarray(c) for c in curve.ci)
        lo, hi = (lo, hi) if higher_is_better else (hi, lo)
        out[method] = {"k": [int(k) for k in curve.ks], "mean": (sign * np.asarray(curve.mean)).tolist(),
                       "ci_low": lo.tolist(), "ci_high": hi.tolist(), "std": np.asarray(curve.std).tolist()}
    return out


# -- cross-validation ------------------------------------------------------------------------


def cv_plan(cfg, root, n: int) -> dict:
    """Replicates of the cross-validation sweep: ``train_index[R, m]``, held-out ``mask[R, n]``,
    stream indices, repeat and fold ids. Fold assignments come from the ``split`` stream
    (index 1, folded with the repeat), and repeat ``r`` trains with index ``1000 + r`` of every
    finetuning stream (independent of the main design's replicates)."""
    v = cfg.variance
    split = keys_lib.stream(root, "split", 1)
    if v.cv == "bootstrap632":
        boot = data_lib.bootstrap632_indices(n, v.cv_bootstraps, key=split)
        reps, folds = np.arange(v.cv_bootstraps), np.zeros(v.cv_bootstraps, np.int32)
        train_index, mask = np.asarray(boot.in_bag), np.asarray(boot.oob_mask)
        used = n
    else:
        k = n if v.cv == "loo" else int(v.cv_folds)
        repeats = 1 if v.cv == "loo" else int(v.cv_repeats)
        # k-fold over k * floor(n / k) examples (equal training-set shapes: one program); the
        # n mod k examples left out are the last of a keyed permutation, and the same in every repeat.
        used = k * (n // k)
        keep = np.arange(n) if used == n else np.sort(np.asarray(jax.random.permutation(split, n))[:used])
        train_index, mask, reps, folds = [], [], [], []
        for r in range(repeats):
            f = data_lib.loo_indices(used) if v.cv == "loo" else \
                data_lib.kfold_indices(used, k, key=jax.random.fold_in(split, 1 + r))
            ti, tm = keep[np.asarray(f.train_index)], np.asarray(f.test_mask)
            full_mask = np.zeros((k, n), bool)
            full_mask[:, keep] = tm
            train_index.append(ti), mask.append(full_mask)
            reps.append(np.full(k, r)), folds.append(np.arange(k))
        train_index, mask = np.concatenate(train_index), np.concatenate(mask)
        reps, folds = np.concatenate(reps), np.concatenate(folds)
    idx = (1000 + reps).astype(np.int32)
    cols = {"pretrain": np.zeros_like(idx), **{s: idx.copy() for s in keys_lib.FINETUNE_STREAMS},
            "train_index": train_index.astype(np.int32)}
    return {"columns": cols, "mask": mask, "repeat": reps.astype(np.int32), "fold": folds.astype(np.int32),
            "examples_used": int(used)}


def cv_estimates(plan: dict, train_correct: np.ndarray, *, method: str, apparent_accuracy: float | None,
                 test_accuracy: float, alpha: float) -> dict:
    """Cross-validated accuracy from held-out predictions ``train_correct[R, n]`` (bool)."""
    mask = plan["mask"]
    c = np.asarray(train_correct, np.float64)
    held = np.where(mask, c, np.nan)
    fold_acc = np.nansum(held, axis=1) / mask.sum(axis=1)
    out = {"method": method, "num_models": int(mask.shape[0]), "examples_used": plan["examples_used"],
           "fold_accuracy": fold_acc.tolist(), "test_accuracy_of_full_models": test_accuracy}
    if method == "bootstrap632":
        # Efron's leave-one-out bootstrap Err(1): each example's error averaged over the
        # resamples that left it out, then over examples that were left out at least once.
        counts = mask.sum(axis=0)
        seen = counts > 0
        per_example = np.nansum(held, axis=0)[seen] / counts[seen]
        oob = float(per_example.mean())
        out.update({"oob_accuracy": oob, "examples_out_of_bag": int(seen.sum()),
                    "apparent_accuracy": apparent_accuracy})
        if apparent_accuracy is not None:
            out["estimate"] = 0.368 * apparent_accuracy + 0.632 * oob
            out["formula"] = ("acc_.632 = 0.368 * apparent accuracy (models trained on all n, on the training set) "
                              "+ 0.632 * leave-one-out bootstrap accuracy (Efron 1983)")
        return out
    per_repeat = []
    for r in np.unique(plan["repeat"]):
        rows = plan["repeat"] == r
        per_repeat.append(float(np.nansum(held[rows]) / mask[rows].sum()))
    k = int((plan["repeat"] == plan["repeat"][0]).sum())
    est = float(np.mean(per_repeat))
    # The naive SE treats the k fold accuracies as independent; they are not (the training sets
    # overlap), so it is known to be optimistic (Bengio & Grandvalet 2004): reported, labelled.
    naive_se = float(np.std(fold_acc, ddof=1) / np.sqrt(fold_acc.size)) if fold_acc.size > 1 else float("nan")
    out.update({"estimate": est, "per_repeat": per_repeat, "folds": k,
                "std_over_repeats": float(np.std(per_repeat, ddof=1)) if len(per_repeat) > 1 else None,
                "naive_se": naive_se,
                "naive_se_note": "std of fold accuracies / sqrt(#folds): optimistic, folds share training data"})
    z = NormalDist().inv_cdf(1 - alpha / 2)
    out["naive_ci"] = [est - z * naive_se, est + z * naive_se]
    return out


# -- the study -------------------------------------------------------------------------------


def compute(cfg, log) -> base.Output:
    v = cfg.variance
    ds = base.load_task(cfg)
    base.check_batch_sizes(cfg, ds.num_train)
    root = keys_lib.root_key(cfg.seed)
    model = models.build(cfg.model, ds.feature_shape, ds.num_classes)
    task = base.task_arrays(ds)
    des = make_design(cfg)
    effects = des.check_effects(list(v.effects)) if v.effects else des.identifiable()
    cols = replicate_columns(des)
    p = int(cols["pretrain"].max()) + 1
    pre = encoders = None
    if cfg.pretrain.enabled:
        log(f"pretraining {p} model(s) on {ds.num_train} unlabeled examples ...")
        pre = base.pretrain_sweep(cfg, model, task["x_train"], root, num_seeds=p)
        encoders = pre["encoder"]
    plan = cv_plan(cfg, root, ds.num_train) if v.cv != "none" else None
    fin, cv = {}, {}
    summary: dict[str, Any] = {
        "study": "variance",
        "dataset": {"name": ds.name, "version": ds.version, "task": cfg.dataset.task, "num_train": ds.num_train,
                    "num_test": ds.num_test, "num_classes": ds.num_classes},
        "design": {"kind": des.kind, "factors": list(des.factors), "shape": list(des.shape),
                   "num_replicates": des.num_replicates, "identifiable": des.identifiable(), "reported": effects},
        "chance_accuracy": float(np.max(np.bincount(ds.y_test, minlength=ds.num_classes)) / ds.num_test),
        "modes": {},
    }
    for mi, mode in enumerate(cfg.finetune.modes):
        log(f"finetuning ({mode}): {des} in chunks of {cfg.chunk_width} ...")
        fin[mode] = res = base.finetune_sweep(cfg, model, task, encoders, root, mode, cols,
                                              eval_train=v.cv == "bootstrap632")
        bad = diverged_rows(res, cols["pretrain"], pre)
        ms: dict[str, Any] = {"excluded": {
            "replicates": np.flatnonzero(bad).tolist(),
            "rule": (f"{base.DIVERGENCE_RULE} (also: any non-finite test metric); in the variance components "
                     f"such a replicate is a missing cell, handled by variance.missing={v.missing!r}"),
        }}
        for ki, metric in enumerate(v.metrics):
            scores = np.where(bad, np.nan, np.asarray(res["metrics"][metric], np.float64))
            comp = components(scores, des, key=_key(root, 0, mi, ki), v=v)
            comp["per_replicate"] = base.t_summary(scores[~bad])
            if des.kind != "ofat":
                comp["power"] = seeds_for_power(comp["total_variance"], delta=v.power_delta, power=v.power,
                                                alpha=v.alpha)
            ms[metric] = comp
        correct = np.asarray(res["predictions"]["correct"])[~bad]
        if correct.shape[0] >= 2:
            ms["testset_noise"] = testset_noise_lib.testset_noise(correct)._asdict()
        ms["best_of_k"] = {m: best_of_k(np.asarray(res["metrics"][m])[~bad], key=_key(root, 1, mi, ki), v=v,
                                        higher_is_better=HIGHER_IS_BETTER[m]) for ki, m in enumerate(v.metrics)}
        if plan is not None:
            log(f"cross-validation ({mode}, {v.cv}): {plan['mask'].shape[0]} models ...")
            cv[mode] = cres = base.finetune_sweep(cfg, model, task, encoders, root, mode, plan["columns"],
                                                  eval_train=True)
            apparent = None
            if "train_predictions" in res:
                apparent = float(np.asarray(res["train_predictions"]["correct"])[~bad].mean())
            ms["cv"] = cv_estimates(plan, np.asarray(cres["train_predictions"]["correct"]), method=v.cv,
                                    apparent_accuracy=apparent, test_accuracy=float(np.mean(
                                        np.asarray(res["metrics"]["accuracy"])[~bad])), alpha=v.alpha)
        summary["modes"][mode] = ms
    if pre is not None:
        summary["pretrain_loss"] = base.t_summary(pre["loss"][:, -1])
    sweeps = {f"finetune_{mode}": (r["train"], cols) for mode, r in fin.items()}
    sweeps.update({f"cv_{mode}": (r["train"], {k: c for k, c in plan["columns"].items() if k != "train_index"})
                   for mode, r in cv.items()})
    if pre is not None:
        sweeps["pretrain"] = (pre, None)
    summary["divergence"] = base.divergence(sweeps)
    fingerprints = {
        "pretrain_params": provenance.fingerprint(pre) if pre is not None else None,
        **{f"{mode}_{part}": provenance.fingerprint(r[part]) for mode, r in fin.items()
           for part in ("params", "metrics", "predictions")},
        **{f"cv_{mode}_predictions": provenance.fingerprint(r["train_predictions"]) for mode, r in cv.items()},
    }
    rows = replicate_rows(cfg, ds.num_train, cols, fin)
    files = {"replicates.csv": partial(results.write_csv, rows=rows, columns=REPLICATE_COLUMNS)}
    for mode, r in fin.items():
        files[f"correct_{mode}.npz"] = lambda path, c=np.asarray(r["predictions"]["correct"]): \
            results.write_npz(path, correct=c)
    manifest = base.provenance_manifest(cfg, root, ds, cols, fingerprints)
    manifest["design_kind"] = des.kind
    return base.Output(summary=summary, manifest=manifest, files=files,
                       extra={"design": des, "pretrain": pre, "finetune": fin, "cv": cv})


REPLICATE_COLUMNS = ("replicate", "pretrain", "init", "data", "dropout", "mode", "diverged_step", "metric", "value")


def replicate_rows(cfg, num_train: int, cols, fin) -> list[dict]:
    rows = []
    for mode, res in fin.items():
        steps = res["train"].get("diverged_step", np.full(cols["init"].shape[0], -1))
        for r in range(cols["init"].shape[0]):
            for name in METRICS:
                rows.append({"replicate": r, **{k: int(cols[k][r]) for k in ("pretrain", "init", "data", "dropout")},
                             "mode": mode, "diverged_step": int(steps[r]), "metric": name,
                             "value": float(res["metrics"][name][r])})
    return rows


def run(config, *, workdir: str | Path | None = None, log=print, progress=None, report: bool = True) -> StudyResult:
    """Runs the study; writes config.json, manifest.json, replicates.csv, summary.json,
    correct_<mode>.npz (the replicate x test-example correctness matrix) and report.md into
    ``workdir`` (resuming from its checkpoints; see ``base.run_in_workdir``)."""
    out = base.run_in_workdir("variance", config, compute, workdir=workdir, log=log, progress=progress,
                              report=report)
    e = out.extra
    return StudyResult(config=config, design=e["design"], pretrain=e["pretrain"], finetune=e["finetune"],
                       summary=out.summary, manifest=out.manifest)


def format_summary(summary: dict) -> str:
    """The table printed at the end: component, estimate, CI, share; then noise, best-of-k, power, CV."""
    d, des = summary["dataset"], summary["design"]
    lines = [f"{d['name']} ({d['task']}): {d['num_train']} train / {d['num_test']} test; "
             f"{des['kind']} design {' x '.join(f'{f}={n}' for f, n in zip(des['factors'], des['shape']))} "
             f"= {des['num_replicates']} replicates; chance accuracy {summary['chance_accuracy']:.3f}"]
    for mode, ms in summary["modes"].items():
        if ms["excluded"]["replicates"]:
            lines.append(f"[{mode}] excluded replicates {ms['excluded']['replicates']}: {ms['excluded']['rule']}")
        for metric, comp in ms.items():
            if not isinstance(comp, dict) or "components" not in comp:
                continue
            pr = comp["per_replicate"]
            lines.append(f"\n[{mode}] {metric}: mean {pr['mean']:.4f}, sd {pr['std']:.4f} over {pr['n']} replicates")
            lines.append(f"  {'component':<22} {'variance':>11} {'sd':>9} {int(round(100 * comp['ci_level']))}% CI"
                         f"{'':>19} {'share':>6}")
            for c in comp["components"]:
                share = "" if c["share"] is None else f"{c['share']:6.1%}"
                flag = "  (negative: set to 0)" if c["negative"] else ""
                lines.append(f"  {c['component']:<22} {c['estimate']:>11.3g} {c['std']:>9.4f} "
                             f"[{c['ci'][0]:>10.3g}, {c['ci'][1]:>10.3g}] {share:>6}{flag}")
            lines.append(f"  method: {comp['method']}")
            if "power" in comp:
                pw = comp["power"]
                lines.append(f"  seeds per arm to detect a difference of {pw['delta']} with power {pw['target_power']}: "
                             f"{pw['seeds_per_arm']}")
        if "testset_noise" in ms:
            lines.append(f"  test-set noise: {ms['testset_noise']['summary']}")
        bk = ms["best_of_k"].get("accuracy")
        if bk:
            w = bk["with_replacement"]
            pick = [i for i, k in enumerate(w["k"]) if k in (1, 4, 16, 64)]
            lines.append("  expected best-of-k accuracy: " + ", ".join(
                f"k={w['k'][i]}: {w['mean'][i]:.4f} [{w['ci_low'][i]:.4f}, {w['ci_high'][i]:.4f}]" for i in pick))
        if "cv" in ms:
            c = ms["cv"]
            est = c.get("estimate")
            lines.append(f"  {c['method']} CV accuracy ({c['num_models']} models): "
                         + (f"{est:.4f}" if est is not None else "n/a")
                         + f"; test accuracy of models trained on all data {c['test_accuracy_of_full_models']:.4f}")
    return "\n".join(lines)


# -- report ----------------------------------------------------------------------------------


def report(workdir: str | Path) -> list[str]:
    """Writes ``variance_components.png`` and ``best_of_k.png`` from the saved summary; returns
    markdown lines (tables of components)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workdir = Path(workdir)
    summary = results.read_json(workdir / "summary.json")
    modes = summary["modes"]
    metrics = [m for m in next(iter(modes.values())) if isinstance(next(iter(modes.values()))[m], dict)
               and "components" in next(iter(modes.values()))[m]]
    lines = ["## Variance components", ""]
    fig, axes = plt.subplots(len(modes), len(metrics), figsize=(5.5 * len(metrics), 3.2 * len(modes)), squeeze=False)
    for i, (mode, ms) in enumerate(modes.items()):
        for j, metric in enumerate(metrics):
            comp = ms[metric]
            names = [c["component"] for c in comp["components"]]
            sd = np.array([c["std"] for c in comp["components"]])
            lo = np.sqrt(np.maximum([c["ci"][0] for c in comp["components"]], 0))
            hi = np.sqrt(np.maximum([c["ci"][1] for c in comp["components"]], 0))
            ax = axes[i, j]
            y = np.arange(len(names))
            ax.barh(y, sd, color="tab:blue", alpha=0.7, label="estimate (sd)")
            ax.errorbar(sd, y, xerr=[sd - np.minimum(lo, sd), np.maximum(hi, sd) - sd], fmt="none", ecolor="k",
                        capsize=3, label=f"{int(round(100 * comp['ci_level']))}% CI")
            ax.set_yticks(y, names)
            ax.invert_yaxis()
            ax.set_xlabel(f"standard deviation of {metric} ({'fraction' if metric != 'nll' else 'nats'})")
            ax.set_title(f"{mode} finetuning: {metric}")
            ax.legend(loc="best", fontsize=8)
            lines += [f"### {mode}: {metric}", "", "| component | variance | sd | CI | share |", "|---|---|---|---|---|"]
            for c in comp["components"]:
                share = "" if c["share"] is None else f"{c['share']:.1%}"
                lines.append(f"| {c['component']}{' (negative, set to 0)' if c['negative'] else ''} | "
                             f"{c['estimate']:.3g} | {c['std']:.4f} | [{c['ci'][0]:.3g}, {c['ci'][1]:.3g}] | {share} |")
            lines += ["", f"Method: {comp['method']}", ""]
        if "testset_noise" in ms:
            lines += [f"Test-set noise ({mode}): {ms['testset_noise']['summary']}", ""]
    fig.tight_layout()
    fig.savefig(workdir / "variance_components.png", dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 3.5), squeeze=False)
    for i, (mode, ms) in enumerate(modes.items()):
        bk = ms["best_of_k"].get("accuracy") or next(iter(ms["best_of_k"].values()))
        ax = axes[0, i]
        for method, color in (("with_replacement", "tab:blue"), ("without_replacement", "tab:orange")):
            c = bk[method]
            ax.plot(c["k"], c["mean"], marker="o", ms=3, color=color, label=method.replace("_", " "))
            ax.fill_between(c["k"], c["ci_low"], c["ci_high"], color=color, alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("number of seeds k (log scale)")
        ax.set_ylabel("expected best-of-k test accuracy")
        ax.set_title(f"{mode} finetuning")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(workdir / "best_of_k.png", dpi=110)
    plt.close(fig)
    lines += ["![variance components](variance_components.png)", "", "![expected best-of-k](best_of_k.png)", ""]
    return lines
