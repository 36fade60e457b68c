"""Statistics of a paired comparison of arms, from scores alone (the compare study's analysis).

``scores[arm]``: ``[seeds, tasks]``, row ``s`` of every arm from the same replicate (shared
keys), oriented so that higher is better. Every draw is keyed: the key of a statistic is the
study's key folded with the crc32 of its names (pair, task, statistic), so adding a task or a
pair changes no other number.

* per (pair, task): mean paired difference with a paired bootstrap CI, ``P(A>B)`` over shared
  seeds with the Bouthillier et al. (2021) decision, ASO ``eps_min`` both ways (Bonferroni over
  the family), a two-sided paired sign-flip permutation p-value adjusted over every (pair,
  task) test, and the same without the pairing (labelled unpaired);
* per pair over tasks (:func:`aggregate_comparison`): mean / IQM differences and ``P(A>B)``
  with a paired bootstrap over seeds at level ``alpha / num_pairs``, and the verdict
  (:func:`decide`); for "cannot tell", the seeds that would settle it (:func:`seeds_to_settle`).
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from functools import partial
from statistics import NormalDist
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxeval.stats import aggregates, multiple, power
from jaxeval.stats.aso import aso
from jaxeval.stats.compare import (
    bootstrap_test,
    paired_probability_of_improvement,
    permutation_test,
    probability_of_improvement_interval,
)
from jaxeval.stats.intervals import percentile_interval
from jaxeval.stats.resample import bootstrap, make_plan

DEFAULTS = {
    "alpha": 0.05,  # 1 - confidence of every interval; level of every test
    "gamma": 0.75,  # smallest P(A>B) worth having (Bouthillier et al.)
    "correction": "holm",  # over every (pair, task) test: bonferroni, holm, bh
    "bootstrap": "seed",  # aggregate draw: "seed" (one draw for all tasks) or "stratified" (per task)
    "num_resamples": 2000,
    "num_permutations": 5000,
    "aso_tau": 0.2,  # A almost stochastically dominates B when eps_min < tau (deepsig: 0.2 strict, 0.5 loose)
    "target_power": 0.8,  # for "how many seeds would settle it"
    "power_simulations": 400,
}
DRAWS = ("seed", "stratified")
CATEGORIES = ("significant and meaningful", "significant, not meaningful", "no difference", "cannot tell")
MAX_PAIRS = 1024  # seeds-to-settle: larger needs are reported, not simulated


def _key(key, *parts):
    """``key`` folded with the crc32 of each part: a statistic's key depends on its name only."""
    for p in parts:
        key = jax.random.fold_in(key, zlib.crc32(str(p).encode()) & 0x7FFFFFFF)
    return key


def _win(a, b):
    return (a > b).astype(a.dtype) + 0.5 * (a == b).astype(a.dtype)


def _paired_stat(s, counts):
    """(mean difference, IQM difference, P(A>B) mean over tasks) of ``{a, b}: [seeds, tasks]``."""
    a, b = s["a"], s["b"]
    w = _win(a, b)
    poi = jnp.mean(jnp.sum(counts * w, axis=0) / jnp.sum(counts, axis=0))
    return (aggregates.mean(a, counts) - aggregates.mean(b, counts),
            aggregates.iqm(a, counts) - aggregates.iqm(b, counts), poi)


def _arm_stat(x, counts):
    return aggregates.mean(x, counts), aggregates.iqm(x, counts)


def _plan(draw: str):
    return make_plan(("seed", "task"), {"seed": "iid", "task": "fixed" if draw == "seed" else "stratum"})


def _interval(est, reps, alpha) -> dict:
    lo, hi = percentile_interval(jnp.asarray(reps), alpha=alpha)
    return {"estimate": float(est), "ci": [float(lo), float(hi)]}


def decide(lo: float, hi: float, gamma: float) -> tuple[str, str | None]:
    """``(category, better)`` from a ``P(A>B)`` interval: Bouthillier's rule, both directions.

    Significant: the interval excludes 0.5 (``better`` = "A" above, "B" below); meaningful: it
    also reaches past ``gamma`` (``1 - gamma`` for B). "no difference": inside ``[1 - gamma,
    gamma]`` (a meaningful difference either way is ruled out). Else "cannot tell".
    """
    if lo > 0.5:
        return ("significant and meaningful" if hi > gamma else "significant, not meaningful"), "A"
    if hi < 0.5:
        return ("significant and meaningful" if lo < 1 - gamma else "significant, not meaningful"), "B"
    if lo >= 1 - gamma and hi <= gamma:
        return "no difference", None
    return "cannot tell", None


