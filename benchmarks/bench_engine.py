"""Seed sweeps against what a user would otherwise run, and against the machine's limit (issue 11).

    python benchmarks/bench_engine.py                     # full run (see benchmarks/README.md)
    python benchmarks/bench_engine.py --quick             # smoke run (tiny model, no study)
    python benchmarks/bench_engine.py --models mlp --seeds 1,8,32,128 --epochs 2 --repeats 5
    python benchmarks/bench_engine.py --no-deterministic  # GPU: XLA's deterministic-ops flag off

Same model, data (digits: 1,437 train examples), batch size (128), steps, AdamW + cosine schedule
and seeds in every arm; each seed trains from scratch and is evaluated on the 360 test examples.

* PyTorch: an eager loop over seeds, the way a researcher writes it (``torch.manual_seed``,
  ``nn.Sequential``, ``AdamW``, ``CosineAnnealingLR``, ``loss.item()`` per step), on the CPU with
  ``torch.set_num_threads(cores)`` and with 1 thread (OpenMP threads suffer more than XLA's from
  other jobs on a shared machine); "vs torch" is against the faster of the two. Benchmark-only
  dependency (``benchmarks/requirements.txt``): without it only these rows are skipped.
* JAX loop: a Python loop over seeds calling one jitted single-seed function (jaxeval's
  ``make_finetune`` + ``evaluate`` under ``jit``, no vmap).
* sweep: ``jaxeval.sweep.run`` (``jit(vmap)`` in chunks) at 1, 8, 32, 128 seeds, chunked
  (``--chunk-width``, default 8) and unchunked (chunk width = seeds), and sharded over all
  devices (``devices=0``) where jaxeval has that option and there is more than one device.

Timing: every arm runs once first (compile), then in rounds, every arm once per round in a
rotated order with a large f32 GEMM in each round (at least ``--repeats`` rounds; more, up to 4x,
while a table's rounds take under ``--round-budget`` seconds). Throughputs and ratios use each
arm's best round, the one least disturbed by other jobs on a shared machine (the ``--json`` output
also has the median over rounds of the ratio inside a round). Throughput: example-steps x seeds
per second. Compile: the first call minus the best round (trace + lowering + XLA compile); the
lowering + XLA part alone, from JAX's monitoring events, is in the JSON. GFLOP/s counts the
matmul/conv work of a training step (forward, weight gradients, input gradients but the first
layer's), not elementwise work; %GEMM compares it with the GEMM's best round. MiB/seed: XLA's
compiled ``memory_analysis()`` (temp + output bytes) of one chunk over its width. bits: whether
every round returned the first call's bits ("same"/"differ": against the arm it should equal).

``--investigate`` (default on) measures where the reference MLP sweep's time goes, each variant
changing one thing, prototyped *inside this script* (jaxeval is not changed): no dropout, no
divergence guard, SGD instead of AdamW and the matmuls alone (bounds); dropout masks from fewer
threefry bits; AdamW on one flat vector; the ``shard_map`` + ``lax.map`` layout. The CNN table
adds a prototype with its convolutions written as shifted slices and one matmul. ``--study``
times the default study (``configs/digits_seeds.py``) end to end, compile apart from run.

Set before JAX is imported: ``--deterministic`` (default) adds ``--xla_gpu_deterministic_ops=true``
to ``XLA_FLAGS`` (as jaxeval's entry points do in exact mode; a no-op on CPU); ``--cpu-devices``
(default: one per core) sets ``JAX_NUM_CPU_DEVICES``. Runs unchanged on a GPU: every timed call
ends in ``device_get``/``block_until_ready``, the GEMM grows to 8192, PyTorch stays on the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

GPU_DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: tiny model, 8 seeds, 1 epoch, 2 rounds, 2 investigation arms, no study")
    ap.add_argument("--models", default="tiny,mlp,cnn", help="comma list of tiny (64-32-10), mlp (64-256-256-10), cnn")
    ap.add_argument("--seeds", default="1,8,32,128", help="seed counts of the sweep arms (tiny, mlp)")
    ap.add_argument("--cnn-seeds", default="8", help="seed counts of the sweep arms for the cnn (slow on CPU)")
    ap.add_argument("--chunk-width", type=int, default=8, help="chunk width of the chunked sweep arms")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of 11 steps (tiny, mlp)")
    ap.add_argument("--cnn-train-size", type=int, default=256,
                    help="cnn: train on a keyed subset (1 epoch of n/128 steps)")
    ap.add_argument("--torch-seeds", type=int, default=4, help="seeds of the PyTorch loop (its time per seed is flat)")
    ap.add_argument("--loop-seeds", type=int, default=8, help="seeds of the jitted JAX loop")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (interleaved) after compilation, at least")
    ap.add_argument("--round-budget", type=float, default=20.0,
                    help="seconds of rounds per table: more rounds (up to 4 x --repeats) while under it")
    ap.add_argument("--torch", action=argparse.BooleanOptionalAction, default=True, help="run the PyTorch arms")
    ap.add_argument("--investigate", action=argparse.BooleanOptionalAction, default=True,
                    help="where the reference MLP sweep's time goes, with prototyped variants")
    ap.add_argument("--investigate-seeds", type=int, default=32, help="seeds of the one-change-at-a-time table")
    ap.add_argument("--layout-seeds", type=int, default=128, help="seeds of the layouts table")
    ap.add_argument("--investigate-model", default="mlp", choices=("tiny", "mlp"))
    ap.add_argument("--investigate-arms", default="", help="comma list of investigation arms (default: all)")
    ap.add_argument("--study", action=argparse.BooleanOptionalAction, default=True,
                    help="the default study (configs/digits_seeds.py) end to end")
    ap.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                    help=f"add {GPU_DETERMINISTIC_FLAG} to XLA_FLAGS (GPU; no-op on CPU)")
    ap.add_argument("--cpu-devices", type=int, default=None,
                    help="JAX_NUM_CPU_DEVICES (default: the environment's, else one per core)")
    ap.add_argument("--json", default=None, help="also write the results as JSON to this path")
    args = ap.parse_args(argv)
    if args.quick:
        args.models, args.seeds, args.epochs, args.repeats, args.round_budget = "tiny", "8", 1, 2, 0.0
        args.torch_seeds, args.loop_seeds, args.investigate_seeds, args.investigate_model = 2, 2, 16, "tiny"
        args.layout_seeds = 16
        args.study = False
    args.models = [m for m in args.models.split(",") if m]
    args.investigate_arms = tuple(a for a in args.investigate_arms.split(",") if a)
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.cnn_seeds = [int(s) for s in args.cnn_seeds.split(",") if s]
    for m in args.models:
        if m not in MODEL_SPECS:
            ap.error(f"--models: {m!r} is not known; choose from {sorted(MODEL_SPECS)}")
    if any(s <= 0 for s in args.seeds + args.cnn_seeds) or args.chunk_width <= 0 or args.repeats <= 0:
        ap.error("--seeds, --cnn-seeds, --chunk-width and --repeats must be positive")
    return args


def configure_env(args) -> None:
    """Sets what JAX reads at start-up; must run before ``import jax``."""
    if "jax" in sys.modules:
        raise RuntimeError("configure_env must run before jax is imported")
    flags = os.environ.get("XLA_FLAGS", "").split()
    flags = [f for f in flags if not f.startswith("--xla_gpu_deterministic_ops")]
    if args.deterministic:
        flags.append(GPU_DETERMINISTIC_FLAG)
    os.environ["XLA_FLAGS"] = " ".join(flags)
    if args.cpu_devices is not None:
        os.environ["JAX_NUM_CPU_DEVICES"] = str(args.cpu_devices)
    else:
        os.environ.setdefault("JAX_NUM_CPU_DEVICES", str(os.cpu_count() or 1))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# ----------------------------------------------------------------------------------------------
# The models (same specs for JAX and PyTorch) and their matmul work

MODEL_SPECS = {
    "tiny": {"name": "mlp", "hidden": (32,), "dropout": 0.3},
    "mlp": {"name": "mlp", "hidden": (256, 256), "dropout": 0.3},
    "cnn": {"name": "cnn", "conv_features": (32, 64), "dense": 128, "dropout": 0.25, "head_dropout": 0.5},
}
BATCH = 128


def describe(spec, feature_shape, num_classes) -> str:
    if spec["name"] == "mlp":
        return "MLP " + "-".join(str(d) for d in (math.prod(feature_shape), *spec["hidden"], num_classes))
    return f"CNN conv{'-conv'.join(map(str, spec['conv_features']))}-pool-fc{spec['dense']}-{num_classes}"


def matmul_flops(spec, feature_shape, num_classes) -> int:
    """FLOPs of the matmuls/convs of one training example-step: forward ``2*MACs``, weight
    gradients ``2*MACs``, input gradients ``2*MACs`` for every layer but the first."""
    if spec["name"] == "mlp":
        dims = (math.prod(feature_shape), *spec["hidden"], num_classes)
        macs = [i * o for i, o in zip(dims[:-1], dims[1:])]
    else:
        h, w, c = feature_shape
        macs = []
        for f in spec["conv_features"]:
            macs.append(h * w * 9 * c * f)
            c = f
        pooled = (h // 2) * (w // 2) * c
        macs += [pooled * spec["dense"], spec["dense"] * num_classes]
    return 6 * sum(macs) - 2 * macs[0]


# ----------------------------------------------------------------------------------------------
# Timing: a first call (compile), then interleaved rounds


class CompileClock:
    """Sums JAX's lowering + XLA-compile durations (monitoring events). Tracing is left out: its
    events nest (a jitted function traced inside another reports both), so they double-count."""

    EVENTS = ("/jax/core/compile/jaxpr_to_mlir_module_duration", "/jax/core/compile/backend_compile_duration")

    def __init__(self):
        import jax

        self.total = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, name, duration, **kwargs):
        if name in self.EVENTS:
            self.total += duration


class Arm:
    """One timed thing: ``run() -> host outputs`` (blocking) doing ``seeds x steps`` example-steps."""

    def __init__(self, key, label, run, *, seeds=0, steps=0, flops=0, memory=None, gemm_flops=0):
        self.key, self.label, self.run = key, label, run
        self.seeds, self.steps, self.flops, self.gemm_flops = seeds, steps, flops, gemm_flops
        self.memory = memory  # () -> (bytes, seeds they hold), called after the first call; or None
        self.compile_s = self.first_s = self.xla_s = float("nan")
        self.times: list[float] = []
        self.first_out = None
        self.same_bits = True
        self.mem = None
        self.self_timed = False  # run() returns its own seconds (the GEMM's best inner call)

    def examples(self) -> int:
        return self.seeds * self.steps * BATCH

    def work(self) -> float:
        """FLOPs of one call."""
        return self.gemm_flops or self.examples() * self.flops


def tree_equal(a, b) -> bool:
    import jax
    import numpy as np

    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def measure(arms: list[Arm], repeats: int, clock: CompileClock, log, budget_s: float = 0.0) -> None:
    """First call (compile) of every arm, then rounds of every arm in rotated order: at least
    ``repeats`` rounds, more (up to ``4 * repeats``) while the rounds took less than ``budget_s``."""
    for arm in arms:
        c0, t0 = clock.total, time.perf_counter()
        arm.first_out = arm.run()
        arm.first_s = time.perf_counter() - t0
        if arm.self_timed:
            arm.first_out = None
        arm.xla_s = clock.total - c0
        if arm.memory is not None:
            arm.mem = arm.memory()
        log(f"  compiled {arm.label}: {arm.xla_s:.1f} s lowering + XLA compile, {arm.first_s:.1f} s first call")
    t_rounds, r = time.perf_counter(), 0
    while r < repeats or (r < 4 * repeats and time.perf_counter() - t_rounds < budget_s):
        k = r % len(arms)
        r += 1
        for arm in arms[k:] + arms[:k]:
            t0 = time.perf_counter()
            out = arm.run()
            arm.times.append(out if arm.self_timed else time.perf_counter() - t0)
            if not arm.self_timed:
                arm.same_bits &= tree_equal(out, arm.first_out)
    for arm in arms:  # trace + lower + compile + one-time transfers: the first call minus a steady one
        arm.compile_s = max(arm.first_s - min(arm.times), 0.0)


def per_round(arm: Arm) -> list[float]:
    """Throughput (example-steps x seeds per second, or FLOP/s for the GEMM) of each round."""
    return [(arm.work() if arm.gemm_flops else arm.examples()) / t for t in arm.times]


def best_ratio(a: Arm, b: Arm | None, to_flops=False):
    """Best round of ``a`` over best round of ``b`` (throughputs; ``to_flops``: FLOP/s, for the GEMM)."""
    if b is None or not a.times or not b.times:
        return None
    xa = max(a.work() / t for t in a.times) if to_flops else max(per_round(a))
    return xa / max(per_round(b))


def median_ratio(a: Arm, b: Arm | None, to_flops=False):
    """Median over rounds of the ratio inside a round."""
    if b is None or not a.times or not b.times:
        return None
    xa = [a.work() / t for t in a.times] if to_flops else per_round(a)
    xb = per_round(b)
    return statistics.median(x / y for x, y in zip(xa, xb))


# ----------------------------------------------------------------------------------------------
# The JAX arms


def imports():
    """jax and jaxeval, imported after ``configure_env``."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxeval import config as config_lib
    from jaxeval import keys as K
    from jaxeval import models, sweep
    from jaxeval.studies import base
    from jaxeval.train import evaluate, make_finetune
    from jaxeval.train.finetune import tree_checksum

    return dict(jax=jax, jnp=jnp, np=np, config_lib=config_lib, K=K, models=models, sweep=sweep, base=base,
                evaluate=evaluate, make_finetune=make_finetune, tree_checksum=tree_checksum)


