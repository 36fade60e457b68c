"""Arms of a comparison: named sets of config overrides, ``"name: field=value, field=value"``.

An arm is a string (ml_collections holds a tuple of them, and ``--config.compare.arms=...``
sets it): a name, a colon, then comma-separated ``field=value`` overrides of the base config
(``"scratch: pretrain.enabled=False"``, ``"wide: model.hidden=(512, 512), finetune.learning_rate=1e-3"``;
``"base:"`` changes nothing). Values are Python literals (``3``, ``1e-3``, ``(64, 64)``, ``False``,
``'cosine'``) or bare words (``cosine``, ``true``); each is converted to the type of the field it
overrides (a scalar for a tuple field becomes a one-element tuple). ``mode=probe`` is short for
``finetune.modes=('probe',)``. Every arm's resulting config is validated with
:func:`jaxeval.config.validate`; an error names the arm, the field and the value.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import Any, Mapping

import ml_collections

from jaxeval import config as config_lib

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")  # also a checkpoint folder name
ALIASES = {"mode": "finetune.modes"}
# Fields an arm may not change: the pairing (same replicate indices and keys in every arm) and
# the tasks (set for all arms in ``compare.tasks``) are properties of the comparison.
FIXED = {
    "seed": "every arm uses the study's root seed (that is what pairs them)",
    "num_seeds": "every arm runs the same replicates (that is what pairs them)",
    "chunk_width": "every arm runs the same compiled chunk width (bitwise-comparable replicates)",
    "dataset.task": "the tasks are set for all arms in compare.tasks",
    "pretrain.num_seeds": "the compare study sets the pretraining replicates (compare.pretrain_per_seed)",
}


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm: ``name``, its ``overrides`` (``((field, value), ...)``) and validated ``config``."""

    name: str
    spec: str
    overrides: tuple[tuple[str, Any], ...]
    config: ml_collections.ConfigDict

    def overrides_dict(self) -> dict[str, Any]:
        return dict(self.overrides)


def _split_top(text: str) -> list[str]:
    """Splits on commas outside brackets and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if len(text) >= 2 and text[0] + text[-1] in ("()", "[]"):  # a tuple of bare words: (full, probe)
            return tuple(_literal(t) for t in _split_top(text[1:-1]))
        return text  # a bare word: cosine, probe, parity


def _coerce(where: str, field: str, raw: str, default: Any) -> Any:
    """``raw`` (the text after ``=``) as a value of the type of ``default``."""
    value = _literal(raw)

    def bad(allowed: str) -> ValueError:
        return ValueError(f"{where}: {field}={raw} is not allowed: {allowed}")

    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise bad("True or False")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(f"an integer (the default is {default!r})")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad(f"a number (the default is {default!r})")
        return float(value)
    if isinstance(default, str):
        return value if isinstance(value, str) else raw
    if isinstance(default, (tuple, list)):
        items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        if default and all(isinstance(d, int) and not isinstance(d, bool) for d in default):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
                raise bad(f"a tuple of integers like the default {tuple(default)!r}")
        return items
    raise bad(f"a value like the default {default!r}")


def parse(spec: str, *, index: int = 0, base: Mapping) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``(name, ((field, value), ...))`` of one arm spec; ``base``: the base config (values give the types)."""
    where = f"config.compare.arms[{index}]"
    if not isinstance(spec, str):
        raise ValueError(f"{where}={spec!r} is not allowed: an arm is a string 'name: field=value, field=value'")
    name, sep, rest = spec.partition(":")
    name = name.strip()
    if not sep or not NAME.fullmatch(name):
        raise ValueError(
            f"{where}={spec!r} is not allowed: an arm is 'name: field=value, field=value' with a name of letters, "
            "digits, '_', '.', '-' (e.g. 'scratch: pretrain.enabled=False', or 'base:' for no change)"
        )
    where = f"{where} (arm {name!r})"
    overrides: dict[str, Any] = {}
    for item in _split_top(rest):
        field, eq, raw = item.partition("=")
        field, raw = field.strip(), raw.strip()
        if not eq or not field or not raw:
            raise ValueError(f"{where}: {item!r} is not allowed: each override is field=value, e.g. finetune.epochs=10")
        field = ALIASES.get(field, field)
        if field in FIXED or field.split(".")[0] == "compare":
            why = FIXED.get(field, "the comparison's own settings are not per arm")
            raise ValueError(f"{where}: {field}={raw} is not allowed: an arm cannot change {field} ({why})")
        node, parts = base, field.split(".")
        for depth, part in enumerate(parts):
            group = ".".join(parts[:depth]) or "config"
            if not isinstance(node, Mapping) or part not in node:
                known = sorted(node.keys()) if isinstance(node, Mapping) else []
                raise ValueError(f"{where}: {field} is not a config field; the fields of {group} are {known}")
            node = node[part]
        if isinstance(node, Mapping):
            raise ValueError(f"{where}: {field} is a group of fields {sorted(node.keys())}; set one of them")
        if field in overrides:
            raise ValueError(f"{where}: {field} is set twice")
        overrides[field] = _coerce(where, field, raw, node)
    return name, tuple(overrides.items())


def _apply(base: dict, overrides) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for field, value in overrides:
        *path, last = field.split(".")
        node = out
        for p in path:
            node[p] = dict(node[p])
            node = node[p]
        node[last] = value
    return out


def build(specs, base) -> list[Arm]:
    """Validated arms from their specs; ``base``: the study's config (its ``compare`` group is left out)."""
    specs = tuple(specs) if isinstance(specs, (tuple, list)) else specs
    if not isinstance(specs, tuple) or len(specs) < 2:
        raise ValueError(f"config.compare.arms={specs!r} is not allowed: at least two arms 'name: field=value, ...'")
    common = base.to_dict() if hasattr(base, "to_dict") else dict(base)
    common.pop("compare", None)
    arms, seen = [], {}
    for i, spec in enumerate(specs):
        name, overrides = parse(spec, index=i, base=common)
        if name in seen:
            raise ValueError(f"config.compare.arms[{i}]: the name {name!r} is already used by arms[{seen[name]}]")
        seen[name] = i
        try:
            cfg = config_lib.validate(_apply(common, overrides))
        except ValueError as e:
            raise ValueError(f"config.compare.arms[{i}] (arm {name!r}, {spec!r}): {e}") from None
        if len(cfg.finetune.modes) != 1:
            raise ValueError(
                f"config.compare.arms[{i}] (arm {name!r}): finetune.modes={tuple(cfg.finetune.modes)!r} is not "
                "allowed: an arm is evaluated in exactly one finetuning mode; set finetune.modes=('full',) in the "
                "base config, or mode=probe in the arm"
            )
        arms.append(Arm(name, spec, overrides, cfg))
    return arms
