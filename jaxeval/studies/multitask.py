"""The multi-task study: one pretrained backbone per dataset, finetuned on every task of a suite.

A suite is a tuple of task specs ``"<dataset>/<label_map>[/n<train size>][@<metric>]"``
(``config.multitask.tasks``), e.g. ``"digits/parity"``, ``"digits/identity/n200"``,
``"mnist1d/identity@f1"``. Each dataset gets its own backbones (its own input shape):
``pretrain.num_seeds`` pretraining seeds, each kept at the checkpoints
``multitask.checkpoints`` (fractions of the pretraining epochs; snapshots of one scanned run).

Configurations (``multitask.configs``) are ``"full"``, ``"probe"`` (finetuning modes on the final
backbone), ``"<mode>@<fraction>"`` (that mode on an earlier checkpoint) and ``"scratch"`` (full
training from a random init). Replicate ``(p, f)`` of a pretrained config finetunes backbone
``p`` with finetuning index ``f`` for every finetuning stream (the same ``f`` on every task,
checkpoint and config: paired); ``"scratch"`` uses finetuning index ``p * F + f``, so every
config has ``P x F`` runs per task. Tasks of one dataset with the same training set and number of
classes (e.g. parity, ge5, one-vs-rest) run in one vmapped sweep (labels stacked, a per-replicate
task index); tasks of other shapes get their own sweep (heads are not padded).

Statistics (keys from the ``bootstrap`` stream): per-task means and the aggregates mean, median,
IQM and optimality gap of raw and chance-normalised scores ``(x - chance) / (1 - chance)``
(chance: the metric of always predicting the training set's majority class), with percentile
bootstrap intervals -- stratified (runs within tasks; ``task_bootstrap`` also resamples tasks)
or ``nested`` (pretraining seeds, then finetuning seeds within each, one draw shared by every
task since all tasks use the same backbones and seed indices; ``task_bootstrap`` crosses it with
a task draw); performance profiles of normalised scores; rank aggregation of the configs (mean
rank, Borda, Copeland, Kemeny) with bootstrap rank intervals and P(rank = 1); and the
pretraining -> downstream link (``jaxeval.stats.correlation.link_correlations``): the
pretraining objective at each checkpoint (mean masked-reconstruction loss of the epoch ending
there) against each task's metric of ``multitask.link_mode`` finetuned from that checkpoint.

Missing scores (a diverged run, ``base.DIVERGENCE_RULE``, or a non-finite metric) are never
zeroed: aggregates omit them (``nan_policy="omit"``) and report how many; ranking follows
``multitask.missing``; the link skips a task with a missing run.

Files: ``replicates.csv`` (one row per config or link run, task, pretraining seed, checkpoint,
finetuning seed and metric), ``predictions.npz`` (``<mode>__t<task index>__<pred|correct|nll|
confidence>``, each ``[P, checkpoints run, F, test examples]``), ``summary.json`` (every table
above, with the bootstrap plan and keys), and the plots of ``report`` (``multitask_plots``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxeval import config as config_lib
from jaxeval import data as data_lib
from jaxeval import keys as keys_lib
from jaxeval import metrics as metrics_lib
from jaxeval import models, provenance, results, sweep
from jaxeval.stats import aggregates as ag
from jaxeval.stats import correlation, profiles, ranking
from jaxeval.stats.intervals import bootstrap_interval
from jaxeval.stats.resample import make_plan
from jaxeval.studies import base
from jaxeval.train import evaluate, make_finetune, make_pretrain
from jaxeval.train.finetune import MODES, tree_checksum

STUDY = "multitask"
SUITE_METRICS = ("accuracy", "f1", "precision", "recall")  # higher is better, in [0, 1]
SCRATCH = "scratch"
AGGREGATES = ("mean", "median", "iqm", "optimality_gap")
DEFAULT_TASKS = (
    "digits/identity",
    "digits/parity",
    "digits/ge5",
    "digits/one_vs_rest:3",
    "digits/one_vs_rest:8",
    "digits/identity/n200",
    "mnist1d/identity",
)

CONFIG_GROUP = {
    # "<dataset>/<label_map>[/n<train size>][@<metric>]"; config.dataset.{name,task,train_size} are
    # not used by this study (the suite names its datasets), finetune.modes neither (see configs).
    "tasks": DEFAULT_TASKS,
    "metric": "accuracy",  # metric of a task spec without "@<metric>"; one of SUITE_METRICS
    "configs": ("full", "probe", "probe@0.25", SCRATCH),  # "<mode>[@<checkpoint>]" or "scratch"
    "checkpoints": (0.25, 0.5, 0.75, 1.0),  # fractions of pretraining epochs; the last must be 1.0
    "link_mode": "probe",  # finetuned from every checkpoint for the link; "" = no link
    "num_resamples": 2000,  # bootstrap resamples (aggregates, profiles, ranks, link)
    "alpha": 0.05,  # 1 - confidence of every interval
    "nested": False,  # resample pretraining seeds, then finetuning seeds (needs >= 2 of each)
    "task_bootstrap": False,  # also resample tasks
    "missing": "raise",  # ranking: a (config, task) with no score: raise / drop_task / pairwise
    "profile_points": 21,  # thresholds of the performance profiles in [0, 1]
    # Generated datasets (mnist1d) in the suite: their size and generator seed.
    "generated_num_train": 4000,
    "generated_num_test": 1000,
    "generated_seed": 0,
}

REPLICATE_COLUMNS = ("config", "task", "dataset", "train_size", "pretrain", "checkpoint", "pretrain_epoch",
                     "init", "data", "dropout", "diverged_step", "metric", "value")


# ----------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str  # the spec without "@metric"
    dataset: str
    label_map: str
    train_size: int  # 0 = the whole training split
    metric: str


@dataclasses.dataclass(frozen=True)
class ConfigSpec:
    name: str
    mode: str  # "full" / "probe", or "scratch"
    checkpoint: float | None  # fraction of pretraining; None for scratch


_TASK_RE = re.compile(r"(?P<dataset>[a-z0-9_]+)/(?P<label_map>[^/@]+)(?:/n(?P<n>\d+))?(?:@(?P<metric>\w+))?")


def parse_task(spec: str, default_metric: str) -> TaskSpec:
    """``"digits/parity/n200@f1"`` -> TaskSpec; raises ValueError naming the spec."""
    m = _TASK_RE.fullmatch(spec) if isinstance(spec, str) else None
    if m is None:
        raise ValueError(f"config.multitask.tasks: {spec!r} is not a task spec "
                         "'<dataset>/<label_map>[/n<train size>][@<metric>]', e.g. 'digits/parity/n200@f1'")
    n = int(m["n"]) if m["n"] else 0
    name = spec.split("@")[0]
    return TaskSpec(name, m["dataset"], m["label_map"], n, m["metric"] or default_metric)


def parse_config(spec: str) -> ConfigSpec:
    if not isinstance(spec, str):
        raise ValueError(f"config.multitask.configs: {spec!r} is not a string")
    if spec == SCRATCH:
        return ConfigSpec(spec, SCRATCH, None)
    mode, _, frac = spec.partition("@")
    if mode not in MODES:
        raise ValueError(f"config.multitask.configs: {spec!r} is not allowed: '<mode>[@<checkpoint>]' with mode "
                         f"in {MODES}, or {SCRATCH!r}")
    try:
        checkpoint = float(frac) if frac else 1.0
    except ValueError:
        raise ValueError(f"config.multitask.configs: {spec!r}: the checkpoint after '@' must be a number") from None
    return ConfigSpec(spec, mode, checkpoint)


def checkpoint_epochs(cfg) -> tuple[int, ...]:
    """Pretraining epochs of ``multitask.checkpoints`` (``round(fraction * epochs)``)."""
    return tuple(int(round(f * cfg.pretrain.epochs)) for f in cfg.multitask.checkpoints)


def check_config(cfg) -> None:
    mt = cfg.multitask
    chk = config_lib.check
    chk(mt.metric in SUITE_METRICS, "multitask.metric", mt.metric, f"one of {SUITE_METRICS} (higher is better)")
    tasks = tuple(mt.tasks)
    chk(len(tasks) > 0, "multitask.tasks", tasks, "a non-empty tuple of task specs")
    specs = [parse_task(t, mt.metric) for t in tasks]
    known = data_lib.known_datasets()
    for s in specs:
        chk(s.dataset in known, "multitask.tasks", s.name, f"a dataset from {known}")
        chk(s.metric in SUITE_METRICS, "multitask.tasks", f"{s.name}@{s.metric}", f"a metric from {SUITE_METRICS}")
    names = [s.name for s in specs]
    chk(len(set(names)) == len(names), "multitask.tasks", tasks, "distinct tasks")
    ckpts = tuple(mt.checkpoints)
    chk(len(ckpts) > 0 and all(isinstance(c, (int, float)) and 0 < c <= 1 for c in ckpts)
        and list(ckpts) == sorted(set(ckpts)) and ckpts[-1] == 1.0, "multitask.checkpoints", ckpts,
        "increasing fractions of pretraining in (0, 1], the last 1.0 (the final backbone)")
    epochs = checkpoint_epochs(cfg)
    chk(epochs[0] >= 1 and len(set(epochs)) == len(epochs), "multitask.checkpoints", ckpts,
        f"fractions giving distinct epochs >= 1 of pretrain.epochs={cfg.pretrain.epochs} (got epochs {epochs})")
    configs = tuple(mt.configs)
    chk(len(configs) > 0 and len(set(configs)) == len(configs), "multitask.configs", configs,
        "a non-empty tuple of distinct configurations")
    for c in map(parse_config, configs):
        chk(c.checkpoint is None or c.checkpoint in ckpts, "multitask.configs", c.name,
            f"a checkpoint from multitask.checkpoints={ckpts}")
    chk(mt.link_mode in ("",) + MODES, "multitask.link_mode", mt.link_mode, f"'' (no link) or one of {MODES}")
    chk(cfg.pretrain.enabled, "pretrain.enabled", cfg.pretrain.enabled,
        "True: the study finetunes pretrained backbones")
    if mt.link_mode:
        chk(cfg.pretrain.num_seeds >= 2 and len(ckpts) >= 2, "multitask.link_mode", mt.link_mode,
            f"'' unless pretrain.num_seeds >= 2 and >= 2 checkpoints (the link resamples pretraining seeds; got "
            f"{cfg.pretrain.num_seeds} seeds, {len(ckpts)} checkpoints)")
    config_lib.check_positive_int(cfg, "multitask.num_resamples")
    chk(mt.num_resamples >= 2, "multitask.num_resamples", mt.num_resamples, "an integer >= 2")
    chk(isinstance(mt.alpha, float) and 0 < mt.alpha < 1, "multitask.alpha", mt.alpha, "a float in (0, 1)")
    chk(isinstance(mt.nested, bool), "multitask.nested", mt.nested, "True or False")
    chk(isinstance(mt.task_bootstrap, bool), "multitask.task_bootstrap", mt.task_bootstrap, "True or False")
    if mt.nested:
        chk(cfg.pretrain.num_seeds >= 2 and cfg.num_seeds >= 2, "multitask.nested", True,
            f"only with pretrain.num_seeds >= 2 and num_seeds >= 2 (got {cfg.pretrain.num_seeds}, {cfg.num_seeds})")
    else:
        chk(cfg.pretrain.num_seeds * cfg.num_seeds >= 2, "num_seeds", cfg.num_seeds,
            "at least 2 runs per task (pretrain.num_seeds * num_seeds >= 2)")
    if mt.task_bootstrap:
        chk(len(tasks) >= 2, "multitask.task_bootstrap", True, "only with >= 2 tasks")
    chk(mt.missing in ranking.MISSING_POLICIES, "multitask.missing", mt.missing, f"one of {ranking.MISSING_POLICIES}")
    config_lib.check_positive_int(cfg, "multitask.profile_points")
    chk(mt.profile_points >= 2, "multitask.profile_points", mt.profile_points, "an integer >= 2")
    for f in ("generated_num_train", "generated_num_test"):
        config_lib.check_positive_int(cfg, f"multitask.{f}")
    chk(isinstance(mt.generated_seed, int) and mt.generated_seed >= 0, "multitask.generated_seed",
        mt.generated_seed, "an integer >= 0")
    for f, default in (("task", "identity"), ("train_size", 0), ("num_train", 0), ("num_test", 0)):
        chk(cfg.dataset[f] == default, f"dataset.{f}", cfg.dataset[f],
            f"{default!r}: the multitask study takes its tasks from config.multitask.tasks")


# ----------------------------------------------------------------------------- suite


@dataclasses.dataclass
class Group:
    """Tasks of one dataset that share a training set and a number of classes: one sweep."""

    dataset: str
    train_size: int
    num_classes: int
    tasks: list[int]  # indices into the suite
    arrays: dict  # x_train [n, ...], x_test [M, ...], y_train [K, n], y_test [K, M]


def load_suite(cfg, root):
    """Returns ``(specs, datasets {name: Dataset}, task Datasets, groups)``."""
    specs = [parse_task(t, cfg.multitask.metric) for t in cfg.multitask.tasks]
    datasets, tasks = {}, []
    for i, s in enumerate(specs):
        if s.dataset not in datasets:
            kw = {}
            if s.dataset in data_lib.GENERATED:
                kw = {"num_train": cfg.multitask.generated_num_train, "num_test": cfg.multitask.generated_num_test,
                      "seed": cfg.multitask.generated_seed}
            datasets[s.dataset] = data_lib.load(s.dataset, data_dir=cfg.dataset.data_dir or None,
                                                offline=cfg.dataset.offline, **kw)
        ds = datasets[s.dataset]
        try:
            key = keys_lib.stream(root, "split", 1) if s.label_map == "random_halves" else None
            if s.label_map != "identity":
                ds = data_lib.derive_task(ds, s.label_map, key=key)
            if s.train_size:
                # One subset key for the suite: subsets of one dataset are nested in n.
                ds = data_lib.subset(ds, s.train_size, key=keys_lib.stream(root, "split", 0))
        except ValueError as e:
            raise ValueError(f"config.multitask.tasks[{i}]={cfg.multitask.tasks[i]!r}: {e}") from None
        # Pretraining sees the dataset's whole training split, finetuning the task's.
        for group, what, n in (("pretrain", f"dataset {s.dataset!r}", datasets[s.dataset].num_train),
                               ("finetune", f"task {s.name!r}", ds.num_train)):
            bs = cfg[group].batch_size
            if bs > n:
                raise ValueError(f"config.{group}.batch_size={bs} is larger than the training set of {what} "
                                 f"({n} examples); it must be <= {n}")
        tasks.append(ds)
    groups: dict[tuple, Group] = {}
    for i, (s, ds) in enumerate(zip(specs, tasks)):
        gkey = (s.dataset, ds.num_train if s.train_size else 0, ds.num_classes)
        if gkey not in groups:
            groups[gkey] = Group(s.dataset, gkey[1], ds.num_classes, [], {"x_train": ds.x_train, "x_test": ds.x_test})
        g = groups[gkey]
        if not (np.array_equal(g.arrays["x_train"], ds.x_train) and np.array_equal(g.arrays["x_test"], ds.x_test)):
            raise AssertionError(f"task {s.name!r}: inputs differ from its group's")  # cannot happen: same rows
        g.tasks.append(i)
    for g in groups.values():
        g.arrays["y_train"] = np.stack([tasks[i].y_train for i in g.tasks])
        g.arrays["y_test"] = np.stack([tasks[i].y_test for i in g.tasks])
    return specs, datasets, tasks, list(groups.values())


def chance_score(ds: data_lib.Dataset, metric: str) -> float:
    """``metric`` of always predicting the training set's majority class, on the test set."""
    c = int(np.argmax(np.bincount(ds.y_train, minlength=ds.num_classes)))
    logits = np.where(np.arange(ds.num_classes) == c, 1.0, 0.0)[None].repeat(ds.num_test, 0)
    p = metrics_lib.predictions(logits, ds.y_test)
    return float(metrics_lib.classification_metrics(p, ds.y_test, ds.num_classes)[metric])


