"""``python -m jaxeval.variance --config configs/digits_variance.py --workdir DIR``: the variance study.

Finetunes a design of replicates over the random streams (init, data order, dropout; optionally
pretraining seeds) in one vmapped program per mode, and prints the variance components of each
metric (estimate, CI, share), the test-set vs training noise split, expected best-of-k, the seeds
needed for a given difference, and cross-validated estimates. Overrides:
``--config.variance.design=ofat``, ``--config.variance.init=4``, ``--config.variance.cv=loo``, ...
"""

from __future__ import annotations

from jaxeval import cli

if __name__ == "__main__":
    cli.main("variance", "configs/digits_variance.py")
