"""Wireshark as the oracle: per-packet fields from `tshark -T fields`, compared with raw_packets.

tshark prints every occurrence of a field (outer and tunnelled headers, and the headers quoted in
ICMP errors, in that order). A raw_packets row of a frame is matched to the k-th occurrence of a
protocol's fields where k counts the earlier rows of the same frame with that protocol, so the
quoted ICMP headers (always last) are never compared.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

FIELDS = (
    "frame.number",
    "frame.protocols",
    "frame.time_epoch",
    "frame.len",
    "frame.cap_len",
    "frame.interface_id",
    "frame.interface_name",
    "sll.pkttype",
    "sll.ifindex",
    "sll.etype",
    "eth.type",
    "vlan.id",
    "vlan.etype",
    "ieee8021ad.id",
    "ip.version",
    "ip.src",
    "ip.dst",
    "ip.proto",
    "ip.id",
    "ip.ttl",
    "ip.len",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.nxt",
    "ipv6.hlim",
    "ipv6.plen",
    "ipv6.hopopts.nxt",
    "ipv6.routing.nxt",
    "ipv6.dstopts.nxt",
    "ipv6.fraghdr.nxt",
    "ipv6.fraghdr.offset",
    "ipv6.fraghdr.more",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.len",
    "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr",
    "udp.srcport",
    "udp.dstport",
    "udp.length",
    "sctp.srcport",
    "sctp.dstport",
    "icmp.type",
    "icmp.code",
    "icmpv6.type",
    "icmpv6.code",
    "vxlan.vni",
    "geneve.vni",
)
TSHARK_OPTIONS = (
    "-o",
    "ip.defragment:FALSE",
    "-o",
    "ipv6.defragment:FALSE",
    "-d",
    "udp.port==8472,vxlan",
)
DIRECTIONS = {0: "in", 1: "broadcast", 2: "multicast", 3: "other", 4: "out"}
EXT_HEADERS = {0, 43, 44, 51, 60, 135, 139, 140}

Frame = dict[str, list[str]]
NOT_APPLICABLE = (  # null unless the row's protocol sets them (checked below)
    "src_port",
    "dst_port",
    "seq",
    "ack",
    "tcp_flags_bits",
    "window",
    "tsval",
    "tsecr",
    "icmp_type",
    "icmp_code",
    "vni",
)


def have_tshark() -> bool:
    return shutil.which("tshark") is not None


def tshark_fields(path: Path, fields: tuple[str, ...] = FIELDS) -> dict[int, Frame]:
    """frame number -> field -> its occurrences, as tshark prints them."""
    cmd = ["tshark", "-n", "-r", str(path), *TSHARK_OPTIONS, "-T", "fields"]
    cmd += ["-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for name in fields:
        cmd += ["-e", name]
    # tshark exits non-zero on a cut or damaged file, after printing every packet before it
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    frames: dict[int, Frame] = {}
    for line in out.splitlines():
        values = line.split("\t")
        frame = {
            name: (value.split("|") if value else [])
            for name, value in zip(fields, values, strict=False)
        }
        frames[int(frame["frame.number"][0])] = frame
    return frames


def _int(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)


def _nth(frame: Frame, name: str, k: int) -> str | None:
    values = frame.get(name, [])
    return values[k] if k < len(values) else None


def _nth_int(frame: Frame, name: str, k: int) -> int | None:
    value = _nth(frame, name, k)
    return None if value is None else _int(value)


def _bool(value: str | None) -> bool:
    return value in ("1", "True", "true")


def _after_s_tag(frame: Frame) -> int | None:
    """The EtherType after an 802.1ad tag, from the protocol tshark dissected next."""
    layers = [p for p in frame["frame.protocols"][0].split(":") if p != "ethertype"]
    following = layers[layers.index("ieee8021ad") + 1] if "ieee8021ad" in layers else None
    return {"vlan": 0x8100, "ip": 0x0800, "ipv6": 0x86DD, "arp": 0x0806}.get(following or "")


def _tags(frame: Frame, link_type: str) -> tuple[int | None, int | None]:
    """Outermost VLAN id and the EtherType after the tags of the captured frame."""
    first = frame.get(
        {"ethernet": "eth.type", "sll": "sll.etype", "sll2": "sll.etype"}.get(link_type, "-")
    )
    if not first:
        return None, None
    etype, vlan = _int(first[0]), None
    tags = {0x8100: "vlan", 0x9100: "vlan", 0x88A8: "ieee8021ad"}
    seen = {"vlan": 0, "ieee8021ad": 0}
    while etype in tags:
        name = tags[etype]
        if vlan is None:
            vlan = _nth_int(frame, f"{name}.id", seen[name])
        if name == "ieee8021ad":  # tshark shows no field for the EtherType after an S-tag
            following = _after_s_tag(frame)
        else:
            following = _nth_int(frame, f"{name}.etype", seen[name])
        seen[name] += 1
        if following is None:
            return vlan, None
        etype = following
    return vlan, etype


def expected_row(row: dict[str, Any], frame: Frame, seen: dict[str, int]) -> dict[str, Any]:
    """What tshark says about the fields of one of our rows (`seen`: earlier rows per protocol)."""
    exp: dict[str, Any] = dict.fromkeys(NOT_APPLICABLE)
    depth = row["encap_depth"]
    if depth == 0:
        exp["frame_len"] = _int(frame["frame.len"][0])
        exp["caplen"] = _int(frame["frame.cap_len"][0])
        exp["iface_id"] = _nth_int(frame, "frame.interface_id", 0)
        epoch = _nth(frame, "frame.time_epoch", 0)  # none for a Simple Packet Block
        exp["ts_ns"] = None if epoch is None else int(Decimal(epoch) * 1_000_000_000)
        pkttype = _nth_int(frame, "sll.pkttype", 0)
        exp["direction"] = None if pkttype is None else DIRECTIONS.get(pkttype, "other")
        exp["ifindex"] = _nth_int(frame, "sll.ifindex", 0)
        exp["vlan"], exp["eth_type"] = _tags(frame, row["link_type"])
    version = row["ip_version"]
    if version == 4:
        k = seen.get("ip", 0)
        exp["src_ip"] = _nth(frame, "ip.src", k)
        exp["dst_ip"] = _nth(frame, "ip.dst", k)
        exp["proto_num"] = _nth_int(frame, "ip.proto", k)
        exp["ip_id"] = _nth_int(frame, "ip.id", k)
        exp["ttl"] = _nth_int(frame, "ip.ttl", k)
        exp["ip_len"] = _nth_int(frame, "ip.len", k)
        offset = _nth_int(frame, "ip.frag_offset", k)  # in units of 8 bytes
        exp["frag_offset"] = None if offset is None else offset * 8
        mf = _nth(frame, "ip.flags.mf", k)
        if offset is not None and mf is not None:
            exp["is_fragment"] = _bool(mf) or offset > 0
    elif version == 6:
        k = seen.get("ipv6", 0)
        exp["src_ip"] = _nth(frame, "ipv6.src", k)
        exp["dst_ip"] = _nth(frame, "ipv6.dst", k)
        exp["ttl"] = _nth_int(frame, "ipv6.hlim", k)
        plen = _nth_int(frame, "ipv6.plen", k)
        exp["ip_len"] = None if plen is None else plen + 40
        if seen.get("ipv6", 0) == 0:  # extension headers of the first IPv6 header only
            chain = [
                _int(v)
                for name in ("ipv6.nxt", "ipv6.hopopts.nxt", "ipv6.routing.nxt")
                + ("ipv6.dstopts.nxt", "ipv6.fraghdr.nxt")
                for v in frame.get(name, [])
            ]
            final = [v for v in chain if v not in EXT_HEADERS]
            if final:
                exp["proto_num"] = final[0]
            offsets = frame.get("ipv6.fraghdr.offset", [])
            if offsets:
                exp["frag_offset"] = _int(offsets[0]) * 8
                more = _bool(frame["ipv6.fraghdr.more"][0])
                exp["is_fragment"] = more or _int(offsets[0]) > 0
    for src in ("src_ip", "dst_ip"):
        if exp.get(src) is not None:
            exp[src] = str(ipaddress.ip_address(exp[src]))
    proto = row["proto_num"]
    if proto == 6 and not row["is_fragment_later"]:
        k = seen.get("tcp", 0)
        for ours, theirs in (
            ("src_port", "tcp.srcport"),
            ("dst_port", "tcp.dstport"),
            ("seq", "tcp.seq_raw"),
            ("ack", "tcp.ack_raw"),
            ("tcp_flags_bits", "tcp.flags"),
            ("window", "tcp.window_size_value"),
            ("payload_len", "tcp.len"),
            ("tsval", "tcp.options.timestamp.tsval"),
            ("tsecr", "tcp.options.timestamp.tsecr"),
        ):
            exp[ours] = _nth_int(frame, theirs, k)
    elif proto in (17, 132) and not row["is_fragment_later"]:
        name = "udp" if proto == 17 else "sctp"
        k = seen.get(name, 0)
        exp["src_port"] = _nth_int(frame, f"{name}.srcport", k)
        exp["dst_port"] = _nth_int(frame, f"{name}.dstport", k)
    elif proto in (1, 58) and not row["is_fragment_later"]:
        name = "icmp" if proto == 1 else "icmpv6"
        k = seen.get(name, 0)
        exp["icmp_type"] = _nth_int(frame, f"{name}.type", k)
        exp["icmp_code"] = _nth_int(frame, f"{name}.code", k)
    if depth > 0:
        field = "vxlan.vni" if row["tunnel"] == "vxlan" else "geneve.vni"
        exp["vni"] = _nth_int(frame, field, seen.get(row["tunnel"], 0))
    return exp


def _count(row: dict[str, Any], seen: dict[str, int]) -> None:
    names = []
    if row["ip_version"] == 4:
        names.append("ip")
    elif row["ip_version"] == 6:
        names.append("ipv6")
    proto = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp", 58: "icmpv6"}.get(row["proto_num"])
    if proto and not row["is_fragment_later"]:
        names.append(proto)
    if row["tunnel"]:
        names.append(row["tunnel"])
    for name in names:
        seen[name] = seen.get(name, 0) + 1


def compare(frame: pl.DataFrame, oracle: dict[int, Frame]) -> list[str]:
    """Every disagreement between our rows and tshark's fields, as readable lines."""
    problems: list[str] = []
    ours = frame.with_columns(
        pl.col("ts").dt.epoch("ns").alias("ts_ns"),
        ((pl.col("frag_offset") > 0).fill_null(False)).alias("is_fragment_later"),
        (pl.col("encap_depth").max().over("frame_no") > 0).alias("has_inner"),
    )
    if set(ours["frame_no"].unique().to_list()) != set(oracle):
        problems.append(f"frame numbers differ: ours {ours.height} rows, tshark {len(oracle)}")
    for frame_no, rows in ours.group_by("frame_no", maintain_order=True):
        fields = oracle.get(int(frame_no[0]))  # type: ignore[arg-type]
        if fields is None:
            continue
        seen: dict[str, int] = {}
        if rows["ip_version"][0] is None and (fields["ip.src"] or fields["ipv6.src"]):
            problems.append(f"frame {frame_no[0]}: tshark sees IP, we do not")
        for row in rows.iter_rows(named=True):
            expected = expected_row(row, fields, seen)
            _count(row, seen)
            for name, value in expected.items():
                if row[name] != value:
                    problems.append(
                        f"frame {row['frame_no']} depth {row['encap_depth']} {name}: "
                        f"ours {row[name]!r}, tshark {value!r}"
                    )
    return problems
