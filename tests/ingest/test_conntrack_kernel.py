"""Real-kernel oracle: one conntrack table, dumped in every print format, parses the same.

A throwaway namespace pair (client ``C`` and node ``N`` joined by a veth) gets CONNMARK rules,
DNAT rules (tcp 8080 -> 9090, IPv4 and IPv6) and an SNAT rule in N's nat INPUT chain (udp 5353,
source -> 10.77.0.50). Python sockets make TCP, UDP and ICMP flows; then N's table is dumped
with ``conntrack -L`` (default, -o extended, -o id, -o xml) and ``/proc/net/nf_conntrack`` while
``conntrack -E -o extended,id`` records the events. The XML is read with xml.etree, so it is an
independent check of the text parser, and the known NAT set-up is the ground truth.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pipeline.ingest import conntrack

pytestmark = pytest.mark.root

TAG = f"ntl{os.getpid() % 100000}"
CLIENT, NODE = f"{TAG}c", f"{TAG}n"
TOOLS = ("ip", "iptables", "ip6tables", "conntrack")

SERVER = """
import select, socket, sys
listeners = []
for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, 9090)); s.listen(8); listeners.append(s)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", 5353))
print("ready", flush=True)
conns = []
while True:
    ready, _, _ = select.select(listeners + conns + [udp, sys.stdin], [], [])
    for r in ready:
        if r is sys.stdin:
            sys.exit(0)
        if r in listeners:
            conns.append(r.accept()[0])
        elif r is udp:
            data, peer = udp.recvfrom(100); udp.sendto(data, peer)
        else:
            data = r.recv(100)
            if data:
                r.sendall(data)
            else:
                conns.remove(r)
"""

CLIENT_SCRIPT = """
import socket, struct, sys
def checksum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
keep = []
for family, host in ((socket.AF_INET, "10.77.0.2"), (socket.AF_INET, "10.77.0.2"),
                     (socket.AF_INET6, "fd77::2")):
    c = socket.create_connection((host, 8080), timeout=5)
    c.sendall(b"x"); assert c.recv(1) == b"x"; keep.append(c)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
