#!/usr/bin/env bash
# Set up (idempotent) and run the default test suite. Extra arguments go to pytest.
# The big-memory aggregation tests run only with DSPERSE_BIGMEM=1 (they need > 20 GiB free).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests; that is a failure of the suite, not a pass" >&2
  exit 1
fi
exit "$rc"