# ----------------------------------------------------------------------------- sweeps

# Compiled sweep functions, reused by every study in the process with the same settings (the
# same function object -> sweep.run reuses its jit(vmap)).
_FUNCTIONS: dict[str, Any] = {}


def _cached(kind: str, settings: dict, build):
    k = kind + json.dumps(settings, sort_keys=True, default=str)
    if k not in _FUNCTIONS:
        _FUNCTIONS[k] = build()
    return _FUNCTIONS[k]


def _model(cfg, feature_shape, num_classes):
    return models.build(cfg.model, feature_shape, num_classes)


def pretrain_sweep(cfg, name: str, x_train: np.ndarray, root) -> dict:
    """Backbones of one dataset: ``snapshots`` ``[P, C, ...]`` (params at the checkpoints), ``loss`` ``[P, epochs]``."""
    epochs = checkpoint_epochs(cfg)
    settings = {"model": config_lib.to_dict(cfg.model), "pretrain": config_lib.to_dict(cfg.pretrain),
                "shape": x_train.shape, "epochs": epochs}

    def build():
        pre = make_pretrain(_model(cfg, x_train.shape[1:], 2), cfg.pretrain, x_train.shape[0], snapshot_epochs=epochs)

        def one(rep, shared):
            x, root = shared
            _, metrics = pre(x, keys=keys_lib.replicate_keys(root, rep))
            return {"snapshots": metrics["snapshots"]["encoder"], "loss": metrics["loss"]}

        return one

    one = _cached("pretrain", settings, build)
    indices = keys_lib.replicate_indices(cfg.pretrain.num_seeds, streams=keys_lib.PRETRAIN_STREAMS)
    return _sweep(cfg, f"pretrain_{name}", "pretrain", one, indices, (x_train, root))


