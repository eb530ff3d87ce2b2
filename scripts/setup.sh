#!/usr/bin/env bash
# Set up a fresh machine: a virtualenv with the project and its test extras, plus the EVM toolchain.
# Safe to run again; a second run only checks what is there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import dsperse, ezkl, ray, web3, pytest, fastapi, uvicorn, ray.serve" 2>/dev/null; then
  echo "setup: installing dsperse-ray and its dependencies (torch==2.13.0 CPU, ezkl==22.3.0, ray[serve], web3, ...)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
fi
bash scripts/install_toolchain.sh
echo "setup: ready. Try: .venv/bin/dsperse demo"
