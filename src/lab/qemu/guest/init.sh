#!/bin/busybox sh
# /init of the lab's QEMU guest (busybox-static initramfs): mount the basics, read the workload's
# settings from the kernel command line (lh.share= lh.mix= lh.dirty= lh.seed=) and run it on the
# second serial port (the first is the console). PID 1 must never exit, so it waits forever.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
share=0.75 mix=35,20,20,25 dirty=256 seed=1
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    lh.share=*) share="${arg#lh.share=}" ;;
    lh.mix=*) mix="${arg#lh.mix=}" ;;
    lh.dirty=*) dirty="${arg#lh.dirty=}" ;;
    lh.seed=*) seed="${arg#lh.seed=}" ;;
  esac
done
echo "lh-guest: share=$share mix=$mix dirty=$dirty seed=$seed"
/lh-guestload /dev/ttyS1 "$share" "$mix" "$dirty" "$seed"
echo "lh-guest: workload exited with $?"
while true; do sleep 3600; done
