"""ipvsadm-save / ipvsadm -S [-n]: the rules as ipvsadm commands, one per line.

Print format (ipvsadm.c print_service_entry with FMT_RULE):
  "-A %s -s %s" service (-t|-u|--sctp-service addr:port, or -f mark [-6]) and scheduler, then
      " -b flags", " -p %u", " -M mask", " --pe name" (older: " pe name"), " -o" (older: " ops")
  "-a %s -r %s %s -w %d" service, real server, forward switch (-m|-g|-i; "(null)" when the kernel
      reports a method ipvsadm does not know), weight; newer ipvsadm adds --tun-* options.
Without -n, addresses and ports are names ('10.10.11.77:http'): kept as printed, port numbers
from the small well-known table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ipvsadm_common import ELISION_REASON, Collector, Row, is_elision
from .ipvsadm_fields import (
    FieldError,
    is_decimal,
    normalise_ip,
    parse_endpoint,
    parse_int,
    squeeze,
)
from .records import Line

SERVICES = "raw_ipvs_services"
BACKENDS = "raw_ipvs_backends"

_COMMANDS = {"-A": "A", "--add-service": "A", "-a": "a", "--add-server": "a"}
_SERVICE_OPTIONS = {
    "-t": "tcp",
    "--tcp-service": "tcp",
    "-u": "udp",
    "--udp-service": "udp",
    "--sctp-service": "sctp",
    "-f": "fwm",
    "--fwmark-service": "fwm",
}
_FORWARD = {
    "-m": "Masq",
    "--masquerading": "Masq",
    "-g": "Route",
    "--gatewaying": "Route",
    "-i": "Tunnel",
    "--ipip": "Tunnel",
}
# service options kept (as printed) in `flags`; True = the option takes a value
_SERVICE_FLAGS = {
    "-p": True,
    "--persistent": True,
    "-M": True,
    "--netmask": True,
    "-b": True,
    "--sched-flags": True,
    "--pe": True,
    "pe": True,
    "-o": False,
    "--ops": False,
    "ops": False,
}
_INT_OPTIONS = {
    "-w": "weight",
    "--weight": "weight",
    "-x": "u_threshold",
    "--u-threshold": "u_threshold",
    "-y": "l_threshold",
    "--l-threshold": "l_threshold",
}
_TUNNEL_OPTIONS = {"--tun-type": True, "--tun-port": True}
_TUNNEL_FLAGS = ("--tun-nocsum", "--tun-csum", "--tun-remcsum")


def looks_like_record(text: str) -> bool:
    tokens = squeeze(text).split()
    return len(tokens) >= 3 and tokens[0] in _COMMANDS and tokens[1] in _SERVICE_OPTIONS


@dataclass
class _Rule:
    command: str
    key: Row = field(default_factory=dict)
    family: str | None = None
    service_flags: list[str] = field(default_factory=list)
    tunnel: list[str] = field(default_factory=list)
    values: Row = field(default_factory=dict)


class SaveParser:
    def __init__(self, out: Collector) -> None:
        self.out = out
        self.service_lines: dict[tuple[object, ...], int] = {}

    def feed(self, line: Line) -> None:
        if squeeze(line.text):
            self.out.record(line, self._rule)

    def _rule(self, text: str, line: Line) -> None:
        rule = _read_rule(text.split())
        if not rule.key:
            raise FieldError("rule has no -t/-u/--sctp-service/-f service")
        ident = tuple(rule.key[k] for k in ("proto", "vip", "vport", "vport_name", "fwmark"))
        if rule.command == "A":
            row: Row = {**rule.key, **rule.values, "format": "save", "source_line": line.no}
            row["family"] = rule.family
            row["flags"] = " ".join(rule.service_flags) or None
            self.out.add(SERVICES, row)
            self.service_lines[ident] = line.no
            return
        if "backend_ip" not in rule.values:
            raise FieldError("-a rule without -r real-server address")
        service_line = self.service_lines.get(ident)
        if service_line is None:
            self.out.warn(line, "-a rule for a service with no -A rule before it")
        row = {**rule.key, **rule.values, "format": "save", "source_line": line.no}
        row["service_line"] = service_line
        row["tunnel_info"] = " ".join(rule.tunnel) or None
        self.out.add(BACKENDS, row)


def _read_rule(tokens: list[str]) -> _Rule:
    if not tokens or tokens[0] not in _COMMANDS:
        if is_elision(" ".join(tokens)):
            raise FieldError(ELISION_REASON)
        raise FieldError("not an ipvsadm-save rule (expected a line starting with -A or -a)")
    rule = _Rule(_COMMANDS[tokens[0]])
    i = 1
    while i < len(tokens):
        option = tokens[i]
        value = tokens[i + 1] if i + 1 < len(tokens) else None
        i += _read_option(rule, option, value)
    return rule


def _read_option(rule: _Rule, option: str, value: str | None) -> int:
    """Apply one option to `rule`; return how many tokens it used."""
    if option in _FORWARD or (option.startswith("(") and option.endswith(")")):
        rule.values["forward"] = _FORWARD.get(option, option)
        return 1
    if option == "-6":
        rule.family = "inet6"
        return 1
    if option in _SERVICE_FLAGS and not _SERVICE_FLAGS[option]:
        rule.service_flags.append(option)
        return 1
    if option in _TUNNEL_FLAGS:
        rule.tunnel.append(option)
        return 1
    if option in ("-p", "--persistent") and (value is None or not is_decimal(value)):
        rule.service_flags.append(option)  # -p without a timeout: ipvsadm's default applies
        return 1
    if value is None:
        raise FieldError(f"option '{option}' without its value (cut short?)")
    if option in _SERVICE_OPTIONS:
        _read_service(rule, _SERVICE_OPTIONS[option], value)
    elif option in ("-s", "--scheduler"):
        rule.values["scheduler"] = value
    elif option in _SERVICE_FLAGS:
        rule.service_flags += [option, value]
        if option in ("-p", "--persistent"):
            rule.values["persistent_s"] = parse_int(value, "persistence timeout")
        elif option in ("-M", "--netmask"):
            rule.values["netmask"] = (
                value if is_decimal(value) else normalise_ip(value, "netmask")[0]
            )
    elif option in ("-r", "--real-server"):
        endpoint = parse_endpoint(value, "real-server address")
        rule.values.update(
            backend_ip=endpoint.host,
            backend_port=endpoint.port,
            backend_port_name=endpoint.port_name,
        )
    elif option in _INT_OPTIONS:
        column = _INT_OPTIONS[option]
        rule.values[column] = parse_int(value, column.replace("_", " "), signed=True)
    elif option in _TUNNEL_OPTIONS:
        rule.tunnel += [option, value]
    else:
        raise FieldError(f"unknown ipvsadm option '{option}'")
    return 2


def _read_service(rule: _Rule, proto: str, value: str) -> None:
    if rule.key:
        raise FieldError("rule names two services")
    if proto == "fwm":
        mark = parse_int(value, "firewall mark")
        rule.key = {"proto": "fwm", "vip": None, "vport": None, "vport_name": None}
        rule.key["fwmark"] = mark
        rule.family = rule.family or "inet"
        return
    endpoint = parse_endpoint(value, "service address")
    rule.key = {
        "proto": proto,
        "vip": endpoint.host,
        "vport": endpoint.port,
        "vport_name": endpoint.port_name,
        "fwmark": None,
    }
    rule.family = endpoint.family