def aggregate_comparison(a, b, *, key, alpha: float = 0.05, gamma: float = 0.75, num_resamples: int = 2000,
                         draw: str = "seed", unpaired: bool = True) -> dict:
    """Mean / IQM differences and ``P(A>B)`` over tasks of paired ``a``, ``b``: ``[seeds, tasks]``.

    Paired: one draw of seeds shared by both arms (``draw="seed"``: also by all tasks;
    ``"stratified"``: independent per task), key ``fold_in(key, crc32("paired"))``. Unpaired
    (``unpaired=True``): each arm drawn on its own (keys ``"unpaired:A"``, ``"unpaired:B"``) and
    rliable's unpaired ``P(A>B)``. Returns plain floats and the decision of :func:`decide`.
    """
    if draw not in DRAWS:
        raise ValueError(f"draw={draw!r} is not allowed: one of {DRAWS}")
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must be paired [seeds, tasks] arrays of one shape, got {a.shape} and {b.shape}")
    plan = _plan(draw)
    res = bootstrap(_paired_stat, {"a": a, "b": b}, key=_key(key, "paired"), plan=plan,
                    num_resamples=num_resamples, weighted=True)
    names = ("mean", "iqm", "probability_of_improvement")
    out = {n: _interval(e, r, alpha) for n, e, r in zip(names, res.estimate, res.replicates)}
    lo, hi = out["probability_of_improvement"]["ci"]
    category, better = decide(lo, hi, gamma)
    out["probability_of_improvement"].update(significant=bool(lo > 0.5), meaningful=bool(lo > 0.5 and hi > gamma),
                                             gamma=gamma)
    how = "one draw for all tasks" if draw == "seed" else "stratified by task"
    out.update(category=category, better=better, alpha=alpha, num_resamples=num_resamples,
               method=f"paired bootstrap over seeds ({how}, shared by both arms), percentile CI")
    if unpaired:
        ra = bootstrap(_arm_stat, a, key=_key(key, "unpaired:A"), plan=plan, num_resamples=num_resamples, weighted=True)
        rb = bootstrap(_arm_stat, b, key=_key(key, "unpaired:B"), plan=plan, num_resamples=num_resamples, weighted=True)
        up = {n: _interval(ea - eb, np.asarray(qa) - np.asarray(qb), alpha)
              for n, ea, eb, qa, qb in zip(("mean", "iqm"), ra.estimate, rb.estimate, ra.replicates, rb.replicates)}
        pi = probability_of_improvement_interval(a, b, key=_key(key, "unpaired:poi"), num_resamples=num_resamples,
                                                 alpha=alpha)
        up["probability_of_improvement"] = {"estimate": float(pi.estimate), "ci": [float(pi.ci[0]), float(pi.ci[1])]}
        up["method"] = "UNPAIRED: each arm's seeds drawn independently (ignores the pairing); rliable's P(A>B)"
        up["width_ratio"] = {n: _width(up[n]) / _width(out[n]) if _width(out[n]) > 0 else None
                             for n in ("mean", "iqm", "probability_of_improvement")}
        out["unpaired"] = up
    return out


def _width(d: dict) -> float:
    return float(d["ci"][1] - d["ci"][0])


