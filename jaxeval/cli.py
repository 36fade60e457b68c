"""What every study's entry point shares: the flags and ``main``.

``python -m jaxeval.<study> --config FILE --workdir DIR [--quiet] [--inexact] [--config.x=...]``
configures the runtime (exact mode unless ``--inexact``), runs ``jaxeval.studies.<study>.run``
with progress bars (none with ``--quiet``), and prints the study's summary table.
"""

from __future__ import annotations

import importlib


def main(study: str, default_config: str) -> None:
    """Defines the flags and runs ``study``'s entry point (call under ``if __name__ == "__main__"``)."""
    from absl import app, flags
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", default_config, "Study config file.")
    workdir = flags.DEFINE_string("workdir", None, "Folder for the study's results.", required=True)
    quiet = flags.DEFINE_bool("quiet", False, "Print only the final tables (no log lines, no progress bars).")
    inexact = flags.DEFINE_bool("inexact", False, "Allow non-deterministic GPU kernels (faster, not bitwise).")

    def run(argv):
        del argv
        from jaxeval import runtime

        runtime.configure(exact=not inexact.value)
        from jaxeval.progress import Progress

        module = importlib.import_module(f"jaxeval.studies.{study}")
        result = module.run(config.value, workdir=workdir.value, log=None if quiet.value else print,
                            progress=Progress(quiet=quiet.value))
        print(module.format_summary(result.summary))
        print(f"results in {workdir.value} (report.md; wall time {result.manifest['wall_seconds']:.1f} s)")

    app.run(run)