def _sweep(cfg, name: str, kind: str, fn, des, shared):
    """``sweep.run`` with the running study's checkpoint store and progress (``base.sweep_hooks``)."""
    with base.sweep_hooks(name, kind=kind, cfg=cfg, per_replicate=des, shared=shared,
                          chunk_width=cfg.chunk_width) as hooks:
        return sweep.run(fn, des, shared, chunk_width=cfg.chunk_width, **hooks)


def finetune_fn(cfg, feature_shape, num_classes: int, num_train: int, mode: str):
    """``one(rep, shared)``: finetune replicate ``rep`` (task, encoder, init, data, dropout indices)."""
    settings = {"model": config_lib.to_dict(cfg.model), "finetune": config_lib.to_dict(cfg.finetune),
                "eval": config_lib.to_dict(cfg.eval), "shape": feature_shape, "classes": num_classes,
                "n": num_train, "mode": mode}

    def build():
        model = _model(cfg, feature_shape, num_classes)
        finetune = make_finetune(model, cfg.finetune, num_train, mode=mode)

        def one(rep, shared):
            enc_stack, t, root = shared
            encoder = sweep.take(enc_stack, rep["encoder"])
            rep_keys = keys_lib.replicate_keys(root, {k: rep[k] for k in keys_lib.FINETUNE_STREAMS})
            params, train = finetune(encoder, t["x_train"], t["y_train"][rep["task"]], keys=rep_keys)
            preds, metrics = evaluate(model, params, t["x_test"], t["y_test"][rep["task"]],
                                      batch_size=cfg.eval.batch_size, ece_bins=cfg.eval.ece_bins)
            train = {**train, "params_checksum": tree_checksum(params)}
            return {"train": train, "predictions": preds._asdict(), "metrics": metrics}

        return one

    return _cached("finetune", settings, build)


