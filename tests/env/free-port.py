#!/usr/bin/python3
"""free-port.py [--pair] [--given FILE] [--bind ADDR]: prints a TCP port that nothing uses
now, for a server a test is about to start.

The port is picked at random BELOW the kernel's ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default). A port from bind(0) lies
inside that range, and any outgoing connection made before the server binds (a kubectl
call, a client's reconnect) may take it as its local port: the server then fails with
"Address already in use", a test failure that shows only once in many runs.

--pair: P+1 is free too (a backupop runner listens for metrics on its API port + 1).
--given FILE: never a port listed in FILE, nor a neighbour of one; the port (and P+1 with
--pair) is added to it. --bind ADDR: the address to check (default 127.0.0.1).
"""
import argparse
import random
import socket
import sys


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bindable(addr, port):
    s = socket.socket()
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pair", action="store_true")
    ap.add_argument("--given")
    ap.add_argument("--bind", default="127.0.0.1")
    a = ap.parse_args()
    given = set()
    if a.given:
        try:
            with open(a.given) as f:
                given = set(int(x) for x in f.read().split())
        except OSError:
            pass
    high = ephemeral_low() - 2
    low = 10000 if high > 12000 else 1024
    for _ in range(10000):
        p = random.randint(low, high)
        want = [p, p + 1] if a.pair else [p]
        if any(q in given or q - 1 in given or q + 1 in given for q in want):
            continue
        if all(bindable(a.bind, q) for q in want):
            if a.given:
                with open(a.given, "a") as f:
                    f.write(" ".join(map(str, want)) + "\n")
            print(p)
            return 0
    print("free-port.py: no free port between %d and %d" % (low, high), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
