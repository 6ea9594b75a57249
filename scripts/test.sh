#!/usr/bin/env bash
# The test command: set up (idempotent), then the whole suite, ruff and mypy --strict.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest -q -m "not umockdev" "$@"
# Issue 3: real udev events need umockdev's LD_PRELOAD; a missing umockdev fails here, never skips.
command -v umockdev-wrapper >/dev/null || { echo "test.sh: umockdev-wrapper missing (Debian umockdev)" >&2; exit 1; }
umockdev-wrapper .venv/bin/pytest -q -m umockdev -p no:cacheprovider tests/integration/test_token_hotplug.py tests/integration/test_token_hotplug_daemon.py tests/integration/test_soak.py
# The README's first command must keep working: the whole seal-request demo on SoftHSM.
bash scripts/demo.sh > demo-run.log 2>&1 || { tail -60 demo-run.log >&2; echo "test.sh: scripts/demo.sh failed (full output: demo-run.log)" >&2; exit 1; }
echo "demo: $(grep -c '^PASS' demo-run.log) evidence checks passed, sealed PDF verified (demo-run.log)"
