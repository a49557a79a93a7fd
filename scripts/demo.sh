#!/usr/bin/env bash
# Builds fsync-trace and traces the bundled demo workload (a tiny key-value store that makes
# each kind of durability mistake and does one thing right), printing the report.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec cargo xtask demo "$@"
