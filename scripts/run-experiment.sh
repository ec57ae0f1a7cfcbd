#!/usr/bin/env bash
# The report's experiment, end to end, on a fresh Debian machine (root): install what the lab
# needs, then run `longhaul bench` (all five profiles x all methods); extra arguments go to it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh
npm ci --no-audit --no-fund
# Run on the pinned Node 24 directly (npm itself may run on an older system Node).
exec node_modules/.bin/node bin/longhaul.js bench "$@"