@partial(jax.tree_util.register_dataclass, data_fields=["p_win", "p_tie"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class OutcomeModel:
    """Sampler ``(key, n) -> (a, b)`` of paired outcomes: A wins w.p. ``p_win``, ties w.p. ``p_tie``.

    ``a`` is 1 (win), 0.5 (tie) or 0 (loss) and ``b = 0.5``, so ``win(a, b)`` is the outcome: the
    observed win/tie/loss frequencies taken as the truth, for :func:`~jaxeval.stats.power.simulated_power`.
    """

    p_win: float
    p_tie: float

    def __call__(self, key, n: int):
        u = jax.random.uniform(key, (n,))
        a = jnp.where(u < self.p_win, 1.0, jnp.where(u < self.p_win + self.p_tie, 0.5, 0.0))
        return a, jnp.full((n,), 0.5)


def seeds_to_settle(wins, *, num_tasks: int = 1, key, alpha: float = 0.05, gamma: float = 0.75,
                    target_power: float = 0.8, num_simulations: int = 400, num_resamples: int = 500,
                    max_pairs: int = MAX_PAIRS) -> dict:
    """Seeds per arm that would settle a "cannot tell", if the observed outcomes were the truth.

    ``wins``: paired outcomes (1 win, 0.5 tie, 0 loss for A) pooled over ``num_tasks`` tasks
    (each seed adds ``num_tasks`` pairs; tasks treated as exchangeable). Two ways to settle:

    * *show the difference*: the paired ``P(A>B)`` interval excludes 0.5 with probability
      ``target_power``: normal approximation ``N = ((z_{1-alpha/2} + z_{power}) sd / |p - 0.5|)^2``
      pairs, then :func:`~jaxeval.stats.power.simulated_power` of that very decision
      (``power_test("paired_probability_of_improvement")``) under :class:`OutcomeModel` at
      candidates around it; the smallest candidate reaching the target is the answer;
    * *rule out a meaningful difference*: the interval falls inside ``[1 - gamma, gamma]``
      (normal approximation ``((z_{1-alpha/2} + z_{power}) sd / (gamma - max(p, 1 - p)))^2``).

    Also Noether's design number for detecting ``P(A>B) = gamma`` (two-sided alpha).
    """
    w = np.asarray(wins, np.float64).reshape(-1)
    p = float(w.mean())
    better = "A" if p >= 0.5 else "B"
    p_win, p_tie = float(np.mean(w == 1.0)), float(np.mean(w == 0.5))
    if better == "B":
        p_win, p = float(np.mean(w == 0.0)), 1.0 - p
    sd = float(w.std())
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(target_power)
    out: dict[str, Any] = {
        "observed_probability": float(w.mean()), "direction": better, "num_tasks": num_tasks,
        "target_power": target_power, "alpha": alpha,
        "model": "observed win/tie/loss frequencies of the paired seeds taken as the truth (tasks pooled)",
        "noether_seeds": power.noether_sample_size(alpha, 1 - target_power, gamma, sided="two"),
    }
    to_seeds = lambda pairs: int(math.ceil(pairs / num_tasks))
    eq = (z * sd / (gamma - p)) ** 2 if p < gamma and sd > 0 else math.inf
    out["rule_out"] = {"seeds": max(to_seeds(eq), 2) if math.isfinite(eq) else None, "method": "normal approximation"}
    diff = (z * sd / (p - 0.5)) ** 2 if p > 0.5 and sd > 0 else math.inf
    show: dict[str, Any] = {"normal_approx_seeds": max(to_seeds(diff), 2) if math.isfinite(diff) else None,
                            "seeds": None, "power": None}
    if math.isfinite(diff) and diff <= max_pairs:
        s0 = max(to_seeds(diff), 2)
        cands = sorted({max(2, int(math.ceil(s0 * f))) for f in (0.6, 0.8, 1.0, 1.25, 1.5, 2.0)
                        if math.ceil(s0 * f) * num_tasks <= 2 * max_pairs})
        test = power.power_test("paired_probability_of_improvement", alpha=alpha, num_resamples=num_resamples)
        res = power.simulated_power(test, OutcomeModel(p_win, p_tie), [c * num_tasks for c in cands], key=key,
                                    num_simulations=num_simulations)
        pw = np.asarray(res.power).tolist()
        show["simulated"] = {"seeds": cands, "power": pw, "standard_error": np.asarray(res.standard_error).tolist(),
                             "num_simulations": num_simulations, "num_resamples": num_resamples}
        hit = [(c, q) for c, q in zip(cands, pw) if q >= target_power]
        if hit:
            show["seeds"], show["power"] = hit[0]
        else:
            show["power"] = pw[-1]
    out["show_difference"] = show
    options = [v for v in (show["seeds"], out["rule_out"]["seeds"]) if v is not None]
    out["seeds"] = min(options) if options else None
    return out


def pair_label(a: str, b: str) -> str:
    return f"{a} vs {b}"


def analyze(scores: Mapping[str, Any], *, tasks: Sequence[str], pairs: Sequence[tuple[str, str]], key,
            options: Mapping | None = None, higher_is_better: bool = True) -> dict:
    """Every statistic of the study from scores alone: ``scores[arm]``: ``[seeds, tasks]``, row ``s`` of
    every arm from the same replicate (paired). Returns the summary's ``pairs`` part (plain numbers)."""
    if options is not None and hasattr(options, "to_dict"):
        options = options.to_dict()
    opts = {**DEFAULTS, **(dict(options) if options is not None else {})}
    alpha, gamma, nr = float(opts["alpha"]), float(opts["gamma"]), int(opts["num_resamples"])
    sign = 1.0 if higher_is_better else -1.0
    x = {k: sign * np.asarray(v, np.float32) for k, v in scores.items()}
    shapes = {k: v.shape for k, v in x.items()}
    if any(len(s) != 2 or s != (shapes[pairs[0][0]][0], len(tasks)) for s in shapes.values()):
        raise ValueError(f"scores must be [seeds, tasks] with {len(tasks)} tasks and the same seeds per arm, "
                         f"got {shapes}")
    family = len(pairs) * len(tasks)
    out, pvals = [], []
    for A, B in pairs:
        pk = _key(key, pair_label(A, B))
        per_task = {}
        for t, task in enumerate(tasks):
            a, b = x[A][:, t], x[B][:, t]
            keep = np.isfinite(a) & np.isfinite(b)
            dropped = np.flatnonzero(~keep).tolist()
            a, b = a[keep], b[keep]
            if a.size < 2:
                raise ValueError(f"{A} vs {B} on task {task!r}: {a.size} seed(s) with finite scores in both arms; "
                                 f"need >= 2 (dropped diverged seeds {dropped})")
            tk = _key(pk, task)
            diff = bootstrap_test(a, b, key=_key(tk, "difference"), paired=True, num_resamples=nr, alpha=alpha,
                                  alternative="two-sided")
            poi = paired_probability_of_improvement(a, b, key=_key(tk, "poi"), num_resamples=nr, gamma=gamma,
                                                    alpha=alpha)
            perm = permutation_test(a, b, key=_key(tk, "permutation"), num_permutations=int(opts["num_permutations"]),
                                    paired=True, alternative="two-sided")
            e_ab = aso(a, b, key=_key(tk, "aso:A>B"), alpha=alpha, num_comparisons=family, num_bootstrap=nr)
            e_ba = aso(b, a, key=_key(tk, "aso:B>A"), alpha=alpha, num_comparisons=family, num_bootstrap=nr)
            u_diff = bootstrap_test(a, b, key=_key(tk, "unpaired:difference"), paired=False, num_resamples=nr,
                                    alpha=alpha, alternative="two-sided")
            u_perm = permutation_test(a, b, key=_key(tk, "unpaired:permutation"),
                                      num_permutations=int(opts["num_permutations"]), paired=False,
                                      alternative="two-sided")
            u_poi = probability_of_improvement_interval(a, b, key=_key(tk, "unpaired:poi"), num_resamples=nr,
                                                        alpha=alpha)
            pvals.append(float(perm.p_value))
            per_task[task] = {
                "n": int(a.size), "dropped_seeds": dropped,
                "a": {"mean": float(np.mean(a)) * sign, "values": (sign * a).tolist()},
                "b": {"mean": float(np.mean(b)) * sign, "values": (sign * b).tolist()},
                "differences": (a - b).tolist(),
                "difference": {"estimate": float(diff.estimate), "ci": [float(diff.ci[0]), float(diff.ci[1])],
                               "p_value": float(diff.p_value),
                               "method": "paired bootstrap (one seed draw for both arms)"},
                "probability_of_improvement": {
                    "estimate": float(poi.estimate), "ci": [float(poi.ci[0]), float(poi.ci[1])],
                    "significant": poi.significant, "meaningful": poi.meaningful, "above_gamma": poi.above_gamma,
                    "gamma": gamma, "method": "paired bootstrap over seeds (Bouthillier et al. 2021)"},
                "aso": {"eps_min": float(e_ab.eps_min), "eps_min_reverse": float(e_ba.eps_min),
                        "violation_ratio": float(e_ab.violation_ratio), "tau": float(opts["aso_tau"]),
                        "a_dominates": bool(e_ab.eps_min < opts["aso_tau"]),
                        "b_dominates": bool(e_ba.eps_min < opts["aso_tau"]), "num_comparisons": family},
                "permutation": {"p_value": float(perm.p_value), "alternative": "two-sided",
                                "method": "paired sign-flip permutation", "num_permutations": perm.num_resamples},
                "unpaired": {
                    "method": "UNPAIRED (ignores the pairing): independent bootstrap per arm, label permutation, "
                              "rliable's P(A>B)",
                    "difference": {"estimate": float(u_diff.estimate),
                                   "ci": [float(u_diff.ci[0]), float(u_diff.ci[1])]},
                    "permutation_p_value": float(u_perm.p_value),
                    "probability_of_improvement": {"estimate": float(u_poi.estimate),
                                                   "ci": [float(u_poi.ci[0]), float(u_poi.ci[1])]}},
            }
        keep = np.all(np.isfinite(x[A]) & np.isfinite(x[B]), axis=1)
        agg = aggregate_comparison(x[A][keep], x[B][keep], key=_key(pk, "aggregate"), alpha=alpha / len(pairs),
                                   gamma=gamma, num_resamples=nr, draw=opts["bootstrap"])
        agg["dropped_seeds"] = np.flatnonzero(~keep).tolist()
        agg["ci_level"] = 1 - alpha / len(pairs)
        out.append({"a": A, "b": B, "tasks": per_task, "aggregate": agg})
    adj = multiple.adjust_pvalues(np.asarray(pvals, np.float32), opts["correction"], alpha=alpha)
    i = 0
    for pair in out:
        counts = {"A": 0, "B": 0}
        for task in tasks:
            r = pair["tasks"][task]
            r["permutation"]["p_adjusted"] = float(adj.p_adjusted[i])
            r["permutation"]["reject"] = bool(adj.reject[i])
            better = None
            if r["permutation"]["reject"] and r["difference"]["estimate"] != 0:
                better = "A" if r["difference"]["estimate"] > 0 else "B"
                counts[better] += 1
            r["better"] = better
            i += 1
        pair["tasks_better"] = {"a": counts["A"], "b": counts["B"], "total": len(tasks),
                                "correction": opts["correction"], "family_size": family}
        agg = pair["aggregate"]
        if agg["category"] == "cannot tell":
            wins = np.concatenate([_win(x[pair["a"]][:, t], x[pair["b"]][:, t]) for t in range(len(tasks))])
            wins = wins[np.isfinite(wins)]
            pair["seeds_to_settle"] = seeds_to_settle(
                wins, num_tasks=len(tasks), key=_key(key, pair_label(pair["a"], pair["b"]), "power"),
                alpha=alpha / len(pairs), gamma=gamma, target_power=float(opts["target_power"]),
                num_simulations=int(opts["power_simulations"]))
        pair["verdict"] = verdict_line(pair, num_seeds=shapes[pair["a"]][0])
    return {"pairs": out, "correction": {"method": adj.method, "alpha": alpha, "family_size": family},
            "higher_is_better": higher_is_better}


def verdict_line(pair: dict, *, num_seeds: int | None = None) -> str:
    """``A > B on 4/5 tasks (Holm-corrected); aggregate IQM +0.021 [0.008, 0.035]; P(A>B)=0.81 [0.66, 0.92]: ...``."""
    A, B, tb, agg = pair["a"], pair["b"], pair["tasks_better"], pair["aggregate"]
    corr = {"holm": "Holm", "bonferroni": "Bonferroni", "bh": "BH"}[tb["correction"]]
    head = f"{A} > {B} on {tb['a']}/{tb['total']} tasks"
    if tb["b"]:
        head += f", {B} > {A} on {tb['b']}/{tb['total']}"
    iqm, poi = agg["iqm"], agg["probability_of_improvement"]
    line = (f"{head} ({corr}-corrected); aggregate IQM {iqm['estimate']:+.3f} [{iqm['ci'][0]:+.3f}, "
            f"{iqm['ci'][1]:+.3f}]; P({A}>{B})={poi['estimate']:.2f} [{poi['ci'][0]:.2f}, {poi['ci'][1]:.2f}]: ")
    cat = agg["category"]
    if agg["better"] == "B":
        return line + f"{B} better, {cat}"
    if cat == "cannot tell" and pair.get("seeds_to_settle"):
        s = pair["seeds_to_settle"]
        if s["seeds"] is None:
            return line + "cannot tell; no feasible number of seeds settles it (see seeds_to_settle)"
        more = f" ({s['seeds'] - num_seeds} more)" if num_seeds is not None and s["seeds"] > num_seeds else ""
        return line + (f"cannot tell; about {s['seeds']} seeds per arm{more} would settle it "
                       f"(power {s['target_power']:g} if the observed outcomes are the truth)")
    return line + cat
