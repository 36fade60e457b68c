"""The scaling study: test performance vs training-set size, fitted curves, saturation.

Sweep. The sizes ``n_1 < ... < n_S`` are a geometric grid (``config.scaling``: ``min_size``,
``max_size``, ``num_sizes``, rounded to integers). One keyed permutation of the train split
(stream ``split``, index 0; class-balanced prefixes with ``balanced=True``) orders the examples
and size ``n`` trains on its first ``n``: the subsets are nested, and the order is saved
(``subsets.npz``). Every size finetunes the same replicates -- seed ``s`` uses index ``s`` of
the ``init``, ``data`` and ``dropout`` streams at every size (same initial weights), so a seed's
effect is shared across sizes, which the joint bootstrap keeps. Each size is one chunked
``jit(vmap)`` sweep over seeds; sizes differ in shape, so each is its own program (no padding:
masked examples would still cost compute, and a masked batch is a different batch).

Steps policy (recorded per size in the summary, the manifest and ``replicates.csv``):

* ``"epochs"``: ``finetune.epochs`` epochs at every size (steps grow with ``n``), and at least
  ``scaling.min_steps`` steps (``max(epochs, ceil(min_steps / spe))`` epochs of
  ``spe = n // batch_size`` steps), so the smallest sizes are not cut off after a few updates;
* ``"steps"``: about ``scaling.steps`` optimizer steps at every size (``ceil(steps / spe)`` whole
  epochs, at least one): the same budget everywhere, so the largest sizes see few epochs.

The policy can decide the verdict. Measured (MLP 256-256 on MNIST-1D, 8 seeds): with a fixed
2,000 steps the error at n = 16,000 was 0.237 and the curve looked saturated; 40 epochs (10,000
steps) at the same n gave 0.117. A flattening curve whose largest sizes are still underfit is
the budget, not the data: the summary's ``underfit_check`` compares the final train loss with the
test NLL at every size.

Pretraining (``pretrain.enabled``): one model, pretrained once on the *whole* unlabeled train
split, shared by every size; the x axis is then the number of labeled examples.

Analysis, per finetuning mode, of the curve metric (``error = 1 - accuracy`` or ``nll`` on the
test split) ``[seeds, S]`` -- :func:`analyse_curve`, usable on any such table:

1. exclusion (explicit): a replicate whose training diverged at any size (``base.DIVERGENCE_RULE``,
   or its pretrained encoder's), or whose metric is not finite at any size, is dropped at every
   size (the joint bootstrap needs whole rows) and listed;
2. family choice by rolling-origin backtest (:func:`jaxeval.curves.backtest`);
3. joint seed bootstrap of the chosen family (:func:`jaxeval.curves.bootstrap_curve`): parameter
   CIs, a simultaneous band for the fitted curve and for the empirical mean curve, extrapolated
   values with CIs (conditional on the chosen family);
4. saturation verdict (:func:`jaxeval.curves.saturation`).

Files: ``replicates.csv`` (replicate x mode x size x metric), ``summary.json``, ``subsets.npz``
and, from those files only, ``scaling.png`` (:func:`report`, called by the report of
``run_in_workdir``). Sweeps checkpoint as ``finetune_<mode>_n<size>`` (and ``pretrain``), so a
killed run resumes from its finished chunks.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import ml_collections
import numpy as np

from jaxeval import config as config_lib
from jaxeval import data as data_lib
from jaxeval import keys as keys_lib
from jaxeval import models, provenance, results
from jaxeval.curves import CURVE_FAMILIES, backtest, bootstrap_curve, get_family, make_objective, saturation
from jaxeval.curves.fit import json_num
from jaxeval.metrics import METRICS
from jaxeval.studies import base
from jaxeval.train.finetune import MODES

STEPS_POLICIES = ("steps", "epochs")
CURVE_METRICS = ("error", "nll")
SPACES = ("auto", "linear", "log")
LOSSES = ("squared", "huber")
ROW_METRICS = METRICS + ("error", "train_loss")
REPLICATE_COLUMNS = ("replicate", "pretrain", "init", "data", "dropout", "mode", "task", "data_size", "epochs",
                     "steps", "metric", "value", "diverged_step")
METRIC_LABELS = {"error": "test error (1 - accuracy, fraction)", "nll": "test NLL (nats per example)"}

CONFIG_GROUP = {
    "min_size": 128,  # smallest training-set size
    "max_size": 0,  # largest; 0 = the whole train split
    "num_sizes": 8,  # points of the geometric grid (distinct after rounding)
    "balanced": False,  # class-balanced prefixes of the permutation
    "steps_policy": "epochs",  # "epochs" (finetune.epochs, >= min_steps) or "steps" (same budget everywhere)
    "min_steps": 0,  # steps_policy="epochs": at least this many steps per size (0 = no floor)
    "steps": 2000,  # steps_policy="steps": target optimizer steps per size
    "metric": "error",  # the curve: "error" (1 - accuracy) or "nll"
    "space": "auto",  # fit space: "auto" (linear for error, log for nll), "linear" or "log"
    "loss": "squared",  # fit loss: "squared" or "huber"
    "huber_delta": 1e-3,  # Huber threshold, in the fit space
    "families": CURVE_FAMILIES,  # candidates of the backtest
    "min_train": 0,  # smallest backtest origin (training sizes); 0 = max(4, most parameters)
    "num_resamples": 200,  # joint seed bootstrap resamples
    "level": 0.95,  # of every interval, band and the saturation verdict
    "epsilon": 0.005,  # the smallest gain from doubling n worth having, in metric units
    "extrapolate": (2.0, 10.0),  # report the curve at these multiples of the largest size
}


def check_config(cfg) -> None:
    """Checks ``config.scaling`` and what the study needs of the common fields."""
    s = cfg.scaling
    check = config_lib.check
    for f in ("min_size", "num_sizes", "num_resamples"):
        config_lib.check_positive_int(cfg, f"scaling.{f}")
    check(isinstance(s.max_size, int) and s.max_size >= 0, "scaling.max_size", s.max_size,
          "an integer >= 0 (0 = the whole train split)")
    check(s.max_size == 0 or s.max_size > s.min_size, "scaling.max_size", s.max_size,
          f"0 or larger than scaling.min_size={s.min_size}")
    check(s.min_size >= cfg.finetune.batch_size, "scaling.min_size", s.min_size,
          f"must be >= finetune.batch_size={cfg.finetune.batch_size} (every step takes a full batch)")
    check(s.steps_policy in STEPS_POLICIES, "scaling.steps_policy", s.steps_policy, f"one of {STEPS_POLICIES}")
    if s.steps_policy == "steps":
        config_lib.check_positive_int(cfg, "scaling.steps")
    check(isinstance(s.min_steps, int) and s.min_steps >= 0, "scaling.min_steps", s.min_steps,
          "an integer >= 0 (0 = no floor)")
    check(s.metric in CURVE_METRICS, "scaling.metric", s.metric, f"one of {CURVE_METRICS}")
    check(s.space in SPACES, "scaling.space", s.space, f"one of {SPACES}")
    check(s.loss in LOSSES, "scaling.loss", s.loss, f"one of {LOSSES}")
    check(isinstance(s.huber_delta, (int, float)) and math.isfinite(s.huber_delta) and s.huber_delta > 0,
          "scaling.huber_delta", s.huber_delta, "a positive finite number")
    fams = tuple(s.families)
    check(len(fams) > 0 and len(set(fams)) == len(fams) and all(f in CURVE_FAMILIES for f in fams),
          "scaling.families", fams, f"a non-empty tuple of distinct families from {CURVE_FAMILIES}")
    most = max((get_family(f).num_params for f in fams if not get_family(f).last_value), default=1)
    check(isinstance(s.min_train, int) and s.min_train >= 0, "scaling.min_train", s.min_train,
          "an integer >= 0 (0 = max(4, the largest parameter count))")
    min_train = s.min_train or max(4, most)
    check(s.min_train == 0 or s.min_train >= most, "scaling.min_train", s.min_train,
          f"0 or >= {most}, the largest parameter count of scaling.families")
    check(s.num_sizes >= min_train + 1, "scaling.num_sizes", s.num_sizes,
          f"must be >= {min_train + 1}: the backtest fits the smallest {min_train} sizes (scaling.min_train, "
          f"or max(4, the largest parameter count of scaling.families = {most})) and needs a larger one to score")
    check(s.num_resamples >= 2, "scaling.num_resamples", s.num_resamples, "an integer >= 2")
    check(isinstance(s.level, float) and 0.5 < s.level < 1, "scaling.level", s.level, "a number in (0.5, 1)")
    check(isinstance(s.epsilon, (int, float)) and math.isfinite(s.epsilon) and s.epsilon > 0, "scaling.epsilon",
          s.epsilon, "a positive number (the smallest gain from doubling n worth having, in metric units)")
    ext = tuple(s.extrapolate)
    check(all(isinstance(v, (int, float)) and math.isfinite(v) and v > 1 for v in ext), "scaling.extrapolate", ext,
          "a tuple of multiples of the largest size, each > 1")
    check(cfg.num_seeds >= 2, "num_seeds", cfg.num_seeds, "at least 2 for the seed bootstrap of the scaling study")
    check(cfg.dataset.train_size == 0, "dataset.train_size", cfg.dataset.train_size,
          "must be 0 in the scaling study (the sizes come from scaling.min_size/max_size/num_sizes)")
    check(not cfg.pretrain.enabled or cfg.pretrain.num_seeds == 1, "pretrain.num_seeds", cfg.pretrain.num_seeds,
          "must be 1 in the scaling study (the bootstrap resamples finetuning seeds; vary pretraining seeds in the "
          "variance study)")


def size_grid(min_size: int, max_size: int, num_sizes: int) -> np.ndarray:
    """``int64[S]``: ``num_sizes`` geometric points from ``min_size`` to ``max_size``, rounded."""
    sizes = np.unique(np.round(np.geomspace(min_size, max_size, num_sizes)).astype(np.int64))
    if sizes.size != num_sizes:
        raise ValueError(f"config.scaling.num_sizes={num_sizes} gives only {sizes.size} distinct integer sizes from "
                         f"{min_size} to {max_size}; use fewer sizes or a wider range")
    return sizes


def steps_plan(cfg, sizes) -> list[dict]:
    """Per size: ``n``, ``epochs``, ``steps_per_epoch``, ``steps`` under the config's policy."""
    bs = cfg.finetune.batch_size
    plan = []
    for n in sizes:
        spe = int(n) // bs
        if cfg.scaling.steps_policy == "epochs":
            epochs = max(cfg.finetune.epochs, -(-cfg.scaling.min_steps // spe))
        else:
            epochs = -(-cfg.scaling.steps // spe)
        plan.append({"n": int(n), "epochs": int(epochs), "steps_per_epoch": spe, "steps": int(epochs * spe)})
    return plan


def fit_objective(cfg):
    s = cfg.scaling
    space = s.space if s.space != "auto" else ("log" if s.metric == "nll" else "linear")
    return make_objective(s.loss, delta=s.huber_delta, space=space, reduction="sum")


# ----------------------------------------------------------------------------- analysis


class CurveAnalysis(NamedTuple):
    """Backtest, bootstrap, saturation and extrapolation of one ``[seeds, S]`` table."""

    sizes: np.ndarray
    scores: np.ndarray  # [seeds_used, S]
    backtest: Any  # jaxeval.curves.Backtest
    bootstrap: Any  # jaxeval.curves.CurveBootstrap of the chosen family
    saturation: Any  # jaxeval.curves.Saturation
    extrapolation: list[dict]

    def summary(self) -> dict:
        b = self.bootstrap
        fit = {**b.summary(), "x_eval": [float(v) for v in b.x_eval], "curve": [json_num(v) for v in b.curve],
               "band_lo": [json_num(v) for v in b.band_lo], "band_hi": [json_num(v) for v in b.band_hi],
               "conditional_on": f"the chosen family {b.family!r} (family choice is not resampled)"}
        sat = {**self.saturation.summary(), "family": b.family,
               "reason": f"{b.family} (chosen by backtest): {self.saturation.reason}"}
        return {
            "selection": self.backtest.summary(),
            "fits": {f: fit_.summary(0) for f, fit_ in self.backtest.fits.items()},
            "fit": fit,
            "extrapolation": self.extrapolation,
            "saturation": sat,
        }


def analyse_curve(sizes, scores, *, key, families: Sequence[str] = CURVE_FAMILIES, objective=None,
                  min_train: int | None = None, num_resamples: int = 200, level: float = 0.95,
                  epsilon: float = 0.005, higher_is_better: bool = False, extrapolate: Sequence[float] = (2.0, 10.0),
                  ) -> CurveAnalysis:
    """Backtest the families, bootstrap the chosen one over seeds, and give the saturation verdict.

    ``sizes [S]``, ``scores [seeds, S]`` (finite); ``key`` for the joint seed bootstrap;
    ``extrapolate``: multiples of ``max(sizes)`` to predict: the chosen family's estimate with its
    bootstrap CI (conditional on the family), the backtest-weighted average of every family's final
    fit (``averaged``) and each family's prediction (``by_family``): their spread is the model
    uncertainty the CI leaves out.
    """
    sizes = np.asarray(sizes, float)
    scores = np.asarray(scores, float)
    bt = backtest(sizes, scores, families=families, objective=objective, min_train=min_train)
    nmax = float(sizes.max())
    xs = nmax * np.asarray(extrapolate, float)
    x_eval = np.geomspace(sizes.min(), nmax * max([1.0, *extrapolate]), 60)
    boot = bootstrap_curve(bt.chosen, sizes, scores, key=key, num_resamples=num_resamples, level=level,
                           objective=objective, x_eval=x_eval)
    sat = saturation(boot, epsilon=epsilon, higher_is_better=higher_is_better, level=level)
    extrap = []
    if xs.size:
        est, lo, hi = boot.extrapolate(xs)
        with np.errstate(all="ignore"):
            by_family = {f: bt.fits[f].predict(xs, row=0) for f in bt.families}
            averaged = bt.predict(xs, average=True)
        extrap = [{"n": float(x), "factor": float(f), "estimate": json_num(e), "ci": [json_num(a), json_num(b)],
                   "averaged": json_num(averaged[i]),
                   "by_family": {fam: json_num(v[i]) for fam, v in by_family.items()}}
                  for i, (x, f, e, a, b) in enumerate(zip(xs, extrapolate, est, lo, hi))]
    return CurveAnalysis(sizes=sizes, scores=scores, backtest=bt, bootstrap=boot, saturation=sat,
                         extrapolation=extrap)


def curve_metric(metrics: dict, metric: str) -> np.ndarray:
    """``[R]`` values of the curve metric (``error = 1 - accuracy``, or a metric) in float64."""
    if metric == "error":
        return 1.0 - np.asarray(metrics["accuracy"], np.float64)
    return np.asarray(metrics[metric], np.float64)


# ----------------------------------------------------------------------------- the study


@dataclasses.dataclass
class ScalingResult:
    config: Any
    sizes: np.ndarray  # [S]
    order: np.ndarray  # int32[max(sizes)]: size n trains on order[:n]
    design: dict[str, np.ndarray]
    plan: list[dict]  # steps per size
    values: dict[str, dict[str, np.ndarray]]  # mode -> metric -> [R, S]
    analyses: dict[str, CurveAnalysis]  # mode -> analysis of the curve metric
    summary: dict
    manifest: dict


def design(cfg) -> dict[str, np.ndarray]:
    """Replicate s: index s of every finetuning stream, pretrained model 0 (or none)."""
    s = keys_lib.replicate_indices(cfg.num_seeds)["init"]
    return {"pretrain": np.zeros_like(s), "init": s, "data": s.copy(), "dropout": s.copy()}


def _with_epochs(cfg, epochs: int):
    c = ml_collections.ConfigDict(cfg.to_dict())
    c.finetune.epochs = int(epochs)
    return c


def compute(cfg, log) -> base.Output:
    ds = base.load_task(cfg)
    base.check_batch_sizes(cfg, ds.num_train)
    s = cfg.scaling
    max_size = s.max_size or ds.num_train
    if max_size > ds.num_train:
        more = " (raise config.dataset.num_train)" if cfg.dataset.name in data_lib.GENERATED else ""
        raise ValueError(f"config.scaling.max_size={max_size} is larger than the training set of "
                         f"{cfg.dataset.name!r} ({ds.num_train} examples){more}")
    if s.min_size >= max_size:
        raise ValueError(f"config.scaling.min_size={s.min_size} must be smaller than the largest size {max_size}")
    sizes = size_grid(s.min_size, max_size, s.num_sizes)
    root = keys_lib.root_key(cfg.seed)
    order = np.asarray(data_lib.subset_indices(
        ds.num_train, int(max_size), key=keys_lib.stream(root, "split", 0),
        labels=ds.y_train if s.balanced else None, num_classes=ds.num_classes), np.int32)
    plan = steps_plan(cfg, sizes)
    model = models.build(cfg.model, ds.feature_shape, ds.num_classes)
    task = base.task_arrays(ds)
    pre = encoders = None
    if cfg.pretrain.enabled:
        log(f"pretraining 1 model on all {ds.num_train} unlabeled training examples ...")
        pre = base.pretrain_sweep(cfg, model, task["x_train"], root, name="pretrain")
        encoders = pre["encoder"]
    des = design(cfg)
    R = des["init"].shape[0]
    modes = tuple(cfg.finetune.modes)
    values = {m: {k: np.full((R, sizes.size), np.nan) for k in ROW_METRICS} for m in modes}
    diverged = {m: np.full((R, sizes.size), -1, np.int64) for m in modes}  # first non-finite step, -1 if none
    sweeps = {} if pre is None else {"pretrain": (pre, {"pretrain": np.arange(pre["loss"].shape[0])})}
    fingerprints = {"subset_order": provenance.fingerprint(order),
                    "pretrain_params": provenance.fingerprint(pre) if pre is not None else None}
    for j, p in enumerate(plan):
        n = p["n"]
        idx = order[:n]
        sub = {"x_train": task["x_train"][idx], "y_train": task["y_train"][idx],
               "x_test": task["x_test"], "y_test": task["y_test"]}
        cfg_n = _with_epochs(cfg, p["epochs"])
        for mode in modes:
            log(f"n={n}: finetuning ({mode}) {R} seeds, {p['epochs']} epochs = {p['steps']} steps ...")
            res = base.finetune_sweep(cfg_n, model, sub, encoders, root, mode, des, name=f"finetune_{mode}_n{n}")
            loss = np.asarray(res["train"]["loss"], np.float64)[:, -1]
            dstep = res["train"].get("diverged_step")
            diverged[mode][:, j] = -1 if dstep is None else np.asarray(dstep)
            sweeps[f"finetune_{mode}_n{n}"] = ({"diverged_step": diverged[mode][:, j]}, des)
            for k in METRICS:
                values[mode][k][:, j] = np.asarray(res["metrics"][k], np.float64)
            values[mode]["error"][:, j] = curve_metric(res["metrics"], "error")
            values[mode]["train_loss"][:, j] = loss
            for part in ("params", "metrics", "predictions"):
                fingerprints[f"{mode}_n{n}_{part}"] = provenance.fingerprint(res[part])

    objective = fit_objective(cfg)
    mode_summaries, analyses = {}, {}
    for mode in modes:
        y = values[mode][s.metric]
        bad = np.any(diverged[mode] >= 0, axis=1) | ~np.all(np.isfinite(y), axis=1)
        if pre is not None:
            bad |= base.diverged_mask(pre)[np.asarray(des["pretrain"])]
        used = np.flatnonzero(~bad)
        if used.size < 2:
            raise ValueError(f"mode {mode!r}: only {used.size} of {R} replicates trained without diverging and have a "
                             f"finite {s.metric} at every size (excluded: {np.flatnonzero(bad).tolist()}); the seed "
                             "bootstrap needs at least 2")
        log(f"fitting {s.metric} curves ({mode}): backtest of {len(s.families)} families, "
            f"{s.num_resamples} bootstrap refits ...")
        a = analyse_curve(sizes, y[used], key=keys_lib.stream(root, "bootstrap", MODES.index(mode)),
                          families=tuple(s.families), objective=objective, min_train=s.min_train or None,
                          num_resamples=s.num_resamples, level=s.level, epsilon=s.epsilon, higher_is_better=False,
                          extrapolate=tuple(s.extrapolate))
        analyses[mode] = a
        yu = y[used]
        train_loss = values[mode]["train_loss"][used].mean(0)
        test_nll = values[mode]["nll"][used].mean(0)
        mode_summaries[mode] = {
            "curve": {
                "sizes": [int(n) for n in sizes],
                "mean": yu.mean(0).tolist(),
                "std": yu.std(0, ddof=1).tolist(),
                "band_lo": [json_num(v) for v in a.bootstrap.mean_band_lo],
                "band_hi": [json_num(v) for v in a.bootstrap.mean_band_hi],
                "band": (f"simultaneous {s.level:.0%} sup-t band of the mean over seeds (joint seed bootstrap, "
                         "no model)"),
            },
            "replicates_used": used.tolist(),
            "replicates_excluded": np.flatnonzero(bad).tolist(),
            "exclusion_rule": f"{base.DIVERGENCE_RULE}; here: a replicate that diverged at any size, or whose "
                              f"{s.metric} is not finite at any size, is excluded at every size (the joint seed "
                              "bootstrap resamples whole rows)",
            "underfit_check": {
                "train_loss": train_loss.tolist(), "test_nll": test_nll.tolist(),
                "underfit": (train_loss >= test_nll).tolist(),
                "rule": "underfit where the final-epoch mean train loss (dropout on) >= the test NLL: the model "
                        "fits its training set no better than unseen data, so at the largest sizes the step budget "
                        "or the model, not the data, may be what flattens the curve",
            },
            **a.summary(),
        }
    steps_summary = {
        "policy": s.steps_policy,
        "rule": (f"about {s.steps} optimizer steps per size: ceil(steps / (n // batch_size)) whole epochs"
                 if s.steps_policy == "steps" else
                 f"{cfg.finetune.epochs} epochs per size" + (f", at least {s.min_steps} steps: "
                                                            f"max(epochs, ceil(min_steps / (n // batch_size))) epochs"
                                                            if s.min_steps else "")),
        "target_steps": s.steps if s.steps_policy == "steps" else None,
        "min_steps": s.min_steps if s.steps_policy == "epochs" else None,
        "epochs": cfg.finetune.epochs if s.steps_policy == "epochs" else None,
        "batch_size": cfg.finetune.batch_size,
        "per_size": plan,
    }
    summary = {
        "study": "scaling",
        "dataset": {"name": ds.name, "version": ds.version, "task": cfg.dataset.task, "num_train": ds.num_train,
                    "num_test": ds.num_test, "num_classes": ds.num_classes},
        "sizes": [int(n) for n in sizes],
        "num_replicates": int(R),
        "subsets": {"rule": "size n trains on the first n of one keyed permutation of the train split "
                            "(stream 'split', index 0): nested", "balanced": bool(s.balanced),
                    "max_size": int(max_size), "file": "subsets.npz"},
        "steps_policy": steps_summary,
        "pretrain": {"enabled": bool(cfg.pretrain.enabled),
                     **({"on": f"all {ds.num_train} training examples, unlabeled, once",
                         "final_loss": float(np.asarray(pre["loss"])[0, -1])} if pre is not None else {})},
        "metric": s.metric,
        "metric_label": METRIC_LABELS[s.metric],
        "higher_is_better": False,
        "objective": objective.describe(),
        "epsilon": s.epsilon,
        "level": s.level,
        "modes": mode_summaries,
        "divergence": base.divergence(sweeps),
    }
    rows = []
    for mode in modes:
        for r in range(R):
            for j, p in enumerate(plan):
                for k in ROW_METRICS:
                    rows.append({"replicate": r, "pretrain": int(des["pretrain"][r]), "init": int(des["init"][r]),
                                 "data": int(des["data"][r]), "dropout": int(des["dropout"][r]), "mode": mode,
                                 "task": cfg.dataset.task, "data_size": p["n"], "epochs": p["epochs"],
                                 "steps": p["steps"], "metric": k, "value": float(values[mode][k][r, j]),
                                 "diverged_step": int(diverged[mode][r, j])})
    files = {
        "replicates.csv": partial(results.write_csv, rows=rows, columns=REPLICATE_COLUMNS),
        "subsets.npz": lambda path: results.write_npz(path, order=order, sizes=sizes),
    }
    manifest = base.provenance_manifest(cfg, root, ds, des, fingerprints)
    manifest["steps_policy"] = steps_summary
    manifest["sizes"] = [int(n) for n in sizes]
    return base.Output(summary=summary, manifest=manifest, files=files,
                       extra={"sizes": sizes, "order": order, "design": des, "plan": plan, "values": values,
                              "analyses": analyses})


def run(config, *, workdir: str | Path | None = None, log=print, progress=None, report: bool = True) -> ScalingResult:
    """Runs the study; with ``workdir`` writes config.json, manifest.json, replicates.csv,
    summary.json, subsets.npz, checkpoints of every sweep (a rerun resumes) and, with ``report``,
    report.md with ``scaling.png`` made from those files. ``log`` gets progress lines (None =
    quiet); ``progress``: a ``jaxeval.progress.Progress`` (bars)."""
    out = base.run_in_workdir("scaling", config, compute, workdir=workdir, log=log, progress=progress, report=report)
    e = out.extra
    return ScalingResult(config=config, sizes=e["sizes"], order=e["order"], design=e["design"], plan=e["plan"],
                         values=e["values"], analyses=e["analyses"], summary=out.summary, manifest=out.manifest)


# ----------------------------------------------------------------------------- presentation


def _fmt_ci(ci, fmt="{:.4g}"):
    return "[" + ", ".join("n/a" if v is None else (str(v) if isinstance(v, str) else fmt.format(v)) for v in ci) + "]"


def _num(v, fmt="{:.4g}"):
    return "n/a" if v is None else (str(v) if isinstance(v, str) else fmt.format(v))


def _steps_line(summary) -> str:
    sp = summary["steps_policy"]
    return f"steps policy {sp['policy']!r}: {sp['rule']} (batch {sp['batch_size']})"


def format_summary(summary: dict) -> str:
    """The table printed at the end of a study."""
    d = summary["dataset"]
    lines = [f"{d['name']} ({d['task']}): sizes {summary['sizes'][0]}..{summary['sizes'][-1]} "
             f"({len(summary['sizes'])}, geometric, nested), {d['num_test']} test examples, "
             f"{summary['num_replicates']} seeds; pretraining {'on' if summary['pretrain']['enabled'] else 'off'}",
             _steps_line(summary)]
    plan = {p["n"]: p for p in summary["steps_policy"]["per_size"]}
    for mode, m in summary["modes"].items():
        c = m["curve"]
        lines.append(f"\n[{mode}] {summary['metric_label']}, lower is better"
                     + (f"; excluded replicates {m['replicates_excluded']}" if m["replicates_excluded"] else ""))
        lines.append(f"{'n':>8} {'epochs':>7} {'steps':>6}  {'mean ± std':>17}  {'simultaneous band':>18}  "
                     f"{'fit':>7}")
        fit = m["fit"]
        fitted = _fit_at(fit, c["sizes"])
        for i, n in enumerate(c["sizes"]):
            lines.append(f"{n:>8} {plan[n]['epochs']:>7} {plan[n]['steps']:>6}  {c['mean'][i]:>8.4f} ± "
                         f"{c['std'][i]:<6.4f}  {_fmt_ci([c['band_lo'][i], c['band_hi'][i]], '{:.4f}'):>18}  "
                         f"{_num(fitted[i], '{:.4f}'):>7}")
        sel = m["selection"]
        ranking = _ranked(sel)
        lines.append("backtest (rolling origin, " + sel["aggregate"] + " out-of-range MSE): "
                     + ", ".join(f"{f} {_num(v, '{:.2e}')}" for f, v in ranking[:5])
                     + (" ..." if len(ranking) > 5 else ""))
        p = fit["point"]
        params = ", ".join(f"{k}={_num(v)} {_fmt_ci(fit['param_ci'][k])}" for k, v in p["params"].items())
        lines.append(f"chosen {p['family']}: {p['formula']}; {params}")
        lines.append(f"  objective {p['objective']}, best start {p['status']} "
                     f"({p['n_best_basin']} of {p['num_starts']} starts at the best minimum); "
                     f"{fit['num_used']}/{fit['num_resamples']} bootstrap refits used")
        for e in m["extrapolation"]:
            lines.append(f"  extrapolated n={e['n']:.0f} ({e['factor']:g}x): {_num(e['estimate'], '{:.4f}')} "
                         f"{_fmt_ci(e['ci'], '{:.4f}')}; averaged over families {_num(e['averaged'], '{:.4f}')}; "
                         f"best 3 families: {_top_families(sel, e)}")
        sat = m["saturation"]
        lines.append(f"saturation (epsilon={sat['epsilon']:g}): {sat['verdict'].upper()} -- {sat['reason']}")
        if _underfit_note(m):
            lines.append("  caution: " + _underfit_note(m))
        lines.append(f"  n within epsilon of the limit {_num(sat['limit'], '{:.4f}')}: "
                     f"{_num(sat['n_saturation'], '{:.3g}')} {_fmt_ci(sat['n_saturation_ci'], '{:.3g}')}")
        obs = sat["observed_gain_per_doubling"]
        lines.append(f"  observed gain per doubling from n={obs['from']:.0f} to {obs['to']:.0f} (no model): "
                     f"{_num(obs['estimate'], '{:.4f}')} {_fmt_ci(obs['ci'], '{:.4f}')}")
    return "\n".join(lines)


def _ranked(sel: dict) -> list:
    return sorted(sel["score"].items(), key=lambda kv: kv[1] if isinstance(kv[1], float) else float("inf"))


def _top_families(sel: dict, e: dict, k: int = 3) -> str:
    """``"f1 v1, f2 v2, ..."``: the extrapolation of the ``k`` best-ranked families."""
    return ", ".join(f"{f} {_num(e['by_family'].get(f), '{:.4f}')}" for f, _ in _ranked(sel)[:k])


def _underfit_note(m: dict) -> str:
    u = m["underfit_check"]
    if not u["underfit"][-1]:
        return ""
    return (f"at the largest size the final train loss {u['train_loss'][-1]:.3f} is not below the test NLL "
            f"{u['test_nll'][-1]:.3f} (underfit): the curve may flatten because of the step budget or the model, "
            "not the data; train longer (finetune.epochs, scaling.steps) before trusting a 'saturated' verdict")


def _fit_at(fit: dict, sizes) -> list:
    """The saved fitted curve interpolated (in log n) at ``sizes`` (None where not finite)."""
    x = np.log(np.asarray(fit["x_eval"], float))
    y = np.array([np.nan if v is None or isinstance(v, str) else v for v in fit["curve"]], float)
    out = np.interp(np.log(np.asarray(sizes, float)), x, y)
    return [float(v) if np.isfinite(v) else None for v in out]


def _read_replicates(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _floats(vals):
    return np.array([np.nan if v is None or isinstance(v, str) else v for v in vals], float)


def plot(summary: dict, rows: list[dict], path: Path) -> None:
    """``scaling.png``: per mode, per-seed points, mean with its simultaneous band, the fitted
    curve with its band, extrapolated beyond the largest size (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(summary["modes"])
    metric = summary["metric"]
    fig, axes = plt.subplots(1, len(modes), figsize=(6.4 * len(modes), 4.6), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        m = summary["modes"][mode]
        c, fit = m["curve"], m["fit"]
        sizes = np.asarray(c["sizes"], float)
        seeds = sorted({int(r["replicate"]) for r in rows if r["mode"] == mode})
        excluded = set(m["replicates_excluded"])
        labelled = set()
        for k, s in enumerate(seeds):
            pts = [(float(r["data_size"]), float(r["value"])) for r in rows
                   if r["mode"] == mode and r["metric"] == metric and int(r["replicate"]) == s]
            if not pts:
                continue
            xs, ys = np.array(pts).T
            jitter = np.exp(0.012 * (k - (len(seeds) - 1) / 2))  # deterministic spread in log x
            label = "excluded seed (diverged)" if s in excluded else "per seed"
            style = dict(marker="x", color="C1", s=14) if s in excluded else dict(color="0.55", alpha=0.7, s=9)
            ax.scatter(xs * jitter, ys, linewidths=0 if s not in excluded else 1.0,
                       label=None if label in labelled else label, zorder=2, **style)
            labelled.add(label)
        ax.fill_between(sizes, _floats(c["band_lo"]), _floats(c["band_hi"]), color="C0", alpha=0.25,
                        label=f"mean, simultaneous {summary['level']:.0%} band", zorder=1)
        ax.plot(sizes, c["mean"], "o-", color="C0", ms=4, zorder=3)
        xe = np.asarray(fit["x_eval"], float)
        ye, lo, hi = _floats(fit["curve"]), _floats(fit["band_lo"]), _floats(fit["band_hi"])
        inside = xe <= sizes.max() * (1 + 1e-9)
        fam = fit["point"]["family"]
        ax.plot(xe[inside], ye[inside], "-", color="C3", lw=1.5, label=f"fit: {fam}", zorder=4)
        ax.plot(xe[~inside], ye[~inside], "--", color="C3", lw=1.5, label="fit, extrapolated", zorder=4)
        ax.fill_between(xe, lo, hi, color="C3", alpha=0.12, label=f"fit, simultaneous {summary['level']:.0%} band",
                        zorder=0)
        ex = [e for e in m["extrapolation"] if e["estimate"] is not None]
        if ex:
            xs = np.array([e["n"] for e in ex])
            est = np.array([e["estimate"] for e in ex])
            ci = np.array([_floats(e["ci"]) for e in ex])
            ax.errorbar(xs, est, yerr=[est - ci[:, 0], ci[:, 1] - est], fmt="s", color="C3", ms=4, capsize=3,
                        label=f"extrapolated, CI given {fam}", zorder=5)
            others = [f for f, _ in _ranked(m["selection"])[:4] if f != fam][:3]
            for i, f in enumerate(others):  # the model uncertainty the CI leaves out
                v = _floats([e["by_family"].get(f) for e in ex])
                ax.plot(xs, v, ls="", marker="os^"[i], mfc="none", color=f"C{4 + i}", ms=5,
                        label=f"{f} (backtest #{[g for g, _ in _ranked(m['selection'])].index(f) + 1})", zorder=5)
        ax.axvline(sizes.max(), color="0.7", lw=0.8, ls=":", zorder=0)
        ax.set_xscale("log")
        ax.set_xlabel("training-set size n (examples, log scale)")
        ax.set_ylabel(summary["metric_label"])
        sat = m["saturation"]
        ax.set_title(f"{summary['dataset']['name']}, {mode}: {sat['verdict']} (epsilon={sat['epsilon']:g})",
                     fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, metadata={"Software": None})
    plt.close(fig)
    results.write_bytes(path, buf.getvalue())


def report(workdir: Path) -> list[str]:
    """Reads ``summary.json`` and ``replicates.csv`` of a scaling workdir, writes ``scaling.png``
    there and returns markdown lines for the study's report."""
    workdir = Path(workdir)
    summary = results.read_json(workdir / "summary.json")
    rows = _read_replicates(workdir / "replicates.csv")
    if summary.get("study") != "scaling":
        raise ValueError(f"{workdir / 'summary.json'} is not a scaling study (study={summary.get('study')!r})")
    plot(summary, rows, workdir / "scaling.png")
    d = summary["dataset"]
    lines = ["## Scaling with training-set size", "",
             f"{d['name']} ({d['task']}), {len(summary['sizes'])} nested training sets of "
             f"{summary['sizes'][0]} to {summary['sizes'][-1]} examples (geometric grid), "
             f"{summary['num_replicates']} seeds each, {d['num_test']} test examples; "
             f"pretraining {'on (' + summary['pretrain']['on'] + ')' if summary['pretrain']['enabled'] else 'off'}; "
             f"{_steps_line(summary)}.", "", "![scaling](scaling.png)", ""]
    plan = {p["n"]: p for p in summary["steps_policy"]["per_size"]}
    for mode, m in summary["modes"].items():
        c, fit, sat = m["curve"], m["fit"], m["saturation"]
        p = fit["point"]
        lines += [f"### {mode}: {summary['metric_label']}", "",
                  f"| n | epochs | steps | mean | std | simultaneous {summary['level']:.0%} band "
                  f"| fit ({p['family']}) |",
                  "|---:|---:|---:|---:|---:|---|---:|"]
        fitted = _fit_at(fit, c["sizes"])
        for i, n in enumerate(c["sizes"]):
            lines.append(f"| {n} | {plan[n]['epochs']} | {plan[n]['steps']} | {c['mean'][i]:.4f} | {c['std'][i]:.4f} "
                         f"| {_fmt_ci([c['band_lo'][i], c['band_hi'][i]], '{:.4f}')} | {_num(fitted[i], '{:.4f}')} |")
        if m["replicates_excluded"]:
            lines.append(f"\nExcluded replicates {m['replicates_excluded']}: {m['exclusion_rule']}.")
        sel = m["selection"]
        ranking = _ranked(sel)
        lines += ["", f"**Family** (rolling-origin backtest, {sel['aggregate']} out-of-range squared error over "
                      f"origins {sel['origins']}): chosen **{sel['chosen']}**. "
                  + "; ".join(f"{f} {_num(v, '{:.2e}')}" for f, v in ranking), "",
                  f"**Fit** `{p['formula']}`, objective {p['objective']}: best start {p['status']}, "
                  f"{p['n_best_basin']} of {p['num_starts']} starts reached it; "
                  f"{fit['num_used']} of {fit['num_resamples']} bootstrap refits used "
                  f"(conditional on {p['family']}).", "",
                  "| parameter | estimate | " + f"{summary['level']:.0%} CI |", "|---|---:|---|"]
        for k, v in p["params"].items():
            lines.append(f"| {k} | {_num(v)} | {_fmt_ci(fit['param_ci'][k])} |")
        if m["extrapolation"]:
            lines += ["", f"| extrapolated n | {p['family']} | CI (given {p['family']}) | averaged over families | "
                          "best 3 families |", "|---:|---:|---|---:|---|"]
            lines += [f"| {e['n']:.0f} ({e['factor']:g}x) | {_num(e['estimate'], '{:.4f}')} | "
                      f"{_fmt_ci(e['ci'], '{:.4f}')} | {_num(e['averaged'], '{:.4f}')} | "
                      f"{_top_families(sel, e)} |" for e in m["extrapolation"]]
            lines += ["", "The CI holds the family fixed; the spread between families is the model uncertainty "
                          "it leaves out."]
        obs = sat["observed_gain_per_doubling"]
        lines += ["", f"**Saturation** (epsilon = {sat['epsilon']:g} per doubling): **{sat['verdict']}**. "
                      f"{sat['reason']}. Curve within epsilon of its limit {_num(sat['limit'], '{:.4f}')} from "
                      f"n = {_num(sat['n_saturation'], '{:.3g}')} {_fmt_ci(sat['n_saturation_ci'], '{:.3g}')}. "
                      f"Observed gain per doubling from n = {obs['from']:.0f} to {obs['to']:.0f} (no model, same "
                      f"bootstrap): {_num(obs['estimate'], '{:.4f}')} {_fmt_ci(obs['ci'], '{:.4f}')}."
                  + (f" **Caution**: {_underfit_note(m)}." if _underfit_note(m) else ""), ""]
    return lines
