#!/usr/bin/env python3
# A stand-in for systemd's notification socket (tests): binds a Unix datagram socket at argv[1]
# (a path, or "@name" for an abstract socket) and prints each datagram received as one JSON line
# ({"msg": "...", "monotonic_usec": N}, the receive time on CLOCK_MONOTONIC). Node cannot receive
# on Unix datagram sockets, hence Python. Prints "listening" once bound; exits on stdin EOF.
import json, os, select, socket, sys, time

path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + path[1:] if path.startswith("@") else path)
print("listening", flush=True)
while True:
    r, _, _ = select.select([s, sys.stdin], [], [], 60)
    if not r:
        break
    if sys.stdin in r and not os.read(sys.stdin.fileno(), 4096):
        break
    if s in r:
        data = s.recv(65536)
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        print(json.dumps({"msg": data.decode("utf-8", "replace"), "monotonic_usec": now}), flush=True)