class Setup:
    """Config, data, model and the per-replicate function of one model size."""

    def __init__(self, spec_name: str, epochs: int, train_size: int = 0):
        m = imports()
        self.m = m
        spec = MODEL_SPECS[spec_name]
        cfg = m["config_lib"].base_config()
        cfg.pretrain.enabled = False
        cfg.finetune.modes = ("full",)
        cfg.finetune.batch_size = BATCH
        cfg.finetune.epochs = epochs
        cfg.dataset.train_size = train_size
        for k, v in spec.items():
            cfg.model[k] = v
        self.cfg = m["config_lib"].validate(cfg)
        self.spec_name, self.spec = spec_name, spec
        self.ds = m["base"].load_task(self.cfg)
        self.model = m["models"].build(self.cfg.model, self.ds.feature_shape, self.ds.num_classes)
        self.task = m["base"].task_arrays(self.ds)
        self.root = m["K"].root_key(0)
        self.steps = epochs * (self.ds.num_train // BATCH)
        self.flops = matmul_flops(spec, self.ds.feature_shape, self.ds.num_classes)
        self.name = describe(spec, self.ds.feature_shape, self.ds.num_classes)
        self.one = self.make_one(self.model)

    def make_one(self, model, optimizer=None, **finetune_kwargs):
        """``one(rep, task) -> {accuracy, loss, checksum}``: finetune one replicate from scratch, evaluate.
        ``optimizer``: a replacement for ``make_optimizer`` while ``make_finetune`` is built (prototypes)."""
        m = self.m
        with patched_optimizer(optimizer):
            finetune = m["make_finetune"](model, self.cfg.finetune, self.ds.num_train, **finetune_kwargs)
        root, evaluate, checksum, K = self.root, m["evaluate"], m["tree_checksum"], m["K"]

        def one(rep, t):
            params, train = finetune(None, t["x_train"], t["y_train"], keys=K.replicate_keys(root, rep))
            acc = evaluate(model, params, t["x_test"], t["y_test"])[1]["accuracy"]
            return {"accuracy": acc, "loss": train["loss"][-1], "params_checksum": checksum(params)}

        return one

    def indices(self, n):
        return self.m["K"].replicate_indices(n)

    # -- arms

    def loop_arm(self, n_seeds: int, one=None, label=None, key=None) -> Arm:
        """A Python loop over seeds calling one jitted single-seed function (no vmap)."""
        jax = self.m["jax"]
        single = jax.jit(one or self.one)
        idx = self.indices(n_seeds)
        reps = [{k: v[i] for k, v in idx.items()} for i in range(n_seeds)]

        def run():
            return [jax.device_get(single(rep, self.task)) for rep in reps]

        def memory():
            st = single.lower(reps[0], self.task).compile().memory_analysis()
            return (st.temp_size_in_bytes + st.output_size_in_bytes), 1

        return Arm(key or f"{self.spec_name}/jax_loop", label or f"jax loop over jitted seed ({n_seeds} seeds)", run,
                   seeds=n_seeds, steps=self.steps, flops=self.flops, memory=memory)

    def sweep_arm(self, n_seeds: int, width: int, one=None, label=None, key=None, devices=None) -> Arm:
        """``jaxeval.sweep.run``; ``devices=0``: chunks spread over all devices (the per-device engine, one chunk each)."""
        jax, sweep = self.m["jax"], self.m["sweep"]
        one = one or self.one
        idx = self.indices(n_seeds)
        kwargs = {} if devices is None else {"devices": devices}

        def run():
            return sweep.run(one, idx, self.task, chunk_width=width, **kwargs)

        def memory():
            if devices is not None or not hasattr(sweep, "_vmapped"):  # sharded: the same chunk per device
                return None
            chunk = jax.tree_util.tree_map(lambda a: a[:width], sweep.pad_to_chunks(idx, width)[0])
            st = sweep._vmapped(one).lower(chunk, self.task).compile().memory_analysis()
            return (st.temp_size_in_bytes + st.output_size_in_bytes), width

        pad = -n_seeds % width
        kind = f"chunk {width}" + (" (unchunked)" if width == n_seeds else f" ({pad} padding)" if pad else "")
        if devices is not None:
            kind += f", devices={devices} (per-device engine)"
        return Arm(key or f"{self.spec_name}/sweep/{n_seeds}/{width}", label or f"sweep {n_seeds} seeds, {kind}",
                   run, seeds=n_seeds, steps=self.steps, flops=self.flops, memory=memory)

    def layout_arm(self, n_seeds: int, batch: int, one=None, label=None, key=None) -> Arm | None:
        """``shard_map`` of the seed axis over all devices, ``lax.map(batch_size=batch)`` on each."""
        jax, np = self.m["jax"], self.m["np"]
        from jax.sharding import Mesh, PartitionSpec as P

        devices = jax.devices()
        if n_seeds % (len(devices) * batch):
            return None
        one = one or self.one
        task = self.task
        mesh = Mesh(np.array(devices), ("seeds",))

        def body(reps, t):
            return jax.lax.map(lambda r: one(r, t), reps, batch_size=batch)

        fn = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(P("seeds"), P()), out_specs=P("seeds"), check_vma=False))
        idx = self.indices(n_seeds)

        def run():
            return jax.device_get(fn(idx, task))

        def memory():  # XLA reports one device's share of an SPMD program
            st = fn.lower(idx, task).compile().memory_analysis()
            return (st.temp_size_in_bytes + st.output_size_in_bytes), n_seeds // len(devices)

        return Arm(key or f"{self.spec_name}/layout/{n_seeds}/{batch}",
                   label or f"shard_map x{len(devices)} dev + lax.map({batch}), {n_seeds} seeds",
                   run, seeds=n_seeds, steps=self.steps, flops=self.flops, memory=memory)

    def torch_arm(self, n_seeds: int, threads: int | None = None) -> Arm | None:
        """The PyTorch loop with ``threads`` intra-op threads (default: one per core)."""
        if importlib.util.find_spec("torch") is None:
            return None
        threads = threads or os.cpu_count() or 1
        x, y = self.ds.x_train, self.ds.y_train
        xt, yt = self.ds.x_test, self.ds.y_test
        cfg = self.cfg.finetune
        run = torch_seed_loop(self.spec, x, y, xt, yt, num_classes=self.ds.num_classes, n_seeds=n_seeds,
                              epochs=cfg.epochs, batch=BATCH,
                              lr=cfg.learning_rate, weight_decay=cfg.weight_decay, threads=threads)
        cores = threads == (os.cpu_count() or 1)
        return Arm(f"{self.spec_name}/torch" + ("" if cores else f"/{threads}threads"),
                   f"PyTorch eager loop, CPU, {threads} thread{'s' * (threads > 1)} ({n_seeds} seeds)", run,
                   seeds=n_seeds, steps=self.steps, flops=self.flops)