def scratch_encoders(cfg, feature_shape, root, num: int):
    """Random encoders ``0..num-1`` as ``make_finetune`` draws them without a backbone
    (``fold_in(stream(root, "init", s), 0)``): passed in, "scratch" runs the full-finetuning program."""
    def build():
        model = _model(cfg, feature_shape, 2)
        return jax.jit(jax.vmap(lambda k: models.init_encoder(model, key=jax.random.fold_in(k, 0))))

    init = _cached("scratch", {"model": config_lib.to_dict(cfg.model), "shape": feature_shape}, build)
    return jax.device_get(init(keys_lib.stream(root, "init", np.arange(num))))


def run_group(cfg, group: Group, encoders, root, mode: str, ckpt_slots: tuple[int, ...]) -> dict:
    """Finetunes every (task, pretrain seed, checkpoint slot, finetune seed) of ``group`` in ``mode``
    from ``encoders`` ``[P, C, ...]`` (``"scratch"``: random encoders, one slot); outputs shaped
    ``[K, P, len(slots), F, ...]`` plus the ``design``."""
    P, F = cfg.pretrain.num_seeds, cfg.num_seeds
    scratch = mode == SCRATCH
    K, S = len(group.tasks), len(ckpt_slots)
    t, p, c, f = np.meshgrid(np.arange(K), np.arange(P), np.arange(S), np.arange(F), indexing="ij")
    C = len(cfg.multitask.checkpoints)
    x = group.arrays
    if scratch:
        s, enc = p * F + f, scratch_encoders(cfg, x["x_train"].shape[1:], root, P * F)
        e = s
    else:
        s, enc = f, jax.tree_util.tree_map(lambda a: a.reshape(P * C, *a.shape[2:]), encoders)
        e = p * C + np.asarray(ckpt_slots)[c]
    des = {"task": t, "encoder": e, "init": s, "data": s, "dropout": s}
    des = {k: np.asarray(v, np.int32).ravel() for k, v in des.items()}
    one = finetune_fn(cfg, x["x_train"].shape[1:], group.num_classes, x["x_train"].shape[0],
                      "full" if scratch else mode)
    name = f"{mode}_{group.dataset}_n{x['x_train'].shape[0]}_c{group.num_classes}"
    out = _sweep(cfg, name, f"finetune_{mode}", one, des, (enc, x, root))
    out = jax.tree_util.tree_map(lambda a: a.reshape(K, P, S, F, *a.shape[1:]), out)
    out["design"] = {k: v.reshape(K, P, S, F) for k, v in des.items()}
    return out


# ----------------------------------------------------------------------------- statistics


def diverged(out: dict) -> np.ndarray:
    """``bool[...]``: runs whose finetuning diverged (``train["diverged_step"] >= 0``)."""
    steps = out["train"].get("diverged_step")
    return np.zeros(np.shape(out["train"]["loss"])[:-1], bool) if steps is None else np.asarray(steps) >= 0


def kept_metric(out: dict, metric: str) -> np.ndarray:
    """``metric`` of every run (float64), NaN where the run diverged or the value is not finite."""
    x = np.asarray(out["metrics"][metric], np.float64)
    return np.where(diverged(out) | ~np.isfinite(x), np.nan, x)


