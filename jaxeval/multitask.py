"""``python -m jaxeval.multitask --config configs/digits_multitask.py --workdir DIR``: the multi-task study.

Pretrains backbones per dataset (kept at several checkpoints), finetunes every task of the
suite with every configuration and seed, and prints the per-task table, the aggregate table
(mean, median, IQM, optimality gap with bootstrap intervals), the ranking of the configurations
and the pretraining -> downstream correlation table; writes the workdir (with report.md and its
plots). Overrides: ``--config.num_seeds=8``, ``--config.multitask.nested=False``, ...

Finished chunks are checkpointed in ``DIR/checkpoints``: the same command on the same workdir
resumes after a crash or a kill, with the same bits. ``--quiet`` prints only the final tables.
"""

from __future__ import annotations

from jaxeval import cli

if __name__ == "__main__":
    cli.main("multitask", "configs/digits_multitask.py")
