#!/usr/bin/env bash
# The report's experiment, end to end, on a fresh Debian machine (root): install what the lab
# needs, then run `longhaul bench` over all five profiles. By default that is the real thing:
# QEMU live migrations of a busy 512 MiB guest (TCG), TCP CUBIC, TCP BBR and Longhaul, each
# verified on the destination (~20 min). Extra arguments go to `longhaul bench` and win over
# these defaults, e.g. `--method tcp-cubic,tcp-bbr,tcp-64k,kcptun,longhaul` for every method, or
# `--workload migration` for the synthetic pre-copy model (all methods, 1 GiB).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh
npm ci --no-audit --no-fund
defaults=(--workload qemu)
method_given=no
for arg in "$@"; do
  case "$arg" in
    --workload|--workload=*) defaults=() ;;
    --method|--method=*) method_given=yes ;;
  esac
done
if [ ${#defaults[@]} -gt 0 ] && [ "$method_given" = no ]; then defaults+=(--method tcp-cubic,tcp-bbr,longhaul); fi
# Run on the pinned Node 24 directly (npm itself may run on an older system Node).
exec node_modules/.bin/node bin/longhaul.js bench "${defaults[@]}" "$@"
