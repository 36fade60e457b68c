"""Seconds per replicate: jaxeval's vmapped sweep vs a Python loop over seeds (same program).

    python benchmarks/bench_seeds.py [--seeds 32] [--epochs 10] [--repeats 3]

Both arms finetune the default study's MLP on digits from scratch with the same config, keys
and data: (loop) one jitted single-seed function called once per seed; (sweep) ``jaxeval.sweep``
with chunk widths 1, 8 and 32. Compile time is measured apart (first call); run time is the
best of ``--repeats`` runs after it. Ratios are against the loop in the same run.

The full comparison (PyTorch baseline, model sizes, GEMM peak, memory, prototypes, the default
study end to end) is ``benchmarks/bench_engine.py``; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from jaxeval import config as config_lib
from jaxeval import keys as K
from jaxeval import models, sweep
from jaxeval.studies import seeds
from jaxeval.train import evaluate, make_finetune


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    cfg = config_lib.base_config()
    cfg.finetune.epochs = args.epochs
    cfg.pretrain.enabled = False
    cfg = config_lib.validate(cfg)
    ds = seeds.load_task(cfg)
    model = models.build(cfg.model, ds.feature_shape, ds.num_classes)
    task = seeds.task_arrays(ds)
    root = K.root_key(0)
    finetune = make_finetune(model, cfg.finetune, ds.num_train)

    def one(rep, t):
        params, _ = finetune(None, t["x_train"], t["y_train"], keys=K.replicate_keys(root, rep))
        return evaluate(model, params, t["x_test"], t["y_test"])[1]["accuracy"]

    indices = K.replicate_indices(args.seeds)
    steps = args.epochs * (ds.num_train // cfg.finetune.batch_size)
    rows = []

    def timed(label, fn):
        t0 = time.perf_counter()
        out = fn()
        compile_and_first = time.perf_counter() - t0
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
        rows.append((label, compile_and_first - best, best, np.asarray(out)))

    single = jax.jit(one)

    def loop():
        return np.array([jax.device_get(single({k: v[i] for k, v in indices.items()}, task)) for i in range(args.seeds)])

    timed("python loop over jitted seed", loop)
    for width in (1, 8, 32):
        if width <= args.seeds:
            timed(f"sweep, chunk width {width}", lambda w=width: sweep.run(one, indices, task, chunk_width=w))

    base = rows[0][2]
    print(f"\n{args.seeds} seeds x {steps} steps (batch {cfg.finetune.batch_size}), MLP {tuple(cfg.model.hidden)}, "
          f"digits; {jax.device_count()} {jax.devices()[0].device_kind} device(s)")
    print(f"{'arm':<32} {'compile s':>10} {'run s':>8} {'s/replicate':>12} {'ex-steps/s':>11} {'vs loop':>8} {'mean acc':>9}")
    for label, comp, run, acc in rows:
        tput = args.seeds * steps * cfg.finetune.batch_size / run
        print(f"{label:<32} {comp:>10.2f} {run:>8.2f} {run / args.seeds:>12.4f} {tput:>11.0f} {base / run:>7.2f}x {acc.mean():>9.4f}")


if __name__ == "__main__":
    main()
