"""Seconds per sweep: one CPU device vs one fake CPU device per core (``runtime.set_cpu_devices``).

    python benchmarks/bench_sharded.py [--seeds 16] [--width 8] [--epochs 10] [--repeats 3] [--rounds 2]

Each arm is a fresh process (the CPU device count is fixed when JAX starts): the default study's
MLP finetuned on digits from scratch, ``--seeds`` replicates in chunks of ``--width``.
(1 device) the default sweep; (n devices) ``sweep.run(..., devices=0)``, one chunk per device per
step, with each engine (per_device: one compile per device; shard_map: one SPMD compile).
Compile time (first call minus a run) is measured apart; run time is the best of ``--repeats``
(CPU s: the process's CPU time in that run). Arms alternate ``--rounds`` times (the machine may
be shared: compare the best). The fingerprint column shows whether the arms computed the same bits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def child(args) -> None:
    from jaxeval import runtime

    runtime.configure(exact=True, cpu_devices=args.child)
    import jax
    import numpy as np

    from jaxeval import config as config_lib
    from jaxeval import keys as K
    from jaxeval import models, provenance, sweep
    from jaxeval.studies import seeds
    from jaxeval.train import evaluate, make_finetune

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
        return {"params": params, "accuracy": evaluate(model, params, t["x_test"], t["y_test"])[1]["accuracy"]}

    indices = K.replicate_indices(args.seeds)
    devices = None if args.child == 1 else 0
    t0 = time.perf_counter()
    out = sweep.run(one, indices, task, chunk_width=args.width, devices=devices, engine=args.engine)
    first = time.perf_counter() - t0
    best, cpu = float("inf"), float("inf")
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = sweep.run(one, indices, task, chunk_width=args.width, devices=devices, engine=args.engine)
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    print(json.dumps({"devices": jax.device_count(), "engine": args.engine if devices == 0 else "one_device",
                      "compile": first - best, "run": best, "cpu": cpu,
                      "accuracy": float(np.mean(out["accuracy"])), "fingerprint": provenance.fingerprint(out)[:16]}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--engine", default="per_device", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    from jaxeval.runtime import cpu_core_count

    cores = cpu_core_count()
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS")}
    env["JAX_PLATFORMS"] = "cpu"
    rows = []
    for _ in range(args.rounds):
        for n, engine in ((1, "per_device"), (cores, "per_device"), (cores, "shard_map")):
            cmd = [sys.executable, __file__, f"--child={n}", f"--seeds={args.seeds}", f"--width={args.width}",
                   f"--epochs={args.epochs}", f"--repeats={args.repeats}", f"--engine={engine}"]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"\n{args.seeds} seeds, chunk width {args.width}, {args.epochs} epochs, MLP 64-256-256 on digits; "
          f"{cores} CPU cores")
    print(f"{'CPU devices':>11} {'engine':>11} {'compile s':>10} {'run s':>8} {'CPU s':>7} {'mean acc':>9}  "
          "fingerprint")
    for r in rows:
        print(f"{r['devices']:>11} {r['engine']:>11} {r['compile']:>10.2f} {r['run']:>8.2f} {r['cpu']:>7.2f} "
              f"{r['accuracy']:>9.4f}  {r['fingerprint']}")
    best = {e: min(r["run"] for r in rows if r["engine"] == e) for e in ("one_device", "per_device", "shard_map")}
    print(f"best run time: 1 device {best['one_device']:.2f} s; {cores} devices: per_device {best['per_device']:.2f} s "
          f"({best['one_device'] / best['per_device']:.2f}x), shard_map {best['shard_map']:.2f} s "
          f"({best['one_device'] / best['shard_map']:.2f}x)")


if __name__ == "__main__":
    main()
