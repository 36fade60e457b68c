"""``python -m jaxeval.scaling --config configs/mnist1d_scaling.py --workdir DIR``: the scaling study.

Finetunes ``num_seeds`` seeds (vmapped) on nested training sets of geometrically growing size,
fits learning-curve families chosen by backtest, bootstraps seeds jointly across sizes for bands
and intervals, says whether more data is worth it, and writes the workdir (with report.md and
``scaling.png``). Overrides: ``--config.scaling.num_sizes=12``, ``--config.dataset.num_train=100000``, ...

Finished chunks are checkpointed in ``DIR/checkpoints``: the same command on the same workdir
resumes after a crash or a kill, with the same bits. ``--quiet`` prints only the final table.
"""

from __future__ import annotations

from jaxeval import cli

if __name__ == "__main__":
    cli.main("scaling", "configs/mnist1d_scaling.py")
