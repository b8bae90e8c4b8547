"""/proc/net/ip_vs (services and real servers in hex) and /proc/net/ip_vs_stats(_percpu).

Print formats (kernel net/netfilter/ipvs/ip_vs_ctl.c):
  ip_vs_info_seq_show   "%s  %08X:%04X %s %s " proto, addr, port, scheduler, "ops " or ""
                        IPv6: "%s  [%pI6]:%04X %s "; FWM: "FWM  %08X %s %s"
                        then "persistent %d %08X" (timeout, netmask) or nothing
                        "  -> %08X:%04X      %-7s %-6d %-10d %-10d" (IPv6: "[%pI6]:%04X")
  ip_vs_stats_show      two header lines, "%8LX %8LX %8LX %16LX %16LX", a blank line,
                        " Conns/s   Pkts/s ..." and the rates in the same hex layout
  ip_vs_stats_percpu    "CPU    Conns ..." header, "%3X ..." per cpu, "  ~ ..." for all cpus
"""

from __future__ import annotations

import re

from .ipvsadm_common import ELISION_REASON, Collector, Row, is_elision
from .ipvsadm_fields import (
    FieldError,
    parse_hex,
    parse_int,
    parse_proc_endpoint,
    proc_netmask,
    squeeze,
)
from .ipvsadm_list import is_header as is_list_header
from .records import Line

SERVICES = "raw_ipvs_services"
BACKENDS = "raw_ipvs_backends"
STATS = "raw_ipvs_stats"

_ADDR = r"(?:[0-9A-Fa-f]{8}|\[[0-9A-Fa-f:]+\]):[0-9A-Fa-f]{4}"
_SERVICE = re.compile(rf"^([A-Za-z][A-Za-z0-9]*) ({_ADDR}) (\S+)(?: (.*))?$")
_FWM = re.compile(r"^FWM ([0-9A-Fa-f]{8}) (\S+)(?: (.*))?$")
_BACKEND = re.compile(rf"^-> ?({_ADDR})(?: (.*))?$")
PROC_DEST_TITLE = "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn"


def looks_like_record(text: str) -> bool:
    text = squeeze(text)
    return bool(_SERVICE.match(text) or _FWM.match(text) or _BACKEND.match(text))


class ProcServicesParser:
    """/proc/net/ip_vs: like ipvsadm -Ln, but addresses, ports and marks in hex."""

    def __init__(self, out: Collector) -> None:
        self.out = out
        self.service: tuple[Row, int] | None = None
        self.lost_line: int | None = None

    def feed(self, line: Line) -> None:
        text = squeeze(line.text)
        if not text:
            return
        if is_list_header(text):
            self.service, self.lost_line = None, None
            return
        is_backend = text.startswith("->")
        if not self.out.record(line, self._backend if is_backend else self._service):
            if not is_backend:
                self.service, self.lost_line = None, line.no

    def _service(self, text: str, line: Line) -> None:
        match = _SERVICE.match(text)
        if match is not None:
            vip, family, vport = parse_proc_endpoint(match.group(2), "service address")
            key: Row = {"proto": match.group(1).lower(), "vip": vip, "vport": vport}
            scheduler, rest = match.group(3), match.group(4)
        else:
            fwm = _FWM.match(text)
            if fwm is None:
                if is_elision(text):
                    raise FieldError(ELISION_REASON)
                raise FieldError(
                    "not a /proc/net/ip_vs line (expected 'PROTO  XXXXXXXX:PPPP scheduler', "
                    "'FWM  XXXXXXXX scheduler' or '-> XXXXXXXX:PPPP Forward Weight ...')"
                )
            key = {"proto": "fwm", "vip": None, "vport": None}
            key["fwmark"] = parse_hex(fwm.group(1), "firewall mark", width=8)
            scheduler, rest, family = fwm.group(2), fwm.group(3), None
        row: Row = {**key, "format": "proc", "family": family, "source_line": line.no}
        row.update(scheduler=scheduler, flags=rest or None)
        tokens = rest.split() if rest else []
        if "persistent" in tokens:
            at = tokens.index("persistent")
            if len(tokens) < at + 3:
                raise FieldError("'persistent' without its timeout and netmask (cut short?)")
            row["persistent_s"] = parse_int(tokens[at + 1], "persistence timeout")
            row["netmask"] = proc_netmask(parse_hex(tokens[at + 2], "netmask", width=8))
        self.out.add(SERVICES, row)
        self.service, self.lost_line = (key, line.no), None

    def _backend(self, text: str, line: Line) -> None:
        match = _BACKEND.match(text)
        if match is None:
            raise FieldError("real-server line without an XXXXXXXX:PPPP hex address")
        if self.service is None:
            if self.lost_line is not None:
                raise FieldError(f"real-server line of the rejected service line {self.lost_line}")
            raise FieldError("real-server line with no service line before it")
        key, service_line = self.service
        ip, _, port = parse_proc_endpoint(match.group(1), "real-server address")
        tokens = match.group(2).split() if match.group(2) else []
        if len(tokens) != 4:
            raise FieldError(
                f"real-server line has {len(tokens)} column(s) after the address, expected "
                "Forward Weight ActiveConn InActConn (cut short?)"
            )
        row: Row = {**key, "format": "proc", "service_line": service_line, "source_line": line.no}
        row.update(backend_ip=ip, backend_port=port, forward=tokens[0])
        row["weight"] = parse_int(tokens[1], "Weight", signed=True)
        row["active_conn"] = parse_int(tokens[2], "ActiveConn", signed=True)
        row["inact_conn"] = parse_int(tokens[3], "InActConn", signed=True)
        self.out.add(BACKENDS, row)


# -- /proc/net/ip_vs_stats ---------------------------------------------------------------------

_TOTALS = ("conns", "in_pkts", "out_pkts", "in_bytes", "out_bytes")
_RATES = ("cps", "in_pps", "out_pps", "in_bps", "out_bps")
STATS_HEADERS = (
    "Total Incoming Outgoing Incoming Outgoing",
    "Conns Packets Packets Bytes Bytes",
    "CPU Conns Packets Packets Bytes Bytes",
    "Conns/s Pkts/s Pkts/s Bytes/s Bytes/s",
)


class ProcStatsParser:
    """Totals (then rates after the 'Conns/s' header), one row per counter."""

    def __init__(self, out: Collector) -> None:
        self.out = out
        self.section = "total"

    def feed(self, line: Line) -> None:
        text = squeeze(line.text)
        if not text:
            return
        if text in STATS_HEADERS:
            if text.startswith("Conns/s"):
                self.section = "rate"
            elif text.startswith("Total"):
                self.section = "total"
            return
        self.out.record(line, self._values)

    def _values(self, text: str, line: Line) -> None:
        tokens = text.split()
        cpu: int | None = None
        if len(tokens) == 6 and self.section == "total":
            cpu = None if tokens[0] == "~" else parse_hex(tokens[0], "cpu number")
            tokens = tokens[1:]
        if len(tokens) != 5:
            if is_elision(text):
                raise FieldError(ELISION_REASON)
            raise FieldError(
                f"expected five hex counters (Conns, Packets in/out, Bytes in/out), "
                f"found {len(tokens)} field(s)"
            )
        values = [parse_hex(t, "counter") for t in tokens]
        names = _TOTALS if self.section == "total" else _RATES
        for name, value in zip(names, values, strict=True):
            row = {"source_line": line.no, "section": self.section, "cpu": cpu}
            self.out.add(STATS, {**row, "counter": name, "value": value})
