"""``python -m jaxeval.variance --config configs/digits_variance.py --workdir DIR``: the variance study.

Finetunes a design of replicates over the random streams (init, data order, dropout; optionally
pretraining seeds) in one vmapped program per mode, and prints the variance components of each
metric (estimate, CI, share), the test-set vs training noise split, expected best-of-k, the seeds
needed for a given difference, and cross-validated estimates. Overrides:
``--config.variance.design=ofat``, ``--config.variance.init=4``, ``--config.variance.cv=loo``, ...
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from jaxeval import runtime

_CONFIG = config_flags.DEFINE_config_file("config", "configs/digits_variance.py", "Study config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for the study's results.", required=True)
_QUIET = flags.DEFINE_bool("quiet", False, "Print only the final table (no log lines, no progress bars).")
_INEXACT = flags.DEFINE_bool("inexact", False, "Allow non-deterministic GPU kernels (faster, not bitwise).")


def main(argv):
    del argv
    runtime.configure(exact=not _INEXACT.value)
    from jaxeval.progress import Progress
    from jaxeval.studies import variance

    result = variance.run(_CONFIG.value, workdir=_WORKDIR.value, log=None if _QUIET.value else print,
                          progress=Progress(quiet=_QUIET.value))
    print(variance.format_summary(result.summary))
    print(f"results in {_WORKDIR.value} (wall time {result.manifest['wall_seconds']:.1f} s)")


if __name__ == "__main__":
    app.run(main)