def accepts(fn, name: str) -> bool:
    """Whether ``fn`` takes a keyword ``name`` (jaxeval's API grows; the benchmark adapts)."""
    import inspect

    return name in inspect.signature(fn).parameters


@contextlib.contextmanager
def patched_optimizer(factory):
    """Prototype only: ``make_finetune`` builds its optimizer with ``factory`` instead of jaxeval's."""
    if factory is None:
        yield
        return
    import jaxeval.train.finetune as ft

    old = ft.make_optimizer
    ft.make_optimizer = factory
    try:
        yield
    finally:
        ft.make_optimizer = old


def gemm_arm(n: int) -> Arm:
    import jax
    import jax.numpy as jnp

    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    b = jax.random.normal(kb, (n, n), jnp.float32)
    mm = jax.jit(lambda a, b: a @ b)

    def run():
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            mm(a, b).block_until_ready()
            best = min(best, time.perf_counter() - t0)
        return best

    arm = Arm("gemm", f"jax f32 GEMM {n}x{n} @ {n}x{n} (best of 3 per round)", run, gemm_flops=2 * n**3)
    arm.self_timed = True
    return arm


# ----------------------------------------------------------------------------------------------
# PyTorch eager baseline


def torch_model(spec, feature_shape, num_classes):
    """The same architecture as jaxeval's (``feature_shape``: jaxeval's, channels last)."""
    import torch.nn as nn

    if spec["name"] == "mlp":
        layers, d = [nn.Flatten()], math.prod(feature_shape)
        for h in spec["hidden"]:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(spec["dropout"])]
            d = h
        return nn.Sequential(*layers, nn.Linear(d, num_classes))
    c1, c2 = spec["conv_features"]
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(spec["dropout"]), nn.Flatten(),
        nn.Linear(c2 * (feature_shape[0] // 2) * (feature_shape[1] // 2), spec["dense"]), nn.ReLU(),
        nn.Dropout(spec["head_dropout"]), nn.Linear(spec["dense"], num_classes),
    )


def torch_seed_loop(spec, x, y, x_test, y_test, *, num_classes, n_seeds, epochs, batch, lr, weight_decay, threads):
    """Returns ``run() -> [test accuracy per seed]``: the loop a researcher would write."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    def to_t(a):  # a writable copy; images NHWC -> NCHW
        return torch.from_numpy(np.array(np.moveaxis(a, -1, 1) if spec["name"] == "cnn" else a, np.float32))

    xs, ys = to_t(x), torch.from_numpy(y.astype(np.int64))
    xts, yts = to_t(x_test), torch.from_numpy(y_test.astype(np.int64))
    n = xs.shape[0]
    steps_per_epoch = n // batch

    def run():
        torch.set_num_threads(threads)
        accs = []
        for seed in range(n_seeds):
            torch.manual_seed(seed)
            model = torch_model(spec, x.shape[1:], num_classes)
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
            model.train()
            for _ in range(epochs):
                perm = torch.randperm(n)
                running = 0.0
                for i in range(steps_per_epoch):
                    idx = perm[i * batch:(i + 1) * batch]
                    loss = F.cross_entropy(model(xs[idx]), ys[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    running += loss.item()  # the per-epoch loss a training script logs
            model.eval()
            with torch.no_grad():
                accs.append((model(xts).argmax(1) == yts).float().mean().item())
        return np.array(accs)

    return run


# ----------------------------------------------------------------------------------------------
# Prototypes (benchmark only; jaxeval is unchanged): cheaper dropout masks, convs as matmuls,
# other optimizers, the matmuls alone


def dropout_threefry_u8(key, rate, x):
    """Keyed 8-bit dropout: one 32-bit threefry draw per 4 elements, each byte a uniform in
    [0, 256); keep iff byte < round(256 (1 - rate)), scaled by 1/P(keep) (unbiased; the keep
    probability is quantised to 1/256: rate 0.3 -> 0.30078)."""
    import jax
    import jax.numpy as jnp

    keep = round(256 * (1.0 - rate))
    words = jax.random.bits(key, (-(-x.size // 4),), jnp.uint32)
    u8 = jax.lax.bitcast_convert_type(words, jnp.uint8).reshape(-1)[: x.size].reshape(x.shape)
    return jnp.where(u8 < keep, x * (256.0 / keep), 0.0)


def dropout_threefry2x32_u8(key, rate, x):
    """As ``dropout_threefry_u8`` but keeps both 32-bit words of each threefry2x32 block
    (``jax.extend.random.threefry_2x32`` on a counter): 8 bytes per block."""
    import jax
    import jax.numpy as jnp
    from jax.extend.random import threefry_2x32

    keep = round(256 * (1.0 - rate))
    n_words = 2 * -(-x.size // 8)
    words = threefry_2x32(jax.random.key_data(key), jnp.arange(n_words, dtype=jnp.uint32))
    u8 = jax.lax.bitcast_convert_type(words, jnp.uint8).reshape(-1)[: x.size].reshape(x.shape)
    return jnp.where(u8 < keep, x * (256.0 / keep), 0.0)


def dropout_threefry2x32_u16(key, rate, x):
    """16-bit uniforms, 4 per threefry2x32 block: the keep probability is quantised to 1/65536
    (rate 0.3 -> 0.300003) instead of 1/256."""
    import jax
    import jax.numpy as jnp
    from jax.extend.random import threefry_2x32

    keep = round(65536 * (1.0 - rate))
    n_words = 2 * -(-x.size // 4)
    words = threefry_2x32(jax.random.key_data(key), jnp.arange(n_words, dtype=jnp.uint32))
    u16 = jax.lax.bitcast_convert_type(words, jnp.uint16).reshape(-1)[: x.size].reshape(x.shape)
    return jnp.where(u16 < keep, x * (65536.0 / keep), 0.0)


def dropout_bits_u8(key, rate, x):
    """``jax.random.bits(key, shape, uint8)``: with partitionable threefry (JAX's default) this is
    still one threefry block per element, so no cheaper than flax's float uniform."""
    import jax
    import jax.numpy as jnp

    keep = round(256 * (1.0 - rate))
    u8 = jax.random.bits(key, x.shape, jnp.uint8)
    return jnp.where(u8 < keep, x * (256.0 / keep), 0.0)


DROPOUTS = {"u8": dropout_threefry_u8, "2x32-u8": dropout_threefry2x32_u8, "2x32-u16": dropout_threefry2x32_u16,
            "bits-u8": dropout_bits_u8}


def variant_models(setup):
    """Linen modules with the same parameter names as jaxeval's (so the same initial params)."""
    import flax.linen as nn
    import jax

    models = setup.m["models"]

    class MaskDropout(nn.Module):
        rate: float
        mask: str

        @nn.compact
        def __call__(self, x, *, train: bool):
            if not train or self.rate == 0.0:
                return x
            return DROPOUTS[self.mask](self.make_rng("dropout"), self.rate, x)

    class MLPVariant(nn.Module):
        hidden: tuple
        dropout: float
        mask: str

        @nn.compact
        def __call__(self, x, *, train: bool):
            x = x.reshape(x.shape[0], -1)
            for width in self.hidden:
                x = nn.relu(nn.Dense(width)(x))
                x = MaskDropout(self.dropout, self.mask)(x, train=train)
            return x

    class ShiftConv(nn.Module):
        """``nn.Conv(features, (3, 3), padding="SAME")`` as 9 shifted slices and one matmul."""

        features: int

        @nn.compact
        def __call__(self, x):
            kh = kw = 3
            cin = x.shape[-1]
            kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, cin, self.features))
            bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
            h, w = x.shape[1:3]
            xp = jax.numpy.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
            patches = jax.numpy.concatenate([xp[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)], -1)
            return patches @ kernel.reshape(kh * kw * cin, self.features) + bias

    class CNNVariant(nn.Module):
        features: tuple
        dense: int
        dropout: float

        @nn.compact
        def __call__(self, x, *, train: bool):
            for i, width in enumerate(self.features):
                x = nn.relu(ShiftConv(width, name=f"Conv_{i}")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
            x = x.reshape(x.shape[0], -1)
            return nn.relu(nn.Dense(self.dense)(x))

    base = setup.model

    def mlp(mask=None, dropout=None):
        rate = setup.spec["dropout"] if dropout is None else dropout
        enc = models.MLPEncoder(hidden=tuple(setup.spec["hidden"]), dropout=rate) if mask is None \
            else MLPVariant(tuple(setup.spec["hidden"]), rate, mask)
        return base._replace(encoder=enc)

    def cnn_shift():
        s = setup.spec
        return base._replace(encoder=CNNVariant(tuple(s["conv_features"]), s["dense"], s["dropout"]))

    return mlp, cnn_shift


def sgd_factory(cfg, *, total_steps, freeze_encoder=False):
    """Prototype bound: plain SGD with the same cosine schedule (what AdamW costs on top)."""
    import optax

    return optax.sgd(optax.cosine_decay_schedule(cfg.learning_rate, max(total_steps, 1)))


def flat_adamw_factory(cfg, *, total_steps, freeze_encoder=False):
    """Prototype: jaxeval's AdamW applied to one flat vector (``optax.flatten``)."""
    import optax

    from jaxeval.train.optim import make_optimizer

    return optax.flatten(make_optimizer(cfg, total_steps=total_steps, freeze_encoder=freeze_encoder))


def skeleton_one(setup):
    """The reference MLP's matmuls alone (same shapes, batches, steps and vmap; no bias,
    activation, dropout, softmax or optimizer): the ceiling of this model's matmul shapes."""
    m = setup.m
    jax, jnp, K = m["jax"], m["jnp"], m["K"]
    dims = (math.prod(setup.ds.feature_shape), *setup.spec["hidden"], setup.ds.num_classes)
    n = setup.ds.num_train
    spe = n // BATCH
    root, steps = setup.root, setup.steps

    def one(rep, t):
        k = K.stream(root, "init", rep["init"])
        ws = [jax.random.normal(jax.random.fold_in(k, i), (a, b)) * 0.05
              for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))]
        target = jax.random.normal(jax.random.fold_in(k, 99), (BATCH, dims[-1]))
        x = t["x_train"].reshape(n, -1)

        def step(ws, i):
            xb = jax.lax.dynamic_slice_in_dim(x, (i % spe) * BATCH, BATCH)

            def f(ws):
                h = xb
                for w in ws:
                    h = h @ w
                return jnp.sum(h * target)

            g = jax.grad(f)(ws)
            return [w - 1e-6 * gw for w, gw in zip(ws, g)], None

        ws, _ = jax.lax.scan(step, ws, jnp.arange(steps))
        return {"checksum": sum(jnp.sum(w) for w in ws)}

    return one


