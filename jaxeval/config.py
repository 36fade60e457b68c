"""The study config schema: defaults, and validation that names the field, value and what is allowed.

Config files (``configs/*.py``) define ``get_config()`` returning ``base_config()`` with changes.
``validate(config)`` checks every field against the schema: an unknown field (a typo in a config
file, or ``--config.x=...``) is an error listing the known fields, and each value is checked
against its allowed type and range.

A study adds its own group of fields (``config.variance``, ``config.scaling``, ...): its module
``jaxeval.studies.<study>`` defines ``CONFIG_GROUP`` (a dict of defaults) and
``check_config(cfg)`` (raises ValueError naming the field, value and what is allowed).
``base_config("variance")`` includes that group; ``validate(config, "variance")`` checks it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from typing import Any

import ml_collections

from jaxeval import models
from jaxeval.train.finetune import MODES
from jaxeval.train.optim import SCHEDULES


def _optimizer(lr: float, epochs: int, batch_size: int, weight_decay: float) -> dict:
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": lr,
        "weight_decay": weight_decay,
        "schedule": "cosine",
        "warmup_steps": 0,
        "grad_clip": 0.0,
        "accum_steps": 1,
    }


STUDIES = ("seeds", "variance", "scaling", "multitask", "compare")


def _study_module(study: str):
    if study not in STUDIES:
        raise ValueError(f"study={study!r} is not known; the studies are {STUDIES}")
    return importlib.import_module(f"jaxeval.studies.{study}")


def base_config(study: str | None = None) -> ml_collections.ConfigDict:
    """All fields with their defaults (the default study: digits, MLP, 8 seeds), plus the group
    ``config.<study>`` of ``study``'s own fields when the study has one."""
    cfg = {
        "seed": 0,  # root seed of every stream
        "num_seeds": 8,  # finetuning replicates per pretrained model
        "chunk_width": 8,  # replicates per compiled vmapped program (DESIGN §4)
        # Devices the replicate axis is sharded over (jaxeval.sweep.make_mesh): 1 = the default
        # device; 0 = all devices (of every process under jax.distributed); n = the first n.
        # Each device runs whole chunks of chunk_width replicates: the bits do not change.
        "devices": 1,
        "dataset": {
            "name": "digits",
            "data_dir": "",  # "" -> $JAXEVAL_DATA_DIR or ~/.cache/jaxeval/tfds
            "offline": False,
            "task": "identity",  # label map, e.g. "parity", "ge5", "one_vs_rest:3"
            "train_size": 0,  # 0 -> all; else the first n of a keyed permutation (split stream)
            # Generated datasets (mnist1d) only: its size and generator seed. The generator seed
            # is a property of the dataset (like a file), not of the study's streams.
            "num_train": 0,  # 0 -> the builder's default
            "num_test": 0,
            "generator_seed": 0,
        },
        "model": {
            "name": "mlp",
            "hidden": (256, 256),
            "dropout": 0.3,
            "conv_features": (32, 64),
            "dense": 128,
            "head_dropout": 0.5,
            "recon_hidden": 256,
        },
        "pretrain": {
            "enabled": True,
            "num_seeds": 1,
            "mask_rate": 0.25,
            **_optimizer(1e-3, 20, 64, 1e-4),
        },
        "finetune": {
            "modes": ("full", "probe"),
            **_optimizer(3e-3, 40, 64, 1e-2),
        },
        "eval": {"batch_size": 1024, "ece_bins": 15},
    }
    if study is not None:
        group = getattr(_study_module(study), "CONFIG_GROUP", None)
        if group is not None:
            cfg[study] = group
    return ml_collections.ConfigDict(cfg)


def _known(schema: ml_collections.ConfigDict, cfg, prefix: str) -> None:
    for k in cfg.keys():
        if k not in schema:
            raise ValueError(
                f"config field {prefix}{k} is not known; the fields of {prefix.rstrip('.') or 'config'} "
                f"are {sorted(schema.keys())}"
            )
        if isinstance(schema[k], ml_collections.ConfigDict):
            if not isinstance(cfg[k], (ml_collections.ConfigDict, dict)):
                raise ValueError(f"config.{prefix}{k} must be a group of fields, got {cfg[k]!r}")
            _known(schema[k], cfg[k], f"{prefix}{k}.")


def _fill(schema: ml_collections.ConfigDict, cfg) -> ml_collections.ConfigDict:
    """Defaults for fields the user config left out, then the user's values."""
    out = ml_collections.ConfigDict(schema.to_dict())
    for k in cfg.keys():
        if isinstance(schema[k], ml_collections.ConfigDict):
            out[k] = _fill(schema[k], cfg[k])
        else:
            out[k] = cfg[k]
    return out


