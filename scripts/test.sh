#!/usr/bin/env bash
# Install (no-op when up to date) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export THP_MEM_ALLOC_ENABLE=1
exec .venv/bin/python -m pytest "$@"
