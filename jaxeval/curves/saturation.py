"""Saturation: is more data worth it? Verdicts from the seed bootstrap of a fitted curve.

For every observed size ``n`` and every bootstrap refit ``f_b`` the gain from doubling the data is
``f_b(n) - f_b(2n)`` (``f_b(2n) - f_b(n)`` when higher is better), in the score's own units,
and ``P(gain < epsilon)`` is the fraction of refits whose gain is below the user's threshold
(refits expanded by the bootstrap's small-sample factor, see :mod:`jaxeval.curves.uncertainty`).
The saturation size ``n_eps`` is the smallest ``n`` from which the curve stays within
``epsilon`` of its limit ``f(inf)`` (searched on a log grid, 100 points per decade, up to
``horizon x max(sizes)``, then interpolated inside the grid cell; ``inf`` when the family has no
finite limit or the curve is still farther than ``epsilon`` at the horizon), with a percentile CI
over the refits.

The verdict is about the largest observed size ``n_max`` (would doubling it help?):

* ``"saturated"``: ``P(gain < epsilon) >= level`` (the one-sided upper bound of the gain is below
  ``epsilon``);
* ``"not saturated"``: ``P(gain < epsilon) <= 1 - level``;
* ``"cannot tell"``: otherwise (the gain's interval straddles ``epsilon``), or when the point fit
  did not converge, or when fewer than half of the resamples survived the exclusion rule;
  the ``reason`` says which, with the numbers.

Model-free check, always reported: the *observed* gain per doubling over the last step of the
grid, ``(mean(n_{S-1}) - mean(n_S)) / log2(n_S / n_{S-1})``, on the same joint bootstrap draws
(expanded like the refits). For a curve that flattens it is an upper bound of the gain beyond
``n_max``. When the family is LCDB's ``last1`` (a flat line: its refits predict a gain of exactly
0, so it cannot give evidence either way) the verdict is made from this observed gain instead,
with the same thresholds, and the reason says so.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxeval.curves.families import _evaluate, get_family
from jaxeval.curves.fit import json_num
from jaxeval.curves.uncertainty import CurveBootstrap, expand

VERDICTS = ("saturated", "not saturated", "cannot tell")


class Saturation(NamedTuple):
    verdict: str
    reason: str
    epsilon: float
    level: float
    higher_is_better: bool
    sizes: np.ndarray  # [S]
    gain: np.ndarray  # [S] point-fit gain from doubling each size
    gain_lo: np.ndarray  # [S] two-sided percentile interval at ``level``
    gain_hi: np.ndarray
    p_small_gain: np.ndarray  # [S] P(gain < epsilon) over the used resamples
    n_saturation: float  # point fit's n_eps (inf if never within the horizon)
    n_saturation_lo: float
    n_saturation_hi: float
    limit: float  # point fit's f(inf) (nan if none)
    limit_lo: float
    limit_hi: float
    observed_gain: float  # model-free gain per doubling over the last grid step
    observed_gain_lo: float
    observed_gain_hi: float
    p_observed_small: float  # P(observed gain per doubling < epsilon) over the joint resamples

    def summary(self) -> dict:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "epsilon": self.epsilon,
            "level": self.level,
            "higher_is_better": self.higher_is_better,
            "sizes": [float(s) for s in self.sizes],
            "gain_from_doubling": [json_num(g) for g in self.gain],
            "gain_ci": [[json_num(a), json_num(b)] for a, b in zip(self.gain_lo, self.gain_hi)],
            "p_gain_below_epsilon": [json_num(q) for q in self.p_small_gain],
            "n_saturation": json_num(self.n_saturation),
            "n_saturation_ci": [json_num(self.n_saturation_lo), json_num(self.n_saturation_hi)],
            "limit": json_num(self.limit),
            "limit_ci": [json_num(self.limit_lo), json_num(self.limit_hi)],
            "observed_gain_per_doubling": {
                "from": float(self.sizes[-2]), "to": float(self.sizes[-1]), "estimate": json_num(self.observed_gain),
                "ci": [json_num(self.observed_gain_lo), json_num(self.observed_gain_hi)],
                "p_below_epsilon": json_num(self.p_observed_small),
                "method": "(mean at n_{S-1} - mean at n_S) / log2(n_S / n_{S-1}), joint seed bootstrap, no model",
            },
        }


def _curves(family, params, x):
    with jax.enable_x64(True), np.errstate(all="ignore"):
        return np.asarray(_evaluate(family, jnp.asarray(params), jnp.asarray(x)))


def saturation_size(family, params, epsilon, n_start, n_stop, per_decade: int = 100):
    """``(n_eps [R], limit [R])``: smallest ``n`` from which ``|f(n) - f(inf)| <= epsilon``.

    Searched on a log grid from ``n_start`` to ``n_stop`` (``per_decade`` points), the crossing
    interpolated linearly in ``log n`` inside its cell; ``inf`` beyond ``n_stop`` or without a limit.
    """
    params = np.atleast_2d(np.asarray(params, float))
    fam = get_family(family)
    if fam.asymptote is None:
        return np.full(params.shape[0], np.inf), np.full(params.shape[0], np.nan)
    with jax.enable_x64(True):
        limit = np.asarray(jax.vmap(fam.asymptote)(jnp.asarray(params)), float)
    num = int(np.ceil(np.log10(n_stop / n_start) * per_decade)) + 1
    grid = np.geomspace(n_start, n_stop, num)
    f = _curves(fam, params, grid)  # [R, G]
    excess = np.abs(f - limit[:, None]) - epsilon  # <= 0: within epsilon
    within = excess <= 0
    # within from index i to the end: reverse cumulative all
    tail = np.flip(np.cumprod(np.flip(within, 1), 1), 1).astype(bool)
    first = np.where(tail.any(1), np.argmax(tail, 1), -1)
    n_eps = np.where((first >= 0) & np.isfinite(limit), grid[np.maximum(first, 0)], np.inf)
    # refine inside the grid cell: linear interpolation of the excess in log n
    rows = np.arange(params.shape[0])
    i = np.maximum(first, 1)
    e0, e1 = excess[rows, i - 1], excess[rows, i]
    with np.errstate(all="ignore"):
        frac = np.clip(e0 / (e0 - e1), 0.0, 1.0)
    refined = np.exp(np.log(grid[i - 1]) + frac * (np.log(grid[i]) - np.log(grid[i - 1])))
    n_eps = np.where(np.isfinite(n_eps) & (first >= 1) & np.isfinite(frac), refined, n_eps)
    return n_eps, limit


def _pct(v, level):
    a = (1 - level) / 2
    with np.errstate(invalid="ignore"):
        return (float(np.quantile(v, a, method="linear")) if v.size else np.nan,
                float(np.quantile(v, 1 - a, method="linear")) if v.size else np.nan)


def saturation(boot: CurveBootstrap, *, epsilon: float, higher_is_better: bool = False, level: float | None = None,
               horizon: float = 1e6) -> Saturation:
    """Saturation verdict, probabilities and the saturation size from a :class:`CurveBootstrap`.

    Args:
      boot: the output of :func:`~jaxeval.curves.uncertainty.bootstrap_curve`.
      epsilon: the smallest gain worth having, in score units (e.g. 0.002 error).
      higher_is_better: ``True`` for accuracy-like scores.
      level: confidence for the verdict and the intervals (default ``boot.level``).
      horizon: search ``n_eps`` up to ``horizon * max(sizes)``.
    """
    if not (np.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
    level = boot.level if level is None else float(level)
    if not 0.5 < level < 1:
        raise ValueError(f"level must be in (0.5, 1), got {level!r}")
    fam = get_family(boot.family)
    sizes = np.sort(np.asarray(boot.sizes, float))
    sign = -1.0 if higher_is_better else 1.0
    pts = np.concatenate([sizes, 2 * sizes])
    point = _curves(fam, boot.point_params[None], pts)[0]
    gain = sign * (point[: sizes.size] - point[sizes.size:])
    refit = boot.params[boot.used]
    if refit.shape[0]:
        c = _curves(fam, refit, pts)
        g = expand(sign * (c[:, : sizes.size] - c[:, sizes.size:]), gain, boot.inflation)
        with np.errstate(invalid="ignore"):
            p_small = np.mean(g < epsilon, axis=0)
        glo, ghi = np.array([_pct(g[:, i], level) for i in range(sizes.size)]).T
    else:
        g = np.zeros((0, sizes.size))
        p_small = np.full(sizes.size, np.nan)
        glo = ghi = np.full(sizes.size, np.nan)
    n_stop = horizon * sizes.max()
    n_pt, lim_pt = saturation_size(fam, boot.point_params, epsilon, sizes.min(), n_stop)
    n_b, lim_b = saturation_size(fam, refit, epsilon, sizes.min(), n_stop) if refit.shape[0] else (np.zeros(0),) * 2
    k = boot.inflation
    big = 1e300  # inf stands in as a huge log10 so quantiles between infinities stay inf, not nan
    logn = np.where(np.isfinite(n_b), np.log10(np.where(np.isfinite(n_b), n_b, 1.0)), big)
    if np.isfinite(n_pt[0]):
        logn = np.where(logn < big, expand(logn, np.log10(n_pt[0]), k), big)
    nlo, nhi = _pct(logn, level) if n_b.size else (np.nan, np.nan)
    nlo, nhi = [np.inf if v > big / 2 else 10.0**v for v in (nlo, nhi)]
    fin = np.isfinite(lim_b)
    llo, lhi = _pct(expand(lim_b[fin], lim_pt[0], k), level) if fin.any() else (np.nan, np.nan)

    # model-free: the observed gain per doubling over the last grid step, on the joint resamples
    order = np.argsort(np.asarray(boot.sizes, float))
    m0, mb = np.asarray(boot.mean_curve, float)[order], np.asarray(boot.resample_means, float)[:, order]
    doublings = np.log2(sizes[-1] / sizes[-2]) if sizes.size > 1 else np.nan
    og = sign * (m0[-2] - m0[-1]) / doublings if sizes.size > 1 else np.nan
    ogb = expand(sign * (mb[:, -2] - mb[:, -1]) / doublings, og, boot.inflation) if sizes.size > 1 else np.zeros(0)
    oglo, oghi = _pct(ogb, level) if ogb.size else (np.nan, np.nan)
    p_obs = float(np.mean(ogb < epsilon)) if ogb.size else np.nan

    n_max = sizes.max()
    q = float(p_small[-1])
    used, total = int(boot.used.sum()), int(boot.used.shape[0])
    where = (f"doubling n from {n_max:g} to {2 * n_max:g} gains {gain[-1]:.4g} "
             f"({level:.0%} CI {glo[-1]:.4g} to {ghi[-1]:.4g}); P(gain < epsilon={epsilon:g}) = {q:.3f}")
    if fam.last_value and sizes.size > 1:
        q = p_obs
        where = (f"{fam.name} (a flat line) predicts no gain by construction, so the verdict uses the observed gain "
                 f"per doubling from n = {sizes[-2]:g} to {n_max:g}: {og:.4g} ({level:.0%} CI {oglo:.4g} to "
                 f"{oghi:.4g}); P(gain < epsilon={epsilon:g}) = {q:.3f}")
    if not boot.converged:
        verdict, reason = "cannot tell", f"the point fit of {fam.name} did not converge; " + where
    elif used < total / 2:
        verdict, reason = "cannot tell", (f"only {used} of {total} bootstrap refits converged to a finite curve "
                                          "(the curve is not identified by these data); " + where)
    elif q >= level:
        verdict, reason = "saturated", where + f" >= {level:g}"
    elif q <= 1 - level:
        verdict, reason = "not saturated", where + f" <= {1 - level:.3g}"
    else:
        verdict, reason = "cannot tell", (where + ": the gain's interval straddles epsilon (more seeds or larger "
                                          "sizes would narrow it)")
    return Saturation(
        verdict=verdict, reason=reason, epsilon=float(epsilon), level=level, higher_is_better=bool(higher_is_better),
        sizes=sizes, gain=gain, gain_lo=glo, gain_hi=ghi, p_small_gain=p_small, n_saturation=float(n_pt[0]),
        n_saturation_lo=nlo, n_saturation_hi=nhi, limit=float(lim_pt[0]), limit_lo=llo, limit_hi=lhi,
        observed_gain=float(og), observed_gain_lo=float(oglo), observed_gain_hi=float(oghi), p_observed_small=p_obs)
