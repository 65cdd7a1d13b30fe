#!/usr/bin/env bash
# The test command: installs everything the suite needs on a fresh Debian
# machine (as root), then runs the layer contract and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
lint-imports --config pyproject.toml
exec python3 -m pytest -q -rs "$@"
