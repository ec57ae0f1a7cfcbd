#!/usr/bin/env bash
# Debian packages Longhaul's lab and tests drive: namespaces/veth/VXLAN (iproute2), the checksum
# offload switch (ethtool), a real third-party TCP client (iperf3), the peer accelerator (kcptun),
# a C compiler for the native emulator datapath (make, g++; Node's headers ship with npm's node),
# the real-migration workload's hypervisor and guest userland (qemu-system-x86, busybox-static;
# its kernel is fetched with apt-get download at first use, see src/lab/qemu/guest-image.ts),
# iptables (transparent interception: the rules `longhaul intercept install` applies, in the lab test),
# systemd-analyze (package systemd: the unit test verifies packaging/systemd/longhaul@.service; systemd
# need not run) and python3 (the notify test's stand-in for systemd's notification socket).
set -euo pipefail
need=()
for pair in ip:iproute2 ethtool:ethtool iperf3:iperf3 kcptun-client:kcptun ps:procps make:make gcc:gcc g++:g++ \
    qemu-system-x86_64:qemu-system-x86 flock:util-linux iptables:iptables systemd-analyze:systemd python3:python3; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
[ -e /usr/include/stdio.h ] || need+=(libc6-dev)
# OpenSSL headers for the AEAD addon (its symbols come from the node binary at run time).
[ -e /usr/include/openssl/evp.h ] || need+=(libssl-dev)
# The guest's initramfs needs the static busybox (the dynamic `busybox` package cannot run there).
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "longhaul: missing Debian packages: ${need[*]} (run as root to install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No recommends: qemu-system-x86's would pull in a desktop's worth of GUI libraries.
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
