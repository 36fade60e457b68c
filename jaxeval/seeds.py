"""``python -m jaxeval.seeds --config configs/digits_seeds.py --workdir DIR``: the multi-seed study.

Pretrains a model self-supervised, finetunes it with ``num_seeds`` seeds vmapped in one program,
evaluates, prints mean ± std and a 95% CI over seeds, and writes the workdir (with report.md).
Overrides: ``--config.num_seeds=16``, ``--config.finetune.epochs=10``, ...

Finished chunks are checkpointed in ``DIR/checkpoints``: the same command on the same workdir
resumes after a crash or a kill, with the same bits. Progress bars (chunks, steps, ETA) go to
stderr when it is a terminal; ``--quiet`` prints only the final table.
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from jaxeval import runtime

_CONFIG = config_flags.DEFINE_config_file("config", "configs/digits_seeds.py", "Study config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for the study's results.", required=True)
_QUIET = flags.DEFINE_bool("quiet", False, "Print only the final table (no log lines, no progress bars).")
_INEXACT = flags.DEFINE_bool("inexact", False, "Allow non-deterministic GPU kernels (faster, not bitwise).")


def main(argv):
    del argv
    runtime.configure(exact=not _INEXACT.value)
    from jaxeval.progress import Progress
    from jaxeval.studies import seeds

    result = seeds.run(_CONFIG.value, workdir=_WORKDIR.value, log=None if _QUIET.value else print,
                       progress=Progress(quiet=_QUIET.value))
    print(seeds.format_summary(result.summary))
    print(f"results in {_WORKDIR.value} (wall time {result.manifest['wall_seconds']:.1f} s)")


if __name__ == "__main__":
    app.run(main)