def _flat_runs(x):
    """``[P, F, T] -> [P * F, T]``."""
    return x.reshape(-1, x.shape[-1])


def _suite_stat_2d(x, counts=None):
    del counts
    return {"task_means": ag.task_means(x), **{a: ag.AGGREGATES[a](x) for a in AGGREGATES}}


def _suite_stat_3d(x):
    return _suite_stat_2d(_flat_runs(x))


def suite_plan(nested: bool, task_bootstrap: bool):
    """The resampling plan of ``scores`` ``[P, F, T]`` (nested) or ``[P * F, T]`` (stratified)."""
    if nested:
        return make_plan(("pretrain", "seed", "task"),
                         {"pretrain": "iid", "seed": "nested:pretrain", "task": "iid" if task_bootstrap else "fixed"})
    return make_plan(("run", "task"), {"run": "iid", "task": "resampled_stratum" if task_bootstrap else "stratum"})


def suite_intervals(scores: np.ndarray, *, key, nested: bool, task_bootstrap: bool, num_resamples: int,
                    alpha: float) -> dict:
    """Per-task means and aggregates of ``scores[P, F, T]`` with percentile bootstrap intervals.

    Returns ``{stat: {"estimate", "lo", "hi"}}`` (``task_means``: lists over tasks), ``num_missing``
    and the captured bootstrap warnings.
    """
    plan = suite_plan(nested, task_bootstrap)
    x, stat = (scores, _suite_stat_3d) if nested else (_flat_runs(scores), _suite_stat_2d)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = bootstrap_interval(stat, np.asarray(x, np.float32), key=key, plan=plan, num_resamples=num_resamples,
                                 method="percentile", alpha=alpha, nan_policy="omit")
    out = {name: {"estimate": np.asarray(res.estimate[name]).tolist(), "lo": np.asarray(res.lo[name]).tolist(),
                  "hi": np.asarray(res.hi[name]).tolist()} for name in res.estimate}
    out["num_missing"] = int(res.num_missing)
    out["warnings"] = sorted({str(w.message) for w in caught})
    return out


def _interval_dict(iv) -> dict:
    return {"estimate": float(iv.estimate), "lo": float(iv.lower), "hi": float(iv.upper)}


def link_summary(pretrain_metric, downstream, *, key, num_resamples: int, alpha: float) -> dict:
    """``link_correlations`` of ``pretrain_metric[P, C]`` vs ``downstream[P, C, F]`` as a dict.

    The link is the logit of the metric unless a (seed, checkpoint) mean is 0 or 1 (then identity).
    """
    cell = downstream.mean(-1)
    link = "logit" if np.all((cell > 0) & (cell < 1)) else "identity"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined statistics are NaN and counted below
        res = correlation.link_correlations(pretrain_metric, downstream, key=key, num_resamples=num_resamples,
                                            alpha=alpha, link=link)
    out = {name: _interval_dict(getattr(res, name)) for name in correlation.STATISTICS}
    return {**out, "link": link, "num_undefined": int(res.num_undefined), "downstream_mean": cell.tolist()}


def rank_configs(raw: dict, task_names, *, key, num_resamples: int, alpha: float, task_bootstrap: bool,
                 missing: str, methods=ranking.METHODS) -> dict:
    """Rank intervals of the configs ``raw = {config: scores[P, F, T]}`` by every method of
    ``jaxeval.stats.ranking`` (Kemeny up to its size limit), all from one key (the same draws).

    Runs are resampled within each (config, task) cell (``task_bootstrap``: tasks too). When some
    but not all runs of a cell are missing, cells are reduced to the mean of the runs that exist
    and tasks are resampled instead (the rule is recorded). ``missing`` handles cells with no run.
    """
    x = np.stack([np.moveaxis(_flat_runs(v), 0, -1) for v in raw.values()])  # [m, T, P*F]
    nan = np.isnan(x)
    if (nan.any(-1) & ~nan.all(-1)).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN: missing
            x = np.nanmean(x, -1)
        over_seeds, rule = False, "cell means over the runs that exist (some runs missing), tasks resampled"
    else:
        over_seeds, rule = x.shape[-1] >= 2, "runs resampled iid within (config, task), pretraining seeds not nested"
        rule += ", tasks resampled" if task_bootstrap else ""
    out = {}
    for method in methods:
        if method == "kemeny" and len(raw) > ranking.KEMENY_MAX_CONFIGS:
            continue
        r = ranking.rank_intervals(x, method, key=key, alpha=alpha, num_resamples=num_resamples,
                                   over_seeds=over_seeds, over_tasks=task_bootstrap or not over_seeds, missing=missing)
        out[method] = {"ranks": r.ranks.tolist(), "lower": r.lower.tolist(), "upper": r.upper.tolist(),
                       "p_first": r.p_first.tolist(), "statistic": r.statistic.tolist(),
                       "tasks_used": [task_names[i] for i in r.tasks_used]}
    return {"rule": rule, "missing": missing, "methods": out}


def link_entry(cfg, task_runs: list, pretrain_loss, *, key) -> dict:
    """The link of one dataset: its pretraining objective at each checkpoint (``pretrain_loss``
    ``[P, epochs]`` at the checkpoint epochs) against each task's metric of the link mode
    (``task_runs``: ``[(name, metric, outputs [P, C, F, ...])]``) and the suite mean; one key for every
    task (the same seed draws). A task with a diverged run is skipped (the link needs all cells)."""
    pm = np.asarray(pretrain_loss)[:, np.asarray(checkpoint_epochs(cfg)) - 1]  # [P, C]
    down = {name: kept_metric(out, metric) for name, metric, out in task_runs}  # [P, C, F]
    if len(down) > 1:
        down["suite mean"] = np.mean(list(down.values()), axis=0)
    entry = {"pretrain_metric": pm.tolist(), "pretrain_metric_name": "pretraining loss (masked reconstruction)",
             "checkpoint_epochs": list(checkpoint_epochs(cfg)), "tasks": {}}
    for name, y in down.items():
        bad = ~np.isfinite(y)
        if bad.any():
            entry["tasks"][name] = {"skipped": f"{int(bad.sum())} diverged or non-finite runs"}
        else:
            entry["tasks"][name] = link_summary(pm, y, key=key, num_resamples=cfg.multitask.num_resamples,
                                                alpha=cfg.multitask.alpha)
    return entry