# ----------------------------------------------------------------------------------------------
# Sections


def model_section(name, args, clock, log):
    """Baselines (PyTorch loop, JAX loop) and jaxeval's sweep at every seed count, for one model."""
    cnn = name == "cnn"
    setup = Setup(name, 1 if cnn else args.epochs, args.cnn_train_size if cnn else 0)
    log(f"\n[{setup.name}] building arms ...")
    seeds = args.cnn_seeds if cnn else args.seeds
    arms = [gemm_arm(gemm_size())]
    n_torch = min(args.torch_seeds, 2) if cnn else args.torch_seeds
    torch_arms = [setup.torch_arm(n_torch)] if args.torch else []
    if torch_arms and torch_arms[0] is not None:
        if (os.cpu_count() or 1) > 1 and not args.quick:  # one thread: less hurt by other jobs' load
            torch_arms.append(setup.torch_arm(n_torch, threads=1))
        arms += torch_arms
    elif args.torch:
        log("  torch is not installed: the PyTorch arm is skipped (pip install -r benchmarks/requirements.txt)")
    loop = setup.loop_arm(min(args.loop_seeds, 2) if cnn else args.loop_seeds)
    arms.append(loop)
    done = set()
    for s in seeds:
        for width in (args.chunk_width, s):
            if (s, width) not in done:
                done.add((s, width))
                arms.append(setup.sweep_arm(s, width))
    s, c = max(seeds), min(args.chunk_width, max(seeds))
    ref = {}
    ndev = len(setup.m["jax"].devices())
    if not cnn and ndev > 1 and accepts(setup.m["sweep"].run, "devices"):
        arms.append(setup.sweep_arm(s, c, devices=0, key=f"{name}/sharded/{s}/{c}",
                                    label=f"sweep {s} seeds, chunk {c}, devices=0 ({ndev} dev)"))
        ref[arms[-1].key] = f"{name}/sweep/{s}/{c}"
    if cnn:  # prototype: the same CNN with its convs as 9 shifted slices and one matmul
        _, cnn_shift = variant_models(setup)
        shift_one = setup.make_one(cnn_shift())
        arms.append(setup.loop_arm(loop.seeds, one=shift_one, key="cnn/shift/loop",
                                   label=f"proto shift-conv: jax loop ({loop.seeds} seeds)"))
        ref["cnn/shift/loop"] = loop.key
        arms.append(setup.sweep_arm(s, c, one=shift_one, key=f"cnn/shift/sweep/{s}",
                                    label=f"proto shift-conv: sweep {s} seeds, chunk {c}"))
        ref[arms[-1].key] = f"cnn/sweep/{s}/{c}"
    measure(arms, min(args.repeats, 2) if cnn else args.repeats, clock, log, 0.0 if cnn else args.round_budget)
    torch_arm = max((a for a in torch_arms if a is not None), key=lambda a: max(per_round(a)), default=None)
    by_key = {a.key: a for a in arms}
    equal = {k: ("same" if tree_equal(by_key[k].first_out, by_key[v].first_out) else "differ")
             for k, v in ref.items() if v in by_key}
    title = (f"{setup.name}, digits, batch {BATCH}, {setup.steps} steps ({setup.ds.num_train} train examples), "
             f"AdamW; {setup.flops / 1e3:.0f} kFLOP of matmul per example-step")
    return table(title, arms, torch_arm, loop, equal=equal)


