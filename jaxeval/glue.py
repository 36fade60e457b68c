"""GLUE and SuperGLUE benchmark scores from per-task results.

The rule (checked on the leaderboard rows vendored in ``tests/data/*_leaderboard.csv``):

* A task reported with two metrics (a cell ``"a/b"``) scores the plain mean of the two:
  MRPC F1/acc, STS-B Pearson/Spearman, QQP F1/acc; SuperGLUE CB F1/acc, MultiRC F1a/EM,
  ReCoRD F1/acc.
* GLUE: MNLI is *one* task scoring ``(MNLI-m + MNLI-mm) / 2``; the score is the mean over the
  9 tasks CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI. The diagnostic AX is not in it.
* SuperGLUE: the mean over the 8 tasks BoolQ, CB, COPA, MultiRC, ReCoRD, RTE, WiC, WSC. The
  diagnostics AX-b and AX-g are not in it.

Other conventions tried and refuted by the rows: MNLI-m and MNLI-mm as two of 10 GLUE
entries (4/98 rows within 0.05), AX included (0/98); SuperGLUE with AX-b (0/22), or with the
first metric only (0/22). The chosen rule reproduces 95/98 GLUE and 21/22 SuperGLUE scored rows
within 0.05, and every row within 0.1 -- the bound from the leaderboard rounding each cell
and the score to 0.1 (at most 0.05 each).

Missing results are never silently zeroed or dropped; ``missing=`` says what to do:

* ``"raise"`` (default): a task with no result (``None``, ``""``, ``"-"``, absent key) or with
  a NaN metric raises, naming the tasks.
* ``"nan"``: the score is NaN (the task scores of those tasks are NaN).
* ``"leaderboard"``: what gluebenchmark.com does, as the rows show: a task with no result gives
  no score (NaN; the site shows "-"), while a task submitted with a NaN metric scores 0 as a
  whole (the row ``STS-B = "NaN/99.8"`` reproduces its reported 67.6 only with STS-B = 0).

Scores are on the scale of the inputs (the leaderboards use 0-100).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

Cell = str | float | int | Sequence[float] | None

# task -> number of metrics in its cell. MNLI may also come as two cells MNLI-m and MNLI-mm.
GLUE_TASKS: dict[str, int] = {
    "CoLA": 1,
    "SST-2": 1,
    "MRPC": 2,
    "STS-B": 2,
    "QQP": 2,
    "MNLI": 2,
    "QNLI": 1,
    "RTE": 1,
    "WNLI": 1,
}
GLUE_DIAGNOSTICS: tuple[str, ...] = ("AX",)
SUPERGLUE_TASKS: dict[str, int] = {
    "BoolQ": 1,
    "CB": 2,
    "COPA": 1,
    "MultiRC": 2,
    "ReCoRD": 2,
    "RTE": 1,
    "WiC": 1,
    "WSC": 1,
}
SUPERGLUE_DIAGNOSTICS: tuple[str, ...] = ("AX-b", "AX-g")
_MNLI_PARTS = ("MNLI-m", "MNLI-mm")
_MISSING_POLICIES = ("raise", "nan", "leaderboard")
_MISSING_TOKENS = ("", "-", "--", "n/a", "na", "none")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def parse_cell(cell: Cell) -> tuple[float, ...]:
    """The metric values of one cell: ``"93.9/91.8" -> (93.9, 91.8)``, ``75.5 -> (75.5,)``.

    ``None``, ``""`` and ``"-"`` mean *no result* and give ``()``; ``"NaN"`` gives ``(nan,)`` (a
    submitted but undefined metric). A sequence of numbers is taken as the metrics.
    """
    if cell is None:
        return ()
    if isinstance(cell, bool):
        raise TypeError(f"cell must be a number, an 'a/b' string or None, got {cell!r}")
    if isinstance(cell, (int, float)):
        return (float(cell),)
    if isinstance(cell, str):
        text = cell.strip()
        if text.lower() in _MISSING_TOKENS:
            return ()
        parts = text.split("/")
        try:
            return tuple(float(p) for p in parts)
        except ValueError:
            raise ValueError(f"cannot parse cell {cell!r}: expected a number or numbers joined by '/'") from None
    try:
        values = tuple(float(v) for v in cell)
    except (TypeError, ValueError):
        raise TypeError(
            f"cell must be a number, an 'a/b' string, a sequence of numbers or None, got {cell!r}"
        ) from None
    return values


def _collect(results: Mapping[str, Cell], tasks: Mapping[str, int], diagnostics: Sequence[str], benchmark: str):
    """``{task: tuple of metrics}`` (``()`` for no result), MNLI-m/mm merged; validates names and counts."""
    canon = {_norm(t): t for t in tasks}
    skip = {_norm(d) for d in diagnostics}
    mnli_parts = {_norm(p): p for p in _MNLI_PARTS} if "MNLI" in tasks else {}
    cells: dict[str, tuple[float, ...]] = {}
    parts: dict[str, tuple[float, ...]] = {}
    unknown = []
    for name, cell in results.items():
        key = _norm(str(name))
        if key in skip:
            continue
        if key in mnli_parts:
            parts[mnli_parts[key]] = parse_cell(cell)
        elif key in canon:
            if canon[key] in cells:
                raise ValueError(f"results give task {canon[key]!r} twice (as {name!r})")
            cells[canon[key]] = parse_cell(cell)
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(
            f"results has names that are not {benchmark} tasks: {unknown}; allowed: {list(tasks)}"
            + (f" (MNLI also as {list(_MNLI_PARTS)})" if mnli_parts else "")
            + f", diagnostics {list(diagnostics)} (ignored)"
        )
    if parts:
        if "MNLI" in cells:
            raise ValueError(f"results give MNLI both as 'MNLI' and as {sorted(parts)}; give one form")
        m, mm = parts.get("MNLI-m", ()), parts.get("MNLI-mm", ())
        for label, v in (("MNLI-m", m), ("MNLI-mm", mm)):
            if len(v) > 1:
                raise ValueError(f"{label} must be one number, got {v}")
        cells["MNLI"] = m + mm if (m and mm) else ()
    for task, n in tasks.items():
        v = cells.setdefault(task, ())
        if v and len(v) != n:
            raise ValueError(
                f"{benchmark} task {task!r} needs {n} metric(s) (averaged within the task), got {len(v)}: {v}"
            )
    return cells


def task_scores(results: Mapping[str, Cell], benchmark: str = "glue", *, missing: str = "raise") -> dict[str, float]:
    """``{task: score}``: each task's metrics averaged (see the module docstring for the rule).

    ``benchmark`` is ``"glue"`` or ``"superglue"``; ``missing`` is ``"raise"``, ``"nan"`` or
    ``"leaderboard"`` (a task with no result -> NaN, a task with a NaN metric -> 0).
    """
    if missing not in _MISSING_POLICIES:
        raise ValueError(f"missing must be one of {_MISSING_POLICIES}, got {missing!r}")
    b = benchmark.lower()
    if b == "glue":
        tasks, diagnostics, label = GLUE_TASKS, GLUE_DIAGNOSTICS, "GLUE"
    elif b == "superglue":
        tasks, diagnostics, label = SUPERGLUE_TASKS, SUPERGLUE_DIAGNOSTICS, "SuperGLUE"
    else:
        raise ValueError(f"benchmark must be 'glue' or 'superglue', got {benchmark!r}")
    cells = _collect(results, tasks, diagnostics, label)
    absent = [t for t, v in cells.items() if not v]
    undefined = [t for t, v in cells.items() if v and any(math.isnan(x) for x in v)]
    if missing == "raise" and (absent or undefined):
        raise ValueError(
            f"{label} results are incomplete: no result for {absent}, NaN metric for {undefined}. "
            "Pass missing='nan' (score NaN) or missing='leaderboard' (the site's rule) to accept this."
        )
    scores = {}
    for task, v in cells.items():
        if not v:
            scores[task] = math.nan
        elif task in undefined:
            scores[task] = 0.0 if missing == "leaderboard" else math.nan
        else:
            scores[task] = math.fsum(v) / len(v)
    return scores


def _score(results, benchmark, missing) -> float:
    scores = task_scores(results, benchmark, missing=missing)
    values = list(scores.values())
    if any(math.isnan(v) for v in values):
        return math.nan
    return math.fsum(values) / len(values)


def glue_score(results: Mapping[str, Cell], *, missing: str = "raise") -> float:
    """The GLUE score: mean over 9 tasks, two-metric tasks and MNLI-m/mm averaged within the task.

    ``results`` maps task names (case, '-' and '_' ignored: "SST-2", "sst2") to a number, an
    ``"a/b"`` string or a pair: ``{"CoLA": 75.5, "MRPC": "93.9/91.8", "MNLI-m": 92.3,
    "MNLI-mm": 91.7, ...}`` (MNLI also as ``"MNLI": "92.3/91.7"``). "AX" is accepted and ignored.
    """
    return _score(results, "glue", missing)


def superglue_score(results: Mapping[str, Cell], *, missing: str = "raise") -> float:
    """The SuperGLUE score: mean over 8 tasks; CB, MultiRC, ReCoRD averaged within the task.

    ``results`` as for :func:`glue_score`; "AX-b" and "AX-g" are accepted and ignored.
    """
    return _score(results, "superglue", missing)
