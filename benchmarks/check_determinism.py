"""Is the same sweep bitwise identical across fresh processes and device counts? (exact mode)

    python benchmarks/check_determinism.py [--seeds N] [--width 8] [--epochs 10] [--inexact]

Runs the default study's finetuning sweep (MLP 64-256-256 on digits, from scratch, with
evaluation) in fresh processes, each ``runtime.configure(exact=True)``: twice on one device,
then on all devices (``devices=0``, per-device engine) and as one shard_map program. Prints
the sha256 fingerprint of every run's outputs (parameters, metrics) and exits 1 if the exact
one-device runs differ from each other or from the all-device run. ``--inexact`` adds two runs
without ``--xla_gpu_deterministic_ops`` (on GPU they may differ: reported, never an error).
On a GPU machine: ``JAX_PLATFORMS=cuda python benchmarks/check_determinism.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def child(args) -> None:
    from jaxeval import runtime

    settings = runtime.configure(exact=not args.inexact_child)
    import jax

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
        return {"params": params, "metrics": evaluate(model, params, t["x_test"], t["y_test"])[1]}

    devices = None if args.devices_child == 1 else 0
    seeds = args.seeds or args.width * jax.device_count()  # default: one chunk per device
    out = sweep.run(one, K.replicate_indices(seeds), task, chunk_width=args.width, devices=devices,
                    engine=args.engine_child)
    print(json.dumps({"fingerprint": provenance.fingerprint(out), "devices": sweep.describe(devices)["devices"],
                      "device_kind": jax.devices()[0].device_kind, "mode": settings["mode"],
                      "accuracy": float(out["metrics"]["accuracy"].mean()), "seeds": seeds}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=0, help="default: width x the number of devices")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--inexact", action="store_true")
    ap.add_argument("--devices-child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--engine-child", default="per_device", help=argparse.SUPPRESS)
    ap.add_argument("--inexact-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.devices_child:
        return child(args)
    arms = [("exact, 1 device", 1, "per_device", False), ("exact, 1 device (again)", 1, "per_device", False),
            ("exact, all devices", 2, "per_device", False), ("exact, all devices, shard_map", 2, "shard_map", False)]
    if args.inexact:
        arms += [("inexact, 1 device", 1, "per_device", True), ("inexact, 1 device (again)", 1, "per_device", True)]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    rows = []
    for label, devices, engine, inexact in arms:
        cmd = [sys.executable, __file__, f"--devices-child={devices}", f"--engine-child={engine}",
               f"--seeds={args.seeds}", f"--width={args.width}", f"--epochs={args.epochs}"]
        res = subprocess.run(cmd + (["--inexact-child"] if inexact else []), capture_output=True, text=True,
                             env=env, check=True)
        rows.append((label, json.loads(res.stdout.strip().splitlines()[-1])))
    print(f"{rows[0][1]['seeds']} seeds, chunk width {args.width}, {args.epochs} epochs; {rows[0][1]['device_kind']}")
    for label, r in rows:
        print(f"{label:<32} devices {r['devices']:>2}  accuracy {r['accuracy']:.4f}  {r['fingerprint'][:24]}")
    exact = {r["fingerprint"] for label, r in rows[:3]}
    print("exact mode: bitwise identical across processes and device counts" if len(exact) == 1
          else "exact mode: DIFFERENT bits (see above)")
    sys.exit(0 if len(exact) == 1 else 1)


if __name__ == "__main__":
    main()