u.bind(("10.77.0.1", 40053)); u.sendto(b"q", ("10.77.0.2", 5353)); u.recvfrom(10)
icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); icmp.settimeout(5)
header = struct.pack("!BBHHH", 8, 0, 0, 4242, 1) + b"natlens!"
packet = header[:2] + struct.pack("!H", checksum(header)) + header[4:]
icmp.sendto(packet, ("10.77.0.2", 0)); icmp.recvfrom(100)
print("ready", flush=True)
sys.stdin.read()
"""


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    return f"missing {', '.join(missing)}" if missing else None


def _run(*args: str, ns: str | None = None) -> str:
    command = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout + done.stderr


def _setup() -> None:
    _run("ip", "netns", "add", CLIENT)
    _run("ip", "netns", "add", NODE)
    _run("ip", "link", "add", f"{TAG}a", "netns", CLIENT, "type", "veth", "peer", "name",
         f"{TAG}b", "netns", NODE)  # fmt: skip
    for ns, dev, v4, v6 in ((CLIENT, f"{TAG}a", "10.77.0.1", "fd77::1"),
                            (NODE, f"{TAG}b", "10.77.0.2", "fd77::2")):  # fmt: skip
        _run("ip", "addr", "add", f"{v4}/24", "dev", dev, ns=ns)
        _run("ip", "-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad", ns=ns)
        _run("ip", "link", "set", dev, "up", ns=ns)
        _run("ip", "link", "set", "lo", "up", ns=ns)
    rules = [
        ("iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080",
         "-j", "CONNMARK", "--set-mark", "42"),
        ("iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080",
         "-j", "DNAT", "--to-destination", "10.77.0.2:9090"),
        ("iptables", "-t", "nat", "-A", "INPUT", "-p", "udp", "--dport", "5353",
         "-j", "SNAT", "--to-source", "10.77.0.50"),
        ("ip6tables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080",
         "-j", "CONNMARK", "--set-mark", "42"),
        ("ip6tables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080",
         "-j", "DNAT", "--to-destination", "[fd77::2]:9090"),
    ]  # fmt: skip
    for rule in rules:
        _run(*rule, ns=NODE)


def _teardown(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=3)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    for ns in (CLIENT, NODE):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False, timeout=20)


def _start(ns: str, script: str, processes: list[subprocess.Popen[str]]) -> None:
    """Run a helper script in `ns` and wait (at most 10 s) until it prints "ready"."""
    process = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(process)
    assert process.stdout is not None and process.stderr is not None
    readable, _, _ = select.select([process.stdout], [], [], 10)
    if not readable or process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError(f"helper in {ns} did not start: {process.stderr.read()[-500:]}")


@dataclass
class Dumps:
    outputs: dict[str, str]
    events: str


@pytest.fixture(scope="module")
def dumps() -> Iterator[Dumps]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    processes: list[subprocess.Popen[str]] = []
    try:
        try:
            _setup()
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            pytest.skip(f"cannot build the namespace pair: {error}")
        events = subprocess.Popen(
            ["ip", "netns", "exec", NODE, "conntrack", "-E", "-o", "extended,id"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(events)
        _start(NODE, SERVER, processes)
        time.sleep(0.3)  # let conntrack -E subscribe before the first packet
        _start(CLIENT, CLIENT_SCRIPT, processes)
        outputs = {
            "default": _run("conntrack", "-L", ns=NODE),
            "extended": _run("conntrack", "-L", "-o", "extended", ns=NODE),
            "id": _run("conntrack", "-L", "-o", "id", ns=NODE),
            "xml": _run("conntrack", "-L", "-o", "xml", ns=NODE),
            "proc": _run("cat", "/proc/net/nf_conntrack", ns=NODE),
        }
        events.send_signal(signal.SIGINT)
        event_text, _ = events.communicate(timeout=10)
        yield Dumps(outputs, event_text)
    finally:
        _teardown(processes)


def _entries(text: str) -> list[dict[str, Any]]:
    detection = conntrack.detect(text)
    assert detection is not None
    chunk = conntrack.parse(text, detection.kind)
    chunk.check_counts()
    assert chunk.errors == [], chunk.errors  # no rejection, no summary mismatch
    ours = {"10.77.0.1", "fd77::1"}
    return [r for r in chunk.frames["raw_conntrack_entries"].to_dicts() if r["orig_src"] in ours]


KEY = ("l3proto", "proto", "orig_src", "orig_dst", "orig_sport", "orig_dport", "reply_src",
       "reply_dst", "reply_sport", "reply_dport")  # fmt: skip


def _by_key(entries: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    keyed = {tuple(r[c] for c in KEY): r for r in entries}
    assert len(keyed) == len(entries), "two entries with the same tuples"
    return keyed


def test_every_format_lists_the_same_flows(dumps: Dumps) -> None:
    tables = {name: _by_key(_entries(text)) for name, text in dumps.outputs.items()}
    reference = tables["default"]
    assert len(reference) == 5  # tcp over IPv4 twice and over IPv6, udp, icmp
    for name, table in tables.items():
        assert table.keys() == reference.keys(), name
        for key, row in table.items():
            want = reference[key]
            got = (row["state"], sorted(row["flags"]), row["mark"])
            assert got == (want["state"], sorted(want["flags"]), want["mark"]), (name, key)
    ids = {k: r["ct_id"] for k, r in tables["id"].items()}
    assert ids == {k: r["ct_id"] for k, r in tables["xml"].items()}
    assert all(isinstance(i, int) for i in ids.values())
    assert {r["format"] for r in tables["proc"].values()} == {"proc"}
    assert {r["format"] for r in tables["extended"].values()} == {"extended"}


def test_flows_show_the_nat_that_was_configured(dumps: Dumps) -> None:
    entries = _entries(dumps.outputs["extended"])
    dnat = [r for r in entries if r["proto"] == "tcp"]
    assert len(dnat) == 3
    for row in dnat:
        # why: DNAT 8080 -> 9090 rewrites the reply tuple's source, the original stays as sent
        assert (row["orig_dport"], row["reply_sport"], row["reply_dport"]) == (
            8080,
            9090,
            row["orig_sport"],
        )
        assert row["reply_src"] == row["orig_dst"]
        assert (row["state"], row["flags"], row["mark"]) == ("ESTABLISHED", ["ASSURED"], 42)
    assert {r["l3proto"] for r in dnat} == {"ipv4", "ipv6"}
    (udp,) = [r for r in entries if r["proto"] == "udp"]
    # why: SNAT in nat INPUT rewrites the source, so replies go back to the SNAT address
    assert (udp["orig_src"], udp["orig_sport"], udp["reply_dst"]) == (
        "10.77.0.1",
        40053,
        "10.77.0.50",
    )
    (icmp,) = [r for r in entries if r["proto"] == "icmp"]
    assert (icmp["orig_icmp_type"], icmp["reply_icmp_type"]) == (8, 0)
    assert icmp["orig_icmp_id"] == icmp["reply_icmp_id"] == 4242


def test_proc_prints_ipv6_expanded_but_parses_to_the_same_address(dumps: Dumps) -> None:
    assert "fd77:0000:0000:0000:0000:0000:0000:0001" in dumps.outputs["proc"]
    v6 = [r for r in _entries(dumps.outputs["proc"]) if r["l3proto"] == "ipv6"]
    assert [(r["orig_src"], r["orig_dst"]) for r in v6] == [("fd77::1", "fd77::2")]


def test_events_name_the_same_connections(dumps: Dumps) -> None:
    events = _entries(dumps.events)
    table = _by_key(_entries(dumps.outputs["id"]))
    new = [r for r in events if r["event"] == "NEW"]
    assert len(new) == len(table)
    for row in new:
        # NEW is sent when the entry is confirmed, after NAT chose the reply tuple, so the
        # event's tuples and id are the table's
        key = tuple(row[c] for c in KEY)
        assert key in table and table[key]["ct_id"] == row["ct_id"]
        assert row["format"] == "event" and row["l3proto"] in ("ipv4", "ipv6")
