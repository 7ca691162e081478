#!/usr/bin/env bash
# Install morphocluster with its test extras into .venv and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0   # CPU build; an unpinned torch would pull CUDA
.venv/bin/pip install -q -e '.[test]'
.venv/bin/python -m pytest "$@"
