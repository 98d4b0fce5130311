#!/usr/bin/env bash
# Install (no-op when up to date) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export THP_MEM_ALLOC_ENABLE=1
# one pytest-xdist worker per CPU (MTDTL_TEST_WORKERS=0 runs in one process); a test file stays on
# one worker, so module fixtures (a trained run, a store) are built once
exec .venv/bin/python -m pytest -n "${MTDTL_TEST_WORKERS:-logical}" --dist loadfile "$@"