# ----------------------------------------------------------------------------- the study


def compute(cfg, log) -> base.Output:
    mt = cfg.multitask
    root = keys_lib.root_key(cfg.seed)
    boot = keys_lib.stream(root, "bootstrap", 0)
    specs, datasets, tasks, groups = load_suite(cfg, root)
    P, F, T = cfg.pretrain.num_seeds, cfg.num_seeds, len(specs)
    ckpts, epochs = tuple(mt.checkpoints), checkpoint_epochs(cfg)
    C = len(ckpts)
    configs = [parse_config(c) for c in mt.configs]

    pre = {}
    for name, ds in datasets.items():
        log(f"pretraining {P} backbone(s) on {name} ({ds.num_train} unlabeled examples, "
            f"snapshots at epochs {epochs}) ...")
        pre[name] = pretrain_sweep(cfg, name, ds.x_train, root)

    # Checkpoint slots each mode needs: its configs' checkpoints, all of them for the link mode.
    needed: dict[str, set] = {}
    for c in configs:
        needed.setdefault(c.mode, set()).add(C - 1 if c.checkpoint is None else ckpts.index(c.checkpoint))
    if mt.link_mode:
        needed.setdefault(mt.link_mode, set()).update(range(C))
    runs: dict[str, dict[int, dict]] = {}  # mode -> task index -> outputs [P, slots, F, ...]
    slots_of = {mode: tuple(sorted(s)) for mode, s in needed.items()}
    for mode, slots in slots_of.items():
        runs[mode] = {}
        for g in groups:
            log(f"finetuning ({mode}) {len(g.tasks)} task(s) of {g.dataset} (n={g.arrays['x_train'].shape[0]}, "
                f"{g.num_classes} classes): {len(g.tasks) * P * len(slots) * F} replicates ...")
            out = run_group(cfg, g, None if mode == SCRATCH else pre[g.dataset]["snapshots"], root, mode, slots)
            for j, i in enumerate(g.tasks):
                runs[mode][i] = jax.tree_util.tree_map(lambda a, j=j: a[j], out)

    def scores_of(c: ConfigSpec) -> np.ndarray:
        """``[P, F, T]`` scores of config ``c``; diverged or non-finite runs are NaN (missing)."""
        slot = slots_of[c.mode].index(C - 1 if c.checkpoint is None else ckpts.index(c.checkpoint))
        x = np.stack([kept_metric(runs[c.mode][i], specs[i].metric)[:, slot] for i in range(T)], -1)
        return x

    raw = {c.name: scores_of(c) for c in configs}
    chance = np.array([chance_score(tasks[i], specs[i].metric) for i in range(T)])
    if np.any(chance >= 1):
        raise ValueError(f"tasks {[specs[i].name for i in np.flatnonzero(chance >= 1)]} have chance score 1 "
                         "(one class in the test set): their scores cannot be normalised")
    norm = {k: (v - chance) / (1 - chance) for k, v in raw.items()}  # float64, NaN stays NaN

    log(f"statistics: {mt.num_resamples} bootstrap resamples ({'nested' if mt.nested else 'stratified'}"
        f"{', tasks resampled' if mt.task_bootstrap else ''}) ...")
    kw = dict(nested=mt.nested, task_bootstrap=mt.task_bootstrap, num_resamples=mt.num_resamples, alpha=mt.alpha)
    intervals = {kind: {c: suite_intervals(x, key=ag.name_key(boot, f"{kind}/{c}"), **kw) for c, x in xs.items()}
                 for kind, xs in (("raw", raw), ("normalized", norm))}
    taus = np.linspace(0.0, 1.0, mt.profile_points)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few-runs warnings are recorded with the aggregates
        prof = profiles.performance_profiles({c: _flat_runs(x) for c, x in norm.items()}, taus,
                                             key=ag.name_key(boot, "profiles"), num_resamples=mt.num_resamples,
                                             alpha=mt.alpha, task_bootstrap=mt.task_bootstrap, nan_policy="omit")

    with warnings.catch_warnings(record=True) as rank_warnings:
        warnings.simplefilter("always")
        ranks = rank_configs(raw, [s.name for s in specs], key=ag.name_key(boot, "ranks"), alpha=mt.alpha,
                             num_resamples=mt.num_resamples, task_bootstrap=mt.task_bootstrap, missing=mt.missing)

    link = {}
    if mt.link_mode:
        log(f"pretraining -> downstream link ({mt.link_mode}) ...")
        for name in datasets:
            task_runs = [(s.name, s.metric, runs[mt.link_mode][i]) for i, s in enumerate(specs) if s.dataset == name]
            link[name] = link_entry(cfg, task_runs, pre[name]["loss"], key=ag.name_key(boot, f"link/{name}"))

    summary = {
        "study": STUDY,
        "configs": [c.name for c in configs],
        "tasks": [{"name": s.name, "dataset": s.dataset, "label_map": s.label_map, "metric": s.metric,
                   "num_train": tasks[i].num_train, "num_test": tasks[i].num_test, "num_classes": tasks[i].num_classes,
                   "chance": float(chance[i])} for i, s in enumerate(specs)],
        "num_pretrain_seeds": P, "num_finetune_seeds": F, "runs_per_task": P * F,
        "checkpoints": list(ckpts), "checkpoint_epochs": list(epochs),
        "bootstrap": {"plan": "nested" if mt.nested else "stratified", "task_bootstrap": mt.task_bootstrap,
                      "roles": dict(zip(suite_plan(mt.nested, mt.task_bootstrap).axes,
                                        suite_plan(mt.nested, mt.task_bootstrap).roles)),
                      "num_resamples": mt.num_resamples, "alpha": mt.alpha, "method": "percentile",
                      "key": "stream(root, 'bootstrap', 0) -> name_key(., '<kind>/<config>')"},
        "per_task": {c: {specs[i].name: {"mean": intervals["raw"][c]["task_means"]["estimate"][i],
                                         "lo": intervals["raw"][c]["task_means"]["lo"][i],
                                         "hi": intervals["raw"][c]["task_means"]["hi"][i],
                                         "std": float(np.nanstd(raw[c][..., i], ddof=1)),
                                         "n": int(np.isfinite(raw[c][..., i]).sum()),
                                         "values": _flat_runs(raw[c])[:, i].tolist()}
                         for i in range(T)} for c in raw},
        "aggregates": {kind: {c: {a: v[a] for a in AGGREGATES} | {"num_missing": v["num_missing"]}
                              for c, v in per.items()} for kind, per in intervals.items()},
        "warnings": sorted({w for per in intervals.values() for v in per.values() for w in v["warnings"]}
                           | {str(w.message) for w in rank_warnings}),
        "profiles": {c: {"taus": taus.tolist(), "estimate": np.asarray(p.estimate).tolist(),
                         "lo": np.asarray(p.lo).tolist(), "hi": np.asarray(p.hi).tolist()} for c, p in prof.items()},
        "ranking": ranks,
        "pretrain_loss": {name: np.asarray(p["loss"]).tolist() for name, p in pre.items()},
        "link": link,
        "divergence": base.divergence({f"{mode}/{specs[i].name}": (
            jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[3:]), per[i]["train"]),
            {k: v.reshape(-1) for k, v in per[i]["design"].items()}) for mode, per in runs.items() for i in range(T)}),
    }
    rows = _replicate_rows(cfg, specs, tasks, runs, slots_of, epochs, configs)
    fingerprints = {f"pretrain_{name}": provenance.fingerprint(p) for name, p in pre.items()}
    for mode, per in runs.items():
        for part in ("metrics", "predictions", "train"):
            fingerprints[f"{mode}_{part}"] = provenance.fingerprint([per[i][part] for i in range(T)])
    design = {"pretrain_seeds": np.arange(P), "finetune_seeds": np.arange(F), "scratch_seeds": np.arange(P * F)}
    manifest = base.provenance_manifest(cfg, root, tasks[0], design, fingerprints)
    manifest["dataset"] = {"name": "+".join(datasets), "version": "+".join(d.version for d in datasets.values()),
                           "fingerprint": provenance.fingerprint([np.frombuffer(t.fingerprint.encode(), np.uint8)
                                                                  for t in tasks]),
                           "suite": [s.name for s in specs],
                           "datasets": {n: {"version": d.version, "fingerprint": d.fingerprint, "info": d.info}
                                        for n, d in datasets.items()},
                           "tasks": {s.name: tasks[i].fingerprint for i, s in enumerate(specs)}}
    preds = {f"{mode}__t{i}__{field}": np.asarray(v) for mode, per in runs.items() for i in range(T)
             for field, v in per[i]["predictions"].items()}
    files = {"replicates.csv": functools.partial(results.write_csv, rows=rows, columns=REPLICATE_COLUMNS),
             "predictions.npz": lambda path: results.write_npz(path, **preds)}
    return base.Output(summary=summary, manifest=manifest, files=files,
                       extra={"raw": raw, "normalized": norm, "runs": runs, "pretrain": pre, "slots": slots_of})


