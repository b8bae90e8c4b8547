"""Which commands make a bundle, in the forms natlens reads best, and the file each one fills.

Per node: the recorders that run for the capture's duration (tcpdump per interface, conntrack
events), then the state dumps (rules, sets, addresses, routes, conntrack table and counters,
IPVS), the tool versions, the kernel and the clock. Once per bundle: the cluster objects from
kubectl. Each command names the binary it needs; a node without it gets a "missing" record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CLOCK_CMD = ["date", "-u", "+%Y-%m-%dT%H:%M:%S.%NZ"]
KERNEL_CMD = ["uname", "-r"]
# prints the name of every given tool the node has, one a line (one round trip per node)
PROBE_SCRIPT = 'for t in "$@"; do command -v "$t" >/dev/null 2>&1 && echo "$t"; done; exit 0'
ANY = "any"


@dataclass(frozen=True)
class Command:
    """One command run on a node; its stdout is the file."""

    name: str  # key in the manifest
    argv: tuple[str, ...]
    file: str  # output file name, in the node folder
    tool: str  # the binary the node must have
    optional: bool = False  # "where supported": a failure is expected on some nodes
    also: tuple[str, ...] = ()  # other binaries it runs (timeout)

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.tool, *self.also)


STATE: tuple[Command, ...] = (
    Command("iptables-save", ("iptables-save",), "iptables-save.txt", "iptables-save"),
    Command("nft", ("nft", "-j", "list", "ruleset"), "nft-ruleset.json", "nft", optional=True),
    Command("ipset", ("ipset", "save"), "ipset-save.txt", "ipset"),
    Command("ip-addr", ("ip", "-j", "addr"), "ip-addr.json", "ip"),
    Command("ip-route", ("ip", "-j", "route", "show", "table", "all"), "ip-route.json", "ip"),
    Command("ip-rule", ("ip", "-j", "rule"), "ip-rule.json", "ip"),
    Command(
        "conntrack-extended",
        ("conntrack", "-L", "-o", "extended"),
        "conntrack-extended.txt",
        "conntrack",
    ),
    Command(
        "conntrack-extended-id",
        ("conntrack", "-L", "-o", "extended,id,ktimestamp"),
        "conntrack-extended-id.txt",
        "conntrack",
        optional=True,
    ),
    Command("conntrack-stats", ("conntrack", "-S"), "conntrack-stats.txt", "conntrack"),
    Command(
        "sysctl-conntrack",
        ("sysctl", "net.netfilter", "net.nf_conntrack_max"),
        "sysctl-conntrack.txt",
        "sysctl",
        optional=True,
    ),
    Command("ipvsadm", ("ipvsadm", "-Ln"), "ipvsadm-Ln.txt", "ipvsadm", optional=True),
    Command(
        "ipvsadm-stats",
        ("ipvsadm", "-Ln", "--stats"),
        "ipvsadm-Ln-stats.txt",
        "ipvsadm",
        optional=True,
    ),
    Command(
        "ipvsadm-rate",
        ("ipvsadm", "-Ln", "--rate"),
        "ipvsadm-Ln-rate.txt",
        "ipvsadm",
        optional=True,
    ),
    Command("ipvsadm-conn", ("ipvsadm", "-Lnc"), "ipvsadm-Lnc.txt", "ipvsadm", optional=True),
)

VERSIONS: dict[str, tuple[str, ...]] = {
    "iptables": ("iptables", "--version"),
    "nft": ("nft", "--version"),
    "ipset": ("ipset", "--version"),
    "conntrack": ("conntrack", "--version"),
    "ip": ("ip", "-V"),
    "tcpdump": ("tcpdump", "--version"),
    "ipvsadm": ("ipvsadm", "--version"),
}

CLUSTER = Command(
    "kubectl-get",
    ("kubectl", "get", "services,endpointslices,pods,nodes", "-A", "-o", "json"),
    "kubectl-get.json",
    "kubectl",
)

_IFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")  # Linux IFNAMSIZ - 1


def check_interface(name: str) -> str:
    """An interface name usable on tcpdump's command line and as a file name."""
    if not _IFACE.match(name) or name.startswith(("-", ".")):
        raise ValueError(f"{name!r} is not an interface name")
    return name


def tcpdump(iface: str, duration_s: float, bpf: str | None) -> Command:
    """tcpdump on one interface for the duration, the pcap on stdout (works over ssh too).

    ``timeout -s INT`` stops it on the node itself, so every node's capture ends after the same
    time from a common start, whatever the access; SIGINT makes tcpdump flush and print its
    counts. ``-i any`` records Linux SLL2 (it keeps the interface index of each packet).
    """
    argv = ["timeout", "-s", "INT", _seconds(duration_s), "tcpdump", "-i", iface, "-n", "-U"]
    argv += ["-w", "-"] + (["-y", "LINUX_SLL2"] if iface == ANY else [])
    if bpf:
        argv.append(bpf)
    return Command(f"tcpdump-{iface}", tuple(argv), f"{iface}.pcap", "tcpdump", also=("timeout",))


def conntrack_events(duration_s: float) -> Command:
    """conntrack -E for the capture's duration: short-lived flows gone before the -L dump."""
    argv = ("timeout", "-s", "INT", _seconds(duration_s), "conntrack", "-E", "-o", "timestamp")
    return Command("conntrack-events", argv, "conntrack-events.txt", "conntrack", also=("timeout",))


def recorders(interfaces: list[str], duration_s: float, bpf: str | None) -> list[Command]:
    return [*(tcpdump(i, duration_s, bpf) for i in interfaces), conntrack_events(duration_s)]


def probe_argv(tools: list[str]) -> list[str]:
    return ["sh", "-c", PROBE_SCRIPT, "sh", *tools]


def tools_needed(commands: list[Command]) -> list[str]:
    needed = set(VERSIONS)
    for cmd in commands:
        needed.update(cmd.needs)
    return sorted(needed)


def _seconds(value: float) -> str:
    return f"{value:g}"
