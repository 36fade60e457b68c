"""GLUE / SuperGLUE scores: reproduced on the public leaderboard rows."""

import csv
import math

import pytest

from tests.reference import reference_path

from jaxeval.glue import (
    GLUE_TASKS,
    SUPERGLUE_TASKS,
    glue_score,
    parse_cell,
    superglue_score,
    task_scores,
)

GLUE_COLUMNS = ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI-m", "MNLI-mm", "QNLI", "RTE", "WNLI", "AX"]
SUPERGLUE_COLUMNS = ["BoolQ", "CB", "COPA", "MultiRC", "ReCoRD", "RTE", "WiC", "WSC", "AX-b", "AX-g"]


def _rows(name, columns):
    path = reference_path(name)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows, path
    return [(r["Model"], r["Score"], {c: r[c] for c in columns}) for r in rows]


def _match_rate(rows, score_fn, tol=0.05):
    scored = [(m, float(s), cells) for m, s, cells in rows if s.strip() != "-"]
    diffs = [abs(score_fn(cells) - s) for _, s, cells in scored]
    return sum(d <= tol + 1e-9 for d in diffs) / len(diffs), diffs, len(scored)


@pytest.mark.parametrize(
    "name,columns,score_fn,n_scored",
    [
        ("glue_leaderboard.csv", GLUE_COLUMNS, glue_score, 98),
        ("superglue_leaderboard.csv", SUPERGLUE_COLUMNS, superglue_score, 22),
    ],
)
def test_reproduces_leaderboard_scores(name, columns, score_fn, n_scored):
    rows = _rows(name, columns)
    rate, diffs, n = _match_rate(rows, lambda c: score_fn(c, missing="leaderboard"))
    assert n == n_scored
    assert rate >= 0.95, (name, rate)
    # Every row within the rounding bound: cells and score are shown rounded to 0.1.
    assert max(diffs) <= 0.1 + 1e-9, (name, max(diffs))


def test_other_glue_conventions_do_not_reproduce_the_rows():
    """The check discriminates: MNLI-m/mm as two entries, or AX included, miss most rows."""
    rows = _rows("glue_leaderboard.csv", GLUE_COLUMNS)

    def ten_entries(cells):
        vals = [sum(parse_cell(cells[c])) / len(parse_cell(cells[c])) for c in GLUE_COLUMNS[:-1]]
        return sum(vals) / len(vals)

    def with_ax(cells):
        return (9 * glue_score(cells) + float(cells["AX"])) / 10

    complete = [r for r in rows if r[1] != "-" and "NaN" not in "".join(r[2].values())]
    assert _match_rate(complete, ten_entries)[0] < 0.2
    assert _match_rate(complete, with_ax)[0] < 0.2


def test_unscored_rows_have_no_score():
    """Rows the leaderboard shows with score '-' miss a task: NaN (or an error), never a number."""
    for name, columns, fn in [
        ("glue_leaderboard.csv", GLUE_COLUMNS, glue_score),
        ("superglue_leaderboard.csv", SUPERGLUE_COLUMNS, superglue_score),
    ]:
        unscored = [cells for _, s, cells in _rows(name, columns) if s.strip() == "-"]
        assert unscored
        for cells in unscored:
            assert math.isnan(fn(cells, missing="nan"))
            assert math.isnan(fn(cells, missing="leaderboard"))
            with pytest.raises(ValueError, match="incomplete"):
                fn(cells)


def test_nan_metric_row():
    """MaChAmp's STS-B 'NaN/99.8': raise by default, NaN on request, 0 under the site's rule."""
    row = next(c for m, _, c in _rows("glue_leaderboard.csv", GLUE_COLUMNS) if "NaN" in c["STS-B"])
    with pytest.raises(ValueError, match=r"NaN metric for \['STS-B'\]"):
        glue_score(row)
    assert math.isnan(glue_score(row, missing="nan"))
    assert task_scores(row, missing="leaderboard")["STS-B"] == 0.0
    assert abs(glue_score(row, missing="leaderboard") - 67.6) <= 0.05


def test_closed_form_on_fixed_input():
    results = {
        "CoLA": 60.0,
        "SST-2": 90.0,
        "MRPC": "80/70",
        "STS-B": (85.0, 83.0),
        "QQP": "70/88",
        "MNLI-m": 84.0,
        "MNLI-mm": 82.0,
        "QNLI": 91.0,
        "RTE": 70.0,
        "WNLI": 65.0,
        "AX": -5.0,
    }
    expected = (60 + 90 + 75 + 84 + 79 + 83 + 91 + 70 + 65) / 9
    assert glue_score(results) == pytest.approx(expected, abs=1e-12)
    # MNLI as one 'm/mm' cell and loose spelling give the same score.
    alt = {k.lower().replace("-", "_"): v for k, v in results.items() if not k.startswith("MNLI")}
    alt["MNLI"] = "84/82"
    assert glue_score(alt) == pytest.approx(expected, abs=1e-12)
    sg = {
        "BoolQ": 80,
        "CB": "90/96",
        "COPA": 70,
        "MultiRC": "76/36",
        "ReCoRD": "86/85",
        "RTE": 75,
        "WiC": 55,
        "WSC": 85,
        "AX-b": 0.3,
        "AX-g": "100/50",
    }
    assert superglue_score(sg) == pytest.approx((80 + 93 + 70 + 56 + 85.5 + 75 + 55 + 85) / 8, abs=1e-12)
    assert set(task_scores(sg, "superglue")) == set(SUPERGLUE_TASKS)
    assert set(task_scores(results)) == set(GLUE_TASKS)


def test_parse_cell():
    assert parse_cell("93.9/91.8") == (93.9, 91.8)
    assert parse_cell(" 75.5 ") == (75.5,)
    assert parse_cell(3) == (3.0,)
    assert parse_cell("-") == () and parse_cell(None) == () and parse_cell("") == ()
    assert math.isnan(parse_cell("NaN/99.8")[0])
    with pytest.raises(ValueError, match="cannot parse"):
        parse_cell("93.9|91.8")


def test_bad_inputs_raise_with_names():
    base = {t: ("1/1" if n == 2 else 1.0) for t, n in GLUE_TASKS.items()}
    with pytest.raises(ValueError, match="needs 2 metric"):
        glue_score({**base, "MRPC": 88.0})
    with pytest.raises(ValueError, match="not GLUE tasks.*'Score'"):
        glue_score({**base, "Score": 80.0})
    with pytest.raises(ValueError, match="both as 'MNLI'"):
        glue_score({**base, "MNLI-m": 80.0, "MNLI-mm": 80.0})
    with pytest.raises(ValueError, match="missing must be one of"):
        glue_score(base, missing="zero")
    with pytest.raises(ValueError, match="no result for \\['WNLI'\\]"):
        glue_score({k: v for k, v in base.items() if k != "WNLI"})
