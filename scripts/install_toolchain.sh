#!/usr/bin/env bash
# Install the pinned EVM toolchain for on-chain receipts; safe to run again.
#
# A thin call of `dsperse toolchain install` (dsperse/chain/install.py), the command a wheel user runs too:
#   1. npm ci of the pinned manifest the package carries (dsperse/chain/npm/package.json + package-lock.json:
#      anvil + cast from foundry, solc-js 0.8.20, ffjavascript) into $DSPERSE_TOOLCHAIN, else
#      $DSPERSE_CACHE/toolchain, else ~/.cache/dsperse/toolchain; skipped when it is already there;
#   2. a node wrapper around solc-js at ~/.svm/0.8.20/solc-0.8.20, where EZKL looks for solc 0.8.20
#      (otherwise it tries to download it and fails offline); a native solc 0.8.20 there is kept;
#   3. a check that every tool answers and solc compiles a probe contract.
#
# Needs node >= 20, npm, and the project's virtualenv (scripts/setup.sh makes it, then calls this).
# Arguments go to the command: --dir DIR, --force (see `dsperse toolchain install --help`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${DSPERSE_PYTHON:-$ROOT/.venv/bin/python}"
if [ ! -x "$PY" ]; then
  echo "install_toolchain: $PY not found; run scripts/setup.sh (it makes .venv, then calls this script)" >&2
  exit 1
fi
exec "$PY" -m dsperse.cli toolchain install "$@"
