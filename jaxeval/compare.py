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

from absl import app, flags
from ml_collections import config_flags

from jaxeval import runtime

_CONFIG = config_flags.DEFINE_config_file("config", "configs/digits_compare.py", "Study config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for the study's results.", required=True)
_QUIET = flags.DEFINE_bool("quiet", False, "Print only the final tables and verdicts (no log lines, no progress bars).")
_INEXACT = flags.DEFINE_bool("inexact", False, "Allow non-deterministic GPU kernels (faster, not bitwise).")


def main(argv):
    del argv
    runtime.configure(exact=not _INEXACT.value)
    from jaxeval.progress import Progress
    from jaxeval.studies import compare

    result = compare.run(_CONFIG.value, workdir=_WORKDIR.value, log=None if _QUIET.value else print,
                         progress=Progress(quiet=_QUIET.value))
    print(compare.format_summary(result.summary))
    print(f"results in {_WORKDIR.value} (wall time {result.manifest['wall_seconds']:.1f} s)")


if __name__ == "__main__":
    app.run(main)
