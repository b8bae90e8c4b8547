"""The lab's client: N sequential requests to one address, one JSON line per request on stdout.

Run inside a client's network namespace. TCP requests look like ``curl -s ip:port`` (one
connection per request, the client closes first); UDP requests are one datagram and one reply
per fresh socket. Each line has the client's own ip:port (``getsockname``), wall-clock start
and end, and the response body (or an error).
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


def udp_echo(ip: str, port: int, seq: int) -> tuple[tuple[str, int], str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT_S)
        sock.connect((ip, port))
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
    for seq in range(1, args.count + 1):
        start = time.time()
        record: dict[str, object] = {"seq": seq, "ts_start": start}
        try:
            if args.proto == "tcp":
                local, body = http_get(args.ip, args.port)
            else:
                local, body = udp_echo(args.ip, args.port, seq)
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
