#!/usr/bin/env bash
# Install morphocluster into .venv and run the demo: import the bundled sample, compute features,
# index and cluster it, create a demo user and serve the web UI (default port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0   # CPU build; an unpinned torch would pull CUDA
.venv/bin/pip install -q -e .
exec .venv/bin/morphocluster demo "$@"