def _replicate_rows(cfg, specs, tasks, runs, slots_of, epochs, configs) -> list[dict]:
    """One row per (config or link run, task, pretrain seed, checkpoint, finetune seed, metric)."""
    C = len(epochs)
    by_mode = {}  # (mode, slot) -> config name: a config's runs under its name, the link's others as "<mode>@<f>"
    for c in configs:
        slot = C - 1 if c.checkpoint is None else cfg.multitask.checkpoints.index(c.checkpoint)
        by_mode.setdefault((c.mode, slot), c.name)
    rows = []
    for mode, per in runs.items():
        for si, slot in enumerate(slots_of[mode]):
            name = by_mode.get((mode, slot), f"{mode}@{cfg.multitask.checkpoints[slot]}")
            for i, s in enumerate(specs):
                d, m = per[i]["design"], per[i]["metrics"]
                div = np.asarray(per[i]["train"].get("diverged_step", np.full(d["init"].shape, -1)))
                P, _, F = d["init"].shape
                for p in range(P):
                    for f in range(F):
                        base_row = {"config": name, "task": s.name, "dataset": s.dataset,
                                    "train_size": tasks[i].num_train, "pretrain": "" if mode == SCRATCH else p,
                                    "checkpoint": "" if mode == SCRATCH else cfg.multitask.checkpoints[slot],
                                    "pretrain_epoch": "" if mode == SCRATCH else epochs[slot],
                                    "init": int(d["init"][p, si, f]), "data": int(d["data"][p, si, f]),
                                    "dropout": int(d["dropout"][p, si, f]), "diverged_step": int(div[p, si, f])}
                        for metric in metrics_lib.METRICS:
                            rows.append({**base_row, "metric": metric, "value": float(m[metric][p, si, f])})
    return rows


