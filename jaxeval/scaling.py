"""``python -m jaxeval.scaling --config configs/mnist1d_scaling.py --workdir DIR``: the scaling study.

Finetunes ``num_seeds`` seeds (vmapped) on nested training sets of geometrically growing size,
fits learning-curve families chosen by backtest, bootstraps seeds jointly across sizes for bands
and intervals, says whether more data is worth it, and writes the workdir (with report.md and
``scaling.png``). Overrides: ``--config.scaling.num_sizes=12``, ``--config.dataset.num_train=100000``, ...

Finished chunks are checkpointed in ``DIR/checkpoints``: the same command on the same workdir
resumes after a crash or a kill, with the same bits. ``--quiet`` prints only the final table.
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from jaxeval import runtime

_CONFIG = config_flags.DEFINE_config_file("config", "configs/mnist1d_scaling.py", "Study config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for the study's results.", required=True)
_QUIET = flags.DEFINE_bool("quiet", False, "Print only the final table.")
_INEXACT = flags.DEFINE_bool("inexact", False, "Allow non-deterministic GPU kernels (faster, not bitwise).")


def main(argv):
    del argv
    runtime.configure(exact=not _INEXACT.value)
    from jaxeval.progress import Progress
    from jaxeval.studies import scaling

    result = scaling.run(_CONFIG.value, workdir=_WORKDIR.value, log=None if _QUIET.value else print,
                         progress=Progress(quiet=_QUIET.value))
    print(scaling.format_summary(result.summary))
    print(f"results in {_WORKDIR.value} (report.md, scaling.png; wall time {result.manifest['wall_seconds']:.1f} s)")


if __name__ == "__main__":
    app.run(main)
