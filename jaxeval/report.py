"""``python -m jaxeval.report --workdir DIR``: writes DIR/report.md (tables, PNG plots) from the
saved results of a study's workdir only (status, provenance, diverged replicates, and the
study's own section). Every study also writes it when it completes.
"""

from __future__ import annotations

import sys

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A study's workdir.", required=True)


def main(argv):
    del argv
    from jaxeval import reporting

    try:
        path = reporting.write_report(_WORKDIR.value)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    app.run(main)
