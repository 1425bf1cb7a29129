#!/usr/bin/python3
"""UDP echo check through the tunnel: udp_echo.py HOST PORT COUNT SIZE MIN_OK

Sends COUNT random datagrams of SIZE bytes to HOST:PORT one at a time and
waits (2 s) for each echo. An echo counts once, whenever it comes: matched
by content, so an echo that arrives late on a loaded machine is neither
lost nor taken for the next datagram's. Prints how many came back intact
and the rate; exits 1 if fewer than MIN_OK did. Gives up after 10 datagrams
in a row without an echo (the tunnel is down: no need to wait 2 s for each).
"""
import os
import socket
import sys
import time


def main(argv):
    if len(argv) != 6:
        sys.exit(__doc__.strip().splitlines()[0])
    host, port, count, size, min_ok = argv[1], int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    waiting, ok, late, silent, t = set(), 0, 0, 0, time.time()
    for _ in range(count):
        if silent == 10:
            print("no echo for 10 datagrams in a row: giving up")
            break
        d = os.urandom(size)
        waiting.add(d)
        s.sendto(d, (host, port))
        try:
            while d in waiting:
                r, _ = s.recvfrom(size + 1024)
                if r in waiting:
                    waiting.discard(r)
                    ok += 1
                    late += r != d
            silent = 0
        except socket.timeout:
            silent += 1
    dt = time.time() - t
    print("%d/%d echoed intact (%d of them late), %.1f Mbit/s each way (one datagram in flight)"
          % (ok, count, late, ok * size * 8 / dt / 1e6))
    return 0 if ok >= min_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