@dataclasses.dataclass
class StudyResult:
    config: Any
    summary: dict
    manifest: dict
    raw: dict  # config -> scores [P, F, T]
    normalized: dict
    runs: dict  # mode -> task index -> outputs [P, slots, F, ...]
    pretrain: dict  # dataset -> {"snapshots": encoders [P, C, ...], "loss": [P, epochs]}


def run(config, *, workdir: str | Path | None = None, log=print, progress=None, report: bool = True) -> StudyResult:
    """Runs the study; writes config.json, manifest.json, replicates.csv, summary.json,
    predictions.npz and (``report=True``) report.md with its plots into ``workdir`` when given,
    checkpointing every finished chunk (rerunning on the same workdir resumes). ``log`` gets
    progress lines (None = quiet); ``progress``: a ``jaxeval.progress.Progress`` (bars)."""
    out = base.run_in_workdir(STUDY, config, compute, workdir=workdir, log=log, progress=progress, report=report)
    e = out.extra
    return StudyResult(config=config, summary=out.summary, manifest=out.manifest, raw=e["raw"],
                       normalized=e["normalized"], runs=e["runs"], pretrain=e["pretrain"])


# ----------------------------------------------------------------------------- tables


def fmt(v, digits: int = 3) -> str:
    """A number for the tables; "n/a" for an undefined one (NaN, saved as null)."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _iv(d: dict, digits: int = 3) -> str:
    return f"{fmt(d['estimate'], digits)} [{fmt(d['lo'], digits)}, {fmt(d['hi'], digits)}]"


def per_task_rows(summary: dict) -> list[list[str]]:
    rows = []
    for t in summary["tasks"]:
        rows.append([t["name"], t["metric"], fmt(t["chance"])]
                    + [_iv({"estimate": summary["per_task"][c][t["name"]]["mean"],
                            "lo": summary["per_task"][c][t["name"]]["lo"],
                            "hi": summary["per_task"][c][t["name"]]["hi"]}) for c in summary["configs"]])
    return rows


def aggregate_rows(summary: dict, kind: str = "normalized") -> list[list[str]]:
    return [[c] + [_iv(summary["aggregates"][kind][c][a]) for a in AGGREGATES] for c in summary["configs"]]


def ranking_rows(summary: dict) -> list[list[str]]:
    rows = []
    for method in ranking.METHODS:
        r = summary["ranking"]["methods"].get(method)
        if r is None:
            continue
        for j, c in enumerate(summary["configs"]):
            rows.append([method, c, fmt(r["statistic"][j]), f"{r['ranks'][j]:g} [{r['lower'][j]:g}, {r['upper'][j]:g}]",
                         fmt(r["p_first"][j])])
    return rows


def link_rows(summary: dict) -> list[list[str]]:
    rows = []
    order = [t["name"] for t in summary["tasks"]] + ["suite mean"]
    for name, entry in summary["link"].items():
        for task in sorted(entry["tasks"], key=order.index):
            s = entry["tasks"][task]
            if "skipped" in s:
                rows.append([name, task, "skipped: " + s["skipped"], "", "", ""])
                continue
            sl = s["slope"]
            rows.append([name, task, _iv(s["pearson"]), _iv(s["spearman"]), _iv(s["kendall"]),
                         f"{s['link']}(metric) = {fmt(s['intercept']['estimate'], 2)} + {fmt(sl['estimate'], 2)} x "
                         f"(slope [{fmt(sl['lo'], 2)}, {fmt(sl['hi'], 2)}])"])
    return rows


PER_TASK_HEAD = ["task", "metric", "chance"]
AGGREGATE_HEAD = ["config"] + list(AGGREGATES)
RANKING_HEAD = ["method", "config", "statistic", "rank [CI]", "P(rank=1)"]
LINK_HEAD = ["dataset", "task", "Pearson", "Spearman", "Kendall", "fitted link"]


def _text_table(head, rows) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return [fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]


def format_summary(summary: dict) -> str:
    """The per-task, aggregate, ranking and correlation tables printed at the end of a study."""
    level = round(100 * (1 - summary["bootstrap"]["alpha"]))
    b = summary["bootstrap"]
    lines = [f"multitask: {len(summary['tasks'])} tasks x {len(summary['configs'])} configs, "
             f"{summary['num_pretrain_seeds']} pretraining x {summary['num_finetune_seeds']} finetuning seeds; "
             f"{level}% percentile bootstrap ({b['plan']}{', tasks resampled' if b['task_bootstrap'] else ''}, "
             f"{b['num_resamples']} resamples)", "", "per-task mean [CI]:"]
    lines += _text_table(PER_TASK_HEAD + summary["configs"], per_task_rows(summary))
    lines += ["", "aggregates of normalised scores (x - chance) / (1 - chance), estimate [CI]:"]
    lines += _text_table(AGGREGATE_HEAD, aggregate_rows(summary, "normalized"))
    lines += ["", "aggregates of raw scores:"]
    lines += _text_table(AGGREGATE_HEAD, aggregate_rows(summary, "raw"))
    lines += ["", f"ranking ({summary['ranking']['rule']}; missing={summary['ranking']['missing']}):"]
    lines += _text_table(RANKING_HEAD, ranking_rows(summary))
    if summary["link"]:
        lines += ["", "pretraining loss -> downstream metric (nested bootstrap over pretraining seeds):"]
        lines += _text_table(LINK_HEAD, link_rows(summary))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- report


def report(workdir: Path) -> list[str]:
    """Draws the plots of a finished study from its saved results; returns markdown lines.

    Reads ``summary.json`` and ``replicates.csv`` only; writes ``per_task.png``,
    ``aggregates.png``, ``profiles.png`` and (with a link) ``link.png`` into ``workdir``.
    """
    from jaxeval.studies import multitask_plots

    return multitask_plots.report(Path(workdir))
