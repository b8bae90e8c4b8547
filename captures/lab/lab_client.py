"""The lab's client: N sequential requests to one address, one JSON line per request on stdout.

Run inside a client's network namespace. TCP requests look like ``curl -s ip:port`` (one
connection per request, the client closes first); UDP requests are one datagram and one reply
per fresh socket, never reusing a source port within one run. Each line has the client's own
ip:port (``getsockname``), wall-clock start and end, and the response body (or an error).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

TIMEOUT_S = 3.0


def http_get(ip: str, port: int) -> tuple[tuple[str, int], str]:
    with socket.create_connection((ip, port), timeout=TIMEOUT_S) as sock:
        local = sock.getsockname()
        request = (
            f"GET / HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: curl/8.7.1\r\nAccept: */*\r\n\r\n"
        )
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed before the response headers")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed inside the response body")
            body += chunk
    return (local[0], local[1]), body.decode("latin-1")


def _fresh_udp_socket(ip: str, port: int, used_ports: set[int]) -> socket.socket:
    """A connected UDP socket whose source port no earlier request of this run had.

    The kernel may hand out a port again; the request would then share the earlier
    request's conntrack entry (and backend), and the ground truth would no longer be one
    connection per request. Sockets that got a used port stay open until a fresh one is
    found, so the kernel cannot offer the same port twice.
    """
    held: list[socket.socket] = []
    try:
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect((ip, port))
            local_port = sock.getsockname()[1]
            if local_port not in used_ports:
                used_ports.add(local_port)
                return sock
            held.append(sock)
    finally:
        for sock in held:
            sock.close()


def udp_echo(ip: str, port: int, seq: int, used_ports: set[int]) -> tuple[tuple[str, int], str]:
    with _fresh_udp_socket(ip, port, used_ports) as sock:
        sock.settimeout(TIMEOUT_S)
        local = sock.getsockname()
        sock.send(f"natlens-lab udp request {seq}\n".encode())
        data = sock.recv(65535)
    return (local[0], local[1]), data.decode("latin-1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proto", choices=("tcp", "udp"), required=True)
    parser.add_argument("--ip", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--gap-ms", type=int, default=20)
    args = parser.parse_args()
    failures = 0
    used_udp_ports: set[int] = set()
    for seq in range(1, args.count + 1):
        start = time.time()
        record: dict[str, object] = {"seq": seq, "ts_start": start}
        try:
            if args.proto == "tcp":
                local, body = http_get(args.ip, args.port)
            else:
                local, body = udp_echo(args.ip, args.port, seq, used_udp_ports)
            record.update(client_ip=local[0], client_port=local[1], body=body, error=None)
        except OSError as exc:
            failures += 1
            record.update(client_ip=None, client_port=None, body=None, error=repr(exc))
        record["ts_end"] = time.time()
        print(json.dumps(record), flush=True)
        time.sleep(args.gap_ms / 1000)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
