"""
A crowd of TCP clients in a process of its own, for tests of a daemon's connection
limits: it opens ``count`` connections from one source address, sends each the same
first bytes, then (optionally) ``trickle`` bytes every ``interval`` seconds, and watches
which connections the server answers and closes.  Being its own process, it raises its
own open-files limit, so the test process's limits stay as they are.

Driven through :class:`hailwhale.testing.processes.Crowd`; on stdin, ``status`` prints a
JSON line (``connected``, ``connect_failed``, ``open``, ``closed``, ``answers``: the
status codes of the answers read, by code), ``close`` closes every connection and exits.

    python -m hailwhale.testing.crowd HOST PORT SOURCE COUNT FIRST_BYTES_HEX [TRICKLE_HEX INTERVAL]
"""

import json
import resource
import selectors
import socket
import sys
import time
from collections import Counter


def main(argv: list[str]) -> None:
    host, port, source, count, first = argv[0], int(argv[1]), argv[2], int(argv[3]), bytes.fromhex(argv[4])
    trickle = bytes.fromhex(argv[5]) if len(argv) > 5 else b""
    interval = float(argv[6]) if len(argv) > 6 else 1.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin, selectors.EVENT_READ, None)
    received: dict[socket.socket, bytes] = {}
    answers: Counter = Counter()
    connected = connect_failed = closed = 0

    def close(sock: socket.socket) -> None:
        nonlocal closed
        selector.unregister(sock)
        sock.close()
        del received[sock]
        closed += 1

    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
        sock.settimeout(10)
        try:
            sock.connect((host, port))
        except OSError:
            sock.close()
            connect_failed += 1
            continue
        connected += 1
        sock.setblocking(False)
        received[sock] = b""
        selector.register(sock, selectors.EVENT_READ, "client")
        try:
            sock.send(first)
        except OSError:
            close(sock)
    next_trickle = time.monotonic() + interval
    while True:
        timeout = max(0.0, next_trickle - time.monotonic()) if trickle else None
        for key, _ in selector.select(timeout):
            if key.data is None:
                command = sys.stdin.readline().strip()
                if command in ("close", ""):
                    for sock in list(received):
                        sock.close()
                    return
                status = {
                    "connected": connected,
                    "connect_failed": connect_failed,
                    "open": len(received),
                    "closed": closed,
                    "answers": dict(answers),
                }
                print(json.dumps(status), flush=True)
                continue
            sock = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                if not received[sock]:
                    answers[data.split(b" ", 2)[1].decode("ascii", "replace") if b" " in data else "?"] += 1
                received[sock] += data[:1]
            else:
                close(sock)
        if trickle and time.monotonic() >= next_trickle:
            next_trickle += interval
            for sock in list(received):
                try:
                    sock.send(trickle)
                except BlockingIOError:
                    pass
                except OSError:
                    close(sock)


if __name__ == "__main__":
    main(sys.argv[1:])
