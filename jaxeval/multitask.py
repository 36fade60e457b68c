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

from absl import app, flags
from ml_collections import config_flags

from jaxeval import runtime

_CONFIG = config_flags.DEFINE_config_file("config", "configs/digits_multitask.py", "Study config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for the study's results.", required=True)
_QUIET = flags.DEFINE_bool("quiet", False, "Print only the final tables (no log lines, no progress bars).")
_INEXACT = flags.DEFINE_bool("inexact", False, "Allow non-deterministic GPU kernels (faster, not bitwise).")


def main(argv):
    del argv
    runtime.configure(exact=not _INEXACT.value)
    from jaxeval.progress import Progress
    from jaxeval.studies import multitask

    result = multitask.run(_CONFIG.value, workdir=_WORKDIR.value, log=None if _QUIET.value else print,
                           progress=Progress(quiet=_QUIET.value))
    print(multitask.format_summary(result.summary))
    print(f"results in {_WORKDIR.value} (wall time {result.manifest['wall_seconds']:.1f} s)")


if __name__ == "__main__":
    app.run(main)