def _check(cond: bool, field: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ValueError(f"config.{field}={value!r} is not allowed: {allowed}")


def _posint(cfg, field: str) -> None:
    v = _get(cfg, field)
    _check(isinstance(v, int) and not isinstance(v, bool) and v > 0, field, v, "must be a positive integer")


def _get(cfg, field: str):
    for part in field.split("."):
        cfg = cfg[part]
    return cfg


def set_fields(cfg, values) -> ml_collections.ConfigDict:
    """Sets dotted fields in place, ``set_fields(cfg, {"finetune.epochs": 3})``; returns ``cfg``."""
    for field, value in values.items():
        *path, last = field.split(".")
        node = cfg
        for part in path:
            node = node[part]
        node[last] = value
    return cfg


def _check_optimizer(cfg, group: str) -> None:
    for f in ("epochs", "batch_size", "accum_steps"):
        _posint(cfg, f"{group}.{f}")
    g = cfg[group]
    _check(g.learning_rate > 0, f"{group}.learning_rate", g.learning_rate, "must be > 0")
    _check(g.weight_decay >= 0, f"{group}.weight_decay", g.weight_decay, "must be >= 0")
    _check(g.schedule in SCHEDULES, f"{group}.schedule", g.schedule, f"one of {SCHEDULES}")
    _check(g.warmup_steps >= 0, f"{group}.warmup_steps", g.warmup_steps, "must be >= 0")
    _check(g.grad_clip >= 0, f"{group}.grad_clip", g.grad_clip, "must be >= 0 (0 = no clipping)")


def validate(config, study: str | None = None) -> ml_collections.ConfigDict:
    """Returns a complete, checked copy of ``config`` (a ConfigDict or dict) for ``study`` (None:
    the common fields only); raises ValueError."""
    from jaxeval import data  # late: data imports tfds

    schema = base_config(study)
    _known(schema, config, "")
    cfg = _fill(schema, config)
    seed = cfg.seed
    _check(isinstance(seed, int) and 0 <= seed < 2**32, "seed", seed, "an integer in [0, 2**32)")
    for f in ("num_seeds", "chunk_width", "eval.batch_size", "eval.ece_bins", "pretrain.num_seeds"):
        _posint(cfg, f)
    _check(isinstance(cfg.devices, int) and not isinstance(cfg.devices, bool) and cfg.devices >= 0, "devices",
           cfg.devices, "an integer >= 0 (0 = all devices, 1 = the default device, n = the first n devices)")
    known = data.known_datasets()
    _check(cfg.dataset.name in known, "dataset.name", cfg.dataset.name, f"one of {known}")
    _check(
        isinstance(cfg.dataset.train_size, int) and cfg.dataset.train_size >= 0,
        "dataset.train_size", cfg.dataset.train_size, "an integer >= 0 (0 = the whole train split)",
    )
    for f in ("num_train", "num_test", "generator_seed"):
        v = cfg.dataset[f]
        _check(isinstance(v, int) and v >= 0, f"dataset.{f}", v, "an integer >= 0")
        if cfg.dataset.name not in data.GENERATED and v:
            raise ValueError(f"config.dataset.{f}={v!r} is only allowed for generated datasets {data.GENERATED}, "
                             f"not {cfg.dataset.name!r}")
    _check(cfg.model.name in models.MODELS, "model.name", cfg.model.name, f"one of {models.MODELS}")
    _check(0 <= cfg.model.dropout < 1, "model.dropout", cfg.model.dropout, "in [0, 1)")
    _check(0 <= cfg.model.head_dropout < 1, "model.head_dropout", cfg.model.head_dropout, "in [0, 1)")
    _check(all(isinstance(h, int) and h > 0 for h in cfg.model.hidden), "model.hidden", cfg.model.hidden,
           "a tuple of positive integers")
    _check(0 <= cfg.pretrain.mask_rate < 1, "pretrain.mask_rate", cfg.pretrain.mask_rate, "in [0, 1)")
    modes = tuple(cfg.finetune.modes)
    _check(len(modes) > 0 and all(m in MODES for m in modes) and len(set(modes)) == len(modes),
           "finetune.modes", modes, f"a non-empty tuple of distinct modes from {MODES}")
    _check_optimizer(cfg, "pretrain")
    _check_optimizer(cfg, "finetune")
    if study is not None:
        check = getattr(_study_module(study), "check_config", None)
        if check is not None:
            check(cfg)
    cfg.lock()
    return cfg


def to_dict(cfg) -> dict:
    """JSON-ready dict (tuples become lists)."""
    return json.loads(cfg.to_json())


def config_hash(cfg) -> str:
    """sha256 of the canonical JSON of the (validated) config, without ``devices``: the bits do
    not depend on how many devices run the chunks (tested), so a study may resume on others."""
    d = to_dict(cfg)
    d.pop("devices", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


# For studies' ``check_config``: the same messages as the common fields.
check = _check
check_positive_int = _posint