# The two investigation tables: one change at a time (chunk width C, --investigate-seeds: the
# per-seed cost of a chunked sweep does not depend on how many chunks it runs, and short rounds
# keep the arms of a round close in time), and layouts at --layout-seeds.
VARIANT_ARMS = ("base", "nodropout", "u8", "2x32-u8", "2x32-u16", "bits-u8", "noguard", "sgd", "flat", "skeleton")
LAYOUT_ARMS = ("base", "unchunked", "2x32-u8", "sharded", "layout", "best")
QUICK_ARMS = ("base", "2x32-u8")


def investigate_section(args, clock, log):
    """The reference MLP sweep (``--investigate-model``) against variants that each change one
    thing, then against other layouts; returns ``[(text, rows)]``, one per table."""
    setup = Setup(args.investigate_model, args.epochs)
    mlp, _ = variant_models(setup)
    c = args.chunk_width
    ndev = len(setup.m["jax"].devices())
    sharded = ndev > 1 and accepts(setup.m["sweep"].run, "devices")
    has_guard = accepts(setup.m["make_finetune"], "guard")
    ones = {}  # one function per variant, shared by both tables (so one compiled program each)

    def one(name, make):
        if name not in ones:
            ones[name] = make()
        return ones[name]

    def chunked(name, make=None):  # a variant at the baseline's chunk width, built only when selected
        return lambda s: setup.sweep_arm(s, c, one=one(name, make) if make else setup.one)

    # key -> (label, build(seeds) -> Arm | None (None: not possible here), the arm whose bits it should equal)
    builders = {
        "base": (f"jaxeval sweep, chunk {c} (baseline)", chunked("base"), None),
        "unchunked": ("jaxeval sweep, unchunked", lambda s: setup.sweep_arm(s, s), None),
        "nodropout": ("bound: no dropout (rate 0)", chunked("nodropout", lambda: setup.make_one(mlp(dropout=0.0))),
                      None),
        "u8": ("dropout: u8 from random.bits u32 (4 per block)", chunked("u8", lambda: setup.make_one(mlp(mask="u8"))),
               None),
        "2x32-u8": ("dropout: u8 from threefry_2x32 (8 per block)",
                    chunked("2x32-u8", lambda: setup.make_one(mlp(mask="2x32-u8"))), None),
        "2x32-u16": ("dropout: u16 from threefry_2x32 (4 per block)",
                     chunked("2x32-u16", lambda: setup.make_one(mlp(mask="2x32-u16"))), None),
        "bits-u8": ("dropout: random.bits(uint8) (1 per block)",
                    chunked("bits-u8", lambda: setup.make_one(mlp(mask="bits-u8"))), None),
        "noguard": ("bound: no divergence guard",
                    chunked("noguard", lambda: setup.make_one(setup.model, guard=False)) if has_guard
                    else lambda s: None, "base"),
        "sgd": ("bound: SGD instead of AdamW",
                chunked("sgd", lambda: setup.make_one(setup.model, optimizer=sgd_factory)), None),
        "flat": ("AdamW on one flat vector (optax.flatten)",
                 chunked("flat", lambda: setup.make_one(setup.model, optimizer=flat_adamw_factory)), "base"),
        "skeleton": ("bound: the matmuls alone (same shapes)", chunked("skeleton", lambda: skeleton_one(setup)), None),
        "sharded": (f"jaxeval sweep, chunk {c}, devices=0 ({ndev} dev)",
                    lambda s: setup.sweep_arm(s, c, devices=0) if sharded else None, "base"),
        "layout": (f"shard_map x{ndev} dev + lax.map({c})", lambda s: setup.layout_arm(s, c), "base"),
        "best": ("devices=0 + u8 threefry_2x32 dropout",
                 lambda s: setup.sweep_arm(s, c, one=one("2x32-u8", lambda: setup.make_one(mlp(mask="2x32-u8"))),
                                           devices=0) if sharded else None, "2x32-u8"),
    }
    chosen = args.investigate_arms
    unknown = [k for k in chosen if k not in builders]
    if unknown:
        raise ValueError(f"--investigate-arms: {unknown} not known; choose from {sorted(builders)}")
    tables = []
    for prefix, seeds, keys, what in (
            ("inv", args.investigate_seeds, QUICK_ARMS if args.quick else VARIANT_ARMS, "one change at a time"),
            ("layout", args.layout_seeds, () if args.quick else LAYOUT_ARMS, "layouts")):
        keys = [k for k in keys if not chosen or k in chosen]
        if not keys:
            continue
        keys = ["base", *(k for k in keys if k != "base")]
        log(f"\n[investigate, {what}: {setup.name}, {seeds} seeds] building arms ...")
        arms, ref = [gemm_arm(gemm_size())], {}
        for k in keys:
            label, build, same_as = builders[k]
            arm = build(seeds)
            if arm is None:
                log(f"  {label}: skipped (needs more than one device, a jaxeval with that option, or seeds "
                    f"divisible by devices x {c})")
                continue
            arm.key, arm.label = f"{prefix}/{k}", label + (f" ({seeds})" if k == "unchunked" else "")
            arms.append(arm)
            if same_as:
                ref[arm.key] = f"{prefix}/{same_as}"
        measure(arms, args.repeats, clock, log, args.round_budget)
        by_key = {a.key: a for a in arms}
        equal = {k: ("same" if tree_equal(by_key[k].first_out, by_key[v].first_out) else "differ")
                 for k, v in ref.items() if v in by_key}
        title = (f"where the time goes, {what}: {setup.name}, {seeds} seeds x {setup.steps} steps, batch {BATCH} "
                 f"(vs base: vs the chunk-{c} sweep; bits: stable across rounds, same/differ vs the arm it "
                 "should equal)")
        tables.append(table(title, arms, None, None, base=by_key[f"{prefix}/base"], equal=equal))
    return tables


