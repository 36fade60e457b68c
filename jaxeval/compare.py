"""``python -m jaxeval.compare --config configs/digits_compare.py --workdir DIR``: is A really better than B?

Runs every arm of ``config.compare.arms`` on the same paired replicates, prints per-task and
aggregate differences, P(A>B) with the Bouthillier et al. decision, ASO, corrected permutation
p-values and a plain-language verdict per pair, and writes the workdir (with report.md and its
plots). Overrides: ``--config.num_seeds=32``,
``--config.compare.arms="('long: finetune.epochs=40', 'short: finetune.epochs=10')"``,
``--config.compare.tasks="('identity', 'parity')"``, ...

Finished chunks are checkpointed in ``DIR/checkpoints``: the same command on the same workdir
resumes after a crash or a kill, with the same bits. ``--quiet`` prints only the final tables.
"""

from __future__ import annotations

from jaxeval import cli

if __name__ == "__main__":
    cli.main("compare", "configs/digits_compare.py")
