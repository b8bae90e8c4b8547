"""A backend that answers like traefik/whoami over HTTP, plus a UDP responder in the same shape.

Run inside a pod's network namespace (``python3 lab_whoami.py --hostname webpod1``). HTTP:
``Hostname:``, one ``IP:`` line per interface address (in interface order, like Go's
``net.Interfaces``), ``RemoteAddr: ip:port`` (the peer the backend sees, i.e. after any SNAT)
and the request as received. UDP: the same three kinds of lines, then the datagram echoed.
Prints ``ready`` on stdout once both sockets listen.
"""

from __future__ import annotations

import argparse
import json
import socket
import socketserver
import subprocess
import sys
import threading
from email.utils import formatdate

MAX_REQUEST = 64 * 1024


def interface_ips() -> list[str]:
    """Every address of every interface, ordered by interface index then as the kernel lists."""
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True)
    ips = []
    for link in sorted(json.loads(out.stdout), key=lambda x: int(x.get("ifindex", 0))):
        ips += [a["local"] for a in link.get("addr_info", []) if "local" in a]
    return ips


def identity(hostname: str, ips: list[str], peer: tuple[str, int]) -> str:
    lines = [f"Hostname: {hostname}", *(f"IP: {ip}" for ip in ips)]
    lines.append(f"RemoteAddr: {peer[0]}:{peer[1]}")
    return "\n".join(lines) + "\n"


def http_response(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"Date: {formatdate(usegmt=True)}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    return head.encode() + body


class WhoamiHandler(socketserver.BaseRequestHandler):
    hostname = ""
    ips: list[str] = []

    def handle(self) -> None:
        sock: socket.socket = self.request
        buf = b""
        while True:  # keep-alive: answer requests until the client closes
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(4096)
                if not chunk or len(buf) > MAX_REQUEST:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            request = head.decode("latin-1") + "\r\n\r\n"
            body = identity(self.hostname, self.ips, self.client_address) + request
            sock.sendall(http_response(body.encode("latin-1")))


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve_udp(sock: socket.socket, hostname: str, ips: list[str]) -> None:
    while True:
        data, peer = sock.recvfrom(65535)
        reply = identity(hostname, ips, peer).encode() + data
        sock.sendto(reply, peer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--tcp-port", type=int, default=80)
    parser.add_argument("--udp-port", type=int, default=5005)
    args = parser.parse_args()
    ips = interface_ips()
    WhoamiHandler.hostname, WhoamiHandler.ips = args.hostname, ips
    server = Server(("0.0.0.0", args.tcp_port), WhoamiHandler)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", args.udp_port))
    threading.Thread(target=serve_udp, args=(udp, args.hostname, ips), daemon=True).start()
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