def study_section(args, clock, log):
    from jaxeval.studies import seeds

    spec = importlib.util.spec_from_file_location("digits_seeds", REPO / "configs" / "digits_seeds.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = mod.get_config()
    log("\n[default study: configs/digits_seeds.py] running ...")
    c0, t0 = clock.total, time.perf_counter()
    res = seeds.run(cfg, workdir=None, log=None)
    wall = time.perf_counter() - t0
    comp = clock.total - c0
    c = res.config
    n = res.summary["dataset"]["num_train"]
    pre = c.pretrain.num_seeds * c.pretrain.epochs * (n // c.pretrain.batch_size) * c.pretrain.batch_size
    fin = len(c.finetune.modes) * res.summary["num_replicates"] * c.finetune.epochs * (n // c.finetune.batch_size) \
        * c.finetune.batch_size
    acc = {mode: res.summary["modes"][mode]["accuracy"]["mean"] for mode in c.finetune.modes}
    row = {"wall_s": wall, "lower_and_xla_compile_s": comp, "rest_s": wall - comp, "example_steps": pre + fin,
           "throughput": (pre + fin) / max(wall - comp, 1e-9), "accuracy": acc,
           "fingerprints": res.manifest["fingerprints"]}
    lines = [f"default study end to end (configs/digits_seeds.py: pretrain {c.pretrain.epochs} epochs, finetune "
             f"{'+'.join(c.finetune.modes)} x {res.summary['num_replicates']} seeds x {c.finetune.epochs} epochs, "
             f"chunk width {c.chunk_width})",
             f"  wall {wall:.1f} s = lowering + XLA compile {comp:.1f} s + the rest {wall - comp:.1f} s (tracing, "
             f"running, host work); {pre + fin:,} example-steps -> {row['throughput']:,.0f}/s in the rest",
             "  mean test accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()),
             f"  fingerprint full_params {res.manifest['fingerprints']['full_params'][:16]} "
             "(compare across processes / flag settings for bitwise identity)"]
    return "\n".join(lines), row


# ----------------------------------------------------------------------------------------------
# Output


def gemm_best(n: int, lib: str, calls: int = 10) -> float:
    """GFLOP/s of the best of ``calls`` f32 ``n x n`` matmuls (jax on its default device, or torch on the CPU)."""
    if lib == "jax":
        import jax

        a = jax.random.normal(jax.random.key(0), (n, n))
        mm = jax.jit(lambda a, b: a @ b)
        call = lambda: mm(a, a).block_until_ready()  # noqa: E731
    else:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        a = torch.randn(n, n) if jax_backend() == "cpu" else torch.randn(min(n, 2048), min(n, 2048))
        call = lambda: a @ a  # noqa: E731
    call()
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    m = n if lib == "jax" or jax_backend() == "cpu" else min(n, 2048)
    return 2 * m**3 / best / 1e9


def jax_backend() -> str:
    import jax

    return jax.default_backend()


def gemm_size() -> int:
    import jax

    return 2048 if jax.default_backend() == "cpu" else 8192


def mean_accuracy(out):
    import numpy as np

    if out is None:
        return None
    if isinstance(out, list):
        return float(np.mean([np.asarray(o["accuracy"]) for o in out])) if isinstance(out[0], dict) \
            else float(np.mean(out))
    if isinstance(out, dict):
        return float(np.mean(out["accuracy"])) if "accuracy" in out else None
    return float(np.mean(out))


def table(title, arms, torch_arm, loop, base=None, equal=None):
    gemm = next(a for a in arms if a.key == "gemm")
    gemm_gflops = max(per_round(gemm)) / 1e9
    head = (f"{'arm':<56} {'seeds':>5} {'compile s':>9} {'run s':>7} {'ex-steps/s':>11} "
            + (f"{'vs torch':>8} {'vs loop':>8} " if base is None else f"{'vs base':>8} ")
            + f"{'GFLOP/s':>8} {'%GEMM':>6} {'MiB/seed':>8} {'acc':>6} {'bits':>6}")
    lines = [title, f"  large-matmul rate (same rounds): {gemm_gflops:.0f} GFLOP/s ({gemm.label}); "
                    f"{len(gemm.times)} rounds", head,
             "-" * len(head)]
    rows = []
    for a in arms:
        if a is gemm:
            continue
        thr = max(per_round(a)) if a.times else float("nan")
        gfl = thr * a.flops / 1e9
        pct = best_ratio(a, gemm, to_flops=True)
        mem = a.mem[0] / a.mem[1] / 2**20 if a.mem else None
        acc = mean_accuracy(a.first_out)
        bits = "yes" if a.same_bits else "NO"
        if equal and a.key in equal:
            bits += f",{equal[a.key]}"
        row = {"key": a.key, "label": a.label, "seeds": a.seeds, "steps": a.steps, "compile_s": a.compile_s,
               "lower_and_xla_compile_s": a.xla_s,
               "pct_gemm_median_of_rounds": median_ratio(a, gemm, to_flops=True), "rounds_s": a.times,
               "run_s": min(a.times) if a.times else None, "throughput": thr, "gflops": gfl,
               "pct_gemm": pct, "mib_per_seed": mem, "accuracy": acc, "same_bits_across_rounds": a.same_bits,
               "bits_vs_reference": (equal or {}).get(a.key)}
        cells = [f"{a.label:<56.56} {a.seeds:>5} {a.compile_s:>9.1f} {row['run_s']:>7.3f} {thr:>11,.0f} "]
        if base is None:
            vt, vl = best_ratio(a, torch_arm), best_ratio(a, loop)
            row.update(vs_torch=vt, vs_loop=vl, vs_torch_median_of_rounds=median_ratio(a, torch_arm),
                       vs_loop_median_of_rounds=median_ratio(a, loop))
            cells.append(f"{fmt_x(vt):>8} {fmt_x(vl):>8} ")
        else:
            vb = best_ratio(a, base)
            row.update(vs_base=vb, vs_base_median_of_rounds=median_ratio(a, base))
            cells.append(f"{fmt_x(vb):>8} ")
        cells.append(f"{gfl:>8.1f} {fmt_pct(pct):>6} {fmt_num(mem):>8} {fmt_num(acc, 3):>6} {bits:>6}")
        lines.append("".join(cells))
        rows.append(row)
    return "\n".join(lines), {"title": title, "gemm_gflops": gemm_gflops, "rows": rows}


def fmt_x(v):
    return "-" if v is None else f"{v:.2f}x"


def fmt_pct(v):
    return "-" if v is None else f"{100 * v:.0f}%"


def fmt_num(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def header(args) -> tuple[str, dict]:
    import jax
    import jaxlib

    dev = jax.devices()[0]
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch_v = torch.__version__
    else:
        torch_v = "not installed"
    info = {
        "backend": jax.default_backend(), "device_kind": dev.device_kind, "device_count": jax.device_count(),
        "cpu_cores": os.cpu_count(), "jax": jax.__version__, "jaxlib": jaxlib.__version__, "torch": torch_v,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "deterministic_ops_flag": args.deterministic,
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
    }
    n = gemm_size()
    gemm = {"jax": gemm_best(n, "jax"), "torch": gemm_best(n, "torch") if torch_v[0].isdigit() else None}
    info["gemm_gflops_at_start"] = gemm
    text = (f"backend {info['backend']}: {info['device_count']} x {info['device_kind']}; "
            f"{info['cpu_cores']} CPU cores; jax {info['jax']}, torch {torch_v}\n"
            f"XLA_FLAGS='{info['xla_flags']}' (deterministic ops {'on' if args.deterministic else 'off'}"
            f"{'; no-op on CPU' if info['backend'] == 'cpu' else ''}); matmul precision {info['matmul_precision']}; "
            f"threefry partitionable {info['threefry_partitionable']}\n"
            f"f32 GEMM {n}x{n} at start (best of 10): jax {gemm['jax']:.0f} GFLOP/s"
            + (f", torch (CPU) {gemm['torch']:.0f} GFLOP/s" if gemm["torch"] else ""))
    return text, info


def main(argv=None):
    args = parse_args(argv)
    configure_env(args)
    import jax

    clock = CompileClock()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    text, info = header(args)
    out = {"machine": info, "args": {k: v for k, v in vars(args).items()}, "sections": []}
    print(text, flush=True)
    for name in args.models:
        t, rows = model_section(name, args, clock, log)
        print("\n" + t, flush=True)
        out["sections"].append(rows)
    if args.investigate:
        for t, rows in investigate_section(args, clock, log):
            print("\n" + t, flush=True)
            out["sections"].append(rows)
    if args.study:
        t, row = study_section(args, clock, log)
        print("\n" + t, flush=True)
        out["study"] = row
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = time.perf_counter() - t_start
    print(f"\npeak RSS of this process {peak:.0f} MiB; benchmark wall time {total:.0f} s "
          f"(compile {clock.total:.0f} s); device {info['device_kind']}", flush=True)
    out["peak_rss_mib"], out["wall_s"] = peak, total
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    del jax
    return out


if __name__ == "__main__":
    main()
