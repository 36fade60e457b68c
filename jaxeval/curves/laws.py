"""Two-variable scaling laws: ``L(N, D) = E + A / N^alpha + B / D^beta`` (Hoffmann et al. 2022,
approach 3), fitted with the same machinery as the learning curves (family ``"chinchilla"``).

:func:`chinchilla_data` and :func:`fit_chinchilla` follow the procedure of Besiroglu et al.
(2024, "Chinchilla Scaling: A replication attempt", Epoch AI) on the points they extracted from
Hoffmann et al.'s figure: ``D = FLOP / (6 N)``, drop the 5 highest-loss points (their rule:
keep ``loss < 5th-highest loss``), minimise the *sum* of Huber losses (``delta = 1e-3``) of
``log L`` against ``log(E + A N^-alpha + B D^-beta)`` (computed as a log-sum-exp on
``theta = (log E, log A, alpha, log B, beta)``), from the 4,500 starts of
:func:`~jaxeval.curves.families.hoffmann_grid`, keeping the best.

Their reported estimates (:data:`EPOCH_ESTIMATE`) are the reference the tests compare against.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from jaxeval.curves.families import hoffmann_grid
from jaxeval.curves.fit import CurveFit, fit_curve
from jaxeval.curves.objective import make_objective
from jaxeval.curves.solver import SolverOptions

# Besiroglu et al. 2024 (arXiv:2404.10102), their estimate for this data and procedure.
EPOCH_ESTIMATE = {"E": 1.82, "A": 482.01, "alpha": 0.3478, "B": 2085.43, "beta": 0.3658}
# Hoffmann et al. 2022, approach 3, as published (for comparison only).
HOFFMANN_ESTIMATE = {"E": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}

CHINCHILLA_CSV = "chinchilla_svg_extracted_data.csv"
# Shipped with the package (source and licence: data/README.md).
DATA_DIR = Path(__file__).resolve().parent / "data"


def chinchilla_data(path: str | os.PathLike | None = None, *, drop_highest: int = 5):
    """``(N, D, loss)`` float64 arrays from Epoch AI's extracted Chinchilla points.

    ``D = FLOP / (6 N)``; rows with a missing value are dropped; then the ``drop_highest``
    highest losses are dropped with Epoch's rule (keep ``loss < sorted(loss)[-drop_highest]``).
    """
    path = Path(path) if path is not None else DATA_DIR / CHINCHILLA_CSV
    if not path.exists():
        raise FileNotFoundError(f"Chinchilla data not found at {path}; pass path= to a copy of Epoch AI's svg_extracted_data.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    try:
        N = np.array([float(r["Model Size"]) for r in rows])
        C = np.array([float(r["Training FLOP"]) for r in rows])
        loss = np.array([float(r["loss"]) for r in rows])
    except KeyError as e:
        raise ValueError(f"{path} lacks column {e}; expected 'Model Size', 'Training FLOP', 'loss'") from None
    ok = np.isfinite(N) & np.isfinite(C) & np.isfinite(loss)
    N, C, loss = N[ok], C[ok], loss[ok]
    D = C / (6.0 * N)
    if drop_highest:
        keep = loss < np.sort(loss)[-drop_highest]
        N, D, loss = N[keep], D[keep], loss[keep]
    return N, D, loss


def fit_chinchilla(N, D, loss, *, starts=None, delta: float = 1e-3, reduction: str = "sum",
                   options: SolverOptions | None = None, weights=None) -> CurveFit:
    """Hoffmann et al. approach 3 with Epoch AI's objective: Huber(``delta``) on log loss.

    ``starts`` default :func:`~jaxeval.curves.families.hoffmann_grid` (4,500 starts, natural
    ``(E, A, alpha, B, beta)``). ``reduction="mean"`` reports the mean Huber loss; the optimiser
    and its stopping point are the same as for the sum. Runs in float64.
    """
    N = np.asarray(N, float)
    D = np.asarray(D, float)
    if N.shape != D.shape or N.ndim != 1:
        raise ValueError(f"N and D must be 1-D arrays of equal length, got {N.shape} and {D.shape}")
    obj = make_objective("huber", delta=delta, space="log", reduction=reduction)
    starts = hoffmann_grid() if starts is None else starts
    options = SolverOptions(pool=128, max_iter=500) if options is None else options
    return fit_curve("chinchilla", np.stack([N, D], 1), loss, objective=obj, starts=starts, options=options,
                     weights=weights, dtype="float64")


def predict_loss(params, N, D) -> np.ndarray:
    """``E + A / N^alpha + B / D^beta`` for a dict or array ``(E, A, alpha, B, beta)``."""
    if isinstance(params, dict):
        params = [params[k] for k in ("E", "A", "alpha", "B", "beta")]
    E, A, alpha, B, beta = (float(v) for v in params)
    N = np.asarray(N, float)
    D = np.asarray(D, float)
    return E + A * N**-alpha + B * D**-beta
