"""A synthetic ``ipvsadm -Ln`` for the IPVS-like mode, in ipvsadm's exact print format.

The kernel has no IPVS, so nothing real can be listed. This prints the virtual services
kube-proxy would have created, the way ipvsadm prints them (``print_title``,
``print_service_entry``: ``"%s  %s"`` then ``" %s"`` for the scheduler, destinations as
``"  -> %-28s %-7s %-6d %-10u %-10u"``), sorted with libipvs' comparators, whose 32-bit
subtraction puts 172.18.x.x before 10.x.x.x exactly as in the seed's output. ActiveConn and
InActConn are counted from the node's own ``conntrack -L`` output (TCP ESTABLISHED = active,
every other TCP state and every UDP entry = inactive), so they agree with the other files.
"""

from __future__ import annotations

import functools
import ipaddress
import re

from lab_kproxy_ipvs import VirtualService

HEADER = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)
PROTO_NUM = {"tcp": 6, "udp": 17}
_TUPLE = re.compile(r"src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")


def _c_int(value: int) -> int:
    """The value as C's ``int`` after unsigned 32-bit arithmetic."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _ip_u32(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


def _cmp_services(a: VirtualService, b: VirtualService) -> int:
    r = PROTO_NUM[a.proto] - PROTO_NUM[b.proto]
    if r:
        return r
    r = _c_int(_ip_u32(a.vip) - _ip_u32(b.vip))
    return r if r else a.port - b.port


def _cmp_dests(a: tuple[str, int], b: tuple[str, int]) -> int:
    r = _c_int(_ip_u32(a[0]) - _ip_u32(b[0]))
    return r if r else a[1] - b[1]


def conn_counts(conntrack_text: str) -> dict[tuple[str, str, int, str, int], tuple[int, int]]:
    """(proto, vip, vport, dest ip, dest port) -> (active, inactive) from ``conntrack -L``."""
    counts: dict[tuple[str, str, int, str, int], tuple[int, int]] = {}
    for line in conntrack_text.splitlines():
        fields = line.split()
        tuples = _TUPLE.findall(line)
        if len(fields) < 3 or fields[0] not in PROTO_NUM or len(tuples) < 2:
            continue
        orig, reply = tuples[0], tuples[1]
        key = (fields[0], orig[1], int(orig[3]), reply[0], int(reply[2]))
        active = fields[0] == "tcp" and fields[3] == "ESTABLISHED"
        act, inact = counts.get(key, (0, 0))
        counts[key] = (act + 1, inact) if active else (act, inact + 1)
    return counts


def render(services: list[VirtualService], conntrack_text: str) -> str:
    counts = conn_counts(conntrack_text)
    out = [HEADER]
    for vs in sorted(services, key=functools.cmp_to_key(_cmp_services)):
        svc_name = f"{vs.proto.upper()}  {vs.vip}:{vs.port}"[:33]
        out.append(f"{svc_name} rr\n")
        dests = sorted(((d.ip, d.port) for d in vs.dests), key=functools.cmp_to_key(_cmp_dests))
        for ip, port in dests:
            act, inact = counts.get((vs.proto, vs.vip, vs.port, ip, port), (0, 0))
            dname = f"{ip}:{port}"[:28]
            out.append(f"  -> {dname:<28} {'Masq':<7} {1:<6d} {act:<10d} {inact:<10d}\n")
    return "".join(out)
