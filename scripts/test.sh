#!/usr/bin/env bash
# The test command: set up (idempotent), then the whole suite, ruff and mypy --strict.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest -q "$@"
