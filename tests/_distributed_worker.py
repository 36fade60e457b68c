"""One process of the two-process test (tests/test_distributed.py); also builds its sweeps.

    python -m tests._distributed_worker OUT_DIR   (with $JAXEVAL_DISTRIBUTED, $JAXEVAL_COORDINATOR,
                                                   $JAXEVAL_NUM_PROCESSES, $JAXEVAL_PROCESS_ID)
"""

from __future__ import annotations

import json
import os
import sys

REPLICATES = 10  # 5 chunks of 2 over 4 devices: one full step, one padded with filler chunks
CHUNK = 2


def build():
    """``(sweeps, per_replicate)``: ``{name: (fn, shared)}`` for a toy and a small finetune."""
    import jax
    import jax.numpy as jnp

    from jaxeval import config as config_lib
    from jaxeval import keys as K
    from jaxeval import models
    from jaxeval.train import make_finetune

    root = K.root_key(0)
    data_key = K.stream(root, "dataset", 0)
    x = jax.random.normal(jax.random.fold_in(data_key, 0), (128, 16))
    y = jax.random.randint(jax.random.fold_in(data_key, 1), (128,), 0, 4)

    def toy(rep, shared):
        x, y = shared
        w = jax.random.normal(K.stream(root, "init", rep["init"]), (16,))

        def step(w, _):
            g = jax.grad(lambda w: jnp.mean((jnp.tanh(x @ w) - y / 4) ** 2))(w)
            return w - 0.5 * g, None

        w, _ = jax.lax.scan(step, w, None, length=20)
        return {"w": w, "loss": jnp.mean((jnp.tanh(x @ w) - y / 4) ** 2)}

    cfg = config_lib.base_config()
    cfg.model.hidden = (16,)
    cfg.finetune.epochs = 2
    cfg.finetune.batch_size = 32
    model = models.build(cfg.model, (16,), 4)
    finetune = make_finetune(model, cfg.finetune, 128, mode="full")

    def tune(rep, shared):
        x, y = shared
        params, metrics = finetune(None, x, y, keys=K.replicate_keys(root, rep))
        return {"params": params, "loss": metrics["loss"]}

    return {"toy": (toy, (x, y)), "finetune": (tune, (x, y))}, K.replicate_indices(REPLICATES)


class MarkedStore:
    """Process 0's store, holding a marked chunk 1: every process must get it (broadcast)."""

    def __init__(self, marked):
        self.marked, self.saved = marked, []

    def load(self, index):
        return self.marked if index == 1 else None

    def save(self, index, out):
        self.saved.append(index)


def main(out_dir: str) -> None:
    from jaxeval import runtime

    cache = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "jax")
    settings = runtime.configure(exact=True, cpu_devices=2, compilation_cache=cache)  # + $JAXEVAL_DISTRIBUTED
    import jax
    import numpy as np

    from jaxeval import distributed, provenance, results, sweep

    sweeps, reps = build()
    out = {name: sweep.run(fn, reps, shared, chunk_width=CHUNK, devices=0) for name, (fn, shared) in sweeps.items()}
    toy, shared = sweeps["toy"]
    shard_mapped = sweep.run(toy, reps, shared, chunk_width=CHUNK, devices=0, engine="shard_map")
    marked = {"w": np.full((CHUNK, 16), 7.0, np.float32), "loss": np.full((CHUNK,), -1.0, np.float32)}
    store = MarkedStore(marked) if jax.process_index() == 0 else None  # process 0's store only
    stored = sweep.run(toy, reps, shared, chunk_width=CHUNK, devices=0, store=store)
    flat = {f"{name}/{jax.tree_util.keystr(path)}": np.asarray(leaf) for name, tree in out.items()
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
    try:  # a process whose inputs differ (another seed) is refused on every process
        sweep.run(toy, {"init": reps["init"] + jax.process_index()}, shared, chunk_width=CHUNK, devices=0)
        refused = None
    except AssertionError as e:
        refused = str(e).splitlines()[0]
    results.write_npz(os.path.join(out_dir, "results.npz"), **flat)
    results.write_json(os.path.join(out_dir, f"written_by_{jax.process_index()}.json"), {"ok": True})
    print(json.dumps({
        "process": jax.process_index(), "processes": jax.process_count(), "devices": jax.device_count(),
        "local_devices": jax.local_device_count(), "writer": results.is_writer(), "settings": settings,
        "fingerprint": provenance.fingerprint(out), "toy_shard_map": provenance.fingerprint(shard_mapped),
        "store_saved": None if store is None else store.saved,
        "store_chunk1": stored["w"][CHUNK:2 * CHUNK].tolist(), "store_rest": provenance.fingerprint(
            {k: np.delete(v, np.s_[CHUNK:2 * CHUNK], axis=0) for k, v in stored.items()}),
        "toy_rest": provenance.fingerprint(
            {k: np.delete(v, np.s_[CHUNK:2 * CHUNK], axis=0) for k, v in out["toy"].items()}),
        "layout": sweep.describe(0), "refused": refused,
    }), flush=True)
    distributed.barrier("jaxeval-test-done")


if __name__ == "__main__":
    os.environ["JAX_PLATFORMS"] = "cpu"
    main(sys.argv[1])
