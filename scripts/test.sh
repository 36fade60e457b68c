#!/usr/bin/env bash
# Sets up ./.venv and runs the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# --dist loadfile: a test module (and its module-scoped study fixture) runs on one worker. (loadgroup
# would honour xdist_group marks, but pytest 9.2 + xdist 3.8 ignore them: the node id moved.)
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
