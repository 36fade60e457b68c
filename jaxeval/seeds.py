"""``python -m jaxeval.seeds --config configs/digits_seeds.py --workdir DIR``: the multi-seed study.

Pretrains a model self-supervised, finetunes it with ``num_seeds`` seeds vmapped in one program,
evaluates, prints mean ± std and a 95% CI over seeds, and writes the workdir (with report.md).
Overrides: ``--config.num_seeds=16``, ``--config.finetune.epochs=10``, ...

Finished chunks are checkpointed in ``DIR/checkpoints``: the same command on the same workdir
resumes after a crash or a kill, with the same bits. Progress bars (chunks, steps, ETA) go to
stderr when it is a terminal; ``--quiet`` prints only the final table.
"""

from __future__ import annotations

from jaxeval import cli

if __name__ == "__main__":
    cli.main("seeds", "configs/digits_seeds.py")
